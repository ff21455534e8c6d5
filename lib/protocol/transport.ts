/**
 * The connection transport of the FastCGI, SCGI and uwsgi servers: node:net, or the addon's
 * native transport (native/transport over libuv, Node's own loop), which accepts, reads,
 * writes and closes connections itself and calls into JavaScript only when bytes arrive (one
 * call per read, with a Buffer), when the peer ends its side, when a full write buffer emptied
 * and when the peer closed a connection. No net.Socket, TCPWrap or stream machinery is made
 * per connection; a connection that closes without sending a byte costs no JavaScript at all.
 *
 * Selection (once per process, at the first call of {@link selectedTransport}, not at import; a
 * server may also ask for one with its `transport` option):
 * `TSGI_TRANSPORT=node` forces node:net; `TSGI_TRANSPORT=native` requires the native transport
 * (an error when it is unavailable); unset, the native transport is used when the native codec
 * is in use and the addon has it (POSIX: Linux, macOS; the Windows build compiles it out).
 * {@link selectedTransport} says which one was chosen.
 *
 * Listening stays with net.Server, so that everything lib/server/listen.ts does (TCP, unix
 * sockets with mode and stale-socket cleanup, inherited fds, systemd sockets, address(),
 * close(), ref/unref) keeps working: the server binds as usual (net._createServerHandle, the
 * function its own listen() uses), and where it would start listening the native listener
 * takes a duplicate of the bound fd and listens on that instead. Node's handle stays open and
 * idle (it answers address() and, when the server closes, closes its fd and removes the
 * socket file, as usual). When anything in that path is not as expected, the server listens
 * with node:net.
 *
 * The connections are {@link NativeConnection}s: the part of net.Socket that
 * lib/protocol/scgi-uwsgi-connection.ts and lib/protocol/fastcgi.ts use, with the same events ('data', 'end',
 * 'drain', 'error', 'close') and semantics (half-open connections, Nagle off, write()
 * returning false above the high-water mark and 'drain' once the buffer emptied, pause()
 * stopping reads).
 */
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as stream from 'node:stream';
import { getSystemErrorName } from 'node:util';
import { codecProblem, selectedCodec, type EnvironmentProblem } from '../codec/index.js';
import { loadNativeBinding } from '../codec/native.js';

/** The transports a stream server can run on. */
export type TransportName = 'native' | 'node';

/** An event listener, typed as net.Socket's are. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type SocketListener = (...args: any[]) => void;

/** What the protocol servers use of a connection: net.Socket and NativeConnection have it. */
export interface StreamSocket {
  on(event: string, listener: SocketListener): this;
  off(event: string, listener: SocketListener): this;
  write(bytes: Uint8Array): boolean;
  cork(): void;
  uncork(): void;
  pause(): this;
  resume(): this;
  end(): this;
  destroy(): this;
  resetAndDestroy(): this;
  readonly writableLength: number;
  readonly writableNeedDrain: boolean;
  readonly destroyed: boolean;
  readonly localAddress?: string | undefined;
  readonly localPort?: number | undefined;
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
}

/** The addon's Transport class (native/binding/transport.cc). */
interface NativeTransport {
  listen(fd: number, backlog: number): number;
  write(id: number, a: Uint8Array, b?: Uint8Array): number;
  shutdown(id: number): void;
  pause(id: number): void;
  resume(id: number): void;
  /** Closes at once; no close event follows (the caller emits its own). */
  close(id: number, reset: boolean): void;
  address(id: number, peer: boolean): [string, number] | undefined;
  stop(): void;
  /** Closes the connections that sent nothing yet and were accepted at least `ageMs` ago. */
  closeSilent(ageMs: number): void;
  ref(): void;
  unref(): void;
  /** Emits an accept event (4) for every connection accepted from now on (or stops). */
  announce(on: boolean): void;
  /** A new descriptor for the connection's socket, or a negative error. */
  dup(id: number): number;
  /** The connection's descriptor, or a negative error. */
  fileno(id: number): number;
}
type NativeTransportClass = new (
  onEvent: (kind: number, id: number, arg: Buffer | number) => void,
) => NativeTransport;

