/**
 * Proxy handlers: answer a request from a FastCGI, SCGI or uwsgi backend, as a TSGI app, a
 * node:http handler (Express, Fastify, Koa's `ctx.req`/`ctx.res`) and a fetch handler (Hono).
 *
 * - {@link phpFpm}: PHP through php-fpm. The request path is split into SCRIPT_NAME and
 *   PATH_INFO here, not by php-fpm: the script is the first path prefix whose last segment
 *   has a listed extension (`.php`) and that is a regular file inside the document root
 *   (symbolic links resolved); the rest is PATH_INFO. A path ending in `/` tries the index
 *   files. Nothing else reaches php-fpm: `/upload/avatar.jpg/x.php` is a 404 here, so php-fpm's
 *   cgi.fix_pathinfo never runs a file that is not a script. HTTP_PROXY is never sent
 *   (httpoxy), and php-fpm's "Primary script unknown" answers 404.
 * - {@link forward}: the incoming CGI variables as they are, to any backend.
 *
 * A local redirect (RFC 3875 §6.2.2: `Location: /path?query` without `Status:`) is followed
 * here: the request runs again for that path as a GET without a body (SCRIPT_NAME kept as the
 * mount, PATH_INFO, QUERY_STRING and REQUEST_URI from the location), up to `maxLocalRedirects`
 * times, then 500. A redirect for the client (an absolute URL, or a Location with a Status,
 * which is what PHP's `header('Location: …')` sends) is passed through.
 *
 * Failures become a short text/plain answer: refused or broken connection 502, timeout 504,
 * OVERLOADED / CANT_MPX_CONN / a full queue 503, a body of unknown length over
 * `maxBufferedBody` 413 (SCGI/uwsgi, and phpFpm, which reads such a body whole first: PHP
 * reads no body without CONTENT_LENGTH). A failure after the head was sent cuts the response.
 */
