/**
 * Socket-side pieces the gateway protocol servers share (FastCGI in fastcgi.ts, SCGI and uwsgi
 * in scgi-uwsgi-connection.ts): running an app for one request while counting it for drain(), waiting for a
 * socket to drain, the lazily made abort signal of a request, naming the peer in log lines,
 * the deadlines and caps every connection is held to ({@link ConnectionLimits}, kept by one
 * coarse sweep timer per server), and the net.Server with drain() that each create*Server()
 * returns.
 */
import process from 'node:process';
import { createServer, type Server, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { loadNativeBinding } from '../codec/native.js';
import { respond, type Sink } from '../gateway/respond.js';
import type { App, Environ } from '../gateway/types.js';
import {
  closeSilentConnections,
  listenerDeferAccept,
  listenerKeepAlive,
  useTransport,
  type StreamSocket,
  type TransportName,
} from './transport.js';

/** ` from ADDR:PORT` for log lines, or "" when the peer has no address (a unix socket). */
export function peerName(socket: {
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
}): string {
  const a = socket.remoteAddress;
  return a ? ` from ${a}:${socket.remotePort}` : '';
}

/** True for the socket errors that only mean "the peer went away". */
export function isPeerGone(err: Error): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ECONNRESET' || code === 'EPIPE';
}

/** What {@link DrainWait} watches: a Writable, a net.Socket or a native connection. */
export interface DrainSource {
  readonly writableNeedDrain: boolean;
  readonly destroyed: boolean;
  on(event: 'drain' | 'close' | 'error', listener: () => void): unknown;
  off(event: 'drain' | 'close' | 'error', listener: () => void): unknown;
}

/**
 * "Wait until this socket (or any Writable) drained": one promise shared by every waiter until
 * it resolves on 'drain', 'close' or 'error'.
 */
export class DrainWait {
  private wait: Promise<void> | null = null;

  constructor(private readonly out: DrainSource) {}

  /** null when the stream takes more now (or is gone), else a promise to wait for. */
  ready(): Promise<void> | null {
    const out = this.out;
    if (!out.writableNeedDrain || out.destroyed) return null;
    if (this.wait === null) {
      this.wait = new Promise<void>((resolve) => {
        const done = (): void => {
          out.off('drain', done);
          out.off('close', done);
          out.off('error', done);
          this.wait = null;
          resolve();
        };
        out.on('drain', done);
        out.on('close', done);
        out.on('error', done);
      });
    }
    return this.wait;
  }
}

/** The abort signal of one request, made on first use (most requests never ask for it). */
export class RequestSignal {
  private controller: AbortController | null = null;
  /** True once the request was aborted. */
  aborted = false;

  get signal(): AbortSignal {
    let c = this.controller;
    if (c === null) {
      c = this.controller = new AbortController();
      if (this.aborted) c.abort();
    }
    return c.signal;
  }

  abort(): void {
    this.aborted = true;
    this.controller?.abort();
  }
}

/** What counts running apps (for drain()) and logs the server's own messages. */
export interface AppCounter {
  running: number;
  /** An app finished: its response was sent (or cut) and close() ran. */
  settled(): void;
  log(line: string): void;
}

/** Runs `app` for one request, counted in `owner.running` until it settled. */
export function runApp(owner: AppCounter, app: App, env: Environ, sink: Sink): void {
  owner.running++;
  let pending: void | Promise<void>;
  try {
    pending = respond(app, env, sink);
  } catch (err) {
    /* respond() never throws; keep the count right if it ever does */
    owner.log(`internal error: ${String(err)}`);
    pending = undefined;
  }
  if (pending === undefined) owner.settled();
  else pending.then(() => owner.settled());
}

/** The server's own messages when no log was given: one `tsgi: ` line each on stderr. */
export function defaultLog(line: string): void {
  process.stderr.write(`tsgi: ${line}\n`);
}

/**
 * The deadlines and caps a FastCGI, SCGI or uwsgi server holds its connections to, so that no
 * peer can keep a connection, a request or memory forever (docs/hardening.md says why each
 * default is what it is and which front-server settings pair with it). A time of 0 turns that
 * deadline off; the defaults are {@link CONNECTION_LIMITS}.
 */
