/**
 * fromNodeHandler(handler): runs a node:http request listener — an Express app, Koa's
 * `app.callback()`, Fastify's `routing`, a bare `(req, res) => …` — as a TSGI app.
 *
 * How: node:http itself makes the request and response objects. Each adapter owns a
 * `http.Server` that never listens; a request is written as HTTP/1.1 bytes into an in-memory
 * Duplex handed to that server with `server.emit('connection', duplex)` (the documented way to
 * inject a connection: "any Duplex stream can be passed"). node's own parser builds the
 * `IncomingMessage` and `ServerResponse`, with every behaviour of a real node:http request
 * (header folding, `rawHeaders`, body streaming, 100-continue, HEAD, keep-alive,
 * `res.on('close')`), and frameworks that swap prototypes (Express) or read private state get
 * what they get from node:http. Nothing of node is patched. The bytes node writes back are
 * parsed here (status line, headers, Content-Length / chunked / close-delimited body) and
 * leave through the gateway: startResponse with the headers, the body as an async iterable
 * whose next chunk is pulled only when the peer is ready — node's `res.write()` returns false
 * and `'drain'` follows, as on a socket.
 *
 * The in-memory connections are kept alive between requests and reused for the same client
 * connection (same REMOTE_ADDR, REMOTE_PORT and scheme), so `req.socket` behaves as on
 * node:http: one socket per client connection, with `remoteAddress`/`remotePort` from
 * REMOTE_ADDR/REMOTE_PORT, `localAddress`/`localPort` from SERVER_ADDR/SERVER_PORT, and
 * `encrypted: true` when the request came over HTTPS (so Express's `req.protocol`/`req.secure`,
 * Koa's `ctx.protocol` and Fastify's `request.protocol` say "https").
 *
 * Request: method; `req.url` is REQUEST_URI below the app's mount point (SCRIPT_NAME; see
 * requestTarget in ./common.ts), raw bytes outside 0x21–0x7E percent-encoded, as node's parser
 * refuses them; headers rebuilt from HTTP_* / CONTENT_* (see ./common.ts for the name
 * mapping) except Connection and Keep-Alive, which belong to the client's connection to the
 * front server (a proxy drops them too); `req.httpVersion` from SERVER_PROTOCOL. The body
 * comes from tsgi.input with backpressure: Content-Length when CONTENT_LENGTH is given,
 * chunked when the request carried Transfer-Encoding and no length, else none.
 *
 * Response: node's framing headers (Connection, Keep-Alive, Transfer-Encoding) belong to the
 * in-memory hop and are removed; interim 1xx responses (writeContinue, writeEarlyHints) cannot
 * pass through a gateway and are dropped; trailers are dropped; a body without a Content-Type
 * gets `defaultContentType` (the gateway requires one). `flushHeaders()` is accepted, but the
 * head leaves the gateway with the first body byte (PEP 3333's rule). The client going away
 * (tsgi.signal) destroys the in-memory socket: `res` and `req` emit 'close' as on node:http.
 * CONNECT and Upgrade requests are answered 501. A handler that throws (or whose promise
 * rejects) gets a 500 when nothing was sent yet, else a cut response; the error goes to
 * tsgi.errors.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Duplex, type Readable } from 'node:stream';
import type { App, Body, Chunk, Environ, Headers, StartResponse } from '../gateway/types.js';
import {
  DEFAULT_CONTENT_TYPE,
  logError,
  notImplemented,
  requestHeaders,
  requestTarget,
  unsupportedRequest,
} from './common.js';

/** A node:http request listener. */
export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => unknown;

export interface NodeAdapterOptions {
  /**
   * Content-Type for a response that has a body but sets none (default
   * "application/octet-stream", the type RFC 9110 §8.3 tells a recipient to assume). The
   * gateway refuses a body without a Content-Type, so one is always added.
   */
  defaultContentType?: string;
  /** The largest request head node's parser accepts, in bytes (default 1 MiB: the front server limits it). */
  maxHeaderSize?: number;
  /** In-memory connections kept idle for reuse (default 1024). */
  maxIdleConnections?: number;
  /** Milliseconds an idle in-memory connection is kept (default 60000). */
  idleTimeout?: number;
}

