/**
 * What the FastCGI, SCGI and uwsgi clients share: the request and response types, the backend
 * address, the params of a request (from a plain object, a flat list or a TSGI environ), the
 * request body, the concurrency cap with its queue, and the response body stream.
 */
import { connect, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import type { Environ } from '../gateway/types.js';
import { ClientError, socketError } from './errors.js';
import type { ResponseHead } from './head.js';

/** Where the backend listens: `HOST:PORT`, `[IPV6]:PORT`, `unix:/path`, or an object. */
export type BackendAddress = string | { host?: string; port: number } | { path: string };

/** A request body: bytes, a latin-1/UTF-8 string (sent as UTF-8), or a stream of chunks. */
export type RequestBody =
  Uint8Array | string | Readable | AsyncIterable<Uint8Array | string> | null | undefined;

/** One request. */
export interface ClientRequest {
  /**
   * The CGI variables to send: an object, or a flat `[name, value, …]` list (repeats kept as
   * given). Exactly one of `params` and `environ` is given.
   */
  params?: Record<string, string> | readonly string[];
  /**
   * A TSGI environ to forward: its string variables are sent (the `tsgi.*` keys are not), its
   * `tsgi.input` is the default body and its `tsgi.signal` the default signal.
   */
  environ?: Environ;
  /** The request body (default: none, or the environ's `tsgi.input`). */
  body?: RequestBody;
  /** Aborts the request: FastCGI sends ABORT_REQUEST, the others close the connection. */
  signal?: AbortSignal;
  /** FastCGI STDERR of this request (default: the client's `stderr` option). */
  stderr?: (chunk: Buffer) => void;
}

/** A response whose head has arrived. */
export interface ClientResponse extends ResponseHead {
  /**
   * The body, streamed: reading slowly slows the backend down (the connection is paused while
   * the stream's buffer is full). It ends with an error when the backend fails mid-response.
   */
  body: Readable;
}

/** Timeouts and the concurrency cap shared by every client. */
export interface CommonOptions {
  /** The backend (required). */
  address: BackendAddress;
  /** Milliseconds to establish a connection (default 5000). */
  connectTimeout?: number;
  /**
   * Milliseconds the backend may stay silent while a response is awaited or streaming
   * (default 60000, nginx's fastcgi_read_timeout); 0 disables it.
   */
  readTimeout?: number;
  /** Milliseconds for a whole request, head and body (default 0: no limit). */
  timeout?: number;
  /** Requests in flight at once (default 16); more wait in the queue. */
  maxConcurrent?: number;
  /** Requests waiting for a free slot (default 1024); beyond, EQUEUEFULL at once. */
  maxQueue?: number;
  /** Milliseconds a request may wait in the queue (default: connectTimeout). */
  queueTimeout?: number;
}

/** Resolved common options. */
export interface Settings {
  address: { host: string; port: number } | { path: string };
  connectTimeout: number;
  readTimeout: number;
  timeout: number;
  maxConcurrent: number;
  maxQueue: number;
  queueTimeout: number;
}

/** Parses a backend address (`HOST:PORT`, `[IPV6]:PORT`, `:PORT`, `unix:/path`, `/path`). */
export function backendAddress(a: BackendAddress): Settings['address'] {
  if (typeof a !== 'string') {
    if ('path' in a) return { path: a.path };
    return { host: a.host ?? '127.0.0.1', port: a.port };
  }
  if (a.startsWith('unix:')) return { path: a.slice(5) };
  if (a.startsWith('/') || a.startsWith('./')) return { path: a };
  const m = /^(?:\[([^\]]+)\]|([^:]*)):([0-9]{1,5})$/.exec(a);
  if (m === null)
    throw new TypeError(`bad backend address "${a}": expected HOST:PORT or unix:PATH`);
  return { host: m[1] ?? (m[2] || '127.0.0.1'), port: Number(m[3]) };
}

export function settings(o: CommonOptions): Settings {
  const connectTimeout = o.connectTimeout ?? 5000;
  return {
    address: backendAddress(o.address),
    connectTimeout,
    readTimeout: o.readTimeout ?? 60000,
    timeout: o.timeout ?? 0,
    maxConcurrent: Math.max(1, o.maxConcurrent ?? 16),
    maxQueue: Math.max(0, o.maxQueue ?? 1024),
    queueTimeout: o.queueTimeout ?? connectTimeout,
  };
}

export function describeAddress(a: Settings['address']): string {
  return 'path' in a
    ? `unix:${a.path}`
    : `${a.host.includes(':') ? `[${a.host}]` : a.host}:${a.port}`;
}

