/**
 * fromNodeHandler(handler): runs a node:http request listener — an Express app, Koa's
 * `app.callback()`, Fastify's `routing`, a bare `(req, res) => …` — as a TSGI app.
 *
 * How: the request and response are node's own classes, made directly, as node:http's server
 * makes them once its parser has read a request head (and as light-my-request does):
 * `new IncomingMessage(socket)` filled with method, url, version and the header lines through
 * node's own `_addHeaderLines` (so `req.headers` is built by node's code: set-cookie an array,
 * cookie joined with "; ", duplicates of single-valued headers dropped), and
 * `new ServerResponse(req)` attached (`assignSocket`) to a small socket-like object, the Wire.
 * Nothing is serialised to HTTP and parsed again on the way in. Every behaviour of
 * `res.setHeader`, `writeHead`, `flushHeaders`, `getHeaders`, Express's prototype swap and
 * `instanceof` is node's. On the way out, node builds the response head itself (`res._header`)
 * and writes it to the Wire: the status line and header lines are split from that string and
 * leave through the gateway (startResponse), with the body as an array when the handler ended
 * the response at once (the gateway then adds Content-Length), else as an async iterable
 * whose next chunk is pulled only when the peer is ready. The Wire accepts 16 KiB that the
 * gateway has not taken yet, as a socket's buffer does; past that `res.write()` returns false,
 * and 'drain' follows once the gateway took it all. node's chunked framing (a response without
 * Content-Length) is taken off again here. node's prototypes are never patched; the internal
 * fields of node's classes the adapter reads or writes are all in `NODE` below.
 *
 * Events are node:http's: 'finish', then res 'close', then req 'close' (once its body was
 * read or dumped); when the client goes away (tsgi.signal) before the response finished, req
 * is destroyed with an "aborted" ECONNRESET error (req 'aborted', req 'close') and res emits
 * 'close' with `writableFinished` false.
 *
 * `req.socket` is the Wire, one per client connection (the same for keep-alive requests from
 * one REMOTE_ADDR/REMOTE_PORT): `remoteAddress`/`remotePort` from REMOTE_ADDR/REMOTE_PORT,
 * `localAddress`/`localPort` from SERVER_ADDR/SERVER_PORT, and `encrypted: true` when the
 * request came over HTTPS (so Express's `req.ip`/`req.protocol`/`req.secure`, Koa's
 * `ctx.protocol` and Fastify's `request.protocol` work without trusting a proxy).
 *
 * Request: `req.url` is REQUEST_URI below the app's mount point (SCRIPT_NAME; see
 * requestTarget in ./common.ts), raw bytes outside 0x21–0x7E percent-encoded; headers rebuilt
 * from HTTP_* / CONTENT_* (see ./common.ts for the name mapping) except Connection and
 * Keep-Alive, which belong to the client's connection to the front server; a header value
 * with a control character is refused with 400, as node's parser refuses it;
 * `req.httpVersion` from SERVER_PROTOCOL. The body streams from tsgi.input with
 * backpressure (pushed into `req` while it wants more): up to CONTENT_LENGTH, or to the end
 * of a chunked upload (Transfer-Encoding and no length); none otherwise. `Expect:
 * 100-continue` is the front server's business: the handler is called at once, as node:http
 * does without a 'checkContinue' listener.
 *
 * Response: node's framing headers (Connection, Keep-Alive, Transfer-Encoding) are removed;
 * interim 1xx responses (writeContinue, writeEarlyHints) cannot pass through a gateway and
 * are dropped; trailers are dropped; a body without a Content-Type gets `defaultContentType`
 * (the gateway requires one). `flushHeaders()` is accepted, but the head leaves the gateway
 * with the first body byte (PEP 3333's rule). A response that ends short of its
 * Content-Length is cut; bytes past it are dropped. CONNECT and Upgrade requests are answered
 * 501. A handler that throws (or whose promise rejects) gets a 500 when nothing was sent
 * yet, else a cut response; the error goes to tsgi.errors.
 */
import process from 'node:process';
import { Buffer } from 'node:buffer';
import { EventEmitter } from 'node:events';
import { IncomingMessage, OutgoingMessage, ServerResponse } from 'node:http';
import type { Readable } from 'node:stream';
import type { App, Body, Chunk, Environ, Headers, StartResponse } from '../gateway/types.js';
import { environInput, environSignal } from '../gateway/environ.js';
import {
  DEFAULT_CONTENT_TYPE,
  badRequest,
  logError,
  notImplemented,
  HeaderReader,
  requestTarget,
  unsupportedRequest,
} from './common.js';
import { FIELD_VALUE_BAD as BAD_VALUE } from '../http/grammar.js';

/** A node:http request listener. */
export type NodeHandler = (req: IncomingMessage, res: ServerResponse) => unknown;