/* Response parser phases. */
const HEAD = 0;
const LENGTH = 1;
const CHUNK_SIZE = 2;
const CHUNK_DATA = 3;
const CHUNK_DATA_END = 4;
const TRAILERS = 5;
const UNTIL_CLOSE = 6;
const DONE = 7;

const CRLFCRLF = Buffer.from('\r\n\r\n', 'latin1');
const CRLF = Buffer.from('\r\n', 'latin1');
const LAST_CHUNK = Buffer.from('0\r\n\r\n', 'latin1');
const MAX_HEAD = 1024 * 1024;
const MAX_LINE = 8 * 1024;
const HANDLER_ERROR_BODY = 'Internal Server Error\n';
const VERSION = /^HTTP\/(\d+)(?:\.(\d+))?$/;
const DIGITS = /^[0-9]{1,15}$/;

function errorText(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return String(err);
}

const DONE_RESULT: IteratorResult<Chunk> = { done: true, value: undefined };

/**
 * One request on an in-memory connection: feeds the request to node, parses node's response
 * and is the response body the gateway iterates.
 */
class Exchange implements AsyncIterator<Chunk> {
  private phase = HEAD;
  private partial: Buffer | null = null;
  private remaining = 0;
  private line = '';
  /** node did not say Connection: close. */
  private keepAlive = true;
  private status = '';
  private headers: Headers = [];
  /** Body chunks parsed and not yet taken by the gateway. */
  private queue: Buffer[] = [];
  /** node's write callback, held while the gateway has not taken what that write carried. */
  private held: (() => void) | null = null;
  private waiter: {
    resolve: (r: IteratorResult<Chunk>) => void;
    reject: (e: unknown) => void;
  } | null = null;
  private delivered = false;
  private handedOver = false;
  /** The whole response went to the gateway as an array. */
  private arrayBody = false;
  private complete = false;
  private failure: Error | null = null;
  private finished = false;
  private aborted = false;
  /** The request body was forwarded to its end (or there was none). */
  bodyDone = true;
  chunkedInput = false;
  input: Readable | null = null;
  private inputListeners: { ended: () => void; closed: () => void } | null = null;
  /** tsgi.signal, listened to (by onAbort) until the exchange is over. */
  private signal: AbortSignal | null = null;
  private onAbort: (() => void) | null = null;
  /** What the gateway gets, once known (before anyone waits for it). */
  private outcome: { body: Body } | { error: unknown } | null = null;
  /** The gateway's wait, made only when the answer was not there at once. */
  private pending: { resolve: (b: Body) => void; reject: (e: unknown) => void } | null = null;

  constructor(
    readonly env: Environ,
    private readonly startResponse: StartResponse,
    readonly conn: Connection,
    private readonly adapter: Adapter,
    private readonly isHead: boolean,
  ) {}

  /**
   * The body for the gateway: itself when node answered while the request was pushed (most
   * handlers do: node writes a response ended in the same tick at once), else a promise.
   */
  result(): Body | Promise<Body> {
    const o = this.outcome;
    if (o !== null) {
      if ('body' in o) return o.body;
      return Promise.reject(o.error);
    }
    return new Promise<Body>((resolve, reject) => {
      this.pending = { resolve, reject };
    });
  }

  private resolveBody(body: Body): void {
    const p = this.pending;
    if (p !== null) p.resolve(body);
    else this.outcome = { body };
  }

  private rejectBody(error: unknown): void {
    const p = this.pending;
    if (p !== null) p.reject(error);
    else this.outcome = { error };
  }

  [Symbol.asyncIterator](): AsyncIterator<Chunk> {
    return this;
  }

  /* ---- node → here: the response bytes ---- */