/** Opens a connection; rejects with ETIMEDOUT after `ms`, or with the socket's error. */
export function openSocket(s: Settings, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const where = describeAddress(s.address);
    const socket = connect(s.address as { host: string; port: number });
    socket.setNoDelay(true);
    const done = (err: Error | null): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      signal?.removeEventListener('abort', onAbort);
      if (err === null) resolve(socket);
      else {
        socket.destroy();
        reject(err);
      }
    };
    const onConnect = (): void => done(null);
    const onError = (err: NodeJS.ErrnoException): void =>
      done(socketError(err, `cannot connect to ${where}`));
    const onAbort = (): void => done(abortError(signal!));
    const timer = setTimeout(
      () =>
        done(
          new ClientError(
            'ETIMEDOUT',
            `connect to ${where} timed out after ${s.connectTimeout} ms`,
          ),
        ),
      s.connectTimeout,
    );
    socket.once('connect', onConnect);
    socket.once('error', onError);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** The error a request fails with when its signal aborts. */
export function abortError(signal: AbortSignal): ClientError {
  return new ClientError('ABORT_ERR', 'the request was aborted', { cause: signal.reason });
}

/** The params of a request as a flat list, and its body and signal (see {@link ClientRequest}). */
export function requestParts(req: ClientRequest): {
  pairs: string[];
  body: RequestBody;
  signal: AbortSignal | undefined;
} {
  const pairs: string[] = [];
  let body = req.body;
  let signal = req.signal;
  if (req.environ !== undefined) {
    const env = req.environ;
    for (const key in env) {
      const v = env[key];
      if (typeof v === 'string' && !key.startsWith('tsgi.')) pairs.push(key, v);
    }
    if (body === undefined) body = env['tsgi.input'];
    if (signal === undefined) signal = env['tsgi.signal'];
  } else if (Array.isArray(req.params)) {
    pairs.push(...(req.params as readonly string[]));
  } else if (req.params !== undefined) {
    for (const key in req.params) pairs.push(key, (req.params as Record<string, string>)[key]!);
  }
  return { pairs, body, signal };
}

/** The value of `name` in a flat pair list (the last one), or undefined. */
export function pairValue(pairs: readonly string[], name: string): string | undefined {
  for (let i = pairs.length - 2; i >= 0; i -= 2) if (pairs[i] === name) return pairs[i + 1];
  return undefined;
}

/** Sets `name` in a flat pair list (replacing every earlier occurrence). */
export function setPair(pairs: string[], name: string, value: string): void {
  for (let i = pairs.length - 2; i >= 0; i -= 2) if (pairs[i] === name) pairs.splice(i, 2);
  pairs.push(name, value);
}

/** A body given whole (bytes or string) as bytes, or null for a stream. */
export function wholeBody(body: RequestBody): Uint8Array | null {
  if (body === null || body === undefined) return EMPTY;
  if (typeof body === 'string') return Buffer.from(body, 'utf8');
  if (body instanceof Uint8Array) return body;
  return null;
}

export const EMPTY = new Uint8Array(0);

/** The chunks of a streamed body as bytes. */
export async function* bodyChunks(
  body: Readable | AsyncIterable<Uint8Array | string>,
): AsyncGenerator<Uint8Array> {
  for await (const c of body as AsyncIterable<Uint8Array | string>) {
    if (typeof c === 'string') yield Buffer.from(c, 'utf8');
    else if (c.length > 0) yield c;
  }
}

/** Reads a body whole, in memory; EBODYTOOLARGE past `max` bytes (see spool.ts for requests). */
export async function bufferBody(
  body: AsyncIterable<Uint8Array | string>,
  max: number,
  signal?: AbortSignal,
): Promise<Uint8Array> {
  const chunks: Uint8Array[] = [];
  let n = 0;
  for await (const c of bodyChunks(body)) {
    if (signal?.aborted) throw abortError(signal);
    n += c.length;
    if (n > max) {
      throw new ClientError(
        'EBODYTOOLARGE',
        `a request body of unknown length is over ${max} bytes`,
      );
    }
    chunks.push(c);
  }
  return Buffer.concat(chunks, n);
}

/** Writes `data` and resolves once the socket can take more (or is closed). */
export function writeAndWait(socket: Socket, data: Uint8Array): Promise<void> | null {
  if (socket.write(data) || socket.destroyed) return null;
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.on('drain', done);
    socket.on('close', done);
  });
}

/**
 * The concurrency cap: at most `max` holders at once, then up to `maxQueue` waiting (each for
 * at most `queueTimeout` ms), then EQUEUEFULL.
 */