export interface NodeAdapterOptions {
  /**
   * Content-Type for a response that has a body but sets none (default
   * "application/octet-stream", the type RFC 9110 §8.3 tells a recipient to assume). The
   * gateway refuses a body without a Content-Type, so one is always added.
   */
  defaultContentType?: string;
  /** Idle per-client-connection sockets (`req.socket`) kept for reuse (default 1024). */
  maxIdleConnections?: number;
}

/* ------------------------------------------------------------------------------------------
 * node internals: every field or method of node's http classes that is not public API and
 * that this adapter reads, writes or calls. Each is what node:http's own server (lib/
 * _http_server.js, _http_common.js) does with it; all exist unchanged in Node 18 to 26.
 * ---------------------------------------------------------------------------------------- */

/** OutgoingMessage's "write() returned false" flag (a module-private symbol of node's). */
const kNeedDrain: symbol | undefined = Object.getOwnPropertySymbols(new OutgoingMessage()).find(
  (s) => s.description === 'kNeedDrain',
);

interface NodeRequest {
  /** Sets rawHeaders and how many lines req.headers is built from (the parser calls it). */
  _addHeaderLines(raw: string[], n: number): void;
  /** The request was read (req.read, 'data', pipe); else node dumps it when res finishes. */
  _consuming: boolean;
  /** Discards the unread request body (resOnFinish calls it). */
  _dump(): void;
  _readableState: { resumeScheduled: boolean };
}

interface NodeResponse {
  /** The head node serialised ("HTTP/1.1 200 OK\r\nName: value\r\n…\r\n"), once made. */
  _header: string | null;
  /** The head was handed to the socket; false while only interim 1xx lines were written. */
  _headerSent: boolean;
  /** node frames the body as chunked (no Content-Length). */
  chunkedEncoding: boolean;
  /** Backs `res.closed` (emitCloseNT sets it with `destroyed`). */
  _closed: boolean;
  destroyed: boolean;
  /** What node:http's socketOnDrain clears before emitting 'drain'. */
  [key: symbol]: unknown;
}

/**
 * The node internals this adapter needs that the running Node does not have (empty when all
 * are there): the Node version matrix's first check, and fromNodeHandler()'s refusal.
 */
export function missingNodeInternals(): string[] {
  const missing: string[] = [];
  const inProto = IncomingMessage.prototype as unknown as Record<string, unknown>;
  const outProto = ServerResponse.prototype as unknown as Record<string, unknown>;
  if (typeof inProto._addHeaderLines !== 'function')
    missing.push('IncomingMessage#_addHeaderLines');
  if (typeof inProto._dump !== 'function') missing.push('IncomingMessage#_dump');
  if (typeof outProto.assignSocket !== 'function') missing.push('ServerResponse#assignSocket');
  if (typeof outProto.detachSocket !== 'function') missing.push('ServerResponse#detachSocket');
  if (kNeedDrain === undefined) missing.push('OutgoingMessage[kNeedDrain]');
  const out = new OutgoingMessage() as unknown as Record<string, unknown>;
  for (const field of ['_header', '_headerSent', 'chunkedEncoding', '_closed']) {
    if (!(field in out)) missing.push(`OutgoingMessage#${field}`);
  }
  return missing;
}

const asReq = (req: IncomingMessage): NodeRequest => req as unknown as NodeRequest;
const asRes = (res: ServerResponse): NodeResponse => res as unknown as NodeResponse;

/** node:http's emitCloseNT: res 'close', once. */
function emitResClose(res: ServerResponse): void {
  const r = asRes(res);
  if (!r._closed) {
    r.destroyed = true;
    r._closed = true;
    res.emit('close');
  }
}

/* ---------------------------------------------------------------------------------------- */

const HIGH_WATER_MARK = 16 * 1024;
/** Request headers of the client's connection to the front server, not of the request. */
const CLIENT_CONNECTION_HEADERS: ReadonlySet<string> = new Set(['Connection', 'Keep-Alive']);
const HANDLER_ERROR_BODY = 'Internal Server Error\n';
const VERSION = /^HTTP\/(\d+)(?:\.(\d+))?$/;
const DIGITS = /^[0-9]{1,15}$/;
const MAX_CHUNK_LINE = 8 * 1024;

/* Chunked-framing decoder phases (a response without Content-Length). */
const CH_SIZE = 0;
const CH_DATA = 1;
const CH_DATA_END = 2;
const CH_TRAILERS = 3;
const CH_DONE = 4;

function errorText(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return String(err);
}

type WriteCallback = (err?: Error | null) => void;
/** An exchange's listeners on tsgi.input. */
interface InputListeners {
  readable: () => void;
  end: () => void;
  close: () => void;
}
const DONE_RESULT: IteratorResult<Chunk> = { done: true, value: undefined };

/** The head Exchange#takeHead() split last, and what it found in it. */
let lastHead: {
  text: string;
  status: string;
  headers: [string, string][];
  hasType: boolean;
  length: number;
} = { text: '', status: '', headers: [], hasType: false, length: -1 };

function callAll(cbs: WriteCallback[]): void {
  for (const cb of cbs) cb();
}

