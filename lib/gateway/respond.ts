/**
 * Runs one TSGI request: calls the app, applies PEP 3333's response rules and hands bytes to a
 * protocol's Sink.
 *
 * - Headers leave with the first non-empty chunk, or at the end when the body is empty.
 * - startResponse a second time: only with excInfo and only before the headers left (after,
 *   excInfo is thrown back to the app, as PEP 3333 says); else an Error.
 * - body.close() runs on every path once the app returned a body: finished, app error, peer
 *   gone, abort. A generator body that is left early is also ended with return().
 * - Strings are latin-1; a character above U+00FF is an error.
 * - Added by the gateway: Content-Length when the body is an array (its length is known) and
 *   the app set none (not for HEAD, 1xx, 204, 304); hop-by-hop headers (Connection,
 *   Transfer-Encoding, ...) are dropped with a note on tsgi.errors; a body without a
 *   Content-Type is an error (RFC 3875 §6.3.1: the server must not guess).
 * - An error before the headers left gives a 500 and the error on tsgi.errors; after, the error
 *   goes to tsgi.errors and the response is cut (the sink's cut()).
 */
import { Buffer } from 'node:buffer';
import { NOT_LATIN1_RE } from '../codec/bytes.js';
import { CodecError } from '../codec/types.js';
import type { App, Body, Chunk, Environ, Headers, Write } from './types.js';

/** Where a protocol takes the response. */
export interface Sink {
  /** The head, optionally with the first body bytes; `last` ends the response. */
  head(status: string, headers: string[], body: Uint8Array | null, last: boolean): void;
  /**
   * Optional: head() with the body as a string whose characters are all ≤ U+00FF, its
   * latin-1 bytes being the body. A sink that encodes the response itself (FastCGI) takes a
   * string body this way without a Buffer being made for it. The gateway uses it for an
   * array body of one short string, and checks the string first unless
   * {@link headTextChecks} says the sink does.
   */
  headText?(status: string, headers: string[], body: string, last: boolean): void;
  /**
   * True when headText() itself refuses a character above U+00FF, throwing a CodecError
   * ENCODE_NOT_LATIN1 before anything is sent (tsgi's sinks: the codecs check while they
   * encode). The gateway then does not look at the string first, which for a concatenated
   * string costs a flattening and a regular expression run through V8's runtime.
   */
  readonly headTextChecks?: boolean;
  /** More body bytes. */
  write(chunk: Uint8Array): void;
  /** The end of a response whose head already left. */
  end(): void;
  /** A promise to wait for when the peer is slow, else null. */
  ready(): Promise<void> | null;
  /** An error after the head left: the peer must see the response as incomplete. */
  cut(): void;
  /** True once the request was aborted (peer gone, ABORT_REQUEST): stop producing. */
  readonly aborted: boolean;
  /** The request's abort signal (the environ's tsgi.signal). */
  readonly signal: AbortSignal;
}

/**
 * The hop-by-hop response headers (RFC 9110 section 7.6.1 and the ones proxies use): the
 * gateway drops them from a response, validate() reports them.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'trailers',
  'transfer-encoding',
  'upgrade',
]);

/* What finalHeaders() must know of a response header name. */
const H_OTHER = 0;
const H_HOP = 1;
const H_TYPE = 2;
const H_LENGTH = 3;

/** Whether `s` equals the lower-case ASCII `lower` ignoring ASCII case; -1: `s` is not ASCII. */
function asciiEqualsLower(s: string, lower: string): number {
  for (let i = 0; i < lower.length; i++) {
    let c = s.charCodeAt(i);
    if (c >= 0x80) return -1;
    if (c >= 65 && c <= 90) c += 32;
    if (c !== lower.charCodeAt(i)) return 0;
  }
  return 1;
}