export interface ConnectionLimits {
  /**
   * From the first byte of a request (FastCGI: of BEGIN_REQUEST, or of the bytes before it;
   * SCGI: the netstring; uwsgi: the vars) to its complete head, in ms; a connection over it is
   * closed with a logged line.
   */
  headerTimeoutMs: number;
  /** How long a new connection may stay open without sending a byte, in ms. */
  firstByteTimeoutMs: number;
  /**
   * How long a kept connection (FastCGI KEEP_CONN, uwsgi keep-alive) may stay idle between
   * requests, in ms; longer than nginx's upstream keepalive_timeout (60 s) so that nginx
   * always closes first.
   */
  idleTimeoutMs: number;
  /**
   * TCP keepalive on TCP listeners: silence in ms before the kernel probes a connection, so a
   * peer that vanished (a crashed host, a cut network) is found; 0: off.
   */
  tcpKeepAliveMs: number;
  /**
   * TCP listeners of the native transport (Linux): the kernel hands a new connection over
   * only once its first bytes arrived, or after about this long (in whole seconds, rounded
   * up), as uWSGI does by default. A request sent right after the connect (nginx's) is then
   * read at accept and answered in one step, with one wakeup instead of two; a connection that
   * sends nothing costs the server nothing until then, and firstByteTimeoutMs counts from
   * when it is handed over. 0: off (every connection is accepted at once).
   */
  deferAcceptMs: number;
  /**
   * Bytes held in unfinished request heads over all the server's connections; a connection
   * whose bytes would pass it is closed (a head that arrives whole never counts).
   */
  maxHeadBytes: number;
  /**
   * Requests whose head is not complete, over all connections: FastCGI answers a BEGIN_REQUEST
   * over it with END_REQUEST(OVERLOADED); SCGI and uwsgi close a connection that would start
   * one more.
   */
  maxUnfinished: number;
  /**
   * FastCGI: live requests on one connection (reported as FCGI_MAX_REQS); one more gets
   * END_REQUEST(OVERLOADED).
   */
  maxConnRequests: number;
}

/** The defaults of {@link ConnectionLimits}. */
export const CONNECTION_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  headerTimeoutMs: 30_000,
  firstByteTimeoutMs: 10_000,
  idleTimeoutMs: 75_000,
  tcpKeepAliveMs: 60_000,
  deferAcceptMs: 1000,
  maxHeadBytes: 64 * 1024 * 1024,
  maxUnfinished: 1024,
  maxConnRequests: 128,
});

/** A connection a {@link ConnectionGateway} closes when it drains. */
export interface DrainableConnection {
  /** Closes the connection when it holds no request (called while the gateway drains). */
  closeIfIdle(): void;
  /** While draining with a handover: hands the connection over when it is between requests. */
  handOverIfIdle?(): void;
  /** Ends the connection at once. */
  destroy(): void;
  /** Closes the connection when it passed one of its deadlines at `now` (a sweep). */
  sweep(now: number): void;
}

/**
 * The open connections of a server, in the order they opened: a Set whose newest member is
 * kept apart. Behind a front server that opens a connection per request, the newest is
 * almost always the one that closes next, so opening and closing one costs two stores instead
 * of a hash table insert and delete. Iteration visits members added while it runs, and
 * skips members deleted before they were reached, as a Set's does.
 */
export class ConnectionSet<C> implements Iterable<C> {
  /** The newest member, not in {@link rest}. */
  private newest: C | undefined = undefined;
  private readonly rest = new Set<C>();

  /** Adds `c` (a new connection: not a member yet). */
  add(c: C): this {
    const n = this.newest;
    if (n === c) return this;
    if (n !== undefined) this.rest.add(n);
    this.newest = c;
    return this;
  }

  /** Removes `c`; false when it was not a member. */
  delete(c: C): boolean {
    if (this.newest === c) {
      this.newest = undefined;
      return true;
    }
    return this.rest.delete(c);
  }

  has(c: C): boolean {
    return this.newest === c || this.rest.has(c);
  }

  get size(): number {
    return this.rest.size + (this.newest === undefined ? 0 : 1);
  }

  *[Symbol.iterator](): Iterator<C> {
    for (const c of this.rest) yield c;
    /* the newest as it is now: one added during the loop above moved the older into rest */
    const n = this.newest;
    if (n !== undefined) yield n;
  }
}