/**
 * One request: its req/res, the response head and body on their way to the gateway, and the
 * request body on its way from tsgi.input. Is the response body the gateway iterates.
 */
class Exchange implements AsyncIterator<Chunk> {
  req!: IncomingMessage;
  res!: ServerResponse;
  /** The head was seen (status and headers known). */
  private headSeen = false;
  private status = '';
  private headers: Headers = [];
  private hasType = false;
  /** Content-Length node sent, or -1. */
  private length = -1;
  /** Body bytes seen. */
  private bytes = 0;
  /** node frames this body as chunked: the framing is decoded here. */
  private chunked = false;
  private chPhase = CH_SIZE;
  private chRemaining = 0;
  private chLine = '';
  /** Body bytes written by node, not taken by the gateway yet. */
  private queue: Buffer[] = [];
  private queued = 0;
  /** Write callbacks of what is queued (called once the gateway took it). */
  private callbacks: WriteCallback[] = [];
  private waiter: {
    resolve: (r: IteratorResult<Chunk>) => void;
    reject: (e: unknown) => void;
  } | null = null;
  /** The body went to the gateway (as an array or as this iterator). */
  private handedOver = false;
  private handOverQueued = false;
  /** The handler is running (hand-over happens when it returns). */
  inHandler = true;
  private failure: Error | null = null;
  private finished = false;
  private outcome: { body: Body } | { error: unknown } | null = null;
  private pending: { resolve: (b: Body) => void; reject: (e: unknown) => void } | null = null;
  /* request body */
  private input: Readable | null = null;
  private inputPaused = false;
  private listeners: InputListeners | null = null;
  private signal: AbortSignal | null = null;
  private onAbort: (() => void) | null = null;

  /** Writes a line on tsgi.errors. */
  log(text: string): void {
    logError(this.env, text);
  }

  constructor(
    readonly env: Environ,
    private readonly startResponse: StartResponse,
    readonly wire: Wire,
    private readonly adapter: Adapter,
  ) {}

  /** The body for the gateway: at once when known, else a promise. */
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

  /* ---- node → gateway ---- */

  /** A write node made on the Wire. Returns what a socket's write() returns. */
  write(
    data: string | Uint8Array,
    encoding: BufferEncoding | null,
    cb: WriteCallback | null,
  ): boolean {
    if (this.failure !== null || this.finished) {
      if (cb !== null) process.nextTick(cb);
      return false;
    }
    let body: Buffer | null = null;
    if (!this.headSeen) {
      const res = asRes(this.res);
      const head = res._header;
      if (!res._headerSent || head === null) {
        /* an interim response (writeContinue, writeEarlyHints), written raw: dropped */
        if (cb !== null) process.nextTick(cb);
        return true;
      }
      this.takeHead(head);
      if (typeof data === 'string') {
        if (data.length > head.length)
          body = Buffer.from(data.slice(head.length), encoding ?? 'utf8');
      } else if (data.length !== 0) {
        body =
          data instanceof Buffer ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
      }
      if (!this.inHandler && !this.handOverQueued) {
        this.handOverQueued = true;
        process.nextTick(handOverLater, this);
      }
    } else if (typeof data === 'string') {
      if (data.length !== 0) body = Buffer.from(data, encoding ?? 'utf8');
    } else if (data.length !== 0) {
      body = data instanceof Buffer ? data : Buffer.from(data.buffer, data.byteOffset, data.length);
    }
    if (body !== null) {
      if (this.chunked) this.unchunk(body);
      else this.deliver(body);
    }
    /* a socket calls back once its buffer took the bytes: at once below its high-water mark
     * (as the kernel takes a small write), else once the gateway took them */
    const below = this.queued < HIGH_WATER_MARK;
    if (cb !== null) {
      if (below && this.callbacks.length === 0) process.nextTick(cb);
      else this.callbacks.push(cb);
    }
    return below;
  }

  /**
   * Status and headers from the head node serialised. A head equal to the one split last
   * (a server's responses mostly repeat the one before, Date changing once a second) is not
   * split again: its pairs are copied (a middleware may change the pairs it is given).
   */
  private takeHead(text: string): void {
    this.headSeen = true;
    const last = lastHead;
    if (last.text === text) {
      this.status = last.status;
      const headers = this.headers;
      for (const [name, value] of last.headers) headers.push([name, value]);
      this.hasType = last.hasType;
      this.length = last.length;
    } else {
      this.splitHead(text);
      lastHead = {
        text,
        status: this.status,
        headers: this.headers.map(([name, value]): [string, string] => [name, value]),
        hasType: this.hasType,
        length: this.length,
      };
    }
    this.chunked = asRes(this.res).chunkedEncoding;
    if (this.chunked) this.length = -1;
  }

