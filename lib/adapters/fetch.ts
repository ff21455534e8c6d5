/**
 * fromFetch(handler): runs a fetch-style handler — `(request: Request) => Response |
 * Promise<Response>`: Hono's `app.fetch`, itty-router's `router.fetch`, a bare function — as a
 * TSGI app.
 *
 * Request: a real global `Request`. Its URL is `tsgi.url_scheme` :// Host (else SERVER_NAME and
 * a non-default SERVER_PORT) + REQUEST_URI below the app's mount point (SCRIPT_NAME; see
 * requestTarget in ./common.ts); its headers are rebuilt from HTTP_* / CONTENT_*
 * (see ./common.ts for the name mapping); its body streams from tsgi.input with backpressure
 * (`duplex: 'half'`), for any method but GET and HEAD that has a CONTENT_LENGTH above 0 or a
 * Transfer-Encoding; its `signal` aborts when the client goes away (tsgi.signal). The handler's
 * second argument is the TSGI environ (Hono: `c.env`), for REMOTE_ADDR and the like.
 *
 * Response: the status and its text (the standard reason when the Response has none), every
 * header, each Set-Cookie on its own (Headers.getSetCookie()), and the body streamed: the next
 * chunk is read only when the peer took the last one, and the stream is cancelled when the
 * client goes away. A body that is complete at once (a Response made from a string or bytes)
 * goes out as one chunk, so the gateway sends a Content-Length. String chunks a stream yields
 * are sent as UTF-8. HEAD, 204 and 304 responses go out without a body; a body without a
 * Content-Type gets `defaultContentType` (the gateway requires one).
 *
 * CONNECT, TRACE and protocol upgrades cannot be made into a fetch Request or served through
 * a gateway: they are answered 501. A Host header that does not make a valid URL is answered
 * 400. A handler that throws, rejects or returns something else than a Response gets the
 * gateway's 500, with the error on tsgi.errors.
 */
import { TextEncoder } from 'node:util';
import { Buffer } from 'node:buffer';
import { STATUS_CODES } from 'node:http';
import type { Readable } from 'node:stream';
import { describe } from '../gateway/respond.js';
import type {
  App,
  Body,
  Chunk,
  Environ,
  Headers as HeaderList,
  StartResponse,
} from '../gateway/types.js';
import { installLightResponse, responseParts, type ResponseParts } from './light-response.js';
import {
  DEFAULT_CONTENT_TYPE,
  badRequest,
  notImplemented,
  requestHeaders,
  requestUrl,
  unsupportedRequest,
} from './common.js';

/** A fetch-style handler; the second argument is the TSGI environ. */
export type FetchHandler = (request: Request, environ: Environ) => Response | Promise<Response>;

export interface FetchAdapterOptions {
  /**
   * Content-Type for a response that has a body but sets none (default
   * "application/octet-stream"). The gateway refuses a body without a Content-Type.
   */
  defaultContentType?: string;
  /**
   * Replace the global `Response` with tsgi's light one (./light-response.ts), so that a
   * response made from a string or bytes is sent from its parts, without the body stream a
   * real Response makes (default true; @hono/node-server does the same). `instanceof
   * Response` keeps holding; a Response replaced before by another library is left alone.
   */
  lightResponse?: boolean;
}

const NO_BODY_METHODS = new Set(['GET', 'HEAD']);
const REFUSED_METHODS = /^(?:CONNECT|TRACE|TRACK)$/i;
const DIGITS = /^[0-9]{1,15}$/;
const encoder = new TextEncoder();

/** The request body as a web stream pulled from tsgi.input (one chunk per pull). */
function inputStream(input: Readable): ReadableStream<Uint8Array> {
  const it = input[Symbol.asyncIterator]() as AsyncIterator<Buffer>;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        const r = await it.next();
        if (r.done === true) controller.close();
        else controller.enqueue(r.value);
      },
      async cancel() {
        await it.return?.();
      },
    },
    { highWaterMark: 0 },
  );
}

function toBytes(chunk: unknown): Uint8Array {
  if (chunk instanceof Uint8Array) return chunk;
  if (typeof chunk === 'string') return encoder.encode(chunk);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  if (ArrayBuffer.isView(chunk)) {
    return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  }
  throw new TypeError(`the Response body stream yielded ${describe(chunk)}, not bytes`);
}

function isResponse(v: unknown): v is Response {
  if (v instanceof Response) return true;
  const r = v as Partial<Response> | null;
  return (
    r !== null &&
    typeof r === 'object' &&
    typeof r.status === 'number' &&
    typeof (r.headers as Headers | undefined)?.forEach === 'function' &&
    'body' in r
  );
}

/** A response body pulled from the Response's stream as the gateway asks for it. */
class StreamBody implements AsyncIterable<Chunk> {
  private first: Uint8Array | null;
  private done = false;

