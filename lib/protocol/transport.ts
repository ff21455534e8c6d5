/**
 * The connection transport of the FastCGI, SCGI and uwsgi servers: node:net, or the addon's
 * native transport (native/transport over libuv, Node's own loop), which accepts, reads,
 * writes and closes connections itself and calls into JavaScript only when bytes arrive (one
 * call per read, with a Buffer), when the peer ends its side, when a full write buffer emptied
 * and when the peer closed a connection. No net.Socket, TCPWrap or stream machinery is made
 * per connection; a connection that closes without sending a byte costs no JavaScript at all.
 *
 * One step: the addon reads a connection right after accepting it. A request that came whole
 * with the connect (nginx's SCGI and uwsgi requests, one connection each) is parsed and its app
 * run within that one call, and an answer known at once (a whole body) goes out with
 * {@link NativeConnection.endWith}: one write, then close — no TCP_NODELAY, no epoll
 * registration, so such a request costs accept, read, write and close. Anything else (a partial
 * request, a larger body, a streamed answer, a slow reader) takes the streaming path below;
 * {@link transportCounts} says how many went which way.
 *
 * Selection (once per process, at the first call of {@link selectedTransport}, not at import; a
 * server may also ask for one with its `transport` option):
 * `TSGI_TRANSPORT=node` forces node:net; `TSGI_TRANSPORT=native` requires the native transport
 * (an error when it is unavailable); unset, the native transport is used when the native codec
 * is in use and the addon has it (POSIX: Linux, macOS; the Windows build compiles it out).
 * {@link selectedTransport} says which one was chosen.
 *
 * Listening is tsgi's own (lib/protocol/listener.ts): the server's listen() binds with the
 * addon (TCP, unix sockets, inherited descriptors) and the native listener accepts on that
 * descriptor; close(), address(), ref(), unref(), getConnections() and `listening` answer for
 * it, and 'listening', 'close' and 'error' come as from net.Server. Forms of listen() it does
 * not take (a handle object, ipv6Only, reusePort, a signal, a node:cluster worker) listen with
 * node:net. No private Node API is used.
 *
 * The connections are {@link NativeConnection}s: the part of net.Socket that
 * lib/protocol/scgi-uwsgi-connection.ts and lib/protocol/fastcgi.ts use, with the same events ('data', 'end',
 * 'drain', 'error', 'close') and semantics (half-open connections, Nagle off, write()
 * returning false above the high-water mark and 'drain' once the buffer emptied, pause()
 * stopping reads).
 */
import process from 'node:process';
import { Buffer } from 'node:buffer';
import cluster from 'node:cluster';
import { EventEmitter } from 'node:events';
import * as net from 'node:net';
import * as stream from 'node:stream';
import { getSystemErrorName } from 'node:util';
import { codecProblem, selectedCodec, type EnvironmentProblem } from '../codec/index.js';
import { loadNativeBinding } from '../codec/native.js';
import {
  BACKLOG,
  bindFd,
  bindFdNow,
  boundFd,
  socketCalls,
  socketError as listenError,
  type BoundFd,
  type SocketCalls,
} from './listener.js';

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
  /**
   * Writes the last bytes and ends the connection in one step (the native transport only):
   * true when the kernel took them all and the connection closed ('close' is emitted before
   * it returns), false when some are queued (the connection is then ended as by end()).
   */
  endWith?(a: Uint8Array, b?: Uint8Array | null): boolean;
  /**
   * Gives the connection's data, end, error and close to `h` by direct calls (the native
   * transport only; listeners added with on() are still called).
   */
  handleWith?(h: SocketHandlers): void;
}

/** Who receives a connection's events by direct calls ({@link StreamSocket.handleWith}). */
export interface SocketHandlers {
  /**
   * True when onData() keeps no reference to its chunk past the call (it copies what it
   * keeps): the native transport then passes a view of its read buffer, which the next read
   * overwrites, instead of a Buffer of its own per read.
   */
  readonly transientChunks?: boolean;
  onData(chunk: Buffer): void;
  onEnd(): void;
  onError(err: Error): void;
  onClose(): void;
}

