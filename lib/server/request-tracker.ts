/**
 * A TSGI middleware that watches every request without touching the protocol servers: it
 * counts requests started and finished (for --stats and --max-requests), measures their
 * duration, writes the access log, and enforces --timeout on requests that wait (an app
 * promise or an async body that does not settle in time).
 *
 * "Finished" is when the gateway is done with the response: the body's close() ran (the
 * gateway calls it on every path: done, error, abort) or, for an array body without close(),
 * right after the gateway sent it (it sends arrays synchronously). Array bodies are passed on
 * unchanged, so the gateway still adds Content-Length; other iterables are passed through a
 * wrapper object that delegates iteration and close().
 *
 * Timeouts: a request older than the timeout gets `tsgi.signal` aborted with a TimeoutError
 * (the environ's signal is replaced lazily by one that also follows the protocol's signal).
 * When the app is still waiting (its promise pending, or the next chunk of an async body
 * pending) the response becomes `504 Gateway Timeout` if no body byte left yet, else it is cut
 * (the front server sees an incomplete response). A synchronous busy loop cannot be
 * interrupted from JavaScript: with the addon, the request watchdog (watchdog.ts) answers the
 * requests that have not begun their response with a 504 written natively and ends the
 * process; without it, under a master, the master kills the worker (its heartbeat stops).
 */
import { performance } from 'node:perf_hooks';
import type { App, Body, Chunk, Environ, Headers, StartResponse, Write } from '../gateway/types.js';
import { environSource } from '../codec/environ.js';
import { wrapSignal } from '../gateway/environ.js';
import {
  socketFd,
  WATCHDOG_SOCKET,
  WatchdogAnswer,
  watchdogTarget,
  type StreamSocket,
} from '../protocol/transport.js';
import type { Logger } from './log.js';
import type { Watchdog } from './watchdog.js';

/** Per-process request numbers. */
export interface RequestCounters {
  /** Requests finished. */
  requests: number;
  /** Requests started and not finished. */
  inFlight: number;
  /** Sum of the finished requests' durations, ms. */
  totalMs: number;
  /** Longest finished request, ms. */
  maxMs: number;
}

/** Per-listener request numbers. */
export interface ListenerRequestCounters {
  requests: number;
}

export interface TrackerOptions {
  /** Abort requests older than this (ms); 0: off. */
  timeoutMs?: number;
  /** Write one access-log line per request here; null: no access log. */
  accessLog?: Logger | null;
  /** Where timeouts are reported. */
  log?: Logger | null;
  /** Called after every finished request (e.g. to check --max-requests). */
  onFinish?: (counters: RequestCounters) => void;
  /**
   * The request watchdog (watchdog.ts): each request is registered while it has not begun its
   * response, so that a busy loop (--timeout) gets it a 504, and --max-rss a 500, written
   * natively.
   */
  watchdog?: Watchdog | null;
}

const TIMEOUT_BODY = 'Gateway Timeout\n';
const TIMEOUT_HEADERS: Headers = [['Content-Type', 'text/plain; charset=us-ascii']];
const TIMEOUT_STATUS = '504 Gateway Timeout';

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    v !== null &&
    (typeof v === 'object' || typeof v === 'function') &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}

function chunkLength(c: unknown): number {
  if (typeof c === 'string') return c.length;
  if (c instanceof Uint8Array) return c.byteLength;
  return 0;
}

/** The error a timed-out request's signal aborts with (a DOMException named TimeoutError). */
export function timeoutError(ms: number): Error {
  const D = (globalThis as { DOMException?: new (m: string, n: string) => Error }).DOMException;
  const message = `the request ran longer than the timeout (${ms / 1000}s)`;
  if (D !== undefined) return new D(message, 'TimeoutError');
  const e = new Error(message);
  e.name = 'TimeoutError';
  return e;
}

