/**
 * What the FastCGI, SCGI and uwsgi clients share: the request and response types, the backend
 * address, the params of a request (from a plain object, a flat list or a TSGI environ), the
 * request body, the concurrency cap with its queue, and the response body stream.
 */
import { performance } from 'node:perf_hooks';
import { Buffer } from 'node:buffer';
import { Socket, type SocketConstructorOpts } from 'node:net';
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

/**
 * Who hears how one request went, without a promise: the proxy's way in (`request()` wraps
 * it in a promise). Exactly one of `onResponse` and `onError` is called, once.
 */
export interface Receiver {
  /** The head arrived. */
  onResponse(res: ClientResponse): void;
  /** The request failed before its head. */
  onError(err: Error): void;
  /** FastCGI STDERR of this request (instead of the client's `stderr` option). */
  onStderr?(chunk: Buffer): void;
}

/** A request started with a {@link Receiver}: aborting it is a method call, not a signal. */
export interface Started {
  /** Stops the request (FastCGI sends ABORT_REQUEST); `err` is what it fails with. */
  cancel(err?: Error): void;
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

/** Bytes a backend connection reads at once (libuv's own read size). */
const READ_SIZE = 64 * 1024;

/**
 * Where every backend connection reads into: each read is copied out of it at once, before
 * the loop reads anything else, so one serves them all.
 */
let readBuffer: Buffer | null = null;

/**
 * A connection to a backend whose answer survives a failed write.
 *
 * A backend that answers before it reads the request body and then closes the connection
 * (uWSGI refusing an upload over uwsgi) leaves the body unread in its kernel, which resets the
 * connection. The answer sits in our receive queue ahead of the reset, and Linux returns queued
 * bytes before it reports the reset; but a body write that meets the reset first fails, and
 * node destroys a socket whose write failed at once (net.Socket always auto-destroys), closing
 * the descriptor with the answer unread. The proxy would then answer 502 for a backend that
 * answered.
 *
 * So a write that fails with EPIPE or ECONNRESET does not destroy this socket at once: it is
 * read on (the `onread` path, which a write error does not stop) until a whole turn of the
 * event loop, with the connection polled, brings nothing more and the reader is not pausing
 * it; then it is destroyed with that error, as it would have been. Its 'data' events are
 * emitted from that path, each chunk a copy of its own (as costly as node's own reads: the
 * same CPU time per byte and per read, measured on 256 MiB and on 300-byte exchanges). Any
 * other destroy is at once.
 */
export class BackendSocket extends Socket {
  /** The failed write whose destroy waits for the readable side; null: none. */
  private failedWrite: Error | null = null;
  /** Something was read since the last check. */
  private readSince = false;

  constructor() {
    const buffer = (readBuffer ??= Buffer.allocUnsafe(READ_SIZE));
    const self: { socket: BackendSocket | null } = { socket: null };
    const options: SocketConstructorOpts & { onread: unknown } = {
      onread: {
        buffer,
        callback: (n: number): void => self.socket!.received(Buffer.from(buffer.subarray(0, n))),
      },
    };
    super(options);
    self.socket = this;
  }

  private received(chunk: Buffer): void {
    this.readSince = true;
    this.emit('data', chunk);
  }

  override destroy(error?: Error): this {
    if (error !== undefined && isWriteReset(error) && !this.destroyed) {
      /* a second write error while the first waits changes nothing */
      if (this.failedWrite === null) {
        this.failedWrite = error;
        this.readSince = false;
        setImmediate(turnStarted, this);
      }
      return this;
    }
    return super.destroy(error);
  }