  /** Bytes node wrote; `cb` is node's write callback. */
  written(chunks: Buffer[], cb: (err?: Error | null) => void): void {
    this.delivered = false;
    try {
      for (const c of chunks) if (c.length !== 0) this.feed(c);
    } catch (err) {
      cb();
      this.fail(err as Error);
      return;
    }
    if (this.phase !== HEAD && !this.handedOver) this.handOver();
    if (this.delivered && !this.arrayBody && !this.finished) {
      this.held = cb;
    } else {
      cb();
    }
    if (this.complete && this.held === null) this.finish();
  }

  /** node ended its side of the connection. */
  ended(): void {
    if (this.phase === UNTIL_CLOSE) {
      this.phase = DONE;
      this.markComplete();
      if (!this.handedOver) this.handOver();
      if (this.held === null) this.finish();
    } else if (!this.complete) {
      this.fail(new Error('the node handler ended the connection in the middle of the response'));
    }
  }

  /** The in-memory connection was destroyed (by the app, by the client leaving, by an error). */
  closed(err: Error | null): void {
    if (this.complete) {
      this.finish();
      return;
    }
    this.fail(
      err ?? new Error('the node handler closed the connection before the response was complete'),
    );
  }

  /** node's `res` emitted 'finish': everything was written. */
  resFinished(): void {
    if (this.complete || this.phase === UNTIL_CLOSE || this.phase === HEAD) return;
    if (this.phase === LENGTH) {
      this.fail(
        new Error(
          `the node handler ended the response ${this.remaining} bytes short of its Content-Length`,
        ),
      );
    }
  }