/** The addon's Transport class (native/binding/transport.cc). */
interface NativeTransport {
  listen(fd: number, backlog: number): number;
  write(id: number, a: Uint8Array, b?: Uint8Array): number;
  /**
   * The last bytes, then the end: 1 when they went out and the connection closed (no close
   * event follows), 0 when some are queued and the connection is half-closed (its events
   * follow), negative for a closed connection.
   */
  respondClose(id: number, a: Uint8Array, b?: Uint8Array | null): number;
  shutdown(id: number): void;
  pause(id: number): void;
  resume(id: number): void;
  /** Closes at once; no close event follows (the caller emits its own). */
  close(id: number, reset: boolean): void;
  address(id: number, peer: boolean): [string, number, number] | undefined;
  stop(): void;
  /** Closes the connections that sent nothing yet and were accepted at least `ageMs` ago. */
  closeSilent(ageMs: number): void;
  ref(): void;
  unref(): void;
  /** Emits an accept event (4) for every connection accepted from now on (or stops). */
  announce(on: boolean): void;
  /** [connections answered in one step, connections moved to the streaming path]. */
  counts(): [number, number];
  /** A new descriptor for the connection's socket, or a negative error. */
  dup(id: number): number;
  /** The buffer of read events (EV_READ), made once by the addon; undefined without one. */
  readBuffer(): Buffer | undefined;
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
/* arg: the length of the bytes at the start of the read buffer (valid during the call only) */
const EV_READ = 5;

/** The addon's Transport class, or why it cannot be used in this process. */
function findNative(): {
  cls: NativeTransportClass | null;
  calls: SocketCalls | null;
  why: string;
} {
  if (process.platform === 'win32')
    return { cls: null, calls: null, why: 'not available on Windows' };
  const binding = loadNativeBinding() as { Transport?: NativeTransportClass } | null;
  if (binding === null) return { cls: null, calls: null, why: 'the native addon did not load' };
  if (typeof binding.Transport !== 'function') {
    return { cls: null, calls: null, why: 'the native addon has no Transport (an older build?)' };
  }
  const calls = socketCalls();
  if (calls === null) {
    return {
      cls: null,
      calls: null,
      why: 'the native addon cannot bind sockets (an older build?)',
    };
  }
  return { cls: binding.Transport, calls, why: '' };
}

let native: ReturnType<typeof findNative> | undefined;

/** {@link findNative}, looked at once. */
function foundNative(): ReturnType<typeof findNative> {
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

const EMPTY = new Uint8Array(0);

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
  const found = foundNative();
  const cls = found.cls;
  if (cls === null) throw new Error(`the native transport is unavailable: ${found.why}`);
  (server as unknown as { [SERVER]?: NativeServer })[SERVER] = new NativeServer(
    server,
    cls,
    found.calls!,
    handler,
  );
}

/** The options of net.Server.listen() that the native listener takes. */
interface ListenRequest {
  port?: number;
  host?: string;
  path?: string;
  fd?: number;
  backlog: number;
  callback?: () => void;
}

/** listen()'s arguments as net.Server reads them, or null for a form left to node:net. */
function listenRequest(args: unknown[]): ListenRequest | null {
  const list = [...args];
  const last = list[list.length - 1];
  const callback = typeof last === 'function' ? (list.pop() as () => void) : undefined;
  const req: ListenRequest = { backlog: BACKLOG, callback };
  const first = list[0];
  if (first !== null && typeof first === 'object') {
    const o = first as Record<string, unknown>;
    for (const key of Object.keys(o)) {
      if (
        ![
          'port',
          'host',
          'path',
          'fd',
          'backlog',
          'exclusive',
          'readableAll',
          'writableAll',
        ].includes(key)
      ) {
        if (o[key] !== undefined && o[key] !== false) return null;
      }
    }
    if (o.readableAll === true || o.writableAll === true) return null;
    if (typeof o.backlog === 'number') req.backlog = o.backlog;
    if (typeof o.fd === 'number') req.fd = o.fd;
    else if (typeof o.path === 'string') req.path = o.path;
    else if (
      o.port === undefined ||
      o.port === null ||
      typeof o.port === 'number' ||
      /^[0-9]+$/.test(String(o.port))
    ) {
      req.port = o.port === undefined || o.port === null ? 0 : Number(o.port);
      if (typeof o.host === 'string') req.host = o.host;
      else if (o.host !== undefined && o.host !== null) return null;
    } else return null;
    return req;
  }
  if (typeof first === 'string' && !/^[0-9]+$/.test(first)) {
    req.path = first;
    if (typeof list[1] === 'number') req.backlog = list[1];
    return req;
  }
  if (
    first !== undefined &&
    first !== null &&
    typeof first !== 'number' &&
    typeof first !== 'string'
  ) {
    return null;
  }
  req.port = first === undefined || first === null ? 0 : Number(first);
  if (typeof list[1] === 'string') {
    req.host = list[1];
    if (typeof list[2] === 'number') req.backlog = list[2];
  } else if (typeof list[1] === 'number') req.backlog = list[1];
  return req;
}

/** An Error with node's code, as net.Server makes them. */
function codedError(message: string, code: string): Error {
  const err = new Error(message) as NodeJS.ErrnoException;
  err.code = code;
  return err;
}

/**
 * The native side of one net.Server: its listen(), close(), address(), ref(), unref(),
 * getConnections() and `listening` are replaced on the instance (public methods, no
 * internals); forms it does not take go to net.Server's own.
 */
class NativeServer {
  listener: NativeListener | null = null;
  /** The descriptor listened on: bound here (closed with the listener) or given with {fd}. */
  private bound: BoundFd | null = null;
  private refed = true;
  /** close() was called: 'close' is emitted once no connection is left. */
  private closing = false;