/* Event kinds (native/binding/transport.cc). */
const EV_DATA = 0;
const EV_END = 1;
const EV_DRAIN = 2;
const EV_CLOSE = 3;
const EV_ACCEPT = 4;

/** The net.Server internals the takeover relies on (stable since Node 0.x; checked at load). */
interface ServerInternals {
  _handle: RawServerHandle | null;
  _connections: number;
  _emitCloseIfDrained?: () => void;
  _listen2: ListenFn;
}
type ListenFn = (
  this: net.Server,
  address: string | null,
  port: number,
  addressType: number,
  backlog: number,
  fd?: number,
  flags?: number,
) => void;
/** A server handle of net._createServerHandle (TCPWrap or PipeWrap), as far as tsgi uses it. */
export interface RawServerHandle {
  fd: number;
  getsockname?(out: { address?: string; port?: number }): number;
  listen(backlog: number): number;
  close(cb?: () => void): void;
  ref(): void;
  unref(): void;
}
/** net._createServerHandle: a bound handle, or a negative errno. */
export type CreateServerHandle = (
  address: string | null,
  port: number,
  addressType: number,
  fd?: number,
  flags?: number,
) => RawServerHandle | number;

/** The addon's Transport class, or why it cannot be used in this process. */
function findNative(): { cls: NativeTransportClass | null; why: string } {
  if (process.platform === 'win32') return { cls: null, why: 'not available on Windows' };
  const binding = loadNativeBinding() as { Transport?: NativeTransportClass } | null;
  if (binding === null) return { cls: null, why: 'the native addon did not load' };
  if (typeof binding.Transport !== 'function') {
    return { cls: null, why: 'the native addon has no Transport (an older build?)' };
  }
  const internals = net.Server.prototype as unknown as Partial<ServerInternals>;
  const create = (net as unknown as { _createServerHandle?: unknown })._createServerHandle;
  if (typeof internals._listen2 !== 'function' || typeof create !== 'function') {
    return {
      cls: null,
      why: 'this Node.js version lacks net.Server._listen2 or net._createServerHandle',
    };
  }
  return { cls: binding.Transport, why: '' };
}

let native: { cls: NativeTransportClass | null; why: string } | undefined;

/** {@link findNative}, looked at once. */
function foundNative(): { cls: NativeTransportClass | null; why: string } {
  native ??= findNative();
  return native;
}

/** The environment's choice of transport, and why. */
export interface TransportSelection {
  /** The transport FastCGI, SCGI and uwsgi servers use by default in this process. */
  readonly name: TransportName;
  /** Why it is that one (for logs and tests). */
  readonly reason: string;
  /**
   * A bad TSGI_TRANSPORT, or TSGI_TRANSPORT=native where it is unavailable, or null. Never
   * thrown by the selection: the tsgi command reports it in one line, and creating a FastCGI,
   * SCGI or uwsgi server throws it.
   */
  readonly problem: EnvironmentProblem | null;
}

function selectTransport(): TransportSelection {
  const found = foundNative();
  const forced = process.env.TSGI_TRANSPORT;
  if (forced === 'node') return { name: 'node', reason: 'TSGI_TRANSPORT=node', problem: null };
  if (forced !== undefined && forced !== '' && forced !== 'native') {
    const message = `TSGI_TRANSPORT must be "native" or "node", not "${forced}"`;
    return { name: 'node', reason: message, problem: { message, status: 2 } };
  }
  if (forced === 'native') {
    if (found.cls === null) {
      const message = `TSGI_TRANSPORT=native but the native transport is unavailable: ${found.why}`;
      return { name: 'node', reason: message, problem: { message, status: 1 } };
    }
    return { name: 'native', reason: 'TSGI_TRANSPORT=native', problem: null };
  }
  if (found.cls === null) return { name: 'node', reason: found.why, problem: null };
  if (codecProblem() !== null || selectedCodec().name !== 'native') {
    return { name: 'node', reason: 'the TypeScript codec is in use', problem: null };
  }
  return { name: 'native', reason: 'the native addon is loaded', problem: null };
}