/** As toLowerCase() + a table would classify `name` (that path for non-ASCII names). */
function headerKindSlow(name: string): number {
  const lower = name.toLowerCase();
  if (HOP_BY_HOP.has(lower)) return H_HOP;
  if (lower === 'content-type') return H_TYPE;
  if (lower === 'content-length') return H_LENGTH;
  return H_OTHER;
}

/**
 * The names headerKind() recognises, by length: the hop-by-hop set and the two framing headers,
 * each with its kind. Built from HOP_BY_HOP so that set stays the one list.
 */
const KIND_BY_LENGTH: ReadonlyArray<ReadonlyArray<readonly [string, number]>> = (() => {
  const table: Array<Array<readonly [string, number]>> = [];
  const add = (lower: string, kind: number): void => {
    (table[lower.length] ??= []).push([lower, kind]);
  };
  for (const name of HOP_BY_HOP) add(name, H_HOP);
  add('content-type', H_TYPE);
  add('content-length', H_LENGTH);
  return table;
})();

/**
 * The kind of a response header name (hop-by-hop, Content-Type, Content-Length or other),
 * case-insensitive, without making a lower-case copy: the candidates are picked by length.
 */
function headerKind(name: string): number {
  /* the usual spellings first: literals compare by identity */
  if (name === 'Content-Type' || name === 'content-type') return H_TYPE;
  if (name === 'Content-Length' || name === 'content-length') return H_LENGTH;
  const candidates = KIND_BY_LENGTH[name.length];
  if (candidates !== undefined) {
    for (let c = 0; c < candidates.length; c++) {
      const m = asciiEqualsLower(name, candidates[c]![0]);
      if (m < 0) return headerKindSlow(name);
      if (m === 1) return candidates[c]![1];
    }
  }
  for (let i = 0; i < name.length; i++) {
    if (name.charCodeAt(i) >= 0x80) return headerKindSlow(name);
  }
  return H_OTHER;
}

const CONCAT_LIMIT = 64 * 1024;
const ERROR_BODY = Buffer.from('Internal Server Error\n', 'latin1');
const ERROR_HEADERS = [
  'Content-Type',
  'text/plain; charset=us-ascii',
  'Content-Length',
  String(ERROR_BODY.length),
];

/** Strings up to this length are encoded by a loop (cheaper than a call into C++). */
const SHORT_STRING = 64;

/** Longest string body handed to Sink.headText (longer ones become a Buffer). */
const TEXT_LIMIT = 8192;

function notLatin1(): TypeError {
  return new TypeError('body chunk is not a latin-1 string (a character is above U+00FF)');
}

/** Bytes of one body chunk (strings as latin-1); throws a TypeError for anything else. */
export function chunkBytes(chunk: Chunk): Uint8Array {
  if (typeof chunk === 'string') {
    const n = chunk.length;
    if (n <= SHORT_STRING) {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) {
        const c = chunk.charCodeAt(i);
        if (c > 0xff) throw notLatin1();
        b[i] = c;
      }
      return b;
    }
    if (NOT_LATIN1_RE.test(chunk)) throw notLatin1();
    return Buffer.from(chunk, 'latin1');
  }
  if (chunk instanceof Uint8Array) return chunk;
  throw new TypeError(`body chunk must be a string or a Uint8Array, not ${describe(chunk)}`);
}

/** A short description of a value for error messages. */
export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object' || typeof v === 'function') {
    const name = (v as { constructor?: { name?: string } }).constructor?.name;
    const article = typeof v === 'object' ? 'an' : 'a';
    return name ? `${article} ${typeof v} (${name})` : `${article} ${typeof v}`;
  }
  return typeof v === 'string' ? 'a string' : `${typeof v} ${String(v)}`;
}

function isThenable(v: unknown): v is PromiseLike<unknown> {
  return (
    v !== null &&
    (typeof v === 'object' || typeof v === 'function') &&
    typeof (v as { then?: unknown }).then === 'function'
  );
}

function statusCode(status: string): number {
  return (
    (status.charCodeAt(0) - 48) * 100 +
    (status.charCodeAt(1) - 48) * 10 +
    (status.charCodeAt(2) - 48)
  );
}