/**
 * The open connections, the running apps and the graceful stop of a socket protocol server
 * (FastCGI, SCGI, uwsgi). Subclasses add their handle(); FastCGI adds requests that still owe
 * END_REQUEST through {@link ConnectionGateway.holding}.
 */
export abstract class ConnectionGateway<C extends DrainableConnection> implements AppCounter {
  readonly connections = new ConnectionSet<C>();
  /** Requests whose app has not finished (response sent and close() done). */
  running = 0;
  draining = false;
  /** Draining, but idle connections stay open (see {@link ConnectionGateway.drain}). */
  keepIdle = false;
  /** While draining: where connections between requests go (see {@link DrainOptions}). */
  handover: ((socket: StreamSocket) => boolean) | null = null;
  private idleWaiters: (() => void)[] = [];
  /** The deadlines and caps of this server's connections. */
  readonly connectionLimits: Readonly<ConnectionLimits>;
  /**
   * A coarse clock in ms, set by each sweep: connections stamp their state changes with it
   * instead of reading the time on every request. It lags the time by at most {@link tickMs}
   * (while connections are open), so a deadline is kept to within two ticks, never early.
   */
  clock = 0;
  /** The sweep's period: a quarter of the shortest deadline, between 10 ms and 1 s. */
  readonly tickMs: number;
  /** Bytes held in unfinished request heads over all connections. */
  headBytes = 0;
  /** The most {@link headBytes} held since memory was last handed back to the system. */
  private headPeak = 0;
  /** Requests whose head is not complete, over all connections. */
  unfinished = 0;
  /** Set by {@link gatewayServer}: closes native connections silent for that many ms. */
  sweepSilent: ((ageMs: number) => void) | null = null;
  /** True while the server listens (the sweep then runs even with no connections). */
  listening = false;
  private sweeper: ReturnType<typeof setInterval> | null = null;
  /** Connections closed by a limit, by kind: until when lines are held back, and how many. */
  private readonly limitLines = new Map<string, { until: number; more: number }>();

  constructor(limits?: Partial<ConnectionLimits>) {
    const l: ConnectionLimits = { ...CONNECTION_LIMITS };
    if (limits !== undefined) {
      for (const k of Object.keys(l) as (keyof ConnectionLimits)[]) {
        const v = limits[k];
        if (v !== undefined) l[k] = v;
      }
    }
    this.connectionLimits = Object.freeze(l);
    const times = [l.headerTimeoutMs, l.firstByteTimeoutMs, l.idleTimeoutMs].filter((t) => t > 0);
    this.tickMs = Math.max(10, Math.floor(Math.min(4000, ...times) / 4));
  }

  /** Where the server's own messages go. */
  abstract readonly log: (line: string) => void;

  /** True while something other than running apps and open connections holds the drain. */
  protected holding(): boolean {
    return false;
  }

  /** @internal An app finished. */
  settled(): void {
    this.running--;
    this.checkIdle();
  }

  /** @internal Closes idle connections while draining; resolves drain() once nothing is left. */
  checkIdle(): void {
    if (!this.draining) return;
    if (!this.keepIdle) for (const conn of this.connections) conn.closeIfIdle();
    else if (this.handover !== null) {
      for (const conn of this.connections) conn.handOverIfIdle?.();
    }
    if (this.running === 0 && this.connections.size === 0 && !this.holding()) {
      const waiters = this.idleWaiters;
      this.idleWaiters = [];
      for (const w of waiters) w();
    }
  }

  /**
   * Stops taking requests: idle connections close now, busy ones after their requests.
   * Resolves when every request finished and every connection closed.
   *
   * With `keepIdle` (a retiring worker while others serve the same sockets), idle connections
   * stay open instead: a front server may send a request on a kept connection at any moment,
   * and one sent while our close is under way would be lost. Requests that arrive on them are
   * served, and a connection closes right after a response leaves it with nothing in flight
   * (the front server sees the end of the connection with the response, before it could send
   * another). Connections nobody uses close when the peer closes them (its keepalive_timeout)
   * or on {@link ConnectionGateway.closeIdle}.
   */
  drain(options: DrainOptions = {}): Promise<void> {
    this.draining = true;
    this.keepIdle = options.keepIdle === true;
    this.handover = this.keepIdle ? (options.handover ?? null) : null;
    const done = new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.checkIdle();
    return done;
  }

