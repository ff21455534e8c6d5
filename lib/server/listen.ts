/**
 * Listening addresses: parsing ADDR (HOST:PORT, :PORT, unix:/path, fd:N), binding a
 * net.Server to one with clear errors, and telling whether an inherited fd is a listening
 * socket (a web server that spawns tsgi passes one on fd 0, FCGI_LISTENSOCK_FILENO).
 *
 * Also what a master process needs: {@link bindSocket} binds an address without accepting on
 * it (the workers accept), unix sockets get a mode and an owner, a socket file left by a dead
 * server is removed (never a live socket, never a file that is not a socket), and systemd
 * socket activation (LISTEN_FDS) is read by {@link systemdSockets}.
 */
import process from 'node:process';
import { connect, type Server } from 'node:net';
import {
  chownSync,
  chmodSync,
  fstatSync,
  lstatSync,
  readFileSync,
  readlinkSync,
  unlinkSync,
} from 'node:fs';
import { bindFd, socketCalls } from '../protocol/listener.js';

export type ListenAddress =
  | { type: 'tcp'; host: string; port: number }
  | { type: 'unix'; path: string }
  | { type: 'fd'; fd: number };

/** A listening address that cannot be parsed or bound; the message is for the user. */
export class ListenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ListenError';
  }
}

/**
 * Parses ADDR: `HOST:PORT` (`[::1]:PORT` for IPv6), `:PORT` (every interface), `unix:PATH`,
 * `fd:N`. A bare PORT is accepted as `:PORT`.
 */
export function parseAddress(spec: string): ListenAddress {
  if (spec.startsWith('unix:')) {
    const path = spec.slice(5);
    if (path === '') throw new ListenError(`"${spec}": unix: needs a socket path`);
    return { type: 'unix', path };
  }
  if (spec.startsWith('fd:')) {
    const n = spec.slice(3);
    if (!/^[0-9]{1,9}$/.test(n))
      throw new ListenError(`"${spec}": fd: needs a file descriptor number`);
    return { type: 'fd', fd: Number(n) };
  }
  let host: string;
  let port: string;
  if (/^[0-9]+$/.test(spec)) {
    host = '';
    port = spec;
  } else if (spec.startsWith('[')) {
    const m = /^\[([0-9A-Fa-f:.%a-zA-Z]+)\]:([0-9]+)$/.exec(spec);
    if (m === null) throw new ListenError(`"${spec}": expected [IPV6]:PORT`);
    host = m[1]!;
    port = m[2]!;
  } else {
    const colon = spec.lastIndexOf(':');
    if (colon === -1) {
      throw new ListenError(`"${spec}": expected HOST:PORT, :PORT, unix:/path or fd:N`);
    }
    host = spec.slice(0, colon);
    port = spec.slice(colon + 1);
    if (host.includes(':')) throw new ListenError(`"${spec}": write IPv6 hosts as [HOST]:PORT`);
  }
  if (!/^[0-9]{1,5}$/.test(port) || Number(port) > 65535) {
    throw new ListenError(`"${spec}": the port must be a number from 0 to 65535`);
  }
  return { type: 'tcp', host, port: Number(port) };
}

/** ADDR as the user would write it (for a bound TCP server, the real host and port). */
export function formatAddress(addr: ListenAddress): string {
  switch (addr.type) {
    case 'tcp':
      return addr.host.includes(':') ? `[${addr.host}]:${addr.port}` : `${addr.host}:${addr.port}`;
    case 'unix':
      return `unix:${addr.path}`;
    case 'fd':
      return `fd:${addr.fd}`;
  }
}

const REASONS: Record<string, string> = {
  EADDRINUSE: 'address already in use',
  EACCES: 'permission denied',
  EADDRNOTAVAIL: 'address not available on this machine',
  ENOTFOUND: 'unknown host',
  EAI_AGAIN: 'unknown host',
  ENOENT: 'no such directory',
  EBADF: 'not an open file descriptor',
  EINVAL: 'not a socket that can listen',
  ENOTSOCK: 'not a socket',
};