  constructor(
    private readonly server: net.Server,
    private readonly cls: NativeTransportClass,
    private readonly calls: SocketCalls,
    private readonly handler: ((...args: never[]) => unknown) | undefined,
  ) {
    const proto = net.Server.prototype;
    const listening = Object.getOwnPropertyDescriptor(proto, 'listening')?.get;
    Object.defineProperty(server, 'listening', {
      configurable: true,
      get: (): boolean => this.bound !== null || (listening?.call(server) as boolean),
    });
    server.listen = ((...args: unknown[]): net.Server => {
      const req = cluster.isWorker ? null : listenRequest(args);
      if (req === null) return proto.listen.apply(server, args as never);
      if (server.listening) {
        throw codedError(
          'Listen method has been called more than once without closing.',
          'ERR_SERVER_ALREADY_LISTEN',
        );
      }
      if (req.callback !== undefined) server.once('listening', req.callback);
      this.start(req);
      return server;
    }) as net.Server['listen'];
    server.close = (cb?: (err?: Error) => void): net.Server => {
      if (this.listener === null) return proto.close.call(server, cb);
      if (typeof cb === 'function') server.once('close', cb);
      this.stop();
      return server;
    };
    server.address = () => {
      return this.bound === null ? proto.address.call(server) : this.address();
    };
    server.ref = (): net.Server => {
      this.refed = true;
      this.listener?.native.ref();
      return proto.ref.call(server);
    };
    server.unref = (): net.Server => {
      this.refed = false;
      this.listener?.native.unref();
      return proto.unref.call(server);
    };
    server.getConnections = (cb) => {
      if (this.listener === null) return proto.getConnections.call(server, cb);
      const n = this.listener.count;
      process.nextTick(() => cb(null, n));
      return server;
    };
  }

  private start(req: ListenRequest): void {
    const failed = (err: unknown): void => {
      process.nextTick(() => this.server.emit('error', err));
    };
    let bound: BoundFd | Promise<BoundFd>;
    try {
      if (req.fd !== undefined) bound = boundFd(req.fd);
      else if (req.path !== undefined) bound = bindFdNow(this.calls, { path: req.path });
      else if (req.host === undefined || net.isIP(req.host) !== 0)
        bound = bindFdNow(this.calls, { host: req.host ?? '', port: req.port ?? 0 });
      else bound = bindFd(this.calls, { host: req.host, port: req.port ?? 0 });
    } catch (err) {
      failed(err);
      return;
    }
    if (bound instanceof Promise) bound.then((b) => this.listenOn(b, req.backlog), failed);
    else this.listenOn(bound, req.backlog);
  }