  /** Splits node's head into status, headers, Content-Type seen and Content-Length. */
  private splitHead(text: string): void {
    let eol = text.indexOf('\r\n');
    this.status = text.slice(9, eol);
    const headers = this.headers;
    let pos = eol + 2;
    const end = text.length - 2;
    while (pos < end) {
      eol = text.indexOf('\r\n', pos);
      const colon = text.indexOf(': ', pos);
      const name = text.slice(pos, colon);
      const value = text.slice(colon + 2, eol);
      pos = eol + 2;
      /* the candidates by length and first letter; toLowerCase() (a new string) only then */
      const first = name.charCodeAt(0) | 0x20;
      switch (name.length) {
        case 10:
          if (
            first === 0x63 /* c */ &&
            (name === 'Connection' || name.toLowerCase() === 'connection')
          )
            continue;
          if (first === 0x6b && (name === 'Keep-Alive' || name.toLowerCase() === 'keep-alive'))
            continue;
          break;
        case 12:
          if (first === 0x63 && (name === 'Content-Type' || name.toLowerCase() === 'content-type'))
            this.hasType = true;
          break;
        case 14:
          if (
            first === 0x63 &&
            (name === 'Content-Length' || name.toLowerCase() === 'content-length')
          )
            this.length = DIGITS.test(value) ? Number(value) : -1;
          break;
        case 17:
          if (
            first === 0x74 /* t */ &&
            (name === 'Transfer-Encoding' || name.toLowerCase() === 'transfer-encoding')
          )
            continue;
          break;
      }
      headers.push([name, value]);
    }
  }

  /** Body bytes (unframed) for the gateway. */
  private deliver(b: Buffer): void {
    if (this.length >= 0) {
      const room = this.length - this.bytes;
      if (b.length > room) {
        logError(
          this.env,
          `tsgi: the node handler wrote ${b.length - room} bytes past its Content-Length; ` +
            'they were dropped',
        );
        if (room <= 0) return;
        b = b.subarray(0, room);
      }
    }
    this.bytes += b.length;
    const w = this.waiter;
    if (w !== null && this.queued === 0) {
      this.waiter = null;
      w.resolve({ done: false, value: b });
      return;
    }
    this.queue.push(b);
    this.queued += b.length;
  }

  /** Takes node's chunked framing off `b`. */
  private unchunk(b: Buffer): void {
    let i = 0;
    while (i < b.length) {
      switch (this.chPhase) {
        case CH_DATA: {
          const n = Math.min(this.chRemaining, b.length - i);
          this.deliver(i === 0 && n === b.length ? b : b.subarray(i, i + n));
          i += n;
          this.chRemaining -= n;
          if (this.chRemaining === 0) {
            this.chPhase = CH_DATA_END;
            this.chRemaining = 2;
          }
          break;
        }
        case CH_DATA_END: {
          const n = Math.min(this.chRemaining, b.length - i);
          i += n;
          this.chRemaining -= n;
          if (this.chRemaining === 0) this.chPhase = CH_SIZE;
          break;
        }
        case CH_SIZE:
        case CH_TRAILERS: {
          const lf = b.indexOf(10, i);
          const stop = lf === -1 ? b.length : lf;
          this.chLine += b.toString('latin1', i, stop);
          if (this.chLine.length > MAX_CHUNK_LINE)
            throw new Error('a chunk line from node is too long');
          i = stop + 1;
          if (lf === -1) break;
          let line = this.chLine;
          this.chLine = '';
          if (line.endsWith('\r')) line = line.slice(0, -1);
          if (this.chPhase === CH_TRAILERS) {
            if (line === '') this.chPhase = CH_DONE;
            break;
          }
          const semi = line.indexOf(';');
          const size = parseInt(semi === -1 ? line : line.slice(0, semi), 16);
          if (!(size >= 0))
            throw new Error(`bad chunk size line ${JSON.stringify(line)} from node`);
          if (size === 0) this.chPhase = CH_TRAILERS;
          else {
            this.chPhase = CH_DATA;
            this.chRemaining = size;
          }
          break;
        }
        default:
          i = b.length; /* after the last chunk: nothing node writes belongs to the body */
      }
    }
  }

  get queuedBytes(): number {
    return this.queued;
  }

  /** The response is complete: node ended it and every byte was written. */
  private get complete(): boolean {
    return this.res.writableEnded && this.failure === null;
  }

  /** Why a complete response is not what it said it is, or null. */
  private shortfall(): Error | null {
    if (this.length >= 0 && this.bytes < this.length && this.mayHaveBody()) {
      return new Error(
        `the node handler ended the response ${this.length - this.bytes} bytes short of its ` +
          'Content-Length',
      );
    }
    return null;
  }