function reason(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  return (code && REASONS[code]) || (err as Error).message;
}

/** What is at a unix socket path before tsgi binds it. */
export type SocketPathState = 'absent' | 'stale' | 'live' | 'not-socket';

/**
 * Looks at `path`: nothing there, a socket nobody accepts on (a leftover of a dead server:
 * connecting is refused), a live socket (someone accepts), or something that is not a socket.
 */
export function socketPathState(path: string): Promise<SocketPathState> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return Promise.resolve('absent');
  }
  if (!isSocket) return Promise.resolve('not-socket');
  return new Promise((resolve) => {
    const s = connect(path);
    s.on('connect', () => {
      s.destroy();
      resolve('live');
    });
    s.on('error', (err: NodeJS.ErrnoException) =>
      resolve(err.code === 'ECONNREFUSED' ? 'stale' : 'live'),
    );
  });
}

/**
 * Makes `path` free for a new unix socket: removes a stale socket file; throws a ListenError
 * for a live socket ("address already in use") or for a file that is not a socket (which is
 * never removed).
 */
export async function clearSocketPath(path: string): Promise<void> {
  const state = await socketPathState(path);
  if (state === 'live') {
    throw new ListenError(`cannot listen on unix:${path}: address already in use`);
  }
  if (state === 'not-socket') {
    throw new ListenError(
      `cannot listen on unix:${path}: the path exists and is not a socket (left as it is)`,
    );
  }
  if (state === 'stale') {
    try {
      unlinkSync(path);
    } catch {
      /* binding reports the problem */
    }
  }
}

/** How unix sockets tsgi creates are set up. */
export interface UnixSocketOptions {
  /** Permissions (e.g. 0o660); by default the umask decides. */
  mode?: number | null;
  /** Owner to give the socket file (numeric ids; -1 keeps one unchanged). */
  uid?: number;
  gid?: number;
}

/** Runs `bind` under a umask that leaves at most `mode`, then sets mode and owner exactly. */
async function withSocketFile<T>(
  path: string,
  options: UnixSocketOptions,
  bind: () => Promise<T>,
): Promise<T> {
  const mode = options.mode ?? null;
  const old = mode === null ? null : process.umask(0o777 & ~mode);
  let result: T;
  try {
    result = await bind();
  } finally {
    if (old !== null) process.umask(old);
  }
  try {
    if (mode !== null) chmodSync(path, mode);
    if ((options.uid ?? -1) !== -1 || (options.gid ?? -1) !== -1) {
      chownSync(path, options.uid ?? -1, options.gid ?? -1);
    }
  } catch (err) {
    throw new ListenError(`cannot set up unix:${path}: ${reason(err)}`);
  }
  return result;
}

/**
 * Binds `server` to `addr` and resolves with the bound address formatted (the real port when
 * 0 was asked). Rejects with a ListenError naming the address and the reason. A unix socket
 * file left by a dead server is replaced; one with a live server is "address already in use";
 * a path that is not a socket is left alone (an error). `unix` sets up created unix sockets.
 */
export async function listen(
  server: Server,
  addr: ListenAddress,
  unix: UnixSocketOptions = {},
): Promise<string> {
  const shown = formatAddress(addr);
  if (addr.type === 'unix') {
    await clearSocketPath(addr.path);
    await withSocketFile(addr.path, unix, () => listenNow(server, addr, shown));
  } else {
    await listenNow(server, addr, shown);
  }
  if (addr.type === 'tcp') {
    const a = server.address();
    if (a !== null && typeof a === 'object') {
      return formatAddress({ type: 'tcp', host: a.address, port: a.port });
    }
  }
  return shown;
}

function listenNow(server: Server, addr: ListenAddress, shown: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => {
      server.off('listening', onListening);
      reject(new ListenError(`cannot listen on ${shown}: ${reason(err)}`));
    };
    const onListening = (): void => {
      server.off('error', onError);
      resolve();
    };
    server.once('error', onError);
    server.once('listening', onListening);
    try {
      if (addr.type === 'tcp') server.listen({ host: addr.host || undefined, port: addr.port });
      else if (addr.type === 'unix') server.listen({ path: addr.path });
      else server.listen({ fd: addr.fd });
    } catch (err) {
      server.off('listening', onListening);
      server.off('error', onError);
      reject(new ListenError(`cannot listen on ${shown}: ${reason(err)}`));
    }
  });
}