  private feed(b: Buffer): void {
    let i = 0;
    while (i < b.length) {
      switch (this.phase) {
        case HEAD: {
          let data = b;
          let from = i;
          if (this.partial !== null) {
            data = Buffer.concat([this.partial, b.subarray(i)]);
            from = 0;
            this.partial = null;
          }
          const end = data.indexOf(CRLFCRLF, from);
          if (end === -1) {
            if (data.length - from > MAX_HEAD) throw new Error('the response head is too large');
            this.partial = Buffer.from(data.subarray(from));
            return;
          }
          this.parseHead(data.toString('latin1', from, end));
          b = data;
          i = end + 4;
          break;
        }
        case LENGTH:
        case CHUNK_DATA: {
          const n = Math.min(this.remaining, b.length - i);
          this.deliver(b.subarray(i, i + n));
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) {
            if (this.phase === LENGTH) {
              this.phase = DONE;
              this.markComplete();
            } else {
              this.phase = CHUNK_DATA_END;
              this.remaining = 2;
            }
          }
          break;
        }
        case CHUNK_DATA_END: {
          const n = Math.min(this.remaining, b.length - i);
          i += n;
          this.remaining -= n;
          if (this.remaining === 0) this.phase = CHUNK_SIZE;
          break;
        }
        case CHUNK_SIZE:
        case TRAILERS: {
          const lf = b.indexOf(10, i);
          const stop = lf === -1 ? b.length : lf;
          this.line += b.toString('latin1', i, stop);
          if (this.line.length > MAX_LINE)
            throw new Error('a chunk-size or trailer line is too long');
          i = stop + 1;
          if (lf === -1) break;
          let line = this.line;
          this.line = '';
          if (line.endsWith('\r')) line = line.slice(0, -1);
          if (this.phase === TRAILERS) {
            if (line === '') {
              this.phase = DONE;
              this.markComplete();
            }
            break;
          }
          const semi = line.indexOf(';');
          const hex = (semi === -1 ? line : line.slice(0, semi)).trim();
          if (!/^[0-9a-fA-F]{1,12}$/.test(hex)) {
            throw new Error(`bad chunk size line ${JSON.stringify(line)} from node`);
          }
          const size = parseInt(hex, 16);
          if (size === 0) this.phase = TRAILERS;
          else {
            this.phase = CHUNK_DATA;
            this.remaining = size;
          }
          break;
        }
        case UNTIL_CLOSE:
          this.deliver(i === 0 ? b : b.subarray(i));
          i = b.length;
          break;
        default:
          /* DONE: node wrote more than the response framing allows (e.g. more bytes than its
           * Content-Length): drop them, and the connection with them. */
          if (this.keepAlive) {
            logError(
              this.env,
              `tsgi: the node handler wrote ${b.length - i} bytes after the end of its response ` +
                '(more than its Content-Length?); they were dropped',
            );
          }
          this.keepAlive = false;
          i = b.length;
      }
    }
  }

  private parseHead(text: string): void {
    const eol = text.indexOf('\r\n');
    const statusLine = eol === -1 ? text : text.slice(0, eol);
    const code = Number(statusLine.slice(9, 12));
    if (!(code >= 100 && code <= 999) || !statusLine.startsWith('HTTP/')) {
      throw new Error(`bad status line ${JSON.stringify(statusLine)} from node`);
    }
    if (code < 200) {
      if (code === 101)
        throw new Error('the node handler switched protocols (101), which a gateway cannot carry');
      return; /* interim response: dropped, the final one follows */
    }
    const headers: Headers = [];
    let chunked = false;
    let length = -1;
    let hasType = false;
    let pos = eol === -1 ? text.length : eol + 2;
    while (pos < text.length) {
      let next = text.indexOf('\r\n', pos);
      if (next === -1) next = text.length;
      const colon = text.indexOf(':', pos);
      if (colon !== -1 && colon < next) {
        const name = text.slice(pos, colon);
        let v = colon + 1;
        while (v < next && (text.charCodeAt(v) === 32 || text.charCodeAt(v) === 9)) v++;
        const value = text.slice(v, next);
        switch (name.length) {
          case 10:
            if (name.toLowerCase() === 'connection') {
              if (value !== 'keep-alive' && /(?:^|,)\s*close\s*(?:,|$)/i.test(value)) {
                this.keepAlive = false;
              }
              break;
            }
            if (name.toLowerCase() === 'keep-alive') break;
            headers.push([name, value]);
            break;
          case 12:
            if (name.toLowerCase() === 'content-type') hasType = true;
            headers.push([name, value]);
            break;
          case 14:
            if (name.toLowerCase() === 'content-length') length = Number(value);
            headers.push([name, value]);
            break;
          case 17:
            if (name.toLowerCase() === 'transfer-encoding') {
              chunked = /chunked\s*$/i.test(value);
              break;
            }
            headers.push([name, value]);
            break;
          default:
            headers.push([name, value]);
        }
      }
      pos = next + 2;
    }
    const reason = statusLine.slice(13);
    this.status = `${code} ${reason}`;
    if (this.isHead || code === 204 || code === 304) {
      this.phase = DONE;
    } else if (chunked) {
      this.phase = CHUNK_SIZE;
    } else if (length >= 0) {
      this.phase = length === 0 ? DONE : LENGTH;
      this.remaining = length;
    } else {
      this.phase = UNTIL_CLOSE;
      this.keepAlive = false;
    }
    if (!hasType && this.phase !== DONE) {
      headers.push(['Content-Type', this.adapter.defaultContentType]);
    }
    this.headers = headers;
    if (this.phase === DONE) this.markComplete();
  }

  private deliver(b: Buffer): void {
    if (b.length === 0) return;
    this.delivered = true;
    const w = this.waiter;
    if (w !== null && this.queue.length === 0) {
      this.waiter = null;
      w.resolve({ done: false, value: b });
      return;
    }
    this.queue.push(b);
  }

  private markComplete(): void {
    this.complete = true;
    const w = this.waiter;
    if (w !== null && this.queue.length === 0) {
      this.waiter = null;
      w.resolve(DONE_RESULT);
    }
  }

  /** The head is parsed: give the gateway the status, the headers and the body. */
  private handOver(): void {
    try {
      this.startResponse(this.status, this.headers);
    } catch (err) {
      /* e.g. validate() refused a header: the gateway answers 500 */
      this.fail(err as Error);
      return;
    }
    this.handedOver = true;
    if (this.complete) {
      /* the whole response is here: an array body, so the gateway knows its length */
      const body = this.queue;
      this.queue = [];
      this.arrayBody = true;
      this.resolveBody(body);
    } else {
      this.resolveBody(this);
    }
  }

  /* ---- the gateway → here: pulling the body ---- */

  next(): Promise<IteratorResult<Chunk>> {
    if (this.queue.length !== 0) {
      return Promise.resolve({ done: false, value: this.queue.shift()! });
    }
    const cb = this.held;
    if (cb !== null) {
      /* the gateway took everything node's last write carried: let node write again */
      this.held = null;
      cb();
      if (this.queue.length !== 0) {
        return Promise.resolve({ done: false, value: this.queue.shift()! });
      }
    }
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.complete) {
      if (this.held === null) this.finish();
      return Promise.resolve(DONE_RESULT);
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  return(): Promise<IteratorResult<Chunk>> {
    this.close();
    return Promise.resolve(DONE_RESULT);
  }

  /** Body.close(): called by the gateway on every path; before the end it means "client gone". */
  close(): void {
    if (!this.complete) this.abort();
  }

  /* ---- the end ---- */

  /** The client went away (tsgi.signal) or the gateway stopped: destroy the connection. */
  abort(): void {
    if (this.complete || this.aborted) return;
    this.aborted = true;
    this.conn.destroy();
  }

  private fail(err: Error): void {
    if (this.failure !== null || this.complete) return;
    this.failure = err;
    this.keepAlive = false;
    /* settle what the gateway waits on, also after an abort (it then ignores the error) */
    if (!this.handedOver) {
      this.handedOver = true;
      this.rejectBody(err);
    } else {
      const w = this.waiter;
      if (w !== null) {
        this.waiter = null;
        w.reject(err);
      }
    }
    this.finish();
  }

  /** The exchange is over: detach from the input and give the connection back (or drop it). */
  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.onAbort !== null) this.signal!.removeEventListener('abort', this.onAbort);
    this.detachInput();
    this.adapter.release(this.conn, this.keepAlive && this.bodyDone && this.failure === null);
  }

  /** Forwards `input` (tsgi.input) to node as the request body. */
  attachInput(input: Readable, chunked: boolean): void {
    this.input = input;
    this.bodyDone = false;
    this.chunkedInput = chunked;
    const listeners = {
      ended: (): void => {
        if (this.chunkedInput) this.conn.push(LAST_CHUNK);
        this.bodyDone = true;
        this.detachInput();
      },
      closed: (): void => {
        /* closed before its end: the request was aborted or its body ended short */
        if (!this.bodyDone && !this.complete) this.abort();
      },
    };
    this.inputListeners = listeners;
    input.on('readable', this.conn.pump);
    input.on('end', listeners.ended);
    input.on('close', listeners.closed);
  }

  private detachInput(): void {
    const input = this.input;
    const listeners = this.inputListeners;
    if (input === null || listeners === null) return;
    input.off('readable', this.conn.pump);
    input.off('end', listeners.ended);
    input.off('close', listeners.closed);
    this.input = null;
    this.inputListeners = null;
  }

  get isFinished(): boolean {
    return this.finished;
  }

  /** Follows tsgi.signal from now on: the client going away destroys the connection. */
  watch(): void {
    if (this.finished) return;
    const signal = this.env['tsgi.signal'];
    if (signal.aborted) {
      this.abort();
      return;
    }
    this.signal = signal;
    this.onAbort = () => this.abort();
    signal.addEventListener('abort', this.onAbort, { once: true });
  }

  /** Sets req.httpVersion* to SERVER_PROTOCOL's version (the in-memory hop is HTTP/1.1). */
  setVersion(req: IncomingMessage): void {
    const proto = this.env.SERVER_PROTOCOL;
    if (proto === 'HTTP/1.1') return;
    const m = VERSION.exec(proto);
    if (m === null) return;
    const major = Number(m[1]);
    const minor = Number(m[2] ?? 0);
    req.httpVersionMajor = major;
    req.httpVersionMinor = minor;
    req.httpVersion = `${major}.${minor}`;
  }
}