let selection: TransportSelection | undefined;

/**
 * The transport the environment selects (TSGI_TRANSPORT; unset, the native one with the native
 * codec where the addon has it), chosen at the first call and kept for the process. Never
 * throws: a bad setting is its `problem`.
 */
export function selectedTransport(): TransportSelection {
  selection ??= Object.freeze(selectTransport());
  return selection;
}

/** The {@link selectedTransport} problem, or null (never throws). */
export function transportProblem(): EnvironmentProblem | null {
  return selectedTransport().problem;
}

/**
 * Whether the native transport can be used in this process (whatever {@link selectedTransport}
 * chose), and why not; looked at when first read.
 */
export const nativeTransport: { readonly available: boolean; readonly reason: string } =
  Object.freeze({
    get available(): boolean {
      return foundNative().cls !== null;
    },
    get reason(): string {
      return foundNative().why;
    },
  });

/* Node's default for sockets (16 KiB on Node 20, 64 KiB on Node 22). */
const HIGH_WATER_MARK =
  (
    stream as { getDefaultHighWaterMark?: (objectMode: boolean) => number }
  ).getDefaultHighWaterMark?.(false) ?? 16 * 1024;

const LISTENER = Symbol('tsgi.nativeListener');

/**
 * Makes `server` (a net.Server made with `{ allowHalfOpen: true, noDelay: true }` whose
 * 'connection' listeners take {@link StreamSocket}s) accept with the native transport when
 * `which` is "native", or when it is not given and {@link selectedTransport} chose the native
 * one. Call before listen(). Throws when "native" is asked and unavailable, and without `which`
 * when TSGI_TRANSPORT is bad.
 *
 * 'connection' is emitted when a connection's first bytes arrive while `handler` (the
 * server's own connection listener) is the only one; as soon as there is another (the --allow
 * guard, a connection counter), every connection is announced as it is accepted, as
 * node:net does.
 */
export function useTransport(
  server: net.Server,
  which?: TransportName,
  handler?: (...args: never[]) => unknown,
): void {
  if (which === undefined) {
    const selected = selectedTransport();
    if (selected.problem !== null) throw new Error(selected.problem.message);
    which = selected.name;
  }
  if (which === 'node') return;
  const { cls, why } = foundNative();
  if (cls === null) throw new Error(`the native transport is unavailable: ${why}`);
  const internals = server as unknown as ServerInternals;
  const original = (net.Server.prototype as unknown as ServerInternals)._listen2;
  const create = (net as unknown as { _createServerHandle: CreateServerHandle })
    ._createServerHandle;
  internals._listen2 = function (address, port, addressType, backlog, fd, flags) {
    /* A handle given over IPC (node:cluster): node:net as it is. */
    if (internals._handle)
      return original.call(this, address, port, addressType, backlog, fd, flags);
    /* As net.Server does: "" means every interface, IPv6 when the machine has it. */
    let handle: RawServerHandle | number | null = null;
    if (!address && typeof fd !== 'number') {
      handle = create('::', port, 6, fd, flags);
      if (typeof handle === 'number') {
        handle = null;
        address = '0.0.0.0';
        addressType = 4;
      } else {
        address = '::';
        addressType = 6;
      }
    }
    if (handle === null) handle = create(address, port, addressType, fd, flags);
    /* A failure: let net.Server report it as it always does. */
    if (typeof handle === 'number') {
      return original.call(this, address, port, addressType, backlog, fd, flags);
    }
    const raw = handle;
    const nodeListen = raw.listen;
    raw.listen = (n: number): number => {
      /* libuv reports a TCP bind's EADDRINUSE only now: let net.Server report it */
      const bindError = raw.getsockname?.({}) ?? 0;
      if (bindError !== 0) return bindError;
      const listener = new NativeListener(server, cls);
      if (listener.native.listen(raw.fd, n) !== 0) return nodeListen.call(raw, n);
      listener.watchConnectionListeners(handler);
      const nodeClose = raw.close;
      raw.close = (cb?: () => void): void => {
        listener.native.stop();
        nodeClose.call(raw, cb);
      };
      raw.ref = () => listener.native.ref();
      raw.unref = () => listener.native.unref();
      (server as unknown as { [LISTENER]?: NativeListener })[LISTENER] = listener;
      return 0;
    };
    internals._handle = raw;
    return original.call(this, address, port, addressType, backlog, fd, flags);
  };
}