function errorText(err: unknown): string {
  if (err instanceof Error) return err.stack ?? `${err.name}: ${err.message}`;
  return String(err);
}

class Run {
  private status: string | null = null;
  private headers: Headers | null = null;
  /** The head left. */
  private sent = false;
  /** The response ended (or was cut, or the 500 left). */
  private over = false;
  /** The legacy write() was used: the length is not known. */
  private wrote = false;
  readonly write: Write;

  constructor(
    private readonly env: Environ,
    private readonly sink: Sink,
  ) {
    this.write = (chunk: Chunk): void => {
      if (this.status === null) throw new Error('write() called before startResponse()');
      if (this.over) throw new Error('write() called after the response ended');
      const b = chunkBytes(chunk);
      if (b.length === 0) return;
      this.wrote = true;
      this.emit(b);
    };
  }

  readonly startResponse = (status: string, headers: Headers, excInfo?: unknown): Write => {
    if (excInfo !== undefined && excInfo !== null) {
      if (this.sent) throw excInfo;
    } else if (this.status !== null) {
      throw new Error('startResponse() called a second time without excInfo');
    }
    if (typeof status !== 'string') {
      throw new TypeError(`status must be a string such as "200 OK", not ${describe(status)}`);
    }
    if (!Array.isArray(headers)) {
      throw new TypeError(
        `headers must be an array of [name, value] pairs, not ${describe(headers)}`,
      );
    }
    for (const h of headers) {
      if (
        !Array.isArray(h) ||
        h.length !== 2 ||
        typeof h[0] !== 'string' ||
        typeof h[1] !== 'string'
      ) {
        throw new TypeError(
          `each header must be a [name, value] pair of strings, not ${describe(h)}`,
        );
      }
    }
    this.status = status;
    this.headers = headers;
    return this.write;
  };

  get aborted(): boolean {
    return this.sink.aborted;
  }

  log(text: string): void {
    try {
      this.env['tsgi.errors'].write(text.endsWith('\n') ? text : text + '\n');
    } catch {
      /* a broken error stream must not hide the response */
    }
  }

  /** The headers to send, flat, with what HTTP requires added (throws when one is missing). */
  private finalHeaders(knownLength: number, hasBody: boolean): string[] {
    const status = this.status;
    if (status === null) throw new Error('the app sent a body before calling startResponse()');
    const headers = this.headers!;
    const out: string[] = [];
    let hasType = false;
    let hasLength = false;
    for (let i = 0; i < headers.length; i++) {
      const h = headers[i]!;
      const name = h[0];
      const kind = headerKind(name);
      if (kind === H_HOP) {
        this.log(`tsgi: dropped hop-by-hop header "${name}" from the response`);
        continue;
      }
      if (kind === H_TYPE) hasType = true;
      else if (kind === H_LENGTH) hasLength = true;
      /* one value per push(): V8 inlines a single-argument push */
      out.push(name);
      out.push(h[1]);
    }
    if (hasBody && !hasType) {
      throw new Error(
        'the response has a body but no Content-Type header (RFC 3875 requires one; ' +
          'the gateway does not guess)',
      );
    }
    if (knownLength >= 0 && !hasLength && this.env.REQUEST_METHOD !== 'HEAD') {
      const code = statusCode(status);
      if (code >= 200 && code !== 204 && code !== 304) {
        out.push('Content-Length');
        out.push(String(knownLength));
      }
    }
    return out;
  }

  /** Sends one non-empty chunk: with the head when it has not left. */
  private emit(b: Uint8Array): void {
    if (this.sent) {
      this.sink.write(b);
      return;
    }
    const headers = this.finalHeaders(-1, true);
    this.sink.head(this.status!, headers, b, false);
    this.sent = true;
  }