/** One request in progress. */
class Req {
  status: string | null = null;
  bytes = 0;
  /** A non-empty body chunk went to the gateway: the head has left. */
  sent = false;
  finished = false;
  timedOut = false;
  /** The response was settled by the timeout (504 or cut): later app results are dropped. */
  settled = false;
  controller: AbortController | null = null;
  /** Settles what the request waits on when the timeout fires. */
  fire: (() => void) | null = null;
  write: Write | null = null;
  /** Its watchdog slot while its response has not begun (-1: not registered). */
  slot = -1;

  constructor(
    readonly env: Environ,
    readonly start: StartResponse,
    readonly t0: number,
    readonly listener: ListenerRequestCounters,
  ) {}
}

type Wrapped = Body & { close(): void | Promise<void> };

/**
 * Counts and times requests for one process; `wrap()` gives the app each listener serves.
 * With a timeout, `start()` runs the sweep that expires old requests.
 */
export class RequestTracker {
  readonly counters: RequestCounters = { requests: 0, inFlight: 0, totalMs: 0, maxMs: 0 };
  private readonly timeoutMs: number;
  private readonly accessLog: Logger | null;
  private readonly log: Logger | null;
  private readonly onFinish: ((c: RequestCounters) => void) | null;
  private readonly watchdog: Watchdog | null;
  /** Requests in progress (kept only with a timeout). */
  private readonly live = new Set<Req>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(options: TrackerOptions = {}) {
    this.timeoutMs = options.timeoutMs ?? 0;
    this.accessLog = options.accessLog ?? null;
    this.log = options.log ?? null;
    this.onFinish = options.onFinish ?? null;
    this.watchdog = options.watchdog ?? null;
  }

  /** Registers `req` with the watchdog (when there is one and its protocol can be answered). */
  private watch(req: Req): void {
    const env = req.env;
    const source = environSource(env) as { answerTarget?: () => number } | undefined;
    if (typeof source?.answerTarget === 'function') {
      req.slot = this.watchdog!.add(source.answerTarget());
      return;
    }
    const socket = (env as unknown as Record<symbol, unknown>)[WATCHDOG_SOCKET] as
      StreamSocket | undefined;
    if (socket !== undefined) {
      req.slot = this.watchdog!.add(watchdogTarget(socketFd(socket), WatchdogAnswer.Http));
    }
  }

  /** The response of `req` begins (or it ended): the watchdog must not answer it any more. */
  private unwatch(req: Req): void {
    if (req.slot < 0) return;
    this.watchdog!.remove(req.slot);
    req.slot = -1;
  }

  /** How often the timeout sweep runs (ms). */
  get sweepMs(): number {
    return Math.max(20, Math.min(1000, Math.floor(this.timeoutMs / 4)));
  }

  /** Starts the timeout sweep (nothing to do without a timeout). */
  start(): void {
    if (this.timeoutMs <= 0 || this.sweeper !== null) return;
    this.sweeper = setInterval(() => this.sweep(), this.sweepMs);
    this.sweeper.unref();
  }