/**
 * The in-memory socket node:http serves: what node writes is the response, what is pushed is
 * the request. Carries the client's addresses for `req.socket`.
 */
class Connection extends Duplex {
  exchange: Exchange | null = null;
  idleSince = 0;
  private wanting = false;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: string | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  /** true for HTTPS requests, as on a TLSSocket; absent otherwise, as on a net.Socket. */
  declare readonly encrypted?: boolean;

  constructor(
    env: Environ,
    readonly key: string,
    private readonly adapter: Adapter,
  ) {
    super({ allowHalfOpen: true });
    const addr = env.REMOTE_ADDR;
    this.remoteAddress = addr;
    const port = env.REMOTE_PORT;
    this.remotePort = typeof port === 'string' && port !== '' ? Number(port) : undefined;
    this.remoteFamily = addr === undefined ? undefined : addr.includes(':') ? 'IPv6' : 'IPv4';
    const local = env.SERVER_ADDR;
    this.localAddress = typeof local === 'string' ? local : undefined;
    this.localPort = env.SERVER_PORT ? Number(env.SERVER_PORT) : undefined;
    if (env['tsgi.url_scheme'] === 'https') {
      Object.defineProperty(this, 'encrypted', { value: true, enumerable: true });
    }
  }

  /** Like net.Socket#address(): the local end. */
  address(): { address: string; family: string; port: number } | Record<string, never> {
    if (this.localAddress === undefined) return {};
    return {
      address: this.localAddress,
      family: this.localAddress.includes(':') ? 'IPv6' : 'IPv4',
      port: this.localPort ?? 0,
    };
  }