  constructor(
    private readonly reader: ReadableStreamDefaultReader<unknown>,
    first: Uint8Array,
    private pending: ReturnType<ReadableStreamDefaultReader<unknown>['read']> | null,
  ) {
    this.first = first;
  }

  [Symbol.asyncIterator](): AsyncIterator<Chunk> {
    return {
      next: async (): Promise<IteratorResult<Chunk>> => {
        if (this.first !== null) {
          const value = this.first;
          this.first = null;
          return { done: false, value };
        }
        for (;;) {
          const p = this.pending ?? this.reader.read();
          this.pending = null;
          const r = await p;
          if (r.done) {
            this.done = true;
            return { done: true, value: undefined };
          }
          const value = toBytes(r.value);
          if (value.length !== 0) return { done: false, value };
        }
      },
      return: async (): Promise<IteratorResult<Chunk>> => {
        await this.close();
        return { done: true, value: undefined };
      },
    };
  }

  /** Called by the gateway on every path: before the end, the client is gone. */
  async close(): Promise<void> {
    if (this.done) return;
    this.done = true;
    try {
      await this.reader.cancel();
    } catch {
      /* the stream failed already; the gateway reported it */
    }
  }
}

/** What a lazy request is made of (see lazyRequest). */
interface RequestParts {
  env: Environ;
  method: string;
  url: string;
  headers: Headers | null;
  real: Request | null;
}

const PARTS = Symbol('tsgi.request');
type LazyRequest = Request & { [PARTS]: RequestParts };

function headersOf(parts: RequestParts): Headers {
  if (parts.headers === null) {
    const raw = requestHeaders(parts.env);
    const headers = new Headers();
    for (let i = 0; i < raw.length; i += 2) headers.append(raw[i]!, raw[i + 1]!);
    parts.headers = headers;
  }
  return parts.headers;
}

/** The real Request of a lazy one, made on first need: body, signal, clone(), … */
function realRequest(self: LazyRequest): Request {
  const parts = self[PARTS];
  if (parts.real !== null) return parts.real;
  const env = parts.env;
  const init: RequestInit & { duplex?: 'half' } = {
    method: parts.method,
    headers: headersOf(parts),
    signal: env['tsgi.signal'],
  };
  if (!NO_BODY_METHODS.has(parts.method.toUpperCase())) {
    const cl = env.CONTENT_LENGTH;
    const hasLength = typeof cl === 'string' && DIGITS.test(cl);
    if ((hasLength && cl !== '0') || (!hasLength && env.HTTP_TRANSFER_ENCODING)) {
      init.body = inputStream(env['tsgi.input']);
      init.duplex = 'half';
    }
  }
  parts.real = new Request(parts.url, init);
  return parts.real;
}

/**
 * The prototype of the requests handlers get: Request.prototype's own members, each
 * forwarded to the real Request (made on first use), except method, url and headers, which
 * are answered from the environ without making one. Request.prototype itself is not touched.
 */
const LAZY_REQUEST: object = (() => {
  const proto = Object.create(Request.prototype) as Record<PropertyKey, unknown>;
  for (const key of Reflect.ownKeys(Request.prototype)) {
    if (key === 'constructor') continue;
    const d = Object.getOwnPropertyDescriptor(Request.prototype, key)!;
    if (typeof d.value === 'function') {
      const method = d.value as (...args: unknown[]) => unknown;
      Object.defineProperty(proto, key, {
        configurable: true,
        writable: true,
        value: function (this: LazyRequest, ...args: unknown[]) {
          return method.apply(realRequest(this), args);
        },
      });
    } else if (d.get !== undefined) {
      const get = d.get;
      Object.defineProperty(proto, key, {
        configurable: true,
        get(this: LazyRequest) {
          return get.call(realRequest(this));
        },
      });
    }
  }
  Object.defineProperty(proto, 'method', {
    configurable: true,
    get(this: LazyRequest) {
      return this[PARTS].method;
    },
  });
  Object.defineProperty(proto, 'url', {
    configurable: true,
    get(this: LazyRequest) {
      return this[PARTS].url;
    },
  });
  Object.defineProperty(proto, 'headers', {
    configurable: true,
    get(this: LazyRequest) {
      const parts = this[PARTS];
      return parts.real !== null ? parts.real.headers : headersOf(parts);
    },
  });
  return proto;
})();

/**
 * The Request a handler gets: `instanceof Request`, with every member of one, but the real
 * Request (its AbortSignal, body stream and header validation, most of a request's cost) is
 * made only when the handler uses more than method, url and headers. Undici's own brand checks
 * see through it: `fetch(request)` and `new Request(request)` need `request.clone()`.
 */