/** "native" when `server` accepts with the native transport, "node" otherwise. */
export function serverTransport(server: net.Server): TransportName {
  return (server as unknown as { [LISTENER]?: NativeListener })[LISTENER] ? 'native' : 'node';
}

/**
 * Closes the native connections of `server` that have not sent a byte yet and were accepted
 * at least `ageMs` ago (default 0: all of them, as when the server drains). Connections of
 * node:net are the protocol servers' own to close.
 */
export function closeSilentConnections(server: net.Server, ageMs = 0): void {
  (server as unknown as { [LISTENER]?: NativeListener })[LISTENER]?.native.closeSilent(ageMs);
}

/** One native listener: dispatches the addon's events to its connections. */
class NativeListener {
  readonly native: NativeTransport;
  private readonly conns: (NativeConnection | undefined)[] = [];

  constructor(
    private readonly server: net.Server,
    cls: NativeTransportClass,
  ) {
    this.native = new cls(this.onEvent);
  }

  /**
   * Keeps the addon announcing accepted connections while the server has 'connection'
   * listeners other than `own` (see {@link useTransport}).
   */
  watchConnectionListeners(own: ((...args: never[]) => unknown) | undefined): void {
    const server = this.server;
    const others = (): boolean => server.listeners('connection').some((l) => l !== own);
    let announcing = others();
    this.native.announce(announcing);
    server.on('newListener', (event: string | symbol, listener: unknown) => {
      if (event !== 'connection' || listener === own || announcing) return;
      announcing = true;
      this.native.announce(true);
    });
    server.on('removeListener', (event: string | symbol) => {
      if (event !== 'connection') return;
      const now = others();
      if (now === announcing) return;
      announcing = now;
      this.native.announce(now);
    });
  }

  private open(id: number): NativeConnection | undefined {
    const c = new NativeConnection(this, id);
    this.conns[id] = c;
    (this.server as unknown as ServerInternals)._connections++;
    this.server.emit('connection', c);
    return c.destroyed ? undefined : c;
  }

  private readonly onEvent = (kind: number, id: number, arg: Buffer | number): void => {
    let c = this.conns[id];
    switch (kind) {
      case EV_ACCEPT:
        this.open(id);
        break;
      case EV_DATA:
        if (c === undefined && (c = this.open(id)) === undefined) return;
        c.emit('data', arg);
        break;
      case EV_END:
        c?.emit('end');
        break;
      case EV_DRAIN:
        c?.drained();
        break;
      case EV_CLOSE:
        if (c === undefined) return;
        this.conns[id] = undefined;
        try {
          c.closed(arg as number);
        } finally {
          /* a throwing 'close' or 'error' listener must not keep server.close() waiting */
          this.gone();
        }
        break;
    }
  };

  /** @internal `id` was closed by JavaScript: its 'close' is emitted on the next tick. */
  forget(id: number, conn: NativeConnection, reset: boolean): void {
    this.conns[id] = undefined;
    this.native.close(id, reset);
    process.nextTick(this.closedByUs, conn);
  }

  private readonly closedByUs = (conn: NativeConnection): void => {
    try {
      conn.closed(0);
    } finally {
      this.gone();
    }
  };

  private gone(): void {
    const s = this.server as unknown as ServerInternals;
    s._connections--;
    s._emitCloseIfDrained?.();
  }
}