  stop(): void {
    if (this.sweeper !== null) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  /** Expires every request older than the timeout. */
  sweep(now: number = performance.now()): void {
    for (const req of this.live) {
      if (!req.timedOut && now - req.t0 >= this.timeoutMs) this.expire(req);
    }
  }

  /** The app to serve on one listener, counting into `listener` as well. */
  wrap(app: App, listener: ListenerRequestCounters = { requests: 0 }): App {
    const timeout = this.timeoutMs > 0;
    const watched = this.watchdog !== null;
    const watchStart = timeout || watched || this.accessLog !== null;
    if (!watchStart) return this.wrapCounting(app, listener);
    return (env: Environ, start: StartResponse) => {
      const req = new Req(env, start, performance.now(), listener);
      this.counters.inFlight++;
      /* before hookSignal(): watch() asks the environ's source for its answer target */
      if (watched) this.watch(req);
      if (timeout) {
        this.live.add(req);
        this.hookSignal(req);
      }
      let result: Body | Promise<Body>;
      try {
        result = app(env, watchStart ? this.startResponse(req) : start);
      } catch (err) {
        req.status ??= '500';
        this.finish(req);
        throw err;
      }
      if (isThenable(result)) {
        if (timeout) return this.race(req, result);
        return Promise.resolve(result).then(
          (body) => this.body(req, body),
          (err: unknown) => {
            req.status = '500';
            this.finish(req);
            throw err;
          },
        );
      }
      return this.body(req, result);
    };
  }

  /**
   * Counting only (--stats, --max-requests): the common case of a synchronous app returning an
   * array body is counted without allocating anything (the gateway sends an array at once,
   * right after this returns); anything else takes the general path.
   */
  private wrapCounting(app: App, listener: ListenerRequestCounters): App {
    const c = this.counters;
    return (env: Environ, start: StartResponse) => {
      const t0 = performance.now();
      c.inFlight++;
      let result: Body | Promise<Body>;
      try {
        result = app(env, start);
      } catch (err) {
        this.count(t0, listener);
        throw err;
      }
      if (Array.isArray(result) && typeof (result as Body).close !== 'function') {
        this.count(t0, listener);
        return result;
      }
      const req = new Req(env, start, t0, listener);
      if (isThenable(result)) {
        return Promise.resolve(result).then(
          (body) => this.body(req, body),
          (err: unknown) => {
            this.finish(req);
            throw err;
          },
        );
      }
      return this.body(req, result);
    };
  }

  /** One finished request of the counting path. */
  private count(t0: number, listener: ListenerRequestCounters): void {
    const ms = performance.now() - t0;
    const c = this.counters;
    c.requests++;
    c.inFlight--;
    c.totalMs += ms;
    if (ms > c.maxMs) c.maxMs = ms;
    listener.requests++;
    if (this.onFinish !== null) this.onFinish(c);
  }

  private startResponse(req: Req): StartResponse {
    return (status, headers, excInfo) => {
      const write = req.start(status, headers, excInfo);
      req.status = status;
      req.write = write;
      return (chunk: Chunk) => {
        if (req.settled) return;
        const n = chunkLength(chunk);
        this.unwatch(req);
        write(chunk);
        if (n > 0) {
          req.sent = true;
          req.bytes += n;
        }
      };
    };
  }

  /** The tsgi.signal of `req`: `inner` (the protocol's) followed, or aborted on the timeout. */
  private timedSignal(req: Req, inner: AbortSignal | undefined): AbortSignal {
    const c = new AbortController();
    req.controller = c;
    if (req.timedOut) c.abort(timeoutError(this.timeoutMs));
    else if (inner !== undefined) {
      if (inner.aborted) c.abort(inner.reason);
      else inner.addEventListener('abort', () => c.abort(inner.reason), { once: true });
    }
    return c.signal;
  }

  /**
   * Makes tsgi.signal one that also aborts on this request's timeout (made on first read): in
   * front of the environ's lazy key when it has one (wrapSignal), else by replacing the key.
   */
  private hookSignal(req: Req): void {
    const env = req.env;
    if (wrapSignal(env, (inner) => this.timedSignal(req, inner))) return;
    const d = Object.getOwnPropertyDescriptor(env, 'tsgi.signal');
    const settle = (v: unknown): void => {
      Object.defineProperty(env, 'tsgi.signal', {
        value: v,
        writable: true,
        enumerable: true,
        configurable: true,
      });
    };
    Object.defineProperty(env, 'tsgi.signal', {
      enumerable: true,
      configurable: true,
      get: () => {
        const inner = (d?.get ? d.get.call(env) : d?.value) as AbortSignal | undefined;
        const signal = this.timedSignal(req, inner);
        settle(signal);
        return signal;
      },
      set: settle,
    });
  }

  private expire(req: Req): void {
    req.timedOut = true;
    req.controller?.abort(timeoutError(this.timeoutMs));
    const env = req.env;
    this.log?.warn(
      `request ${env.REQUEST_METHOD} ${env.SCRIPT_NAME}${env.PATH_INFO} ran longer than the ` +
        `timeout (${this.timeoutMs / 1000}s): ${req.sent ? 'cut' : '504'}` +
        `${req.fire === null ? ' once the app yields' : ''}`,
      {
        event: 'timeout',
        method: env.REQUEST_METHOD,
        path: `${env.SCRIPT_NAME}${env.PATH_INFO}`,
        timeout_s: this.timeoutMs / 1000,
      },
    );
    const fire = req.fire;
    req.fire = null;
    if (fire !== null) fire();
  }

  /** Answers a timed-out request that has sent nothing with a 504; true when it did. */
  private answer504(req: Req): boolean {
    if (req.sent) return false;
    this.unwatch(req);
    try {
      req.start(TIMEOUT_STATUS, TIMEOUT_HEADERS.slice(), req.status === null ? undefined : req);
    } catch {
      return false;
    }
    req.status = TIMEOUT_STATUS;
    req.bytes = TIMEOUT_BODY.length;
    req.settled = true;
    return true;
  }

  /** With a timeout: the app's promise against the clock. */
  private race(req: Req, result: PromiseLike<Body>): Promise<Body> {
    return new Promise<Body>((resolve, reject) => {
      req.fire = () => {
        if (this.answer504(req)) {
          queueMicrotask(() => this.finish(req));
          resolve([TIMEOUT_BODY]);
        } else {
          req.settled = true;
          this.finish(req);
          reject(timeoutError(this.timeoutMs));
        }
      };
      result.then(
        (body) => {
          if (req.settled) {
            closeLate(body);
            return;
          }
          req.fire = null;
          resolve(this.body(req, body));
        },
        (err: unknown) => {
          if (req.settled) return;
          req.fire = null;
          req.status = '500';
          this.finish(req);
          reject(err);
        },
      );
    });
  }

  /** Passes the body on so that its end is seen. */
  private body(req: Req, body: Body): Body {
    if (Array.isArray(body)) {
      /* the gateway sends an array at once */
      this.unwatch(req);
      if (this.accessLog !== null) {
        for (let i = 0; i < body.length; i++) req.bytes += chunkLength(body[i]);
        if (req.bytes > 0) req.sent = true;
      }
      if (typeof (body as Body).close === 'function') {
        const copy = body.slice() as unknown as Wrapped;
        copy.close = () => this.closeBody(req, body);
        return copy;
      }
      queueMicrotask(() => this.finish(req));
      return body;
    }
    if (body === null || typeof body !== 'object') {
      /* not a body: the gateway answers 500 at once */
      this.unwatch(req);
      req.status = '500';
      queueMicrotask(() => this.finish(req));
      return body;
    }
    const asyncOf = (body as AsyncIterable<Chunk>)[Symbol.asyncIterator];
    const syncOf = (body as Iterable<Chunk>)[Symbol.iterator];
    if (typeof asyncOf !== 'function' && typeof syncOf !== 'function') {
      this.unwatch(req);
      req.status = '500';
      queueMicrotask(() => this.finish(req));
      return body;
    }
    const wrapped = { close: () => this.closeBody(req, body) } as Wrapped;
    const watch = this.accessLog !== null || this.timeoutMs > 0;
    if (typeof asyncOf === 'function') {
      (wrapped as AsyncIterable<Chunk>)[Symbol.asyncIterator] = watch
        ? () => this.asyncIterator(req, asyncOf.call(body))
        : () => asyncOf.call(body);
    } else {
      (wrapped as Iterable<Chunk>)[Symbol.iterator] =
        this.accessLog !== null || req.slot >= 0
          ? () => this.syncIterator(req, syncOf.call(body))
          : () => syncOf.call(body);
    }
    return wrapped;
  }

  /**
   * Counts one step of a response body: a chunk with bytes marks the response as begun (the
   * watchdog can no longer answer it) and adds to its size; the end takes it off the watchdog.
   */
  private counted(req: Req, r: IteratorResult<Chunk>): IteratorResult<Chunk> {
    if (!r.done) {
      const n = chunkLength(r.value);
      if (n > 0) {
        this.unwatch(req);
        req.sent = true;
        req.bytes += n;
      }
    } else this.unwatch(req);
    return r;
  }

  private syncIterator(req: Req, it: Iterator<Chunk>): Iterator<Chunk> {
    return {
      next: () => this.counted(req, it.next()),
      return: (value?: unknown) =>
        typeof it.return === 'function' ? it.return(value) : { done: true, value: undefined },
    };
  }

  private asyncIterator(req: Req, it: AsyncIterator<Chunk>): AsyncIterator<Chunk> {
    let ended = false;
    const count = (r: IteratorResult<Chunk>): IteratorResult<Chunk> => this.counted(req, r);
    const stopInner = (): void => {
      if (typeof it.return !== 'function') return;
      try {
        Promise.resolve(it.return()).then(noop, noop);
      } catch {
        /* the app's cleanup errors surface in close() */
      }
    };
    return {
      next: () => {
        if (ended) return Promise.resolve({ done: true, value: undefined });
        const p = it.next();
        if (this.timeoutMs <= 0) return p.then(count);
        return new Promise<IteratorResult<Chunk>>((resolve, reject) => {
          const onTimeout = (): void => {
            ended = true;
            stopInner();
            if (this.answer504(req)) resolve({ done: false, value: TIMEOUT_BODY });
            else {
              req.settled = true;
              reject(timeoutError(this.timeoutMs));
            }
          };
          if (req.timedOut) {
            p.then(noop, noop);
            onTimeout();
            return;
          }
          req.fire = onTimeout;
          p.then(
            (r) => {
              if (ended) return;
              req.fire = null;
              resolve(count(r));
            },
            (err: unknown) => {
              if (ended) return;
              req.fire = null;
              reject(err);
            },
          );
        });
      },
      return: (value?: unknown) => {
        if (ended) return Promise.resolve({ done: true, value: undefined });
        ended = true;
        req.fire = null;
        return typeof it.return === 'function'
          ? it.return(value)
          : Promise.resolve({ done: true, value: undefined });
      },
    };
  }

  private closeBody(req: Req, body: Body): void | Promise<void> {
    const close = body.close;
    if (typeof close !== 'function') {
      this.finish(req);
      return;
    }
    let r: void | Promise<void>;
    try {
      r = close.call(body);
    } catch (err) {
      this.finish(req);
      throw err;
    }
    if (isThenable(r)) {
      return Promise.resolve(r).then(
        () => this.finish(req),
        (err: unknown) => {
          this.finish(req);
          throw err;
        },
      );
    }
    this.finish(req);
  }

  private finish(req: Req): void {
    if (req.finished) return;
    req.finished = true;
    this.unwatch(req);
    const ms = performance.now() - req.t0;
    const c = this.counters;
    c.requests++;
    c.inFlight--;
    c.totalMs += ms;
    if (ms > c.maxMs) c.maxMs = ms;
    req.listener.requests++;
    if (this.timeoutMs > 0) this.live.delete(req);
    if (this.accessLog !== null) {
      const env = req.env;
      const s = req.status;
      this.accessLog.request({
        method: env.REQUEST_METHOD,
        path: `${env.SCRIPT_NAME}${env.PATH_INFO}`,
        query: env.QUERY_STRING,
        status: s === null ? 0 : Number(s.slice(0, 3)) || 0,
        bytes: req.bytes,
        durationMs: ms,
        remote: env.REMOTE_ADDR,
      });
    }
    if (this.onFinish !== null) this.onFinish(c);
  }
}

function noop(): void {}

/** Closes a body that arrived after its request was answered by the timeout. */
function closeLate(body: unknown): void {
  const close = (body as { close?: unknown } | null)?.close;
  if (typeof close !== 'function') return;
  try {
    const r = close.call(body);
    if (isThenable(r)) r.then(noop, noop);
  } catch {
    /* the request is over; nothing to report to */
  }
}