  /** A turn of the loop after the failed write has passed (the connection was polled). */
  turnPassed(): void {
    if (this.destroyed) return;
    if (this.readSince) {
      this.readSince = false;
      setImmediate(turnStarted, this);
    } else if (this.isPaused()) {
      this.once('resume', () => setImmediate(turnStarted, this));
    } else {
      super.destroy(this.failedWrite!);
    }
  }
}

/** Two immediates: the second runs after a poll phase that followed the first. */
function turnStarted(socket: BackendSocket): void {
  setImmediate(turnEnded, socket);
}

function turnEnded(socket: BackendSocket): void {
  socket.turnPassed();
}

/** A write the peer's close or reset failed. */
function isWriteReset(err: Error): boolean {
  const e = err as NodeJS.ErrnoException;
  return e.syscall === 'write' && (e.code === 'EPIPE' || e.code === 'ECONNRESET');
}

/** Opens a connection; rejects with ETIMEDOUT after `ms`, or with the socket's error. */
export function openSocket(s: Settings, signal?: AbortSignal): Promise<BackendSocket> {
  return new Promise((resolve, reject) => {
    const where = describeAddress(s.address);
    const socket = new BackendSocket();
    socket.connect(s.address as { host: string; port: number });
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
 * Something that waits in the {@link Limiter}'s queue for a slot. The queue is a list threaded
 * through the waiters themselves: queueing allocates nothing.
 */
export abstract class Waiter {
  /** The next waiter in the queue. */
  queueNext: Waiter | null = null;
  /** When it stops waiting (milliseconds, performance.now()). */
  queueDeadline = 0;
  /** In the queue now (false once admitted, refused or taken out). */
  queued = false;
  /** A slot is this waiter's now. */
  abstract admitted(): void;
  /** No slot: the queue timeout passed, or the client is closing. */
  abstract refused(err: Error): void;
}

/**
 * The concurrency cap: at most `max` holders at once, then up to `maxQueue` waiting (each for
 * at most `queueTimeout` ms), then EQUEUEFULL. A freed slot goes straight to the first waiter.
 * One timer serves the whole queue: the waiters' deadlines come in queue order.
 */
export class Limiter {
  private running = 0;
  private head: Waiter | null = null;
  private tail: Waiter | null = null;
  private count = 0;
  private timer: NodeJS.Timeout | null = null;

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
    return this.count;
  }

  /** Changes the cap (e.g. once a FastCGI server told its limits). */
  setMax(max: number): void {
    this.max = Math.max(1, max);
    this.wake();
  }

  /**
   * Gives `w` a slot now (true), or queues it (false: `admitted()` or `refused()` comes
   * later); throws EQUEUEFULL when the queue is full.
   */
  enter(w: Waiter): boolean {
    if (this.running < this.max) {
      this.running++;
      return true;
    }
    if (this.count >= this.maxQueue) {
      throw new ClientError(
        'EQUEUEFULL',
        `${this.running} requests running and ${this.count} queued: refused`,
      );
    }
    w.queueDeadline = performance.now() + this.queueTimeout;
    w.queued = true;
    w.queueNext = null;
    if (this.tail === null) this.head = w;
    else this.tail.queueNext = w;
    this.tail = w;
    this.count++;
    if (this.timer === null) this.arm(this.queueTimeout);
    return false;
  }

  /** Takes `w` out of the queue (its request was aborted); nothing if it is not queued. */
  leave(w: Waiter): void {
    if (!w.queued) return;
    w.queued = false;
    this.count--;
  }

  /** A holder is done: its slot goes to the first waiter, if any. */
  release(): void {
    this.running--;
    this.wake();
  }

  /** The promise form of {@link enter}: null when a slot was free, else resolves once it is. */
  acquire(signal?: AbortSignal): Promise<void> | null {
    if (this.running < this.max) {
      this.running++;
      return null;
    }
    return new Promise((resolve, reject) => {
      const w = new PromiseWaiter(this, resolve, reject, signal);
      try {
        if (this.enter(w)) resolve();
        else w.listen();
      } catch (err) {
        reject(err as Error);
      }
    });
  }

  /** Refuses everything waiting (the client is closing). */
  rejectAll(err: Error): void {
    for (let w = this.shift(); w !== null; w = this.shift()) w.refused(err);
  }

  private wake(): void {
    while (this.running < this.max) {
      const w = this.shift();
      if (w === null) return;
      this.running++;
      w.admitted();
    }
  }

  /** The first live waiter, taken out of the queue; null when none waits. */
  private shift(): Waiter | null {
    for (let w = this.head; w !== null; w = this.head) {
      if (this.take(w)) return w;
    }
    return null;
  }

  /** Unlinks `w`, the queue's head; true when it was still waiting (it no longer is). */
  private take(w: Waiter): boolean {
    this.head = w.queueNext;
    if (this.head === null) this.tail = null;
    w.queueNext = null;
    if (!w.queued) return false;
    w.queued = false;
    this.count--;
    return true;
  }

  private arm(ms: number): void {
    this.timer = setTimeout(onQueueTimer, Math.max(1, Math.ceil(ms)), this);
    this.timer.unref();
  }

  /** The queue timer: refuses the waiters whose time is up, then waits for the next one. */
  expire(): void {
    this.timer = null;
    const now = performance.now();
    for (let w = this.head; w !== null; w = this.head) {
      if (w.queued && w.queueDeadline > now) {
        this.arm(w.queueDeadline - now);
        return;
      }
      if (this.take(w)) {
        w.refused(
          new ClientError(
            'ETIMEDOUT',
            `waited ${this.queueTimeout} ms in the queue for a free connection`,
          ),
        );
      }
    }
  }
}

function onQueueTimer(limiter: Limiter): void {
  limiter.expire();
}

/** A waiter behind {@link Limiter.acquire}'s promise. */
class PromiseWaiter extends Waiter {
  constructor(
    private readonly limiter: Limiter,
    private readonly resolve: () => void,
    private readonly reject: (e: Error) => void,
    private readonly signal: AbortSignal | undefined,
  ) {
    super();
  }

  listen(): void {
    this.signal?.addEventListener('abort', this);
  }

  /** The signal aborted while waiting. */
  handleEvent(): void {
    if (!this.queued) return;
    this.limiter.leave(this);
    this.signal!.removeEventListener('abort', this);
    this.reject(abortError(this.signal!));
  }

  admitted(): void {
    this.signal?.removeEventListener('abort', this);
    this.resolve();
  }

  refused(err: Error): void {
    this.signal?.removeEventListener('abort', this);
    this.reject(err);
  }
}

/** What feeds a {@link ResponseBody}: told when the consumer wants more, or went away. */
export interface BodyOwner {
  /** The consumer reads again (resume the connection). */
  bodyRead(): void;
  /** The body was destroyed (by the consumer, before its end, or after it). */
  bodyClosed(): void;
}

/**
 * A response body stream fed by a connection: push() reports whether the consumer wants more;
 * when it does not, the owner stops reading the connection until `bodyRead()`.
 */
export class ResponseBody extends Readable {
  private ended = false;

  constructor(private owner: BodyOwner | null) {
    super({ highWaterMark: 64 * 1024 });
  }

  /** True once the whole body has arrived (it may still be buffered, unread). */
  get complete(): boolean {
    return this.ended;
  }

  /** Stops telling the owner anything (it is done with this body). */
  detach(): void {
    this.owner = null;
  }

  override push(chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk === null) this.ended = true;
    return super.push(chunk, encoding);
  }

  override _read(): void {
    this.owner?.bodyRead();
  }

  override _destroy(err: Error | null, callback: (error?: Error | null) => void): void {
    const owner = this.owner;
    this.owner = null;
    owner?.bodyClosed();
    callback(err);
  }
}

/**
 * A response whose head has arrived. When the whole body came with the head, it is held as
 * bytes and the `body` stream is only made if asked for (a proxy takes the bytes instead).
 */
export class Answer implements ClientResponse {
  readonly status: number;
  readonly statusText: string;
  readonly headers: [string, string][];
  readonly localRedirect: boolean;
  readonly style: 'cgi' | 'http';
  private stream: Readable | null;
  private bytes: Buffer | null;

  constructor(head: ResponseHead, stream: Readable | null, bytes: Buffer | null) {
    this.status = head.status;
    this.statusText = head.statusText;
    this.headers = head.headers;
    this.localRedirect = head.localRedirect;
    this.style = head.style;
    this.stream = stream;
    this.bytes = bytes;
  }

  /** The body, streamed (made on first use when it came whole; empty once taken). */
  get body(): Readable {
    if (this.stream === null) {
      const s = new ResponseBody(null);
      if (this.bytes !== null && this.bytes.length > 0) s.push(this.bytes);
      s.push(null);
      this.bytes = null;
      this.stream = s;
    }
    return this.stream;
  }

  /** The whole body as bytes, when it came with the head and `body` was never asked for. */
  takeWhole(): Buffer | null {
    const b = this.bytes;
    this.bytes = null;
    return b;
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