/**
 * A connection of the native transport: the part of net.Socket the stream servers use.
 * Made when its first bytes arrive.
 */
export class NativeConnection extends EventEmitter implements StreamSocket {
  /** Bytes written and not yet taken by the kernel. */
  writableLength = 0;
  /** A write returned false; 'drain' follows when the buffer emptied. */
  writableNeedDrain = false;
  /** The connection is closed or closing (destroy(), or the addon closed it). */
  destroyed = false;
  private ended = false;
  private corked: Uint8Array[] | null = null;
  private local: [string, number] | undefined | null = null;
  private peer: [string, number] | undefined | null = null;

  private readonly native: NativeTransport;

  constructor(
    private readonly listener: NativeListener,
    private readonly id: number,
  ) {
    super();
    this.native = listener.native;
  }

  write(bytes: Uint8Array): boolean {
    if (this.destroyed || this.ended) return false;
    if (this.corked !== null) {
      this.corked.push(bytes);
      this.writableLength += bytes.length;
      if (this.writableLength < HIGH_WATER_MARK) return true;
      this.writableNeedDrain = true;
      return false;
    }
    return this.queued(this.native.write(this.id, bytes));
  }

  private queued(n: number): boolean {
    this.writableLength = n;
    if (n < HIGH_WATER_MARK) return true;
    this.writableNeedDrain = true;
    return false;
  }

  cork(): void {
    if (this.corked === null) this.corked = [];
  }

  uncork(): void {
    const parts = this.corked;
    if (parts === null) return;
    this.corked = null;
    this.writableLength -= parts.reduce((n, p) => n + p.length, 0);
    if (this.destroyed || this.ended || parts.length === 0) return;
    let n: number;
    if (parts.length === 1) n = this.native.write(this.id, parts[0]!);
    else if (parts.length === 2) n = this.native.write(this.id, parts[0]!, parts[1]!);
    else n = this.native.write(this.id, Buffer.concat(parts));
    this.queued(n);
    /* the kernel took it all: no drain event will come from the addon for a false write() */
    if (n === 0 && this.writableNeedDrain) process.nextTick(() => this.drained());
  }

  pause(): this {
    if (!this.destroyed) this.native.pause(this.id);
    return this;
  }

  resume(): this {
    if (!this.destroyed) this.native.resume(this.id);
    return this;
  }

  /** Half-closes (FIN) after what is queued; the connection closes once the peer ended too. */
  end(): this {
    if (this.destroyed || this.ended) return this;
    this.uncork();
    this.ended = true;
    this.native.shutdown(this.id);
    return this;
  }

  /** Closes at once (what is queued is dropped); 'close' follows on the next tick. */
  destroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.listener.forget(this.id, this, false);
    return this;
  }

  /** The socket's descriptor (-1 when closed); see {@link socketFd}. */
  get fd(): number {
    if (this.destroyed) return -1;
    const fd = this.native.fileno(this.id);
    return fd < 0 ? -1 : fd;
  }

  /**
   * A new descriptor for this connection's socket, then this connection closes without a FIN
   * (the descriptor keeps the socket open); -1 when it cannot (closed, ended, or bytes queued).
   */
  detach(): number {
    if (this.destroyed || this.ended || this.writableLength !== 0) return -1;
    const fd = this.native.dup(this.id);
    if (fd < 0) return -1;
    this.destroy();
    return fd;
  }

  /** Closes with a reset (RST) on TCP, a plain close on a unix socket. */
  resetAndDestroy(): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.listener.forget(this.id, this, true);
    return this;
  }

  get localAddress(): string | undefined {
    this.addresses();
    return this.local?.[0];
  }

  get localPort(): number | undefined {
    this.addresses();
    return this.local?.[1];
  }

  get remoteAddress(): string | undefined {
    this.addresses();
    return this.peer?.[0];
  }

  get remotePort(): number | undefined {
    this.addresses();
    return this.peer?.[1];
  }

  /* Read once, while the id is this connection's (a closed connection's id is reused). */
  private addresses(): void {
    if (this.local !== null) return;
    if (this.destroyed) {
      this.local = this.peer = undefined;
      return;
    }
    this.local = this.native.address(this.id, false);
    this.peer = this.native.address(this.id, true);
  }

  /** @internal The write buffer emptied. */
  drained(): void {
    this.writableLength = 0;
    if (!this.writableNeedDrain) return;
    this.writableNeedDrain = false;
    this.emit('drain');
  }

  /** @internal The addon closed the connection (`error`: 0 or a negative errno). */
  closed(error: number): void {
    const ours = this.destroyed;
    this.destroyed = true;
    this.writableLength = 0;
    if (error !== 0 && !ours) this.emit('error', socketError(error));
    this.emit('close', error !== 0);
  }
}