  /** The head and body go to the gateway: an array when complete, else this iterator. */
  handOver(): void {
    if (this.handedOver) return;
    if (this.failure !== null) {
      this.handedOver = true;
      this.rejectBody(this.failure);
      return;
    }
    if (!this.headSeen) return;
    this.handedOver = true;
    const complete = this.complete;
    if (!this.hasType && (complete ? this.queued !== 0 : this.mayHaveBody())) {
      this.headers.push(['Content-Type', this.adapter.defaultContentType]);
    }
    let error = complete ? this.shortfall() : null;
    if (error === null) {
      try {
        this.startResponse(this.status, this.headers);
      } catch (err) {
        error = err as Error;
      }
    }
    if (error !== null) {
      this.failure = error;
      this.rejectBody(error);
      return;
    }
    if (complete) {
      const body = this.queue;
      this.queue = [];
      this.queued = 0;
      const cbs = this.callbacks;
      if (cbs.length !== 0) {
        this.callbacks = [];
        process.nextTick(callAll, cbs);
      }
      this.resolveBody(body);
    } else {
      this.resolveBody(this);
    }
  }

  private mayHaveBody(): boolean {
    if (this.env.REQUEST_METHOD === 'HEAD') return false;
    const code = Number(this.status.slice(0, 3));
    return code !== 204 && code !== 304;
  }

  next(): Promise<IteratorResult<Chunk>> {
    if (this.queued !== 0) {
      const q = this.queue;
      const value = q.length === 1 ? q[0]! : Buffer.concat(q, this.queued);
      this.queue = [];
      this.queued = 0;
      process.nextTick(tookAll, this);
      return Promise.resolve({ done: false, value });
    }
    if (this.failure !== null) return Promise.reject(this.failure);
    if (this.complete) {
      const short = this.shortfall();
      if (short !== null) {
        this.fail(short);
        return Promise.reject(short);
      }
      return Promise.resolve(DONE_RESULT);
    }
    return new Promise((resolve, reject) => {
      this.waiter = { resolve, reject };
    });
  }

  /** The gateway took everything queued: node's callbacks run, and 'drain' as a socket's. */
  tookAll(): void {
    if (this.queued !== 0) return;
    const cbs = this.callbacks;
    if (cbs.length !== 0) {
      this.callbacks = [];
      callAll(cbs);
    }
    const res = this.res;
    if (kNeedDrain !== undefined) {
      const r = asRes(res);
      if (!res.writableEnded && r[kNeedDrain] === true) {
        r[kNeedDrain] = false;
        res.emit('drain');
      }
    } else if (res.writableNeedDrain) {
      res.emit('drain');
    }
  }

  /** res emitted 'finish': wake a gateway waiting for the end. */
  resFinished(): void {
    const w = this.waiter;
    if (w === null || this.queued !== 0) return;
    this.waiter = null;
    const short = this.shortfall();
    if (short !== null) {
      this.fail(short);
      w.reject(short);
      return;
    }
    w.resolve(DONE_RESULT);
  }

  return(): Promise<IteratorResult<Chunk>> {
    return Promise.resolve(DONE_RESULT);
  }

  /** The response cannot complete: the gateway gets the error (a 500, or a cut response). */
  fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    if (!this.handedOver) {
      /* while the handler runs, handOver() follows its return */
      if (!this.inHandler) {
        this.handedOver = true;
        this.rejectBody(err);
      }
    } else {
      const w = this.waiter;
      if (w !== null) {
        this.waiter = null;
        w.reject(err);
      }
    }
    this.queue = [];
    this.queued = 0;
  }

  /** The Wire was destroyed (by the app, by the client leaving). */
  closed(err: Error | null): void {
    if (!this.complete) {
      this.fail(
        err ?? new Error('the node handler closed the connection before the response was complete'),
      );
    }
    const req = this.req;
    if (!this.res.writableFinished && !req.destroyed) {
      /* node:http's abortIncoming */
      req.destroy(Object.assign(new Error('aborted'), { code: 'ECONNRESET' }));
    }
    this.over();
  }

  /** The exchange is over: stop following tsgi.input and tsgi.signal. */
  over(): void {
    if (this.finished) return;
    this.finished = true;
    if (this.onAbort !== null) this.signal!.removeEventListener('abort', this.onAbort);
    this.detachInput();
  }

  /* ---- tsgi.input → req ---- */

  /** Streams `input` into req as its body. */
  attachInput(input: Readable): void {
    this.input = input;
    /* the listeners are made here: most requests have no body */
    const listeners: InputListeners = {
      readable: () => {
        if (!this.inputPaused) this.pump();
      },
      end: () => this.inputEnded(),
      close: () => this.inputClosed(),
    };
    this.listeners = listeners;
    input.on('readable', listeners.readable);
    input.on('end', listeners.end);
    input.on('close', listeners.close);
  }

  private detachInput(): void {
    const input = this.input;
    if (input === null) return;
    this.input = null;
    const listeners = this.listeners!;
    this.listeners = null;
    input.off('readable', listeners.readable);
    input.off('end', listeners.end);
    input.off('close', listeners.close);
  }

  /** Moves body bytes from tsgi.input into req while req wants them. */
  private pump(): void {
    const input = this.input;
    if (input === null) return;
    const req = this.req;
    for (;;) {
      const c = input.read() as Buffer | null;
      if (c === null) return;
      if (!req.push(c)) {
        this.inputPaused = true;
        return;
      }
    }
  }

  /** req wants more (its _read called the Wire's resume()). */
  resume(): void {
    if (!this.inputPaused) return;
    this.inputPaused = false;
    this.pump();
  }

  private inputEnded(): void {
    this.detachInput();
    this.req.complete = true;
    this.req.push(null);
  }

  private inputClosed(): void {
    /* closed before its end: the request was aborted or its body ended short */
    if (this.input !== null && !this.req.complete) this.wire.destroy();
  }

  /** Follows tsgi.signal from now on: the client going away destroys the Wire. */
  watch(): void {
    if (this.finished || this.res.writableFinished) return;
    const signal = environSignal(this.env);
    if (signal.aborted) {
      this.wire.destroy();
      return;
    }
    this.signal = signal;
    this.onAbort = () => this.wire.destroy();
    signal.addEventListener('abort', this.onAbort, { once: true });
  }
}