import process from 'node:process';
import { Buffer } from 'node:buffer';
import { lstatSync, realpathSync, statSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { resolve as resolvePath, sep } from 'node:path';
import { Readable } from 'node:stream';
import { cgiVariables } from '../codec/environ.js';
import { hostOf, percentDecodeLatin1, requestPath } from '../gateway/environ.js';
import { HOP_BY_HOP } from '../gateway/respond.js';
import type { App, Environ, Headers } from '../gateway/types.js';
import { httpVariables } from '../protocol/http.js';
import { VERSION } from '../version.js';
import {
  Answer,
  EMPTY,
  ResponseBody,
  pairValue,
  setPair,
  type ClientResponse,
  type Receiver,
  type RequestBody,
  type Started,
} from './common.js';
import { ClientError, errorStatus } from './errors.js';
import { FastcgiClient } from './fastcgi.js';
import { createClient, type Client, type ClientOptions } from './index.js';
import {
  discardRest,
  keptBody,
  lingerRequest,
  lingerSettings,
  type LingerOptions,
  type LingerSettings,
} from './linger.js';
import {
  spoolBody,
  spoolSettings,
  type SpoolOptions,
  type SpoolSettings,
  type Spooled,
} from './spool.js';

/** Options of {@link forward}: a client, or the options to make one. */
export type ForwardOptions = (ClientOptions | { client: Client }) & {
  /** Extra CGI variables sent with every request (they win over the incoming ones). */
  params?: Record<string, string>;
  /** Where failures are reported (default: the process's stderr). */
  onError?: (err: Error) => void;
  /**
   * Local redirects (a `Location: /path` without `Status:`) followed for one request before
   * it is answered 500 as a loop (default 10).
   */
  maxLocalRedirects?: number;
} & LingerOptions;

/** Local redirects followed for one request, by default. */
const DEFAULT_MAX_LOCAL_REDIRECTS = 10;

/** Options of {@link phpFpm}. */
export type PhpFpmOptions = ForwardOptions & {
  /** The document root: scripts are looked up below it (required). */
  root: string;
  /** Index files tried for a path ending in `/` (default `['index.php']`). */
  index?: readonly string[];
  /** Extensions of the files run as scripts (default `['.php']`), compared case-insensitively. */
  extensions?: readonly string[];
} & SpoolOptions;

/** The outcome of one proxied request. */
interface Outcome {
  status: number;
  statusText: string;
  headers: [string, string][];
  /** The body as a stream, or null (then `whole`). */
  body: Readable | null;
  /** The whole body, when it is at hand as bytes (null: `body` streams it). */
  whole: Uint8Array | null;
  /** No script here (php only): a node handler with `next` passes the request on. */
  notFound?: boolean;
}

/** A proxy usable from every interface. */
export interface Proxy {
  /** A TSGI app. */
  app: App;
  /**
   * A node:http handler; with Express's `next`, a request that names no script (phpFpm) is
   * passed on instead of answered 404 (so express.static can serve the assets).
   */
  node: (req: IncomingMessage, res: ServerResponse, next?: (err?: unknown) => void) => void;
  /** A fetch handler (Hono: `app.all('/*', (c) => php.fetch(c.req.raw))`). */
  fetch: (request: Request) => Promise<Response>;
  /** The client underneath. */
  client: Client;
  /** Closes the client. */
  close(): Promise<void>;
}

const REASONS: Record<number, string> = {
  404: 'Not Found',
  413: 'Content Too Large',
  500: 'Internal Server Error',
  499: 'Client Closed Request',
  502: 'Bad Gateway',
  503: 'Service Unavailable',
  504: 'Gateway Timeout',
};

function textOutcome(status: number): Outcome {
  const reason = REASONS[status] ?? 'Error';
  const text = `${status} ${reason}\n`;
  return {
    status,
    statusText: reason,
    headers: [
      ['Content-Type', 'text/plain; charset=utf-8'],
      ['Content-Length', String(text.length)],
    ],
    body: null,
    whole: Buffer.from(text),
  };
}

/** The lengths of the hop-by-hop names: most names are not one of them, found without a copy. */
const HOP_LENGTHS = new Set([...HOP_BY_HOP].map((n) => n.length));

/**
 * Whether `name` is a hop-by-hop header (the gateway's set): a backend's answer may carry one,
 * the proxy's own server frames the body and the connection.
 */
function isHop(name: string): boolean {
  return HOP_LENGTHS.has(name.length) && HOP_BY_HOP.has(name.toLowerCase());
}

/** `headers` without the hop-by-hop ones (the same list when it has none). */
function endToEnd(headers: [string, string][]): [string, string][] {
  for (let i = 0; i < headers.length; i++) {
    if (isHop(headers[i]![0])) return headers.filter(([n]) => !isHop(n));
  }
  return headers;
}

/** How a request is prepared: the pairs to send, or null for "no such script" (404). */
type Prepare = (pairs: string[]) => string[] | null;

/** What the proxies of one makeProxy() share. */
interface Core {
  client: Client;
  /** The client, when it can start requests without a promise. */
  fast: FastcgiClient | null;
  prepare: Prepare;
  extra: Record<string, string>;
  hasExtra: boolean;
  onError: (err: Error) => void;
  maxRedirects: number;
  /** php-fpm: "Primary script unknown" means 404. */
  php: boolean;
  /**
   * Read a body of unknown length whole first (PHP reads no body without CONTENT_LENGTH), as
   * spool.ts holds it; null: stream it.
   */
  spool: SpoolSettings | null;
  /** What is done with a request body the backend left unread (linger.ts). */
  linger: LingerSettings;
}

/** FastCGI STDERR of a php-fpm request: "Primary script unknown" makes it a 404. */
function phpStderr(this: Flight, chunk: Buffer): void {
  const text = chunk.toString();
  if (text.includes('Primary script unknown')) this.unknownScript = true;
  else this.core.onError(new Error(`FastCGI stderr: ${text.trimEnd()}`));
}

/**
 * One proxied request, from its variables to its {@link Outcome}: prepared, its body spooled
 * when it must be, sent, local redirects followed, failures mapped to a status. It is the
 * client's {@link Receiver}: a request costs this object, not a chain of promises.
 */
abstract class Flight implements Receiver {
  redirects = 0;
  /** php-fpm said "Primary script unknown" for the current attempt. */
  unknownScript = false;
  /** The caller went away. */
  cancelled = false;
  private spooled: Spooled | null = null;
  private started: Started | null = null;
  private controller: AbortController | null = null;
  readonly onStderr: ((chunk: Buffer) => void) | undefined;

  constructor(
    readonly core: Core,
    private incoming: string[],
    private body: RequestBody,
    private signal: AbortSignal | undefined,
  ) {
    this.onStderr = core.php ? phpStderr : undefined;
  }

  /** Where the outcome goes. */
  protected abstract land(out: Outcome): void;

  /** Sends the request (again, after a local redirect). */
  run(): void {
    const core = this.core;
    this.unknownScript = false;
    let pairs: string[] | null;
    try {
      pairs = core.prepare(this.incoming);
    } catch (err) {
      this.onError(err as Error);
      return;
    }
    if (pairs === null) {
      this.land({ ...textOutcome(404), notFound: true });
      return;
    }
    if (core.hasExtra) for (const k in core.extra) setPair(pairs, k, core.extra[k]!);
    const body = this.body;
    if (
      core.spool !== null &&
      body !== null &&
      body !== undefined &&
      typeof body !== 'string' &&
      !(body instanceof Uint8Array) &&
      !/^[0-9]+$/.test(pairValue(pairs, 'CONTENT_LENGTH') ?? '')
    ) {
      void this.spoolThenSend(pairs, body, core.spool);
      return;
    }
    this.send(pairs);
  }

  /** Stops the request: the caller went away. */
  cancel(): void {
    if (this.cancelled) return;
    this.cancelled = true;
    this.controller?.abort();
    this.started?.cancel();
  }

  /** A signal for what takes one (a spool, a client without start()); made when first needed. */
  private signalOf(): AbortSignal {
    if (this.signal !== undefined) return this.signal;
    this.controller = new AbortController();
    if (this.cancelled) this.controller.abort();
    this.signal = this.controller.signal;
    return this.signal;
  }

  private async spoolThenSend(
    pairs: string[],
    body: Readable | AsyncIterable<Uint8Array | string>,
    spool: SpoolSettings,
  ): Promise<void> {
    try {
      const spooled = await spoolBody(body, spool, this.signalOf());
      this.spooled = spooled;
      this.body = spooled.bytes ?? spooled.chunks();
      if (spooled.length > 0) setPair(pairs, 'CONTENT_LENGTH', String(spooled.length));
    } catch (err) {
      this.onError(err as Error);
      return;
    }
    this.send(pairs);
  }

  private send(pairs: string[]): void {
    const fast = this.core.fast;
    if (fast !== null) {
      this.started = fast.start(pairs, this.body, this.signal, this);
      if (this.cancelled) this.started.cancel();
      return;
    }
    this.core.client
      .request({
        params: pairs,
        body: this.body,
        signal: this.signalOf(),
        stderr: this.onStderr?.bind(this),
      })
      .then(
        (res) => this.onResponse(res),
        (err: Error) => this.onError(err),
      );
  }

  onResponse(res: ClientResponse): void {
    this.started = null;
    const whole = res instanceof Answer ? res.takeWhole() : null;
    const stream = whole === null ? res.body : null;
    const spooled = this.spooled;
    if (spooled !== null) {
      this.spooled = null;
      if (stream !== null) stream.once('close', () => void spooled.dispose());
      else void spooled.dispose();
    }
    if (res.localRedirect && !this.unknownScript) {
      /* a local redirect (RFC 3875 §6.2.2): run the request again for that path, as a GET
       * without a body; what the first answer sent (cookies included) is dropped */
      stream?.destroy();
      this.redirect(res.headers.find(([n]) => n.toLowerCase() === 'location')![1]);
      return;
    }
    let { status, statusText } = res;
    if (this.unknownScript) {
      status = 404;
      statusText = 'Not Found';
    }
    this.land({ status, statusText, headers: endToEnd(res.headers), body: stream, whole });
  }

  onError(err: Error): void {
    this.started = null;
    const spooled = this.spooled;
    this.spooled = null;
    void spooled?.dispose();
    /* a failure of ours (not the backend's) is a 500 */
    const status = err instanceof ClientError ? errorStatus(err) : 500;
    if (status !== 499 && !this.cancelled) this.core.onError(err);
    this.land(textOutcome(status));
  }

  private redirect(location: string): void {
    const core = this.core;
    if (this.redirects === core.maxRedirects) {
      core.onError(
        new Error(
          `more than ${core.maxRedirects} local redirects (a loop?): the last to ${location}`,
        ),
      );
      this.land(textOutcome(500));
      return;
    }
    const next = redirectedPairs(this.incoming, location);
    if (next === null) {
      core.onError(
        new Error(
          `a local redirect to ${location} leaves the path this proxy is mounted at ` +
            `(${pairValue(this.incoming, 'SCRIPT_NAME')})`,
        ),
      );
      this.land(textOutcome(500));
      return;
    }
    this.redirects++;
    this.incoming = next;
    this.body = null;
    this.run();
  }
}

/** A flight whose outcome resolves a promise (the TSGI app and the fetch handler). */
class PromiseFlight extends Flight {
  constructor(
    core: Core,
    incoming: string[],
    body: RequestBody,
    signal: AbortSignal | undefined,
    private readonly resolve: (out: Outcome) => void,
  ) {
    super(core, incoming, body, signal);
  }

  protected land(out: Outcome): void {
    this.resolve(out);
  }
}

/** The flight of a node:http request, on its response. */
const FLIGHT = Symbol('tsgi.proxy.flight');

type FlightResponse = ServerResponse & { [FLIGHT]?: NodeFlight };

/** The response closed: when before its end, the client went away and the request stops. */
function onResponseClose(this: FlightResponse): void {
  if (!this.writableFinished) this[FLIGHT]?.cancel();
}

/** A flight answering a node:http request. */
class NodeFlight extends Flight {
  constructor(
    core: Core,
    incoming: string[],
    body: RequestBody,
    private readonly req: IncomingMessage,
    private readonly hasBody: boolean,
    private readonly res: FlightResponse,
    private readonly next: ((err?: unknown) => void) | undefined,
  ) {
    super(core, incoming, body, undefined);
  }

  protected land(out: Outcome): void {
    const res = this.res;
    res[FLIGHT] = undefined;
    if (out.notFound && this.next !== undefined) {
      this.next();
      return;
    }
    /* the body the backend left unread is discarded once this answer is out (not when the
     * request was passed on: what answers it then reads it, or node:http drops it) */
    if (this.hasBody) res.once('finish', () => lingerRequest(this.req, this.core.linger));
    if (this.cancelled || res.destroyed) {
      out.body?.destroy();
      return;
    }
    try {
      writeNode(this.req, res, out, (err) => {
        if (!this.cancelled) this.core.onError(err);
      });
    } catch (err) {
      /* a head node refuses (a value with a control character): a 502 when nothing left yet */
      out.body?.destroy();
      this.core.onError(err as Error);
      if (res.headersSent) res.destroy();
      else writeNode(this.req, res, textOutcome(502), () => undefined);
    }
  }
}

/** Writes `out` to a node:http response. */
function writeNode(
  req: IncomingMessage,
  res: ServerResponse,
  out: Outcome,
  onError: (err: Error) => void,
): void {
  const body = out.body;
  const whole = out.whole ?? (body === null ? EMPTY : bufferedWhole(body));
  const list = out.headers;
  let length = false;
  for (let i = 0; i < list.length; i++) {
    const n = list[i]![0];
    if (
      (n.length === 14 && n.toLowerCase() === 'content-length') ||
      (n.length === 17 && n.toLowerCase() === 'transfer-encoding')
    ) {
      length = true;
      break;
    }
  }
  /* a body that has arrived whole gets its length, so that node frames it without
   * chunked encoding: the head, the body and nothing else, in one write */
  const addLength =
    whole !== null &&
    !length &&
    req.method !== 'HEAD' &&
    out.status >= 200 &&
    out.status !== 204 &&
    out.status !== 304;
  let headers: string[] | Record<string, string | string[]>;
  if (res.getHeaderNames().length === 0) {
    /* nothing set before: the list goes as it is, repeats kept */
    const flat: string[] = [];
    for (let i = 0; i < list.length; i++) flat.push(list[i]![0], list[i]![1]);
    if (addLength) flat.push('Content-Length', String(whole.length));
    headers = flat;
  } else {
    /* repeats grouped into arrays: a flat list would go through setHeader once headers were
     * set before (Express's X-Powered-By) and keep only the last Set-Cookie */
    const grouped: Record<string, string | string[]> = {};
    const names = new Map<string, string>();
    for (const [n, v] of list) {
      const lower = n.toLowerCase();
      const first = names.get(lower);
      if (first === undefined) {
        names.set(lower, n);
        grouped[n] = v;
      } else {
        const prev = grouped[first]!;
        grouped[first] = Array.isArray(prev) ? [...prev, v] : [prev, v];
      }
    }
    if (addLength) grouped['Content-Length'] = String(whole.length);
    headers = grouped;
  }
  if (out.statusText !== '') res.writeHead(out.status, out.statusText, headers);
  else res.writeHead(out.status, headers);
  if (whole !== null) {
    /* node joins a latin-1 string to the head it has not sent yet */
    res.end(Buffer.from(whole.buffer, whole.byteOffset, whole.length).toString('latin1'), 'latin1');
  } else {
    pump(body!, res, onError);
  }
}

function makeProxy(options: ForwardOptions, prepare: Prepare, mode: Mode): Proxy {
  const client = 'client' in options ? options.client : createClient(options);
  const extra = options.params ?? {};
  const core: Core = {
    client,
    fast: client instanceof FastcgiClient ? client : null,
    prepare,
    extra,
    hasExtra: Object.keys(extra).length > 0,
    onError:
      options.onError ?? ((err: Error) => process.stderr.write(`tsgi proxy: ${err.message}\n`)),
    maxRedirects: options.maxLocalRedirects ?? DEFAULT_MAX_LOCAL_REDIRECTS,
    php: mode.php,
    spool: mode.spool,
    linger: lingerSettings(options),
  };

  const handle = (
    incoming: string[],
    body: RequestBody,
    signal: AbortSignal | undefined,
  ): Promise<Outcome> =>
    new Promise((resolve) => new PromiseFlight(core, incoming, body, signal, resolve).run());

  const app: App = async (environ, startResponse) => {
    const input = environ['tsgi.input'];
    const kept = input instanceof Readable ? input : null;
    const out = await handle(
      environPairs(environ),
      kept !== null ? keptBody(kept) : input,
      environ['tsgi.signal'],
    );
    if (kept !== null) afterAnswer(out, kept, core.linger);
    const status = `${out.status} ${out.statusText || (REASONS[out.status] ?? 'Unknown')}`;
    startResponse(status, out.headers as Headers);
    return out.body ?? (out.whole !== null && out.whole.length > 0 ? [out.whole] : []);
  };

  const node: Proxy['node'] = (req, res, next) => {
    const vars = httpVariables(req);
    if (!vars.SERVER_NAME) {
      const host = vars.HTTP_HOST;
      vars.SERVER_NAME = host ? hostOf(host) : (req.socket.localAddress ?? 'localhost');
    }
    if (!vars.SERVER_PORT) vars.SERVER_PORT = String(req.socket.localPort ?? 80);
    const pairs: string[] = [];
    for (const k in vars) pairs.push(k, vars[k]!);
    /* Express mounts (app.use('/blog', …)) strip their prefix from req.url: put it back as
     * SCRIPT_NAME and give the script the whole REQUEST_URI */
    const original = (req as IncomingMessage & { originalUrl?: string }).originalUrl;
    if (original !== undefined && original !== req.url) {
      const full = percentDecodeLatin1(requestPath(original));
      const rest = vars.PATH_INFO ?? '';
      if (full.endsWith(rest))
        setPair(pairs, 'SCRIPT_NAME', full.slice(0, full.length - rest.length));
      else if (rest === '/') setPair(pairs, 'SCRIPT_NAME', full);
      setPair(pairs, 'REQUEST_URI', original);
    }
    /* a request without Content-Length or Transfer-Encoding has no body (RFC 9112 §6.3) */
    const headers = req.headers;
    const hasBody =
      headers['content-length'] !== undefined || headers['transfer-encoding'] !== undefined;
    const body = hasBody ? keptBody(req) : null;
    const flight = new NodeFlight(core, pairs, body, req, hasBody, res, next);
    const r = res as FlightResponse;
    r[FLIGHT] = flight;
    r.once('close', onResponseClose);
    flight.run();
  };

  const fetchHandler: Proxy['fetch'] = async (request) => {
    const body = request.body === null ? null : Readable.fromWeb(request.body as never);
    const out = await handle(
      fetchPairs(request),
      body === null ? null : keptBody(body),
      request.signal,
    );
    if (body !== null) afterAnswer(out, body, core.linger);
    const headers = new Headers();
    for (const [n, v] of out.headers) headers.append(n, v);
    const empty =
      request.method === 'HEAD' ||
      out.status === 204 ||
      out.status === 304 ||
      (out.body === null && (out.whole === null || out.whole.length === 0));
    if (empty) out.body?.destroy();
    if (out.status < 200 || out.status > 599) return new Response(null, { status: 502 });
    return new Response(
      empty ? null : out.body !== null ? (Readable.toWeb(out.body) as ReadableStream) : out.whole,
      { status: out.status, statusText: out.statusText, headers },
    );
  };

  return { app, node, fetch: fetchHandler, client, close: () => client.close() };
}

/**
 * The request body `input` left unread by the backend, discarded once the answer `out` has been
 * read out (the TSGI app and the fetch handler, which never see the connection: past the
 * bounds, the body is destroyed and the server decides what becomes of the connection).
 */
function afterAnswer(out: Outcome, input: Readable, s: LingerSettings): void {
  const over = (): void => void input.destroy();
  const body = out.body;
  if (body === null) discardRest(input, s, over);
  else body.once('close', () => discardRest(input, s, over));
}

/** Proxy behaviour that differs between phpFpm and forward. */
interface Mode {
  php: boolean;
  spool: SpoolSettings | null;
}

/** The largest body sent in one write with the head. */
const SMALL_BODY = 16 * 1024;

/** A small body that has arrived whole, read out of its stream; null otherwise. */
function bufferedWhole(body: Readable): Uint8Array | null {
  if (!(body instanceof ResponseBody) || !body.complete || body.readableLength > SMALL_BODY) {
    return null;
  }
  const chunks: Buffer[] = [];
  for (let c = body.read() as Buffer | null; c !== null; c = body.read() as Buffer | null) {
    chunks.push(c);
  }
  return chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
}

/**
 * Copies `body` into `res` with backpressure; a failing body cuts the response (`res` is
 * destroyed, so that the client sees it was incomplete).
 */
function pump(body: Readable, res: ServerResponse, onError: (err: Error) => void): void {
  const onData = (chunk: Buffer): void => {
    if (!res.write(chunk)) body.pause();
  };
  const onDrain = (): void => {
    body.resume();
  };
  const onClose = (): void => {
    /* the client went away: stop the backend's answer too */
    if (!res.writableFinished) body.destroy();
  };
  body.on('data', onData);
  res.on('drain', onDrain);
  res.once('close', onClose);
  body.once('end', () => {
    res.off('drain', onDrain);
    res.end();
  });
  body.once('error', (err) => {
    res.off('drain', onDrain);
    onError(err);
    res.destroy();
  });
}

/** The variables that describe the request line and the body: rebuilt for a local redirect. */
const REDIRECT_DROPS = new Set([
  'REQUEST_METHOD',
  'PATH_INFO',
  'PATH_TRANSLATED',
  'QUERY_STRING',
  'REQUEST_URI',
  'CONTENT_LENGTH',
  'CONTENT_TYPE',
  'HTTP_TRANSFER_ENCODING',
]);

/**
 * The variables of a local redirect to `location` (a path with an optional query) from a
 * request with `incoming` variables: a GET without a body whose PATH_INFO is the path below
 * the mount (SCRIPT_NAME, kept), QUERY_STRING the query and REQUEST_URI the location; the
 * other variables (the headers, the server's, the client's) as they came. Null when the path
 * is not below the mount.
 */
function redirectedPairs(incoming: string[], location: string): string[] | null {
  const q = location.indexOf('?');
  const path = percentDecodeLatin1(q === -1 ? location : location.slice(0, q));
  const query = q === -1 ? '' : location.slice(q + 1);
  const mount = pairValue(incoming, 'SCRIPT_NAME') ?? '';
  let pathInfo = path;
  if (mount !== '') {
    if (path !== mount && !path.startsWith(mount + '/')) return null;
    pathInfo = path.slice(mount.length);
  }
  const pairs: string[] = [];
  for (let i = 0; i + 1 < incoming.length; i += 2) {
    if (!REDIRECT_DROPS.has(incoming[i]!)) pairs.push(incoming[i]!, incoming[i + 1]!);
  }
  pairs.push(
    'REQUEST_METHOD',
    'GET',
    'PATH_INFO',
    pathInfo,
    'QUERY_STRING',
    query,
    'REQUEST_URI',
    location,
  );
  return pairs;
}

/** The CGI variables of a TSGI environ as a flat list (the `tsgi.*` keys left out). */
function environPairs(env: Environ): string[] {
  const pairs: string[] = [];
  for (const key in env) {
    const v = env[key];
    if (typeof v === 'string' && !key.startsWith('tsgi.')) pairs.push(key, v);
  }
  return pairs;
}

/** The CGI variables of a fetch Request. */
function fetchPairs(request: Request): string[] {
  const url = new URL(request.url);
  const target = url.pathname + url.search;
  const https = url.protocol === 'https:';
  const pairs = [
    'REQUEST_METHOD',
    request.method,
    'SCRIPT_NAME',
    '',
    'PATH_INFO',
    percentDecodeLatin1(url.pathname),
    'QUERY_STRING',
    url.search.slice(1),
    'REQUEST_URI',
    target,
    'SERVER_PROTOCOL',
    'HTTP/1.1',
    'GATEWAY_INTERFACE',
    'CGI/1.1',
    'SERVER_SOFTWARE',
    `tsgi/${VERSION}`,
    'SERVER_NAME',
    url.hostname,
    'SERVER_PORT',
    url.port || (https ? '443' : '80'),
    'REQUEST_SCHEME',
    https ? 'https' : 'http',
  ];
  if (https) pairs.push('HTTPS', 'on');
  request.headers.forEach((value, name) => {
    if (name.includes('_')) return;
    const upper = name.toUpperCase();
    if (upper === 'CONTENT-TYPE') pairs.push('CONTENT_TYPE', value);
    else if (upper === 'CONTENT-LENGTH') pairs.push('CONTENT_LENGTH', value);
    else pairs.push('HTTP_' + upper.replace(/-/g, '_'), value);
  });
  const vars = cgiVariables(pairs);
  const out: string[] = [];
  for (const k in vars) out.push(k, vars[k]!);
  return out;
}

/** The pairs without HTTP_PROXY (httpoxy: CGI programs take it for their proxy setting). */
function withoutProxy(pairs: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    if (pairs[i] !== 'HTTP_PROXY') out.push(pairs[i]!, pairs[i + 1]!);
  }
  return out;
}