/** An Error like node:net's for a libuv error number: code ECONNRESET, EPIPE, ... */
function socketError(errno: number): NodeJS.ErrnoException {
  let code: string;
  try {
    code = getSystemErrorName(errno);
  } catch {
    code = `E${-errno}`;
  }
  const err = new Error(`read ${code}`) as NodeJS.ErrnoException;
  err.code = code;
  err.errno = errno;
  err.syscall = 'read';
  return err;
}

/** A libuv stream handle (node's TCP or Pipe wrap), as process.send() passes one. */
export type RawHandle = object & { readStop(): number; close(): void };

/**
 * Takes the socket out of `socket` to pass it to another process with process.send(): the
 * handle of a net.Socket (reading stops, the Socket closes without touching it), or a handle
 * made from a duplicate of a native connection's descriptor. Nothing is read, written or
 * closed on the socket itself, so the peer sees nothing. null when bytes are still queued
 * for it (they would be lost) or it is closed.
 */
export function detachHandle(socket: StreamSocket): RawHandle | null {
  if (socket.destroyed || socket.writableLength !== 0) return null;
  if (socket instanceof NativeConnection) {
    const fd = socket.detach();
    if (fd < 0) return null;
    const holder = new net.Socket({ fd, readable: false, writable: false });
    return stealHandle(holder);
  }
  if (socket instanceof net.Socket) return stealHandle(socket);
  return null;
}

function stealHandle(socket: net.Socket): RawHandle | null {
  const s = socket as unknown as { _handle: RawHandle | null };
  const handle = s._handle;
  if (handle === null) return null;
  handle.readStop();
  /* node's own flag: a Socket made on this handle later starts reading only when it is false */
  (handle as { reading?: boolean }).reading = false;
  s._handle = null;
  socket.destroy();
  return handle;
}

/**
 * The descriptor of a connection's socket, for the request watchdog (lib/server/watchdog.ts),
 * which writes a stuck request's answer on it from its own thread; -1 when there is none
 * (closed, or a platform without descriptors).
 */
export function socketFd(socket: StreamSocket): number {
  if (socket instanceof NativeConnection) return socket.fd;
  const fd = (socket as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

/**
 * Where an environ without a protocol source (HTTP: node:http's) keeps its connection's socket
 * for the request watchdog, which answers it with an `HTTP/1.1 504` head.
 */
export const WATCHDOG_SOCKET: unique symbol = Symbol('tsgi.watchdogSocket');

/** How the request watchdog answers on a connection (native/core/watchdog.h Answer). */
export const WatchdogAnswer = {
  Fastcgi: 1,
  /** A `Status: 504` head (SCGI). */
  Cgi: 2,
  /** An `HTTP/1.1 504` head (uwsgi, HTTP). */
  Http: 3,
} as const;
export type WatchdogAnswer = (typeof WatchdogAnswer)[keyof typeof WatchdogAnswer];

/**
 * One number for the watchdog: where to answer a request (descriptor, answer kind, FastCGI
 * request id), or -1 when it cannot be answered natively. Decoded by lib/server/watchdog.ts.
 */
export function watchdogTarget(fd: number, kind: WatchdogAnswer, requestId = 0): number {
  return fd < 0 ? -1 : fd * 262144 + requestId * 4 + kind;
}