  /* net.Socket methods frameworks call; an in-memory socket has nothing to tune. */
  setTimeout(_ms: number, cb?: () => void): this {
    if (cb !== undefined) this.once('timeout', cb);
    return this;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }

  /** Sends the request head; the body (if any) follows from the exchange's input. */
  send(head: Buffer): void {
    this.wanting = this.push(head);
    if (this.exchange?.input != null) this.pump();
  }

  override _read(): void {
    this.wanting = true;
    this.pump();
  }

  /** Moves request body bytes from tsgi.input to node while node wants them. */
  readonly pump = (): void => {
    const ex = this.exchange;
    const input = ex?.input;
    if (input == null) return;
    while (this.wanting) {
      const c = input.read() as Buffer | null;
      if (c === null) return;
      if (ex!.chunkedInput) {
        this.wanting = this.push(
          Buffer.concat([Buffer.from(`${c.length.toString(16)}\r\n`, 'latin1'), c, CRLF]),
        );
      } else {
        this.wanting = this.push(c);
      }
    }
  };

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    const ex = this.exchange;
    if (ex === null) {
      cb();
      return;
    }
    ex.written([chunk], cb);
  }

  override _writev(
    chunks: { chunk: Buffer; encoding: BufferEncoding }[],
    cb: (err?: Error | null) => void,
  ): void {
    const ex = this.exchange;
    if (ex === null) {
      cb();
      return;
    }
    const list: Buffer[] = new Array<Buffer>(chunks.length);
    for (let i = 0; i < chunks.length; i++) list[i] = chunks[i]!.chunk;
    ex.written(list, cb);
  }

  override _final(cb: (err?: Error | null) => void): void {
    cb();
    const ex = this.exchange;
    if (ex !== null) ex.ended();
    else setImmediate(() => this.destroy());
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    const ex = this.exchange;
    this.exchange = null;
    if (ex !== null) ex.closed(err);
    cb(err);
  }
}

const PASS = (): void => {};

/** Where onRequest leaves a response's exchange for onResFinish. */
const EXCHANGE = Symbol('tsgi.exchange');
type ResponseWithExchange = ServerResponse & { [EXCHANGE]?: Exchange };

function onResFinish(this: ServerResponse): void {
  (this as ResponseWithExchange)[EXCHANGE]?.resFinished();
}

function watchSignal(ex: Exchange): void {
  ex.watch();
}