/** Forwards every request with its CGI variables (HTTP_PROXY left out) to the backend. */
export function forward(options: ForwardOptions): Proxy {
  return makeProxy(options, withoutProxy, { php: false, spool: null });
}

/** Where a request path lands below a document root. */
export interface ScriptLocation {
  /** The script's path below the root, from `/` (the SCRIPT_NAME part below the mount). */
  scriptName: string;
  /** The script's file name (root joined with scriptName). */
  filename: string;
  /** The rest of the path. */
  pathInfo: string;
}

/**
 * Finds the script a request path names below `root` (see {@link phpFpm}): the first prefix
 * whose last segment has one of `extensions` and that is a regular file inside `root` after
 * resolving symbolic links; for a path ending in `/`, the first of `index` there. `path` is
 * the decoded request path (latin-1 bytes). Null when there is none.
 */
export function locateScript(
  root: string,
  path: string,
  extensions: readonly string[],
  index: readonly string[],
): ScriptLocation | null {
  if (!path.startsWith('/') || path.includes('\0')) return null;
  let realRoot: string;
  try {
    realRoot = realpathSync.native(root);
  } catch {
    return null;
  }
  return findScript(realRoot, path, extensions, index);
}

/** {@link locateScript} below a root already resolved (no symbolic link in it). */
function findScript(
  realRoot: string,
  path: string,
  extensions: readonly string[],
  index: readonly string[],
): ScriptLocation | null {
  if (path.charCodeAt(0) !== 47 /* / */ || path.includes('\0')) return null;
  /* the path's bytes as UTF-8 (the file system's names); latin-1 again for the variables */
  const ascii = ASCII.test(path);
  const utf8 = ascii ? path : Buffer.from(path, 'latin1').toString('utf8');
  const latin1 = ascii ? same : utf8ToLatin1;
  const segments = utf8.split('/');
  for (const seg of segments) if (seg === '..' || seg === '.') return null;
  for (let i = 1; i < segments.length; i++) {
    const last = segments[i]!;
    if (!hasExtension(last, extensions)) continue;
    const file = scriptFile(realRoot, segments, i);
    if (file === null) continue;
    const rel = segments.slice(0, i + 1).join('/');
    const rest = segments.slice(i + 1);
    return {
      scriptName: latin1(rel),
      filename: file,
      pathInfo: rest.length === 0 ? '' : latin1('/' + rest.join('/')),
    };
  }
  if (utf8.endsWith('/')) {
    for (const name of index) {
      const withIndex = segments.slice(0, -1).concat(name.split('/'));
      const file = scriptFile(realRoot, withIndex, withIndex.length - 1);
      if (file !== null) {
        return {
          scriptName: latin1(utf8 + name),
          filename: file,
          pathInfo: '',
        };
      }
    }
  }
  return null;
}