function lazyRequest(env: Environ, method: string, url: string): Request {
  const req = Object.create(LAZY_REQUEST) as LazyRequest;
  req[PARTS] = { env, method, url, headers: null, real: null };
  return req;
}

const IMMEDIATE = Symbol('immediate');

const toImmediate = (): typeof IMMEDIATE => IMMEDIATE;
const pass = (): void => {};

/**
 * Settles after four promise jobs: the end of a body queued whole (a Response made from a
 * string or bytes) is read after two on Node 18 to 26, without waiting for the event loop.
 */
function afterJobs(): Promise<typeof IMMEDIATE> {
  return Promise.resolve().then(pass).then(pass).then(pass).then(toImmediate);
}

/** The body of `response` for the gateway: an array when it is complete at once. */
async function responseBody(stream: ReadableStream<unknown>): Promise<Body> {
  const reader = stream.getReader();
  let first: Uint8Array;
  for (;;) {
    const r = await reader.read();
    if (r.done) return [];
    first = toBytes(r.value);
    if (first.length !== 0) break;
  }
  /* A Response made from a string or bytes has its whole body queued: the next read settles
   * at once. A live stream's does not; it is not waited for. */
  const second = reader.read();
  const raced = await Promise.race([second, afterJobs()]);
  if (raced !== IMMEDIATE && raced.done) return [first];
  return new StreamBody(reader, first, second);
}

/** Sends a light response (./light-response.ts) from its parts, as the stream path would. */
function sendParts(
  parts: ResponseParts,
  method: string,
  defaultType: string,
  startResponse: StartResponse,
): Body {
  const status = parts.status;
  const list: HeaderList = [];
  let cookies: string[] | null = null;
  let hasType = false;
  for (const h of parts.headers) {
    const name = h[0];
    if (name === 'set-cookie') (cookies ??= []).push(h[1]);
    else {
      if (name === 'content-type') hasType = true;
      list.push([name, h[1]]);
    }
  }
  if (cookies !== null) for (const c of cookies) list.push(['set-cookie', c]);
  const line = `${status} ${parts.statusText || STATUS_CODES[status] || ''}`;
  const body = parts.body;
  if (body === null || method === 'HEAD' || status === 204 || status === 304) {
    startResponse(line, list);
    return [];
  }
  if (!hasType) list.push(['content-type', defaultType]);
  startResponse(line, list);
  if (body.length === 0) return [];
  return [typeof body === 'string' ? Buffer.from(body, 'utf8') : body];
}

/**
 * A TSGI app that runs a fetch-style handler with a real `Request` and sends the `Response`
 * it returns. See the module comment for what is carried.
 */
export function fromFetch(handler: FetchHandler, options: FetchAdapterOptions = {}): App {
  if (typeof handler !== 'function') {
    throw new TypeError('fromFetch() needs a (request) => Response function');
  }
  const defaultType = options.defaultContentType ?? DEFAULT_CONTENT_TYPE;
  if (options.lightResponse !== false) installLightResponse();
  return async (env, startResponse) => {
    const method = env.REQUEST_METHOD;
    const unsupported = REFUSED_METHODS.test(method)
      ? `${method} requests cannot be made into a fetch Request`
      : unsupportedRequest(env);
    if (unsupported !== null) return notImplemented(startResponse, unsupported);
    let url: string;
    try {
      url = requestUrl(env).href;
    } catch {
      return badRequest(startResponse, 'the Host header and request target do not make a URL');
    }
    const request = lazyRequest(env, method, url);
    const response: unknown = await handler(request, env);
    const parts = responseParts(response);
    if (parts !== null) return sendParts(parts, method, defaultType, startResponse);
    if (!isResponse(response)) {
      throw new TypeError(`the fetch handler returned ${describe(response)}, not a Response`);
    }
    const status = response.status;
    const list: HeaderList = [];
    let hasType = false;
    response.headers.forEach((value, name) => {
      if (name === 'set-cookie') return;
      if (name === 'content-type') hasType = true;
      list.push([name, value]);
    });
    const cookies =
      typeof response.headers.getSetCookie === 'function'
        ? response.headers.getSetCookie()
        : (response.headers.get('set-cookie') ?? '').split(/,(?=[^;,]*=)/).filter(Boolean);
    for (const c of cookies) list.push(['set-cookie', c]);
    const reason = response.statusText || STATUS_CODES[status] || '';
    const stream = response.body as ReadableStream<unknown> | null;
    const bodyless = method === 'HEAD' || status === 204 || status === 304 || status < 200;
    if (stream === null || bodyless) {
      if (stream !== null) stream.cancel().catch(() => {});
      startResponse(`${status} ${reason}`, list);
      return [];
    }
    if (!hasType) list.push(['content-type', defaultType]);
    startResponse(`${status} ${reason}`, list);
    return responseBody(stream);
  };
}