function handOverLater(ex: Exchange): void {
  ex.handOver();
}

function tookAll(ex: Exchange): void {
  ex.tookAll();
}

/** Exchanges to follow tsgi.signal for, at the next check phase: one setImmediate for all. */
let toWatch: Exchange[] = [];

function watchLater(ex: Exchange): void {
  if (toWatch.push(ex) === 1) setImmediate(watchAll);
}

function watchAll(): void {
  const list = toWatch;
  toWatch = [];
  for (const ex of list) ex.watch();
}

/**
 * node:http's resOnFinish, for a response on a Wire. The exchange is found through `res.req`'s
 * socket (the Wire): a property of res's own would cost a map transition per response.
 */
function onResFinish(this: ServerResponse): void {
  const wire = this.req.socket;
  if (!(wire instanceof Wire)) return;
  const ex = wire.exchange;
  if (ex === null || ex.res !== this) return;
  const req = asReq(ex.req);
  if (!req._consuming && !req._readableState.resumeScheduled) req._dump();
  if (wire._httpMessage === this) this.detachSocket(wire as never);
  process.nextTick(emitResClose, this);
  ex.resFinished();
  ex.over();
  wire.exchange = null;
  if (!wire.destroyed) wire.adapter.release(wire);
}

/**
 * The socket node's req and res see (`req.socket`, `res.socket`): carries the client's
 * addresses, takes what node writes to the current exchange, and lets req pull its body.
 */
class Wire extends EventEmitter {
  /** The exchange node writes to now; null once it finished or the Wire was destroyed. */
  exchange: Exchange | null = null;
  /** The response attached to this socket (ServerResponse#assignSocket sets it). */
  _httpMessage: ServerResponse | null = null;
  /** What OutgoingMessage#end() resets; `writableCorked` reads it. */
  readonly _writableState = { corked: 0 };
  readable = true;
  writable = true;
  destroyed = false;
  /** node's readStart() resumes a socket that is not `_paused`. */
  readonly _paused = false;
  readonly writableHighWaterMark = HIGH_WATER_MARK;
  readonly readableHighWaterMark = HIGH_WATER_MARK;
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: string | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  private readonly serverPort: string;
  /** true for HTTPS requests, as on a TLSSocket; absent otherwise, as on a net.Socket. */
  declare readonly encrypted?: boolean;

  constructor(
    env: Environ,
    readonly key: string,
    readonly adapter: Adapter,
  ) {
    super();
    const addr = env.REMOTE_ADDR;
    this.remoteAddress = addr;
    const port = env.REMOTE_PORT;
    this.remotePort = typeof port === 'string' && port !== '' ? Number(port) : undefined;
    this.remoteFamily = addr === undefined ? undefined : addr.includes(':') ? 'IPv6' : 'IPv4';
    const local = env.SERVER_ADDR;
    this.localAddress = typeof local === 'string' ? local : undefined;
    this.serverPort = env.SERVER_PORT;
    this.localPort = env.SERVER_PORT ? Number(env.SERVER_PORT) : undefined;
    if (env['tsgi.url_scheme'] === 'https') {
      Object.defineProperty(this, 'encrypted', { value: true, enumerable: true });
    }
  }

  /** Whether a request with this environ came over this Wire's client connection. */
  serves(env: Environ): boolean {
    return (
      env.REMOTE_ADDR === this.remoteAddress &&
      env.SERVER_PORT === this.serverPort &&
      env.SERVER_ADDR === this.localAddress &&
      (env['tsgi.url_scheme'] === 'https') === (this.encrypted === true)
    );
  }

  get writableCorked(): number {
    return this._writableState.corked;
  }

  /** Bytes written and not taken by the gateway yet (node adds it to res.writableLength). */
  get writableLength(): number {
    return this.exchange?.queuedBytes ?? 0;
  }

  get connecting(): boolean {
    return false;
  }

  cork(): void {
    this._writableState.corked++;
  }

  uncork(): void {
    if (this._writableState.corked > 0) this._writableState.corked--;
  }