/** A path of printable ASCII only: the same as latin-1 and as UTF-8 (others are converted). */
const ASCII = /^[ -~]*$/;
const same = (s: string): string => s;
const utf8ToLatin1 = (s: string): string => Buffer.from(s, 'utf8').toString('latin1');

function hasExtension(name: string, extensions: readonly string[]): boolean {
  for (const e of extensions) {
    if (
      name.length > e.length &&
      name.slice(name.length - e.length).toLowerCase() === e.toLowerCase()
    ) {
      return true;
    }
  }
  return false;
}

/**
 * The file `segments[1..last]` names below `realRoot` when it is a regular file that stays
 * inside the root: each component is looked at with lstat, and only a symbolic link costs a
 * realpath (whose target must be inside the root too). Null otherwise.
 */
function scriptFile(realRoot: string, segments: readonly string[], last: number): string | null {
  try {
    return walk(realRoot, segments, last);
  } catch {
    /* ENOTDIR, ENAMETOOLONG, EACCES, ELOOP: no script there */
    return null;
  }
}

function walk(realRoot: string, segments: readonly string[], last: number): string | null {
  let dir = realRoot;
  let name = realRoot;
  for (let k = 1; k <= last; k++) {
    const seg = segments[k]!;
    if (seg === '') {
      if (k === last) return null;
      continue;
    }
    name = name + sep + seg;
    let st = lstatSync(dir + sep + seg, { throwIfNoEntry: false });
    if (st === undefined) return null;
    if (st.isSymbolicLink()) {
      const real = realpathSync.native(dir + sep + seg);
      if (!real.startsWith(realRoot + sep)) return null;
      st = statSync(real, { throwIfNoEntry: false });
      if (st === undefined) return null;
      dir = real;
    } else {
      dir = dir + sep + seg;
    }
    if (k < last ? !st.isDirectory() : !st.isFile()) return null;
  }
  return name;
}

