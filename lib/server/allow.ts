/**
 * Refusing peers that are not the web server: `--allow ADDR[,ADDR]` (addresses or CIDR
 * ranges) for every TCP listener, and for FastCGI listeners the FCGI_WEB_SERVER_ADDRS
 * environment variable of the FastCGI specification (a comma-separated list of addresses)
 * when --allow is not given. Unix-socket peers are always allowed (file permissions guard
 * them: --socket-mode, --user/--group).
 *
 * The check wraps the listener from outside: the server's 'connection' listeners are moved
 * behind a guard that destroys a refused socket before any protocol code sees it. A refused
 * peer is logged once (per address, up to 1024 addresses).
 */
import process from 'node:process';
import { BlockList, isIP, type Server, type Socket } from 'node:net';

/** A set of allowed peers. */
export interface AllowList {
  /** True when a peer with this remote address may connect (undefined: a unix socket). */
  allows(address: string | undefined): boolean;
  /** The entries as given, for messages. */
  readonly entries: readonly string[];
}

/** Counters a guard updates. */
export interface AllowCounters {
  refused: number;
}

const MAPPED = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i;

/**
 * Parses allow entries (`127.0.0.1`, `::1`, `10.0.0.0/8`, `fd00::/8`); throws an Error naming
 * the first bad entry.
 */
export function parseAllowList(entries: readonly string[]): AllowList {
  const list = new BlockList();
  for (const raw of entries) {
    const entry = raw.trim();
    const slash = entry.indexOf('/');
    const ip = slash === -1 ? entry : entry.slice(0, slash);
    const family = isIP(ip);
    if (family === 0) {
      throw new Error(`"${entry}" is not an IP address or a CIDR range (such as 10.0.0.0/8)`);
    }
    const type = family === 4 ? 'ipv4' : 'ipv6';
    if (slash === -1) {
      list.addAddress(ip, type);
      continue;
    }
    const bits = entry.slice(slash + 1);
    const max = family === 4 ? 32 : 128;
    if (!/^[0-9]{1,3}$/.test(bits) || Number(bits) > max) {
      throw new Error(`"${entry}": the prefix length must be a number from 0 to ${max}`);
    }
    list.addSubnet(ip, Number(bits), type);
  }
  return {
    entries: [...entries],
    allows(address: string | undefined): boolean {
      if (address === undefined || address === '') return true;
      const m = MAPPED.exec(address);
      if (m !== null) return list.check(m[1]!, 'ipv4') || list.check(address, 'ipv6');
      return list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
    },
  };
}

/** The addresses in FCGI_WEB_SERVER_ADDRS, or null when it is unset or empty. */
export function fcgiWebServerAddrs(env: NodeJS.ProcessEnv = process.env): string[] | null {
  const v = env.FCGI_WEB_SERVER_ADDRS;
  if (v === undefined) return null;
  const list = v
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  return list.length === 0 ? null : list;
}

/**
 * Puts `allow` in front of `server`: a connection from a peer it does not allow is destroyed
 * at once (the protocol never sees it), counted, and logged the first time that address is
 * seen. Call it after the protocol server is created (its listeners are moved behind the
 * guard).
 */
export function guardServer(
  server: Server,
  allow: AllowList,
  log: (line: string) => void,
  counters: AllowCounters = { refused: 0 },
  label = '',
): void {
  const inner = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const logged = new Set<string>();
  server.on('connection', (socket: Socket) => {
    const peer = socket.remoteAddress;
    if (allow.allows(peer)) {
      for (let i = 0; i < inner.length; i++) inner[i]!.call(server, socket);
      return;
    }
    counters.refused++;
    socket.destroy();
    if (peer !== undefined && !logged.has(peer) && logged.size < 1024) {
      logged.add(peer);
      log(
        `refused a connection from ${peer}${label ? ` on ${label}` : ''}: not in the allowed ` +
          `addresses (${allow.entries.join(', ')}); further ones from it are not logged`,
      );
    }
  });
}

/** True for an address only this machine can reach (127.0.0.0/8, ::1, their mapped forms). */
export function isLoopback(address: string): boolean {
  const a = address.replace(/^\[|\]$/g, '');
  const v4 = MAPPED.exec(a)?.[1] ?? a;
  return /^127\./.test(v4) || a === '::1' || a === 'localhost';
}

/**
 * The start-up warning for a gateway listener (FastCGI, SCGI, uwsgi) that other machines can
 * reach while no --allow (nor, for FastCGI, FCGI_WEB_SERVER_ADDRS) limits its peers, or null.
 * A gateway protocol trusts its peer for REMOTE_ADDR, HTTPS and everything the front server
 * would have checked, so a client reaching it directly bypasses the front server. `host` is
 * the bound address (null: not known, as for an inherited socket under a master).
 */
export function exposureWarning(
  protocol: { flag: string; title: string },
  shown: string,
  host: string | null,
  allow: readonly string[] | null,
): string | null {
  if (protocol.flag === 'http' || host === null || isLoopback(host)) return null;
  if (allow !== null) return null;
  if (protocol.flag === 'fastcgi' && fcgiWebServerAddrs() !== null) return null;
  const port = /:([0-9]+)$/.exec(shown)?.[1] ?? 'PORT';
  return (
    `${protocol.title} on ${shown} accepts connections from other machines and trusts them ` +
    `like the front server (client address, HTTPS): bind 127.0.0.1:${port} or a unix socket, ` +
    `or name the front server with --allow ADDR`
  );
}
