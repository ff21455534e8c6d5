/**
 * Socket-side pieces the gateway protocol servers share (FastCGI in fastcgi.ts, SCGI and uwsgi
 * in stream.ts): running an app for one request while counting it for drain(), waiting for a
 * socket to drain, the lazily made abort signal of a request, naming the peer in log lines,
 * and the net.Server with drain() that each create*Server() returns.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { respond, type Sink } from '../gateway/respond.js';
import type { App, Environ } from '../gateway/types.js';
import {
  closeSilentConnections,
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

/** A connection a {@link ConnectionGateway} closes when it drains. */
export interface DrainableConnection {
  /** Closes the connection when it holds no request (called while the gateway drains). */
  closeIfIdle(): void;
  /** While draining with a handover: hands the connection over when it is between requests. */
  handOverIfIdle?(): void;
  /** Ends the connection at once. */
  destroy(): void;
}

/**
 * The open connections, the running apps and the graceful stop of a socket protocol server
 * (FastCGI, SCGI, uwsgi). Subclasses add their handle(); FastCGI adds requests that still owe
 * END_REQUEST through {@link ConnectionGateway.holding}.
 */
export abstract class ConnectionGateway<C extends DrainableConnection> implements AppCounter {
  readonly connections = new Set<C>();
  /** Requests whose app has not finished (response sent and close() done). */
  running = 0;
  draining = false;
  /** Draining, but idle connections stay open (see {@link ConnectionGateway.drain}). */
  keepIdle = false;
  /** While draining: where connections between requests go (see {@link DrainOptions}). */
  handover: ((socket: StreamSocket) => boolean) | null = null;
  private idleWaiters: (() => void)[] = [];

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
  const server = createServer(
    { allowHalfOpen: true, noDelay: true },
    handler,
  ) as DrainableServer & {
    readonly [P in K]: G;
  };
  Object.defineProperty(server, name, { value: gateway });
  useTransport(server, transport, handler);
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
  handle(socket: Socket): unknown;
  drain(options?: DrainOptions): Promise<void>;
  closeIdle(): void;
  checkIdle(): void;
  readonly idle: boolean;
}