export class Limiter {
  private running = 0;
  private readonly queue: {
    resolve: () => void;
    reject: (e: Error) => void;
    timer: NodeJS.Timeout;
  }[] = [];

  constructor(
    private max: number,
    private readonly maxQueue: number,
    private readonly queueTimeout: number,
  ) {}

  /** Requests running now. */
  get active(): number {
    return this.running;
  }

  /** Requests waiting now. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Changes the cap (e.g. once a FastCGI server told its limits). */
  setMax(max: number): void {
    this.max = Math.max(1, max);
    while (this.running < this.max && this.queue.length > 0) this.wake();
  }

  acquire(signal?: AbortSignal): Promise<void> | null {
    if (this.running < this.max) {
      this.running++;
      return null;
    }
    if (this.queue.length >= this.maxQueue) {
      return Promise.reject(
        new ClientError(
          'EQUEUEFULL',
          `${this.running} requests running and ${this.queue.length} queued: refused`,
        ),
      );
    }
    return new Promise((resolve, reject) => {
      const entry = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        reject: (e: Error) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
        timer: setTimeout(() => {
          this.drop(entry);
          entry.reject(
            new ClientError(
              'ETIMEDOUT',
              `waited ${this.queueTimeout} ms in the queue for a free connection`,
            ),
          );
        }, this.queueTimeout),
      };
      const onAbort = (): void => {
        this.drop(entry);
        clearTimeout(entry.timer);
        entry.reject(abortError(signal!));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.queue.push(entry);
    });
  }

  release(): void {
    this.running--;
    if (this.running < this.max && this.queue.length > 0) this.wake();
  }

  /** Rejects everything waiting (the client is closing). */
  rejectAll(err: Error): void {
    for (const e of this.queue.splice(0)) {
      clearTimeout(e.timer);
      e.reject(err);
    }
  }

  private wake(): void {
    const e = this.queue.shift()!;
    clearTimeout(e.timer);
    this.running++;
    e.resolve();
  }

  private drop(entry: (typeof this.queue)[number]): void {
    const i = this.queue.indexOf(entry);
    if (i !== -1) this.queue.splice(i, 1);
  }
}

/**
 * A response body stream fed by a connection: push() reports whether the consumer wants more;
 * when it does not, `pause` stops reading the connection and `resume` is called on the next
 * read().
 */
export class ResponseBody extends Readable {
  private ended = false;

  constructor(private readonly onRead: () => void) {
    super({ highWaterMark: 64 * 1024 });
  }

  /** True once the whole body has arrived (it may still be buffered, unread). */
  get complete(): boolean {
    return this.ended;
  }

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null) this.ended = true;
    return super.push(chunk, encoding);
  }

  override _read(): void {
    this.onRead();
  }
}

/** A request admitted by {@link LimitedClient.admit}: its parts and the release of its slot. */
export interface Admitted {
  pairs: string[];
  body: RequestBody;
  signal: AbortSignal | undefined;
  /** Frees the request's slot (idempotent). */
  release: () => void;
}

/** What every client shares: its settings, the concurrency cap and the closing state. */
export abstract class LimitedClient {
  protected readonly s: Settings;
  protected readonly limiter: Limiter;
  protected closing = false;

  constructor(options: CommonOptions) {
    this.s = settings(options);
    this.limiter = new Limiter(this.s.maxConcurrent, this.s.maxQueue, this.s.queueTimeout);
  }

  /** Requests running and waiting now. */
  get load(): { active: number; waiting: number } {
    return { active: this.limiter.active, waiting: this.limiter.waiting };
  }

  /**
   * The start of every request: refused once closing, split into its parts, refused when its
   * signal already aborted; `ready` (e.g. a GET_VALUES probe) awaited; then a slot.
   */
  protected async admit(req: ClientRequest, ready?: Promise<void> | null): Promise<Admitted> {
    if (this.closing) throw new ClientError('ECLOSED', 'the client is closed');
    const { pairs, body, signal } = requestParts(req);
    if (signal?.aborted) throw abortError(signal);
    if (ready) await ready;
    const wait = this.limiter.acquire(signal);
    if (wait !== null) await wait;
    let released = false;
    const release = (): void => {
      if (!released) {
        released = true;
        this.limiter.release();
      }
    };
    return { pairs, body, signal, release };
  }

  /** Refuses new requests and rejects the queued ones. */
  protected stopAdmitting(): void {
    this.closing = true;
    this.limiter.rejectAll(new ClientError('ECLOSED', 'the client is closed'));
  }
}