  /** While draining: closes the connections that hold no request now (the end of keepIdle). */
  closeIdle(): void {
    this.keepIdle = false;
    this.handover = null;
    this.checkIdle();
  }

  /** True while draining and no request is running (only idle connections hold the drain). */
  get idle(): boolean {
    return this.running === 0 && !this.holding();
  }

  /** Ends every connection at once (requests are aborted). */
  destroy(): void {
    for (const conn of this.connections) conn.destroy();
  }

  /** @internal Counts a new connection and makes sure the sweep runs. */
  track(conn: C): void {
    this.connections.add(conn);
    if (this.sweeper === null) this.startSweep();
  }

  /** @internal Starts the sweep timer (unref'd: it never keeps the process alive). */
  startSweep(): void {
    if (this.sweeper !== null) return;
    this.clock = performance.now();
    this.sweeper = setInterval(this.sweep, this.tickMs);
    this.sweeper.unref();
  }

  /**
   * One pass over the connections: each closes itself when it passed a deadline; native
   * connections that never sent a byte are closed by the transport. Stops when the server
   * neither listens nor has connections.
   */
  private readonly sweep = (): void => {
    const now = (this.clock = performance.now());
    for (const conn of this.connections) conn.sweep(now);
    const silent = this.connectionLimits.firstByteTimeoutMs;
    if (silent > 0) this.sweepSilent?.(silent);
    for (const [kind, s] of this.limitLines) {
      if (now < s.until) continue;
      if (s.more === 0) this.limitLines.delete(kind);
      else {
        this.log(`${s.more} more connections closed the same way (${kind})`);
        s.more = 0;
        s.until = now + LIMIT_LOG_MS;
      }
    }
    const held = this.headBytes;
    if (held > this.headPeak) this.headPeak = held;
    else if (this.headPeak - held > TRIM_AFTER && held < this.headPeak / 4) {
      /* a burst of unfinished heads is gone: give its memory back to the system */
      this.headPeak = held;
      trimMemory();
    }
    if (!this.listening && this.connections.size === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  };

  /**
   * True when `stamp` (a {@link clock} reading) is more than `limit` ms before `now`, allowing
   * for the clock's lag; false when `limit` is 0 (no deadline).
   */
  passed(now: number, stamp: number, limit: number): boolean {
    return limit > 0 && now - stamp > limit + this.tickMs;
  }

  /**
   * Logs `line` about a connection closed (or refused) by a limit of `kind`. Under attack
   * thousands of connections meet the same limit: the first of a kind is logged at once, the
   * rest are counted and summed up in one line a second.
   */
  logLimit(kind: string, line: string): void {
    const s = this.limitLines.get(kind);
    if (s !== undefined) {
      s.more++;
      return;
    }
    this.limitLines.set(kind, { until: this.clock + LIMIT_LOG_MS, more: 0 });
    this.log(line);
  }

  /**
   * A connection whose end we sent (FIN) at `since`, or whose dropped bytes last came then:
   * the peer has the idle timeout to close its side, then the socket is destroyed.
   */
  closeLingering(now: number, since: number, socket: StreamSocket): void {
    if (this.passed(now, since, this.connectionLimits.idleTimeoutMs) && !socket.destroyed) {
      socket.destroy();
    }
  }
}

/** How often lines about connections closed by the same limit are logged (logLimit). */
const LIMIT_LOG_MS = 1000;

/** Freed head bytes after which a sweep hands memory back to the system (see trimMemory). */
const TRIM_AFTER = 16 * 1024 * 1024;

/** The addon's trimMemory() (glibc's malloc_trim), or nothing without the addon. */
const trimMemory: () => void =
  (loadNativeBinding() as { trimMemory?: () => void } | null)?.trimMemory ?? (() => {});

/** Seconds for log lines: "30 s", "0.2 s". */
export function secs(ms: number): string {
  return `${ms / 1000} s`;
}

/**
 * A connection's share of its server's held head bytes ({@link ConnectionLimits.maxHeadBytes}):
 * add() counts bytes that stay in an unfinished head and says false when the server's total
 * went over the cap; release() gives them back once the head is complete or the connection is
 * gone.
 */
export class HeldBytes {
  private held = 0;

  constructor(private readonly gateway: ConnectionGateway<DrainableConnection>) {}