  /** The body is complete. */
  private finish(): void {
    if (this.over) return;
    if (this.sent) {
      this.over = true;
      this.sink.end();
      return;
    }
    if (this.status === null) throw new Error('the app returned without calling startResponse()');
    const headers = this.finalHeaders(this.wrote ? -1 : 0, false);
    this.sink.head(this.status, headers, null, true);
    this.sent = true;
    this.over = true;
  }

  fail(err: unknown): void {
    if (this.over) {
      this.log(`tsgi: error after the response ended: ${errorText(err)}`);
      return;
    }
    if (this.aborted) {
      this.over = true;
      return;
    }
    this.log(`tsgi: error in application: ${errorText(err)}`);
    this.over = true;
    if (this.sent) {
      this.sink.cut();
      return;
    }
    this.sent = true;
    try {
      this.sink.head('500 Internal Server Error', ERROR_HEADERS.slice(), ERROR_BODY, true);
    } catch (e) {
      this.log(`tsgi: could not send the 500 response: ${errorText(e)}`);
      this.sink.cut();
    }
  }

  /** Sends an array body: its length is known, so Content-Length can be added. */
  private sendArray(chunks: readonly Chunk[]): void {
    if (chunks.length === 1) {
      /* The usual [body]: no list of buffers. */
      const c = chunks[0]!;
      if (
        typeof c === 'string' &&
        c.length !== 0 &&
        c.length <= TEXT_LIMIT &&
        !this.sent &&
        this.sink.headText !== undefined
      ) {
        if (this.sink.headTextChecks !== true && NOT_LATIN1_RE.test(c)) throw notLatin1();
        const headers = this.finalHeaders(this.wrote ? -1 : c.length, true);
        try {
          this.sink.headText(this.status!, headers, c, true);
        } catch (err) {
          throw err instanceof CodecError && err.code === 'ENCODE_NOT_LATIN1' ? notLatin1() : err;
        }
        this.sent = true;
        this.over = true;
        return;
      }
      const b = chunkBytes(c);
      if (b.length === 0) {
        this.finish();
        return;
      }
      if (this.sent) {
        this.sink.write(b);
        this.over = true;
        this.sink.end();
        return;
      }
      const headers = this.finalHeaders(this.wrote ? -1 : b.length, true);
      this.sink.head(this.status!, headers, b, true);
      this.sent = true;
      this.over = true;
      return;
    }
    const bufs: Uint8Array[] = [];
    let total = 0;
    for (let i = 0; i < chunks.length; i++) {
      const b = chunkBytes(chunks[i]!);
      if (b.length === 0) continue;
      bufs.push(b);
      total += b.length;
    }
    if (total === 0) {
      this.finish();
      return;
    }
    if (this.sent) {
      for (const b of bufs) this.sink.write(b);
      this.over = true;
      this.sink.end();
      return;
    }
    const headers = this.finalHeaders(this.wrote ? -1 : total, true);
    if (bufs.length === 1 || total <= CONCAT_LIMIT) {
      this.sink.head(
        this.status!,
        headers,
        bufs.length === 1 ? bufs[0]! : Buffer.concat(bufs),
        true,
      );
      this.sent = true;
      this.over = true;
      return;
    }
    this.sink.head(this.status!, headers, bufs[0]!, false);
    this.sent = true;
    for (let i = 1; i < bufs.length; i++) this.sink.write(bufs[i]!);
    this.over = true;
    this.sink.end();
  }