/** A socket bound by {@link bindSocket}: workers listen on `fd`; close() releases it. */
export interface BoundSocket {
  readonly addr: ListenAddress;
  /** The address as shown to people (the real port when 0 was asked). */
  readonly shown: string;
  /** The file descriptor to hand to workers. */
  readonly fd: number;
  /** Closes tsgi's socket (a unix socket file tsgi created is removed); not for fd:N. */
  close(): void;
}

/**
 * Binds `addr` without accepting on it: the socket is created and bound in this process
 * (lib/protocol/listener.ts, with the native addon), and its fd is handed to worker
 * processes, which listen and accept. An fd:N address is checked to be a socket and handed on
 * as it is. Without the addon there is no way to bind without accepting in this process:
 * workers need it.
 */
export async function bindSocket(
  addr: ListenAddress,
  unix: UnixSocketOptions = {},
): Promise<BoundSocket> {
  const shown = formatAddress(addr);
  if (addr.type === 'fd') {
    try {
      if (!fstatSync(addr.fd).isSocket())
        throw new ListenError(`cannot listen on ${shown}: not a socket`);
    } catch (err) {
      if (err instanceof ListenError) throw err;
      throw new ListenError(`cannot listen on ${shown}: ${reason(err)}`);
    }
    return { addr, shown, fd: addr.fd, close: () => {} };
  }
  const calls = socketCalls();
  if (calls === null) {
    throw new ListenError(
      `cannot listen on ${shown}: workers need the native addon, which is not available ` +
        'here; run without --workers',
    );
  }
  const failed = (err: unknown): never => {
    throw new ListenError(`cannot listen on ${shown}: ${reason(err)}`);
  };
  if (addr.type === 'unix') {
    await clearSocketPath(addr.path);
    const bound = await withSocketFile(addr.path, unix, () =>
      bindFd(calls, { path: addr.path }).catch(failed),
    );
    return { addr, shown, fd: bound.fd, close: () => bound.close() };
  }
  const bound = await bindFd(calls, { host: addr.host, port: addr.port }).catch(failed);
  const local = calls.localAddress(bound.fd);
  return {
    addr,
    shown: formatAddress({
      type: 'tcp',
      host: local?.[0] ?? addr.host,
      port: local?.[1] ?? addr.port,
    }),
    fd: bound.fd,
    close: () => bound.close(),
  };
}

/** A listening socket passed by systemd socket activation. */
export interface SystemdSocket {
  fd: number;
  /** Its FileDescriptorName= (LISTEN_FDNAMES), or "" when none was given. */
  name: string;
}

/**
 * The sockets systemd passed (sd_listen_fds): LISTEN_FDS sockets from fd 3 when LISTEN_PID is
 * this process, named by LISTEN_FDNAMES when set. The variables are removed from the
 * environment (as sd_listen_fds(1) does), so that no child process takes them as its own.
 */
export function systemdSockets(env: NodeJS.ProcessEnv = process.env): SystemdSocket[] {
  const count = env.LISTEN_FDS;
  const pid = env.LISTEN_PID;
  const names = env.LISTEN_FDNAMES;
  delete env.LISTEN_FDS;
  delete env.LISTEN_PID;
  delete env.LISTEN_FDNAMES;
  if (count === undefined || !/^[0-9]{1,4}$/.test(count)) return [];
  if (pid !== String(process.pid)) return [];
  const n = Number(count);
  const list = names === undefined ? [] : names.split(':');
  const out: SystemdSocket[] = [];
  for (let i = 0; i < n; i++) out.push({ fd: 3 + i, name: list[i] ?? '' });
  return out;
}

/**
 * True when `fd` is a listening socket. On Linux this reads /proc (no side effect on the fd);
 * elsewhere it answers false, and callers should name the fd explicitly (`--fastcgi fd:0`).
 */