  write(
    data: string | Uint8Array,
    encoding?: BufferEncoding | WriteCallback | null,
    cb?: WriteCallback,
  ): boolean {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = null;
    }
    const ex = this.exchange;
    if (ex === null || this.destroyed) {
      if (cb !== undefined) process.nextTick(cb);
      return false;
    }
    try {
      return ex.write(data, encoding ?? null, cb ?? null);
    } catch (err) {
      ex.fail(err as Error);
      if (cb !== undefined) process.nextTick(cb);
      return false;
    }
  }

  /** Like a socket's end(): what the app wrote so far is the response, the socket closes. */
  end(data?: unknown, encoding?: unknown, cb?: unknown): this {
    if (typeof data === 'string' || data instanceof Uint8Array) {
      this.write(data, encoding as BufferEncoding | null, cb as WriteCallback | undefined);
    }
    this.destroy();
    return this;
  }

  destroySoon(): void {
    this.end();
  }

  destroy(err?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.readable = false;
    this.writable = false;
    this.adapter.forget(this);
    const ex = this.exchange;
    this.exchange = null;
    if (ex !== null) ex.closed(err ?? null);
    process.nextTick(emitWireClose, this, err !== undefined);
    return this;
  }

  /** req's _read() resumes its socket: more of the request body. */
  resume(): this {
    this.exchange?.resume();
    return this;
  }

  pause(): this {
    return this;
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

  /* net.Socket methods frameworks call; there is nothing to tune here. */
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
}

function emitWireClose(wire: Wire, hadError: boolean): void {
  wire.emit('close', hadError);
}

const PASS = (): void => {};

/** Where a handler's error is written. */
export interface ErrorLog {
  log(text: string): void;
}

/**
 * What happens when a node handler throws or its promise rejects: the error is logged, and
 * the client gets a 500 when nothing was sent yet, else a cut response.
 */