  /** Sends any iterable body, waiting on the sink when the peer is slow. */
  private async sendIterable(body: Body): Promise<void> {
    const asyncOf = (body as AsyncIterable<Chunk>)[Symbol.asyncIterator];
    if (typeof asyncOf === 'function') {
      const it = asyncOf.call(body);
      const stop = abortPromise(this.sink.signal);
      let done = false;
      try {
        for (;;) {
          const next = it.next();
          const r = await Promise.race([next, stop]);
          if (r === ABORTED) {
            next.then(noop, noop);
            break;
          }
          const res = r as IteratorResult<Chunk>;
          if (res.done) {
            done = true;
            break;
          }
          const b = chunkBytes(res.value);
          if (b.length === 0) continue;
          this.emit(b);
          const wait = this.sink.ready();
          if (wait !== null) await wait;
          if (this.aborted) break;
        }
      } finally {
        if (!done && typeof it.return === 'function') {
          try {
            const p = it.return();
            if (isThenable(p)) p.then(noop, noop);
          } catch {
            /* ignore: close() reports the app's cleanup errors */
          }
        }
      }
      if (done) this.finish();
      return;
    }
    const it = (body as Iterable<Chunk>)[Symbol.iterator]();
    let done = false;
    try {
      for (;;) {
        const res = it.next();
        if (res.done) {
          done = true;
          break;
        }
        const b = chunkBytes(res.value);
        if (b.length === 0) continue;
        this.emit(b);
        const wait = this.sink.ready();
        if (wait !== null) await wait;
        if (this.aborted) break;
      }
    } finally {
      if (!done && typeof it.return === 'function') {
        try {
          it.return();
        } catch {
          /* ignore */
        }
      }
    }
    if (done) this.finish();
  }

  /** Sends the body the app returned, then closes it. */
  body(body: unknown): void | Promise<void> {
    let sending: Promise<void> | undefined;
    try {
      if (this.aborted) {
        sending = undefined;
      } else if (Array.isArray(body)) {
        this.sendArray(body as Chunk[]);
      } else if (typeof body === 'string' || body instanceof Uint8Array) {
        throw new TypeError(
          `the app returned ${describe(body)} as its body; return an iterable of chunks, ` +
            'such as [body]',
        );
      } else if (
        body === null ||
        body === undefined ||
        (typeof (body as Iterable<Chunk>)[Symbol.iterator] !== 'function' &&
          typeof (body as AsyncIterable<Chunk>)[Symbol.asyncIterator] !== 'function')
      ) {
        throw new TypeError(`the app returned ${describe(body)}, not an iterable body`);
      } else {
        sending = this.sendIterable(body as Body);
      }
    } catch (err) {
      this.fail(err);
    }
    if (sending !== undefined) {
      return sending.then(
        () => this.close(body),
        (err: unknown) => {
          this.fail(err);
          return this.close(body);
        },
      );
    }
    return this.close(body);
  }

  /** Calls body.close() when there is one; its errors go to tsgi.errors. */
  private close(body: unknown): void | Promise<void> {
    if (body === null || body === undefined) return;
    const close = (body as { close?: unknown }).close;
    if (typeof close !== 'function') return;
    let r: unknown;
    try {
      r = close.call(body);
    } catch (err) {
      this.closeFailed(err);
      return;
    }
    if (isThenable(r)) {
      return Promise.resolve(r).then(noop, (err: unknown) => this.closeFailed(err));
    }
  }

  private closeFailed(err: unknown): void {
    this.log(`tsgi: error in body.close(): ${errorText(err)}`);
  }
}

const ABORTED = Symbol('aborted');
function noop(): void {}

function abortPromise(signal: AbortSignal): Promise<typeof ABORTED> {
  if (signal.aborted) return Promise.resolve(ABORTED);
  return new Promise((resolve) =>
    signal.addEventListener('abort', () => resolve(ABORTED), { once: true }),
  );
}

/**
 * Runs `app` for one request and sends its response to `sink`. Returns a promise when some of
 * the work is asynchronous (an async app, an iterable body, an async close()); it never
 * rejects: every error ends up on tsgi.errors and in the response.
 */
export function respond(app: App, env: Environ, sink: Sink): void | Promise<void> {
  const run = new Run(env, sink);
  let result: unknown;
  try {
    result = app(env, run.startResponse);
  } catch (err) {
    run.fail(err);
    return;
  }
  if (isThenable(result)) {
    return Promise.resolve(result).then(
      (body) => run.body(body),
      (err: unknown) => run.fail(err),
    );
  }
  return run.body(result);
}