export function isListeningSocket(fd: number): boolean {
  try {
    if (!fstatSync(fd).isSocket()) return false;
  } catch {
    return false;
  }
  let inode: string;
  try {
    const m = /^socket:\[([0-9]+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`));
    if (m === null) return false;
    inode = m[1]!;
  } catch {
    return false;
  }
  /* unix: "Num RefCount Protocol Flags Type St Inode Path"; Flags has __SO_ACCEPTCON (1<<16). */
  for (const line of readLines('/proc/net/unix')) {
    const f = line.trim().split(/\s+/);
    if (f[6] === inode) return (parseInt(f[3]!, 16) & 0x10000) !== 0;
  }
  /* tcp: "sl local rem st ... uid timeout inode"; state 0A is LISTEN. */
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    for (const line of readLines(file)) {
      const f = line.trim().split(/\s+/);
      if (f[9] === inode) return f[3] === '0A';
    }
  }
  return false;
}

function readLines(file: string): string[] {
  try {
    return readFileSync(file, 'latin1').split('\n').slice(1);
  } catch {
    return [];
  }
}

/** The group stock Debian and Ubuntu nginx and Apache run as. */
export const WEB_SERVER_GROUP = 'www-data';

/** The gid of a group named in /etc/group, or null. */
function groupIdOf(name: string, groupFile = '/etc/group'): number | null {
  let text: string;
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    return null;
  }
  for (const line of text.split('\n')) {
    const f = line.split(':');
    if (f[0] === name && /^[0-9]+$/.test(f[2] ?? '')) return Number(f[2]);
  }
  return null;
}

/**
 * How the unix sockets tsgi creates are set up, from --socket-mode, --group and the ids of
 * --user/--group (null: none given). With neither --socket-mode nor --group, as php-fpm's
 * Debian pools do (listen.group = www-data, listen.mode = 0660): a socket the web server's
 * group can use and other users cannot, when that group exists and this process may give a
 * file to it (root, or a member of it). Otherwise the umask decides, and `warning` (when any
 * of `addrs` or the stats address is a unix socket) says that nginx or Apache running as
 * www-data will be refused, and what to do.
 */
export function unixSocketSetup(
  config: { socketMode: number | null; group: string | null; stats: ListenAddress | null },
  addrs: readonly ListenAddress[],
  ids: { uid: number; gid: number } | null,
  groupFile?: string,
): { options: UnixSocketOptions; warning: string | null } {
  const mode = config.socketMode;
  const uid = ids?.uid ?? -1;
  const gid = ids?.gid ?? -1;
  if (mode !== null || config.group !== null) return { options: { mode, uid, gid }, warning: null };
  const web = groupIdOf(WEB_SERVER_GROUP, groupFile);
  const root = process.geteuid?.() === 0;
  const member = web !== null && (process.getgroups?.() ?? []).includes(web);
  if (web !== null && (root || member)) {
    return { options: { mode: 0o660, uid, gid: web }, warning: null };
  }
  const paths = [...addrs, ...(config.stats === null ? [] : [config.stats])].flatMap((a) =>
    a.type === 'unix' ? [a.path] : [],
  );
  if (paths.length === 0) return { options: { mode: null, uid, gid }, warning: null };
  const effective = 0o777 & ~process.umask();
  const fix =
    web === null
      ? "give the socket to the web server's group: --group GROUP --socket-mode 660 (as root), or --socket-mode 666 to let every local user connect"
      : `add this user to the ${WEB_SERVER_GROUP} group (then tsgi gives the socket to it, mode 660), or run as root with --user, or --socket-mode 666 to let every local user connect`;
  return {
    options: { mode: null, uid, gid },
    warning:
      `unix:${paths[0]}${paths.length > 1 ? ' (and the other unix sockets)' : ''} gets mode ` +
      `${effective.toString(8).padStart(4, '0')}: only its owner can connect, so nginx or Apache ` +
      `running as ${WEB_SERVER_GROUP} will get "Permission denied" (502); ${fix}`,
  };
}