/** The shared state of one fromNodeHandler() app: its server and its idle connections. */
class Adapter {
  readonly server: Server;
  readonly defaultContentType: string;
  private readonly idle = new Map<string, Connection[]>();
  private idleCount = 0;
  private readonly maxIdle: number;
  private readonly idleTimeout: number;
  private sweeper: ReturnType<typeof setInterval> | null = null;

  constructor(
    private readonly handler: NodeHandler,
    options: NodeAdapterOptions,
  ) {
    this.defaultContentType = options.defaultContentType ?? DEFAULT_CONTENT_TYPE;
    this.maxIdle = options.maxIdleConnections ?? 1024;
    this.idleTimeout = options.idleTimeout ?? 60_000;
    const server = createServer({
      maxHeaderSize: options.maxHeaderSize ?? MAX_HEAD,
      requestTimeout: 0,
      headersTimeout: 0,
      keepAliveTimeout: 0,
      requireHostHeader: false,
    } as Parameters<typeof createServer>[0]);
    server.keepAliveTimeout = 0;
    server.maxHeadersCount = 0;
    server.on('request', this.onRequest);
    server.on('clientError', this.onClientError);
    this.server = server;
  }

  /** node made req/res for the request pushed into `req.socket`: run the handler. */
  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    const ex = (req.socket as unknown as Connection).exchange;
    if (ex !== null) {
      ex.setVersion(req);
      (res as ResponseWithExchange)[EXCHANGE] = ex;
      res.on('finish', onResFinish);
    }
    let result: unknown;
    try {
      result = this.handler(req, res);
    } catch (err) {
      this.handlerFailed(err, res, ex);
      return;
    }
    if (
      result !== null &&
      typeof result === 'object' &&
      typeof (result as PromiseLike<unknown>).then === 'function'
    ) {
      (result as PromiseLike<unknown>).then(PASS, (err: unknown) =>
        this.handlerFailed(err, res, ex),
      );
    }
  };

  private handlerFailed(err: unknown, res: ServerResponse, ex: Exchange | null): void {
    if (ex !== null) logError(ex.env, `tsgi: error in the node handler: ${errorText(err)}`);
    else process.stderr.write(`tsgi: error in the node handler: ${errorText(err)}\n`);
    if (res.writableEnded) return;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    for (const name of res.getHeaderNames()) res.removeHeader(name);
    res.statusCode = 500;
    res.setHeader('Content-Type', 'text/plain; charset=us-ascii');
    res.setHeader('Content-Length', String(HANDLER_ERROR_BODY.length));
    res.end(HANDLER_ERROR_BODY);
  }

  /** node's parser refused the request we wrote: a bug here, or a header node cannot take. */
  private readonly onClientError = (err: Error & { code?: string }, socket: Duplex): void => {
    const ex = (socket as Connection).exchange;
    const message = `tsgi: node:http refused the request: ${err.message} (${err.code ?? 'no code'})`;
    if (ex !== null) logError(ex.env, message);
    if (!socket.writable) {
      socket.destroy();
      return;
    }
    const status =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? '431 Request Header Fields Too Large'
        : '400 Bad Request';
    socket.end(
      `HTTP/1.1 ${status}\r\nContent-Type: text/plain; charset=us-ascii\r\n` +
        `Content-Length: ${status.length + 1}\r\nConnection: close\r\n\r\n${status}\n`,
    );
  };

  /** An idle connection for this client connection, or a new one. */
  acquire(env: Environ): Connection {
    const key = `${env.REMOTE_ADDR}|${env.REMOTE_PORT}|${env['tsgi.url_scheme']}|${env.SERVER_ADDR}|${env.SERVER_PORT}`;
    const list = this.idle.get(key);
    if (list !== undefined) {
      while (list.length !== 0) {
        const c = list.pop()!;
        this.idleCount--;
        if (list.length === 0) this.idle.delete(key);
        if (!c.destroyed) return c;
      }
    }
    const conn = new Connection(env, key, this);
    this.server.emit('connection', conn);
    return conn;
  }

  /** The exchange on `conn` is over: keep the connection for the next request, or drop it. */
  release(conn: Connection, reusable: boolean): void {
    if (conn.exchange === null) return;
    conn.exchange = null;
    if (!reusable || conn.destroyed || this.idleCount >= this.maxIdle) {
      setImmediate(() => conn.destroy());
      return;
    }
    conn.idleSince = Date.now();
    let list = this.idle.get(conn.key);
    if (list === undefined) {
      list = [];
      this.idle.set(conn.key, list);
    }
    list.push(conn);
    this.idleCount++;
    if (this.sweeper === null) {
      this.sweeper = setInterval(this.sweep, Math.max(1000, this.idleTimeout / 2));
      this.sweeper.unref();
    }
  }

  private readonly sweep = (): void => {
    const limit = Date.now() - this.idleTimeout;
    for (const [key, list] of this.idle) {
      const keep = list.filter((c) => c.idleSince > limit && !c.destroyed);
      for (const c of list) if (!keep.includes(c)) c.destroy();
      this.idleCount -= list.length - keep.length;
      if (keep.length === 0) this.idle.delete(key);
      else this.idle.set(key, keep);
    }
    if (this.idleCount === 0 && this.sweeper !== null) {
      clearInterval(this.sweeper);
      this.sweeper = null;
    }
  };

  /** Runs one TSGI request. */
  run(env: Environ, startResponse: StartResponse): Body | Promise<Body> {
    const reason = unsupportedRequest(env);
    if (reason !== null) return notImplemented(startResponse, reason);
    const method = env.REQUEST_METHOD;
    let head = `${method} ${requestTarget(env)} HTTP/1.1\r\n`;
    const cl = env.CONTENT_LENGTH;
    const hasLength = typeof cl === 'string' && DIGITS.test(cl);
    const te = env.HTTP_TRANSFER_ENCODING;
    const chunked = !hasLength && typeof te === 'string' && te !== '';
    const raw = requestHeaders(env);
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!;
      if (name.length === 14 && name === 'Content-Length' && !hasLength) continue;
      /* hop-by-hop on the client's connection (a proxy drops them too); the in-memory
       * connection's keep-alive is the adapter's business */
      if ((name.length === 10 && name === 'Connection') || name === 'Keep-Alive') continue;
      if (name.length === 17 && name === 'Transfer-Encoding') {
        if (!chunked) continue;
        const value = raw[i + 1]!;
        head += `Transfer-Encoding: ${/chunked\s*$/i.test(value) ? value : `${value}, chunked`}\r\n`;
        continue;
      }
      head += `${name}: ${raw[i + 1]}\r\n`;
    }
    head += '\r\n';

    const conn = this.acquire(env);
    const ex = new Exchange(env, startResponse, conn, this, method === 'HEAD');
    conn.exchange = ex;
    if ((hasLength && cl !== '0') || chunked) {
      ex.attachInput(env['tsgi.input'], chunked);
    }
    conn.send(Buffer.from(head, 'latin1'));
    /* A handler that answers at once is done by the next tick (node writes the response when
     * it uncorks, on a tick queued before this one): only a slower one needs tsgi.signal,
     * which costs an AbortController per request where the protocol makes it lazily. */
    if (!ex.isFinished) process.nextTick(watchSignal, ex);
    return ex.result();
  }
}

/**
 * A TSGI app that runs a node:http request listener (`(req, res) => …`: an Express app, Koa's
 * `app.callback()`, Fastify's `routing`) with real `IncomingMessage` / `ServerResponse`
 * objects made by node:http. See the module comment for what is carried and what is not.
 */
export function fromNodeHandler(handler: NodeHandler, options: NodeAdapterOptions = {}): App {
  if (typeof handler !== 'function') {
    throw new TypeError('fromNodeHandler() needs a (req, res) request listener function');
  }
  const adapter = new Adapter(handler, options);
  return (env, startResponse) => adapter.run(env, startResponse);
}