  private listenOn(bound: BoundFd, backlog: number): void {
    const listener = new NativeListener(this.server, this.cls, this);
    const r = listener.native.listen(bound.fd, backlog);
    if (r !== 0) {
      bound.close();
      const where = bound.path ?? `fd ${bound.fd}`;
      process.nextTick(() => this.server.emit('error', listenError(r, 'listen', where)));
      return;
    }
    listener.watchConnectionListeners(this.handler);
    if (!this.refed) listener.native.unref();
    this.listener = listener;
    this.bound = bound;
    this.closing = false;
    (this.server as unknown as { [LISTENER]?: NativeListener })[LISTENER] = listener;
    process.nextTick(() => this.server.emit('listening'));
  }

  private stop(): void {
    if (this.bound === null) {
      this.emitCloseIfDrained();
      return;
    }
    this.listener?.native.stop();
    this.bound.close();
    this.bound = null;
    this.closing = true;
    this.emitCloseIfDrained();
  }

  /** @internal A connection closed, or the server stopped. */
  emitCloseIfDrained(): void {
    const l = this.listener;
    if (!this.closing || l === null || l.count !== 0) return;
    this.closing = false;
    this.listener = null;
    delete (this.server as unknown as { [LISTENER]?: NativeListener })[LISTENER];
    process.nextTick(() => this.server.emit('close'));
  }

  /** The descriptor listened on, or -1 when not listening. */
  fd(): number {
    return this.bound === null ? -1 : this.bound.fd;
  }

  /** The keepalive of accepted TCP connections, set once on the listening socket. */
  keepAlive(secs: number): void {
    if (this.bound !== null) this.calls.keepAlive(this.bound.fd, secs);
  }

  /** Deferred accept on the listening socket (see listenerDeferAccept). */
  deferAccept(secs: number): void {
    if (this.bound !== null) this.calls.deferAccept?.(this.bound.fd, secs);
  }

