/**
 * Listening addresses: parsing ADDR (HOST:PORT, :PORT, unix:/path, fd:N), binding a
 * net.Server to one with clear errors, and telling whether an inherited fd is a listening
 * socket (a web server that spawns tsgi passes one on fd 0, FCGI_LISTENSOCK_FILENO).
 */
import { connect, type Server } from 'node:net';
import { fstatSync, lstatSync, readFileSync, readlinkSync, unlinkSync } from 'node:fs';

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

/** True when `path` is a unix socket nobody accepts on (a leftover of a dead server). */
function staleSocket(path: string): Promise<boolean> {
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return Promise.resolve(false);
  }
  if (!isSocket) return Promise.resolve(false);
  return new Promise((resolve) => {
    const s = connect(path);
    s.on('connect', () => {
      s.destroy();
      resolve(false);
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ECONNREFUSED'));
  });
}

/**
 * Binds `server` to `addr` and resolves with the bound address formatted (the real port when
 * 0 was asked). Rejects with a ListenError naming the address and the reason. A unix socket
 * file left by a dead server is replaced; one with a live server is "address already in use".
 */
export async function listen(server: Server, addr: ListenAddress): Promise<string> {
  const shown = formatAddress(addr);
  if (addr.type === 'unix' && (await staleSocket(addr.path))) {
    try {
      unlinkSync(addr.path);
    } catch {
      /* listen reports the problem */
    }
  }
  await new Promise<void>((resolve, reject) => {
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
  if (addr.type === 'tcp') {
    const a = server.address();
    if (a !== null && typeof a === 'object') {
      return formatAddress({ type: 'tcp', host: a.address, port: a.port });
    }
  }
  return shown;
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