/** What phpFpm sets itself (and HTTP_PROXY, never sent): not taken from the incoming variables. */
const PHP_SETS = new Set([
  'HTTP_PROXY',
  'SCRIPT_FILENAME',
  'SCRIPT_NAME',
  'PATH_INFO',
  'PATH_TRANSLATED',
  'DOCUMENT_ROOT',
  'DOCUMENT_URI',
  'REDIRECT_STATUS',
]);

/**
 * PHP through php-fpm (see the file's comment): SCRIPT_FILENAME, SCRIPT_NAME, PATH_INFO,
 * PATH_TRANSLATED, DOCUMENT_ROOT, DOCUMENT_URI and REDIRECT_STATUS set as nginx's
 * fastcgi_split_path_info + try_files setups do, the other variables as they came.
 */
export function phpFpm(options: PhpFpmOptions): Proxy {
  const root = resolvePath(options.root);
  /* the root's real path, found once (and again while it cannot be found) */
  let realRoot: string | null = null;
  const index = options.index ?? ['index.php'];
  const extensions = options.extensions ?? ['.php'];
  const prepare = (incoming: string[]): string[] | null => {
    /* the last of each, as pairValue() finds it */
    let mount = '';
    let path = '';
    let uri: string | undefined;
    let query = '';
    for (let i = 0; i + 1 < incoming.length; i += 2) {
      const k = incoming[i]!;
      if (k === 'SCRIPT_NAME') mount = incoming[i + 1]!;
      else if (k === 'PATH_INFO') path = incoming[i + 1]!;
      else if (k === 'REQUEST_URI') uri = incoming[i + 1]!;
      else if (k === 'QUERY_STRING') query = incoming[i + 1]!;
    }
    if (path === '') path = '/';
    if (realRoot === null) {
      try {
        realRoot = realpathSync.native(root);
      } catch {
        return null;
      }
    }
    const found = findScript(realRoot, path, extensions, index);
    if (found === null) return null;
    /* the incoming variables (HTTP_PROXY and the ones set here left out), then the script's */
    const pairs: string[] = [];
    for (let i = 0; i + 1 < incoming.length; i += 2) {
      if (!PHP_SETS.has(incoming[i]!)) pairs.push(incoming[i]!, incoming[i + 1]!);
    }
    pairs.push(
      'SCRIPT_FILENAME',
      found.filename,
      'SCRIPT_NAME',
      mount + found.scriptName,
      'PATH_INFO',
      found.pathInfo,
    );
    if (found.pathInfo !== '') pairs.push('PATH_TRANSLATED', realRoot + found.pathInfo);
    pairs.push(
      'DOCUMENT_ROOT',
      realRoot,
      'DOCUMENT_URI',
      mount + found.scriptName + found.pathInfo,
      'REDIRECT_STATUS',
      '200',
    );
    if (uri === undefined) {
      pairs.push('REQUEST_URI', mount + path + (query === '' ? '' : '?' + query));
    }
    return pairs;
  };
  return makeProxy(options, prepare, { php: true, spool: spoolSettings(options) });
}