  private address(): net.AddressInfo | string | null {
    const b = this.bound!;
    if (b.path !== null) return b.path;
    const a = this.calls.localAddress(b.fd);
    if (a === undefined) return '';
    return { address: a[0], port: a[1], family: a[2] === 6 ? 'IPv6' : 'IPv4' };
  }
}

/**
 * Sets TCP keepalive (`secs` of silence before the first probe) for the connections `server`
 * accepts: once on its listening socket with the native transport; with node:net, the
 * server's own keepAlive option does it per connection.
 */
export function listenerKeepAlive(server: net.Server, secs: number): void {
  (server as unknown as { [SERVER]?: NativeServer })[SERVER]?.keepAlive(secs);
}

/**
 * Makes the kernel hand the native listener of `server` a TCP connection only once its first
 * bytes arrived, or after about `secs` seconds (Linux; elsewhere, on a unix socket and with
 * node:net nothing changes): the request of a client that connects and sends at once is then
 * there when the connection is accepted, for the one-step path.
 */
export function listenerDeferAccept(server: net.Server, secs: number): void {
  (server as unknown as { [SERVER]?: NativeServer })[SERVER]?.deferAccept(secs);
}

const SERVER = Symbol('tsgi.nativeServer');

/**
 * The descriptor `server` listens on, or -1 (not listening): the native listener's own, or
 * node:net's server handle's.
 */
export function listeningFd(server: net.Server): number {
  const native = (server as unknown as { [SERVER]?: NativeServer })[SERVER];
  return native !== undefined ? native.fd() : handleFd(server);
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

/** How the native transport served a server's connections (see {@link transportCounts}). */
export interface TransportCounts {
  /** Read right after accept and answered with one write and a close. */
  readonly oneStep: number;
  /** Served on the streaming path (a partial request, a streamed answer, ...). */
  readonly streamed: number;
}

/**
 * How the native listener of `server` served its connections since it started listening, or
 * null (node:net, or not listening). Connections that sent nothing count in neither.
 */
export function transportCounts(server: net.Server): TransportCounts | null {
  const l = (server as unknown as { [LISTENER]?: NativeListener })[LISTENER];
  if (l === undefined) return null;
  const [oneStep, streamed] = l.native.counts();
  return { oneStep, streamed };
}

/** One native listener: dispatches the addon's events to its connections. */
class NativeListener {
  readonly native: NativeTransport;
  private readonly conns: (NativeConnection | undefined)[] = [];
  /** Where the addon puts the bytes of EV_READ events (an empty one when it has none). */
  private readonly readBuffer: Buffer;

  /** Connections JavaScript knows and that have not closed yet. */
  count = 0;

  constructor(
    private readonly server: net.Server,
    cls: NativeTransportClass,
    private readonly owner: NativeServer,
  ) {
    this.native = new cls(this.onEvent);
    this.readBuffer = this.native.readBuffer() ?? Buffer.alloc(0);
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
    this.count++;
    this.server.emit('connection', c);
    return c.destroyed ? undefined : c;
  }

  private readonly onEvent = (kind: number, id: number, arg: Buffer | number): void => {
    let c = this.conns[id];
    switch (kind) {
      case EV_ACCEPT:
        this.open(id);
        break;
      case EV_READ:
        if (c === undefined && (c = this.open(id)) === undefined) return;
        c.data(this.readBuffer.subarray(0, arg as number), true);
        break;
      case EV_DATA:
        if (c === undefined && (c = this.open(id)) === undefined) return;
        c.data(arg as Buffer, false);
        break;
      case EV_END:
        c?.peerEnded();
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
    this.native.close(id, reset);
    this.conns[id] = undefined;
    process.nextTick(this.closedByUs, conn);
  }

  /** @internal `id` is closed and the addon sends no more events for it: 'close' now. */
  closedNow(id: number, conn: NativeConnection): void {
    this.conns[id] = undefined;
    this.closedByUs(conn);
  }

  private readonly closedByUs = (conn: NativeConnection): void => {
    try {
      conn.closed(0);
    } finally {
      this.gone();
    }
  };

  private gone(): void {
    this.count--;
    this.owner.emitCloseIfDrained();
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
  private local: [string, number, number] | undefined | null = null;
  private peer: [string, number, number] | undefined | null = null;

  private readonly native: NativeTransport;
  /** See {@link handleWith}. */
  private h: SocketHandlers | null = null;

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

  /** See {@link StreamSocket.handleWith}. */
  handleWith(h: SocketHandlers): void {
    this.h = h;
  }

  /**
   * @internal Bytes arrived; `transient`: `chunk` is a view of the read buffer, overwritten by
   * the next read, given only to a handler that keeps no chunk (listeners get a copy).
   */
  data(chunk: Buffer, transient: boolean): void {
    const h = this.h;
    if (h !== null) {
      h.onData(transient && h.transientChunks !== true ? Buffer.from(chunk) : chunk);
      if (this.listenerCount('data') === 0) return;
    }
    this.emit('data', transient ? Buffer.from(chunk) : chunk);
  }

  /** @internal The peer ended its side. */
  peerEnded(): void {
    const h = this.h;
    if (h !== null) {
      h.onEnd();
      if (this.listenerCount('end') === 0) return;
    }
    this.emit('end');
  }

  /** See {@link StreamSocket.endWith}. */
  endWith(a: Uint8Array, b?: Uint8Array | null): boolean {
    if (this.destroyed || this.ended) return false;
    this.uncork();
    const r = this.native.respondClose(this.id, a, b);
    if (r === 1) {
      /* 'close' now: the caller is done with the connection (no tick per request) */
      this.destroyed = true;
      this.listener.closedNow(this.id, this);
      return true;
    }
    this.ended = true;
    if (r === 0) this.queued(this.native.write(this.id, EMPTY));
    return false;
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
    const h = this.h;
    if (error !== 0 && !ours) {
      const err = socketError(error);
      h?.onError(err);
      if (h === null || this.listenerCount('error') !== 0) this.emit('error', err);
    }
    if (h !== null) {
      h.onClose();
      if (this.listenerCount('close') === 0) return;
    }
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
  return handleFd(socket);
}

/** The descriptor of a node:net socket's or server's handle (node exposes it no other way). */
function handleFd(nodeObject: object): number {
  const fd = (nodeObject as { _handle?: { fd?: unknown } | null })._handle?.fd;
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