  add(n: number): boolean {
    this.held += n;
    const g = this.gateway;
    g.headBytes += n;
    return g.headBytes <= g.connectionLimits.maxHeadBytes;
  }

  release(): void {
    if (this.held === 0) return;
    this.gateway.headBytes -= this.held;
    this.held = 0;
  }
}

/** How a server drains. */
export interface DrainOptions {
  /** Keep idle connections open and serve what arrives on them (see ConnectionGateway.drain). */
  keepIdle?: boolean;
  /**
   * With keepIdle: a connection between two requests is given to this function instead of
   * being closed (a retiring worker passes it to one that keeps serving, so the front server
   * never sees it close). It returns false when it could not take it; the connection then
   * closes as without a handover.
   */
  handover?: (socket: StreamSocket) => boolean;
}

/** A net.Server with drain() for a graceful stop. */
export interface DrainableServer extends Server {
  /** Stops accepting, lets running requests finish, then closes every connection. */
  drain(options?: DrainOptions): Promise<void>;
  /** While draining with keepIdle: closes the connections that hold no request now. */
  closeIdle(): void;
  /** True when no request is running (draining or not). */
  readonly idle: boolean;
  /** Serves a connection accepted elsewhere (handed over by a retiring worker). */
  adopt(socket: Socket): void;
}

/**
 * A net.Server (half-open connections allowed, Nagle off) that gives each socket to
 * `gateway.handle` and exposes `gateway` as the property `name`; drain() stops accepting and
 * returns `gateway.drain()`. `transport` ("native" or "node"; default: the process's choice,
 * lib/protocol/transport.ts) says how it accepts: with the native transport `gateway.handle`
 * gets NativeConnections, with node:net Sockets.
 */
export function gatewayServer<K extends string, G extends GatewaySide>(
  name: K,
  gateway: G,
  transport?: TransportName,
): DrainableServer & { readonly [P in K]: G } {
  const handler = (socket: Socket): unknown => gateway.handle(socket);
  const limits = gateway.connectionLimits;
  const server = createServer(
    {
      allowHalfOpen: true,
      noDelay: true,
      keepAlive: limits.tcpKeepAliveMs > 0,
      keepAliveInitialDelay: limits.tcpKeepAliveMs,
    },
    handler,
  ) as DrainableServer & {
    readonly [P in K]: G;
  };
  Object.defineProperty(server, name, { value: gateway });
  useTransport(server, transport, handler);
  gateway.sweepSilent = (ageMs) => closeSilentConnections(server, ageMs);
  server.on('listening', () => {
    gateway.listening = true;
    gateway.startSweep();
    /* With the native transport, set on the listening socket: TCP keepalive is inherited by
       every accepted connection (Linux, the BSDs, macOS), no system call per connection.
       node:net sets it per connection (the keepAlive option below). */
    if (limits.tcpKeepAliveMs > 0) {
      listenerKeepAlive(server, Math.max(1, Math.round(limits.tcpKeepAliveMs / 1000)));
    }
    if (limits.deferAcceptMs > 0)
      listenerDeferAccept(server, Math.ceil(limits.deferAcceptMs / 1000));
  });
  server.on('close', () => {
    gateway.listening = false;
  });
  server.drain = (options?: DrainOptions) => {
    if (server.listening) server.close();
    if (options?.keepIdle !== true) closeSilentConnections(server);
    return gateway.drain(options);
  };
  server.adopt = (socket: Socket) => {
    socket.setNoDelay(true);
    server.emit('connection', socket);
    /* a server that drains itself passes it on (handover) or closes it like its own */
    gateway.checkIdle();
  };
  server.closeIdle = () => {
    closeSilentConnections(server);
    gateway.closeIdle();
  };
  Object.defineProperty(server, 'idle', { get: () => gateway.idle });
  return server;
}

/** The protocol side of a {@link gatewayServer}. */
export interface GatewaySide {
  handle(socket: Socket | StreamSocket): unknown;
  drain(options?: DrainOptions): Promise<void>;
  closeIdle(): void;
  checkIdle(): void;
  readonly idle: boolean;
  readonly connectionLimits: Readonly<ConnectionLimits>;
  sweepSilent: ((ageMs: number) => void) | null;
  listening: boolean;
  startSweep(): void;
}
