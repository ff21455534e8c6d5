/**
 * Listening sockets owned by tsgi: TCP (IPv4, IPv6), unix sockets and inherited descriptors,
 * bound by the native addon (native/transport, plain socket/bind system calls) into a
 * descriptor that the native transport accepts on, that net.Server can listen on through its
 * public `listen({ fd })`, and that a master hands to its workers. No private Node API is
 * involved.
 *
 * Without the addon (a platform with no build of it) {@link socketCalls} returns null and callers
 * listen with net.Server's own public listen().
 */
import process from 'node:process';
import { closeSync, lstatSync, unlinkSync } from 'node:fs';
import { isIP } from 'node:net';
import { lookup } from 'node:dns/promises';
import { getSystemErrorName } from 'node:util';
import { loadNativeBinding } from '../codec/native.js';

/** The addon's socket calls (native/binding/transport.cc, native/transport/transport.h). */
export interface SocketCalls {
  /** A bound (not listening) close-on-exec TCP socket, or a negative errno. */
  bindTcp(ip: string, port: number): number;
  /** A bound (not listening) close-on-exec unix socket (creates the file), or a negative errno. */
  bindUnix(path: string): number;
  /** listen(2): 0 or a negative errno. */
  listenFd(fd: number, backlog: number): number;
  /** SO_KEEPALIVE with `secs` of idle before the first probe: 0 or a negative errno. */
  keepAlive(fd: number, secs: number): number;
  /**
   * Defers accepting on a listening TCP socket until a connection's first bytes arrived (or
   * about `secs` seconds passed; 0: off): 0, or a negative errno (ENOTSUP: a unix socket, or
   * a system without it). Absent from an older addon.
   */
  deferAccept?(fd: number, secs: number): number;
  /** [address, port, family (4 or 6)] of a TCP socket; undefined for a unix socket. */
  localAddress(fd: number): [string, number, number] | undefined;
}

function findSocketCalls(): SocketCalls | null {
  if (process.platform === 'win32') return null;
  const binding = loadNativeBinding() as Partial<SocketCalls> | null;
  return binding !== null && typeof binding.bindTcp === 'function'
    ? (binding as SocketCalls)
    : null;
}

/** The addon's socket calls, or null when the addon (or this part of it) is unavailable. */
let found: { calls: SocketCalls | null } | undefined;

/** The addon's socket calls, looked up on first use (importing tsgi never loads the addon). */
export function socketCalls(): SocketCalls | null {
  found ??= { calls: findSocketCalls() };
  return found.calls;
}

/** An error like node:net's for a negative errno from the addon. */
export function socketError(errno: number, syscall: string, where: string): NodeJS.ErrnoException {
  let code: string;
  try {
    code = getSystemErrorName(errno);
  } catch {
    code = `E${-errno}`;
  }
  const err = new Error(`${syscall} ${code} ${where}`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = errno;
  err.syscall = syscall;
  return err;
}

/** What to bind. `host` "" means every interface (IPv6 and IPv4 where the machine has IPv6). */
export type BindTarget = { host: string; port: number } | { path: string };

/** A bound socket: its descriptor; close() closes it and removes the unix socket file made. */
export interface BoundFd {
  readonly fd: number;
  /** The unix socket path this socket created, or null. */
  readonly path: string | null;
  close(): void;
}

/**
 * Binds `target` with the addon and listens; host names are resolved
 * first. Throws a node:net-like error (code EADDRINUSE, EACCES, ...). A unix socket path must
 * be free (lib/server/listen.ts clearSocketPath removes a stale one).
 */
export async function bindFd(calls: SocketCalls, target: BindTarget): Promise<BoundFd> {
  if ('host' in target && target.host !== '' && isIP(target.host) === 0) {
    const ip = (await lookup(target.host)).address;
    return bindFdNow(calls, { host: ip, port: target.port });
  }
  return bindFdNow(calls, target);
}

/** {@link bindFd} for an IP address, "" or a path: binds at once. */
export function bindFdNow(calls: SocketCalls, target: BindTarget): BoundFd {
  if ('path' in target) {
    const fd = calls.bindUnix(target.path);
    if (fd < 0) throw socketError(fd, 'listen', target.path);
    return listening(calls, fd, target.path, target.path);
  }
  let fd: number;
  if (target.host === '') {
    fd = calls.bindTcp('::', target.port);
    /* no IPv6 on this machine: every IPv4 interface */
    if (fd < 0) fd = calls.bindTcp('0.0.0.0', target.port);
  } else {
    fd = calls.bindTcp(target.host, target.port);
  }
  if (fd < 0) throw socketError(fd, 'listen', `${target.host}:${target.port}`);
  return listening(calls, fd, null, `${target.host}:${target.port}`);
}

/*
 * Listens at once: the kernel queues connections until someone accepts (a worker that is
 * still starting), and only a listening socket holds its port against another bind (two
 * bound sockets with SO_REUSEADDR may share one until either listens).
 */
function listening(calls: SocketCalls, fd: number, path: string | null, where: string): BoundFd {
  const bound = boundFd(fd, path);
  const r = calls.listenFd(fd, BACKLOG);
  if (r === 0) return bound;
  bound.close();
  throw socketError(r, 'listen', where);
}

/** The backlog of listening sockets (as node:net's default). */
export const BACKLOG = 511;

/**
 * `fd` as a {@link BoundFd} owned from now on: close() closes it once and removes the unix
 * socket file at `path` while that file is still this socket. A descriptor given to
 * listen({ fd }) is owned the same way (path null), as net.Server owns it.
 */
export function boundFd(fd: number, path: string | null = null): BoundFd {
  /* the file this socket made: removed on close only while it is still this one */
  let ino: number | null = null;
  if (path !== null) {
    try {
      ino = lstatSync(path).ino;
    } catch {
      ino = null;
    }
  }
  let open = true;
  return {
    fd,
    path,
    close(): void {
      if (!open) return;
      open = false;
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
      if (path === null || ino === null) return;
      try {
        const st = lstatSync(path);
        if (st.isSocket() && st.ino === ino) unlinkSync(path);
      } catch {
        /* gone already */
      }
    },
  };
}