export function handlerFailed(err: unknown, res: ServerResponse, errors: ErrorLog): void {
  errors.log(`tsgi: error in the node handler: ${errorText(err)}\n`);
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

/** Calls `handler` as node:http would, with handlerFailed() for a throw or a rejection. */
export function callHandler(
  handler: NodeHandler,
  req: IncomingMessage,
  res: ServerResponse,
  errors: ErrorLog,
): void {
  let result: unknown;
  try {
    result = handler(req, res);
  } catch (err) {
    handlerFailed(err, res, errors);
    return;
  }
  if (
    result !== null &&
    typeof result === 'object' &&
    typeof (result as PromiseLike<unknown>).then === 'function'
  ) {
    (result as PromiseLike<unknown>).then(PASS, (err: unknown) => handlerFailed(err, res, errors));
  }
}

/** The node handler of an app made by fromNodeHandler(), for servers that can run it as is. */
const handlers = new WeakMap<App, NodeHandler>();

/**
 * The node:http request listener `app` runs when it was made by fromNodeHandler() (and not
 * wrapped since), else null. tsgi's HTTP listener gives such a handler node's own req/res.
 */
export function nodeHandlerOf(app: App): NodeHandler | null {
  return handlers.get(app) ?? null;
}

/**
 * @internal Whether `app` is a fromNodeHandler() app that nothing wraps: its handler sees
 * node's req and res, never the environ, so a protocol server may give it a lean environ
 * (lib/gateway/environ.ts, sourcedEnviron), from which it takes tsgi.input and tsgi.signal
 * through environInput() and environSignal().
 */
export function takesLeanEnviron(app: App): boolean {
  return handlers.has(app);
}

/** The shared state of one fromNodeHandler() app. */
class Adapter {
  readonly defaultContentType: string;
  /**
   * Wires kept for their client connection's next request, by REMOTE_PORT, oldest first. A
   * Wire stays in it while it serves a request (its `exchange` is set then): a request costs
   * two lookups and no change to the map.
   */
  private readonly wires = new Map<string, Wire>();
  private readonly maxIdle: number;
  /** Header values that passed the control-character check, by their place in rawHeaders(). */
  private readonly checked: string[] = [];
  /** The request's headers, without Connection and Keep-Alive. */
  private readonly headerReader = new HeaderReader(CLIENT_CONNECTION_HEADERS);

  constructor(
    private readonly handler: NodeHandler,
    options: NodeAdapterOptions,
  ) {
    this.defaultContentType = options.defaultContentType ?? DEFAULT_CONTENT_TYPE;
    this.maxIdle = options.maxIdleConnections ?? 1024;
  }

  /**
   * The request's header lines for node (`[name, value, …]`, as requestHeaders() gives them)
   * without Connection and Keep-Alive (hop-by-hop on the client's connection: a proxy drops
   * them too), Content-Length unless it is the body's length, Transfer-Encoding unless the
   * body is chunked; or the name of a header whose value has a control character, which
   * node's parser refuses. A value equal to the one at the same place in the last request
   * (most are: the same client, the native codec's cached strings) was checked then.
   */
  private rawHeaders(env: Environ, hasLength: boolean, chunked: boolean): string[] | string {
    const raw = this.headerReader.read(env);
    const checked = this.checked;
    for (let i = 0; i < raw.length;) {
      const name = raw[i]!;
      if (
        (name.length === 14 && !hasLength && name === 'Content-Length') ||
        (name.length === 17 && !chunked && name === 'Transfer-Encoding')
      ) {
        raw.splice(i, 2);
        continue;
      }
      const value = raw[i + 1]!;
      if (checked[i] !== value) {
        if (BAD_VALUE.test(value)) return name;
        checked[i] = value;
      }
      i += 2;
    }
    return raw;
  }

  /** The idle Wire of this client connection, or a new one. */
  private acquire(env: Environ): Wire {
    const port = env.REMOTE_PORT;
    const key = typeof port === 'string' ? port : '';
    const wire = this.wires.get(key);
    if (wire !== undefined && wire.exchange === null && wire.serves(env)) return wire;
    return new Wire(env, key, this);
  }

  /**
   * The exchange on `wire` is over: keep it for the client connection's next request, unless
   * an idle Wire is kept for that connection already.
   */
  release(wire: Wire): void {
    const wires = this.wires;
    const kept = wires.get(wire.key);
    if (kept === wire || (kept !== undefined && kept.exchange === null)) return;
    if (kept === undefined && wires.size >= this.maxIdle) {
      wires.delete(wires.keys().next().value as string);
    }
    wires.set(wire.key, wire);
  }

  forget(wire: Wire): void {
    if (this.wires.get(wire.key) === wire) this.wires.delete(wire.key);
  }

  /** Runs one TSGI request. */
  run(env: Environ, startResponse: StartResponse): Body | Promise<Body> {
    const reason = unsupportedRequest(env);
    if (reason !== null) return notImplemented(startResponse, reason);
    const cl = env.CONTENT_LENGTH;
    const hasLength = typeof cl === 'string' && cl !== '' && DIGITS.test(cl);
    const te = env.HTTP_TRANSFER_ENCODING;
    const chunked = !hasLength && typeof te === 'string' && te !== '';
    const raw = this.rawHeaders(env, hasLength, chunked);
    if (typeof raw === 'string') {
      logError(env, `tsgi: refused the request: a control character in the ${raw} header`);
      return badRequest(startResponse, `a control character in the ${raw} header`);
    }

    const wire = this.acquire(env);
    const ex = new Exchange(env, startResponse, wire, this);
    wire.exchange = ex;
    const req = new IncomingMessage(wire as never);
    ex.req = req;
    req.method = env.REQUEST_METHOD;
    req.url = requestTarget(env);
    const proto = env.SERVER_PROTOCOL;
    const m = proto === 'HTTP/1.1' ? null : VERSION.exec(proto);
    if (m === null) {
      req.httpVersionMajor = 1;
      req.httpVersionMinor = 1;
      req.httpVersion = '1.1';
    } else {
      req.httpVersionMajor = Number(m[1]);
      req.httpVersionMinor = Number(m[2] ?? 0);
      req.httpVersion = `${req.httpVersionMajor}.${req.httpVersionMinor}`;
    }
    (req as unknown as { upgrade: boolean }).upgrade = false;
    asReq(req)._addHeaderLines(raw, raw.length);
    const hasBody = (hasLength && cl !== '0') || chunked;
    if (hasBody) ex.attachInput(environInput(env));

    const res = new ServerResponse(req);
    ex.res = res;
    res.on('finish', onResFinish);
    res.assignSocket(wire as never);

    callHandler(this.handler, req, res, ex);
    ex.inHandler = false;
    if (!hasBody) {
      /* node's parser completes a request without a body right after its 'request' event */
      req.complete = true;
      req.push(null);
    }
    ex.handOver();
    /* A handler that answered at once is done, and so is most of those that answer within
     * promise jobs (Koa, Fastify): only a slower one needs tsgi.signal, which costs an
     * AbortController per request where the protocol makes it lazily. A client that left in
     * the meantime is seen by watch() at once. */
    if (!res.writableEnded) watchLater(ex);
    return ex.result();
  }
}

/**
 * A TSGI app that runs a node:http request listener (`(req, res) => …`: an Express app, Koa's
 * `app.callback()`, Fastify's `routing`) with node's own `IncomingMessage` and
 * `ServerResponse`. See the module comment for what is carried and what is not.
 */
export function fromNodeHandler(handler: NodeHandler, options: NodeAdapterOptions = {}): App {
  if (typeof handler !== 'function') {
    throw new TypeError('fromNodeHandler() needs a (req, res) request listener function');
  }
  const missing = missingNodeInternals();
  if (missing.length !== 0) {
    throw new Error(
      `fromNodeHandler() cannot run on Node ${process.version}: it lacks ${missing.join(', ')}`,
    );
  }
  const adapter = new Adapter(handler, options);
  const app: App = (env, startResponse) => adapter.run(env, startResponse);
  handlers.set(app, handler);
  return app;
}
