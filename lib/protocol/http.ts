/**
 * HTTP on node:http: each request becomes the same environ and the same gateway semantics as
 * FastCGI (lib/gateway). node:http frames the response (status line, Date, keep-alive,
 * chunked encoding when no Content-Length); the gateway decides the headers.
 *
 * Environ: PATH_INFO is the request path percent-decoded byte by byte (latin-1), SCRIPT_NAME
 * is "", QUERY_STRING the raw query, REQUEST_URI the raw target; request headers become HTTP_*
 * through the same cgiVariables() as FastCGI params (repeats joined, Content-Length/-Type and
 * Proxy dropped); header names containing "_" are dropped, as nginx does, so that X_Foo cannot
 * pose as X-Foo. tsgi.input is the request itself (node ends it at Content-Length or at the
 * last chunk of a chunked body); tsgi.signal aborts when the connection closes before the
 * response finished.
 *
 * An app made by fromNodeHandler() (`--interface node`: Express, Koa, Fastify, a bare
 * handler) that no TSGI middleware wraps is not run through an environ at all: its handler
 * gets node:http's own req and res, with nothing in between. What tsgi keeps for it: a throw
 * or a rejected promise gives a 500 (or a cut response) with the error on tsgi.errors instead
 * of ending the process, Upgrade and CONNECT requests are answered 501 as through the adapter,
 * and drain() waits for running requests.
 */
import { Buffer } from 'node:buffer';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Server as NetServer, type Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import { callHandler, nodeHandlerOf, type ErrorLog, type NodeHandler } from '../adapters/node.js';
import { unsupportedRequest } from '../adapters/common.js';
import { NAMES } from '../codec/boundary.js';
import { NOT_LATIN1_RE } from '../codec/bytes.js';
import { codecError } from '../codec/errors.js';
import { addVariable, environObject, type CgiVariables } from '../codec/environ.js';
import {
  percentDecodeLatin1,
  requestPath,
  sourcedEnviron,
  type EnvironSource,
} from '../gateway/environ.js';
import { stderrStream } from '../gateway/errors.js';
import { BodyInput, contentLength } from '../gateway/input.js';
import { LINGERING_TIMEOUT_MS, lingeringClose } from '../client/linger.js';
import { respond, type Sink } from '../gateway/respond.js';
import type { DrainOptions } from './socket.js';
import { WATCHDOG_SOCKET } from './transport.js';
import type { App, Environ } from '../gateway/types.js';
import { VERSION } from '../version.js';
import { STATUS } from '../http/grammar.js';

export interface HttpOptions {
  /** tsgi.errors for every request (default: the process's stderr). */
  errors?: Writable;
  multiprocess?: boolean;
  /**
   * How long an idle keep-alive connection stays open, in ms (node:http's keepAliveTimeout;
   * default: node's, 5000). 0 keeps idle connections open until the client closes them.
   */
  keepAliveTimeout?: number;
}

const SOFTWARE = `tsgi/${VERSION}`;

/** CGI variable names of request header names, as written by clients (bounded). */
const cgiNames = new Map<string, string | null>();
const CGI_NAME_CACHE_LIMIT = 1024;

/**
 * The CGI variable of a request header name: `X-Request-Id` → `HTTP_X_REQUEST_ID`,
 * Content-Type/-Length → CONTENT_TYPE/CONTENT_LENGTH; null for a name containing "_".
 */
function cgiName(name: string): string | null {
  const known = cgiNames.get(name);
  if (known !== undefined) return known;
  let cgi: string | null;
  if (name.includes('_')) cgi = null;
  else {
    const upper = name.toUpperCase();
    if (upper === 'CONTENT-TYPE') cgi = 'CONTENT_TYPE';
    else if (upper === 'CONTENT-LENGTH') cgi = 'CONTENT_LENGTH';
    else cgi = 'HTTP_' + upper.replace(/-/g, '_');
  }
  if (cgiNames.size < CGI_NAME_CACHE_LIMIT) cgiNames.set(name, cgi);
  return cgi;
}

/**
 * The raw header names of the request before, by place in rawHeaders, and their CGI names: the
 * requests of one client (nginx's, most of all) repeat their header names in the same order,
 * and a name compared with the one at its place costs less than a lookup, which hashes the
 * new string node made for it.
 */
const lastRawNames: string[] = [];
const lastCgiNames: (string | null)[] = [];
/** The id in NAMES of each of lastCgiNames (0: not a well-known name; -1: dropped). */
const lastIds: number[] = [];

/** The place in NAMES (lib/codec/boundary.ts) of each well-known CGI name. */
const NAME_IDS: ReadonlyMap<string, number> = new Map(NAMES.map((n, i) => [n, i]));

/** A connection's addresses as CGI variables (REMOTE_*, SERVER_ADDR/PORT). */
interface SocketEnds {
  remoteAddr: string | undefined;
  remotePort: string;
  serverAddr: string;
  serverPort: string | undefined;
}

/** Where {@link socketEnds} keeps them on a connection's socket. */
const ENDS = Symbol('tsgi.socketEnds');

/** Where {@link listenedOn} keeps a server's own address. */
const LISTENED = Symbol('tsgi.listenedOn');

/**
 * The address and port a TCP server listens on, when every connection it accepts has them
 * as its local end (an address that is not a wildcard), else null. Asked of the server once.
 */
function listenedOn(server: unknown): { address: string; port: string } | null {
  if (typeof server !== 'object' || server === null) return null;
  const s = server as Server & { [LISTENED]?: { address: string; port: string } | null };
  let on = s[LISTENED];
  if (on === undefined) {
    const a = typeof s.address === 'function' ? s.address() : null;
    on =
      a !== null && typeof a === 'object' && a.address !== '0.0.0.0' && a.address !== '::'
        ? { address: a.address, port: String(a.port) }
        : null;
    /* kept while the server listens there (before, it has no address to tell) */
    if (a !== null) {
      s[LISTENED] = on;
      s.once('listening', () => delete s[LISTENED]);
    }
  }
  return on;
}

/**
 * The addresses of a connection, read from its socket once for all the requests it carries
 * (keep-alive) rather than through four getters and two number-to-string conversions each.
 * The local end is the server's address when that is not a wildcard (one getsockname() less
 * a connection), else the socket's own.
 */
function socketEnds(socket: Socket): SocketEnds {
  const held = (socket as unknown as { [ENDS]?: SocketEnds })[ENDS];
  if (held !== undefined) return held;
  const remote = socket.remoteAddress;
  const listened = listenedOn((socket as Socket & { server?: unknown }).server);
  const port = listened === null ? socket.localPort : 0;
  const ends: SocketEnds = {
    remoteAddr: remote,
    remotePort: remote === undefined ? '' : String(socket.remotePort),
    serverAddr:
      listened !== null ? listened.address : port === undefined ? '' : (socket.localAddress ?? ''),
    serverPort: listened !== null ? listened.port : port === undefined ? undefined : String(port),
  };
  /* kept only once known: a socket that is not connected yet has none to tell */
  if (remote !== undefined && port !== undefined) {
    (socket as unknown as { [ENDS]?: SocketEnds })[ENDS] = ends;
  }
  return ends;
}

/** The CGI variables of one node:http request (the environ's, without the tsgi.* keys). */
export function httpVariables(req: IncomingMessage): CgiVariables {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  let query = '';
  if (q !== -1) {
    query = url.slice(q + 1);
    const hash = query.indexOf('#');
    if (hash !== -1) query = query.slice(0, hash);
  }
  const socket = req.socket;
  /* straight into the environ object, by the rules of cgiVariables() (addVariable) */
  const vars = environObject();
  vars.REQUEST_METHOD = req.method ?? 'GET';
  vars.SCRIPT_NAME = '';
  vars.PATH_INFO = percentDecodeLatin1(requestPath(url));
  vars.QUERY_STRING = query;
  vars.REQUEST_URI = url;
  vars.SERVER_PROTOCOL = req.httpVersion === '1.1' ? 'HTTP/1.1' : `HTTP/${req.httpVersion}`;
  vars.GATEWAY_INTERFACE = 'CGI/1.1';
  vars.SERVER_SOFTWARE = SOFTWARE;
  const ends = socketEnds(socket);
  if (ends.remoteAddr !== undefined) {
    vars.REMOTE_ADDR = ends.remoteAddr;
    vars.REMOTE_PORT = ends.remotePort;
  }
  if (ends.serverPort !== undefined) {
    vars.SERVER_ADDR = ends.serverAddr;
    vars.SERVER_PORT = ends.serverPort;
  }
  const raw = req.rawHeaders;
  for (let i = 0, at = 0; i + 1 < raw.length; i += 2, at++) {
    const rawName = raw[i]!;
    let id: number;
    if (lastRawNames[at] === rawName) id = lastIds[at]!;
    else {
      const name = cgiName(rawName);
      id = name === null ? -1 : (NAME_IDS.get(name) ?? 0);
      lastRawNames[at] = rawName;
      lastCgiNames[at] = name;
      lastIds[at] = id;
    }
    if (id < 0) continue;
    const v = raw[i + 1]!;
    /*
     * A well-known name is stored by name, each store with an inline cache of its own, as in
     * the native codec's params loop; the cases are generated by scripts/gen-boundary.mjs by
     * addVariable()'s rules, and test/protocol/http.test.ts checks each against it.
     */
    // prettier-ignore
    switch (id) {
      // BEGIN generated by scripts/gen-boundary.mjs from native/boundary.json
      case 5: vars.CONTENT_TYPE = v; continue;
      case 6: vars.CONTENT_LENGTH = v; continue;
      case 36: { const p = vars.HTTP_HOST; vars.HTTP_HOST = p === undefined ? v : p + ', ' + v; continue; }
      case 37: { const p = vars.HTTP_USER_AGENT; vars.HTTP_USER_AGENT = p === undefined ? v : p + ', ' + v; continue; }
      case 38: { const p = vars.HTTP_ACCEPT; vars.HTTP_ACCEPT = p === undefined ? v : p + ', ' + v; continue; }
      case 39: { const p = vars.HTTP_ACCEPT_ENCODING; vars.HTTP_ACCEPT_ENCODING = p === undefined ? v : p + ', ' + v; continue; }
      case 40: { const p = vars.HTTP_ACCEPT_LANGUAGE; vars.HTTP_ACCEPT_LANGUAGE = p === undefined ? v : p + ', ' + v; continue; }
      case 41: { const p = vars.HTTP_ACCEPT_CHARSET; vars.HTTP_ACCEPT_CHARSET = p === undefined ? v : p + ', ' + v; continue; }
      case 42: { const p = vars.HTTP_CONNECTION; vars.HTTP_CONNECTION = p === undefined ? v : p + ', ' + v; continue; }
      case 43: { const p = vars.HTTP_KEEP_ALIVE; vars.HTTP_KEEP_ALIVE = p === undefined ? v : p + ', ' + v; continue; }
      case 44: { const p = vars.HTTP_COOKIE; vars.HTTP_COOKIE = p === undefined ? v : p + '; ' + v; continue; }
      case 45: { const p = vars.HTTP_REFERER; vars.HTTP_REFERER = p === undefined ? v : p + ', ' + v; continue; }
      case 46: { const p = vars.HTTP_ORIGIN; vars.HTTP_ORIGIN = p === undefined ? v : p + ', ' + v; continue; }
      case 47: { const p = vars.HTTP_CACHE_CONTROL; vars.HTTP_CACHE_CONTROL = p === undefined ? v : p + ', ' + v; continue; }
      case 48: { const p = vars.HTTP_PRAGMA; vars.HTTP_PRAGMA = p === undefined ? v : p + ', ' + v; continue; }
      case 49: { const p = vars.HTTP_AUTHORIZATION; vars.HTTP_AUTHORIZATION = p === undefined ? v : p + ', ' + v; continue; }
      case 50: /* HTTP_CONTENT_TYPE: dropped */ continue;
      case 51: /* HTTP_CONTENT_LENGTH: dropped */ continue;
      case 52: { const p = vars.HTTP_TRANSFER_ENCODING; vars.HTTP_TRANSFER_ENCODING = p === undefined ? v : p + ', ' + v; continue; }
      case 53: { const p = vars.HTTP_TE; vars.HTTP_TE = p === undefined ? v : p + ', ' + v; continue; }
      case 54: { const p = vars.HTTP_EXPECT; vars.HTTP_EXPECT = p === undefined ? v : p + ', ' + v; continue; }
      case 55: { const p = vars.HTTP_RANGE; vars.HTTP_RANGE = p === undefined ? v : p + ', ' + v; continue; }
      case 56: { const p = vars.HTTP_IF_RANGE; vars.HTTP_IF_RANGE = p === undefined ? v : p + ', ' + v; continue; }
      case 57: { const p = vars.HTTP_IF_MATCH; vars.HTTP_IF_MATCH = p === undefined ? v : p + ', ' + v; continue; }
      case 58: { const p = vars.HTTP_IF_NONE_MATCH; vars.HTTP_IF_NONE_MATCH = p === undefined ? v : p + ', ' + v; continue; }
      case 59: { const p = vars.HTTP_IF_MODIFIED_SINCE; vars.HTTP_IF_MODIFIED_SINCE = p === undefined ? v : p + ', ' + v; continue; }
      case 60: { const p = vars.HTTP_IF_UNMODIFIED_SINCE; vars.HTTP_IF_UNMODIFIED_SINCE = p === undefined ? v : p + ', ' + v; continue; }
      case 61: { const p = vars.HTTP_UPGRADE; vars.HTTP_UPGRADE = p === undefined ? v : p + ', ' + v; continue; }
      case 62: { const p = vars.HTTP_UPGRADE_INSECURE_REQUESTS; vars.HTTP_UPGRADE_INSECURE_REQUESTS = p === undefined ? v : p + ', ' + v; continue; }
      case 63: { const p = vars.HTTP_DNT; vars.HTTP_DNT = p === undefined ? v : p + ', ' + v; continue; }
      case 64: { const p = vars.HTTP_X_FORWARDED_FOR; vars.HTTP_X_FORWARDED_FOR = p === undefined ? v : p + ', ' + v; continue; }
      case 65: { const p = vars.HTTP_X_FORWARDED_PROTO; vars.HTTP_X_FORWARDED_PROTO = p === undefined ? v : p + ', ' + v; continue; }
      case 66: { const p = vars.HTTP_X_FORWARDED_HOST; vars.HTTP_X_FORWARDED_HOST = p === undefined ? v : p + ', ' + v; continue; }
      case 67: { const p = vars.HTTP_X_FORWARDED_PORT; vars.HTTP_X_FORWARDED_PORT = p === undefined ? v : p + ', ' + v; continue; }
      case 68: { const p = vars.HTTP_X_REAL_IP; vars.HTTP_X_REAL_IP = p === undefined ? v : p + ', ' + v; continue; }
      case 69: { const p = vars.HTTP_X_REQUESTED_WITH; vars.HTTP_X_REQUESTED_WITH = p === undefined ? v : p + ', ' + v; continue; }
      case 70: { const p = vars.HTTP_FORWARDED; vars.HTTP_FORWARDED = p === undefined ? v : p + ', ' + v; continue; }
      case 71: { const p = vars.HTTP_VIA; vars.HTTP_VIA = p === undefined ? v : p + ', ' + v; continue; }
      case 72: { const p = vars.HTTP_SEC_FETCH_DEST; vars.HTTP_SEC_FETCH_DEST = p === undefined ? v : p + ', ' + v; continue; }
      case 73: { const p = vars.HTTP_SEC_FETCH_MODE; vars.HTTP_SEC_FETCH_MODE = p === undefined ? v : p + ', ' + v; continue; }
      case 74: { const p = vars.HTTP_SEC_FETCH_SITE; vars.HTTP_SEC_FETCH_SITE = p === undefined ? v : p + ', ' + v; continue; }
      case 75: { const p = vars.HTTP_SEC_FETCH_USER; vars.HTTP_SEC_FETCH_USER = p === undefined ? v : p + ', ' + v; continue; }
      case 76: { const p = vars.HTTP_SEC_CH_UA; vars.HTTP_SEC_CH_UA = p === undefined ? v : p + ', ' + v; continue; }
      case 77: { const p = vars.HTTP_SEC_CH_UA_MOBILE; vars.HTTP_SEC_CH_UA_MOBILE = p === undefined ? v : p + ', ' + v; continue; }
      case 78: { const p = vars.HTTP_SEC_CH_UA_PLATFORM; vars.HTTP_SEC_CH_UA_PLATFORM = p === undefined ? v : p + ', ' + v; continue; }
      case 79: /* HTTP_PROXY: dropped */ continue;
      // END generated
      default:
        addVariable(vars, lastCgiNames[at]!, v);
    }
  }
  return vars;
}

/** Whether node's parser reads a body for `req` (a Content-Length above 0, or chunked). */
function hasBody(req: IncomingMessage): boolean {
  const h = req.headers;
  const length = h['content-length'];
  return h['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * The environ of one node:http request, `source` making its tsgi.input and tsgi.signal.
 * tsgi.input is the request itself when it has no body; else a stream made on first use
 * ({@link HttpSink.makeInput}).
 */
function httpEnviron(
  req: IncomingMessage,
  errors: Writable,
  source: HttpSink,
  multiprocess: boolean,
): Environ {
  const socket = req.socket;
  return sourcedEnviron(
    httpVariables(req),
    'http',
    multiprocess,
    source,
    () => ({ address: socket.localAddress, port: socket.localPort }),
    errors,
    hasBody(req) ? undefined : req,
  );
}

/**
 * tsgi.input of a request with a body: node's parser feeds a BodyInput, which pauses the
 * request while the app does not read. An app that destroys its input stops the reading only:
 * the response goes out whole, then the connection ends (the rest of the body is never read,
 * so the next request on it is not served). Destroying node's IncomingMessage itself would
 * destroy the socket at once and cut the response.
 */
function bodyInput(req: IncomingMessage, res: ServerResponse): BodyInput {
  const h = req.headers;
  const input = new BodyInput(
    h['transfer-encoding'] !== undefined ? -1 : contentLength(h['content-length']),
  );
  const onData = (chunk: Buffer): void => {
    if (!input.feed(chunk)) req.pause();
  };
  input.onWant = () => req.resume();
  req.on('data', onData);
  req.once('end', () => input.finish());
  req.once('close', () => {
    if (!req.complete) input.abort();
  });
  input.once('close', () => {
    /* given up on only when part of the body had not arrived yet (input.complete: all had) */
    if (input.complete || req.complete || req.destroyed) return;
    req.off('data', onData);
    req.pause();
    /* FIN after the response, the close LINGERING_TIMEOUT_MS later (nothing more is read) */
    const socket = req.socket;
    const end = (): void => lingeringClose(socket, LINGERING_TIMEOUT_MS);
    if (res.writableFinished) end();
    else res.once('finish', end);
  });
  return input;
}

/** The status line parsed last (most responses of a server have the status of the one before). */
let lastStatus: { line: string; code: number; reason: string | undefined } = {
  line: '',
  code: 0,
  reason: undefined,
};

/**
 * The gateway's Sink over a node:http response, and the source of the request's lazy
 * tsgi.input (the request itself) and tsgi.signal (made on first use: aborts when the
 * response closes before it finished).
 */
class HttpSink implements Sink, EnvironSource {
  /** headText() refuses a string that is not latin-1 (see Sink.headTextChecks). */
  readonly headTextChecks = true;
  private controller: AbortController | null = null;

  constructor(
    private readonly req: IncomingMessage,
    private readonly res: ServerResponse,
    private readonly draining: () => boolean,
    private readonly errors: Writable,
  ) {}

  get signal(): AbortSignal {
    let c = this.controller;
    if (c === null) {
      c = new AbortController();
      this.controller = c;
      const res = this.res;
      if (res.destroyed && !res.writableFinished) c.abort();
      else {
        res.on('close', () => {
          if (!res.writableFinished) c!.abort();
        });
      }
    }
    return c.signal;
  }

  get aborted(): boolean {
    const c = this.controller;
    if (c !== null) return c.signal.aborted;
    const res = this.res;
    return res.destroyed && !res.writableFinished;
  }

  makeInput(): Readable {
    const req = this.req;
    return hasBody(req) ? bodyInput(req, this.res) : req;
  }

  makeErrors(): Writable {
    return this.errors;
  }

  makeSignal(): AbortSignal {
    return this.signal;
  }

  private writeHead(status: string, headers: string[]): ServerResponse {
    let parsed = lastStatus;
    if (parsed.line !== status) {
      const m = STATUS.exec(status);
      if (m === null) throw new Error(`invalid status line ${JSON.stringify(status)}`);
      parsed = { line: status, code: Number(m[1]), reason: m[2] };
      lastStatus = parsed;
    }
    const res = this.res;
    if (this.draining()) res.shouldKeepAlive = false;
    if (parsed.reason !== undefined) res.writeHead(parsed.code, parsed.reason, headers);
    else res.writeHead(parsed.code, headers);
    return res;
  }

  head(status: string, headers: string[], body: Uint8Array | null, last: boolean): void {
    const res = this.writeHead(status, headers);
    if (last) {
      if (body !== null) res.end(body);
      else res.end();
    } else if (body !== null) {
      res.write(body);
    }
  }

  /**
   * A short string body: given to node as a string, it leaves in one write with the head,
   * where a Buffer body is a second buffer of a writev. node would write a character above
   * U+00FF as its low byte: such a body is refused first, as the codecs refuse it.
   */
  headText(status: string, headers: string[], body: string, last: boolean): void {
    if (NOT_LATIN1_RE.test(body)) throw codecError('ENCODE_NOT_LATIN1');
    const res = this.writeHead(status, headers);
    if (last) res.end(body, 'latin1');
    else res.write(body, 'latin1');
  }

  write(chunk: Uint8Array): void {
    this.res.write(chunk);
  }

  end(): void {
    this.res.end();
  }

  ready(): Promise<void> | null {
    const res = this.res;
    if (!res.writableNeedDrain || res.destroyed) return null;
    return new Promise((resolve) => {
      const done = (): void => {
        res.off('drain', done);
        res.off('close', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
    });
  }

  cut(): void {
    this.res.destroy();
  }
}

/** A node:http server running `app`, with drain() for a graceful stop. */
export interface HttpServer extends Server {
  /**
   * Stops accepting and lets running requests finish; responses sent while draining say
   * `Connection: close`. Without `keepIdle`, kept-alive connections holding no request close,
   * and the drain ends when no request runs (a connection that has sent nothing yet closes
   * with the process).
   *
   * With `keepIdle` (a worker retiring while others keep accepting on the same socket) no
   * connection is closed for being idle: a connection accepted just before the listener
   * closed may be carrying a request this moment, and closing it would lose that request
   * (the client sees the connection close with no answer, and does not retry on a new
   * connection). Each connection closes after its next response, when its client closes it,
   * or on {@link closeIdle}; the drain ends when no request runs and every connection closed.
   */
  drain(options?: DrainOptions): Promise<void>;
  /** Closes the connections that hold no request now (the end of keepIdle). */
  closeIdle(): void;
  /** True when no request is running. */
  readonly idle: boolean;
}

/** How often a drain with keepIdle looks again whether every connection closed. */
const CLOSED_POLL_MS = 20;

export function createHttpServer(app: App, options: HttpOptions = {}): HttpServer {
  const errors = options.errors ?? stderrStream();
  const multiprocess = options.multiprocess ?? false;
  let running = 0;
  let draining = false;
  let keepIdle = false;
  let waiters: (() => void)[] = [];
  let polling = false;
  const isDraining = (): boolean => draining;

  const release = (): void => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  /**
   * While draining, once no request runs: without keepIdle, closes the kept-alive connections
   * and ends the drain; with it, ends the drain when every connection closed (counted by
   * node, so nothing is kept per connection; looked at again every CLOSED_POLL_MS).
   */
  const checkDrained = (): void => {
    if (!draining || running !== 0) return;
    if (!keepIdle) {
      server.closeIdleConnections();
      release();
      return;
    }
    if (polling) return;
    polling = true;
    server.getConnections((err, count) => {
      polling = false;
      if (!draining || running !== 0) return;
      if (!keepIdle || (err === null && count === 0)) release();
      else setTimeout(checkDrained, CLOSED_POLL_MS).unref();
    });
  };
  const settle = (): void => {
    running--;
    if (draining) checkDrained();
  };

  const direct = nodeHandlerOf(app);
  const handler =
    direct === null
      ? (req: IncomingMessage, res: ServerResponse): void => {
          const sink = new HttpSink(req, res, isDraining, errors);
          const env = httpEnviron(req, errors, sink, multiprocess);
          (env as unknown as Record<symbol, unknown>)[WATCHDOG_SOCKET] = req.socket;
          running++;
          const pending = respond(app, env, sink);
          if (pending === undefined) settle();
          else pending.then(settle);
        }
      : nodeRequest(direct, errorLog(errors), (res) => {
          running++;
          if (draining) res.shouldKeepAlive = false;
          /* on(), not once(): 'close' comes once, and once() makes a wrapper per request */
          res.on('close', settle);
        });

  const server = createServer(handler) as HttpServer;
  if (direct !== null) {
    server.on('connect', refuseTunnel);
    server.on('upgrade', refuseTunnel);
  }
  if (options.keepAliveTimeout !== undefined) server.keepAliveTimeout = options.keepAliveTimeout;
  server.drain = (drainOptions: DrainOptions = {}) => {
    draining = true;
    keepIdle = drainOptions.keepIdle === true;
    const done = new Promise<void>((resolve) => waiters.push(resolve));
    /* net.Server's close: http.Server's would also close idle connections, and on some Node
       versions ones that have sent nothing yet */
    if (server.listening) NetServer.prototype.close.call(server);
    if (!keepIdle) server.closeIdleConnections();
    checkDrained();
    return done;
  };
  server.closeIdle = () => {
    keepIdle = false;
    server.closeIdleConnections();
    checkDrained();
  };
  Object.defineProperty(server, 'idle', { get: () => running === 0 });
  return server;
}

/** tsgi.errors of the direct node path: the server's error stream. */
function errorLog(errors: Writable): ErrorLog {
  return {
    log(text: string): void {
      try {
        errors.write(text.endsWith('\n') ? text : text + '\n');
      } catch {
        /* nothing better to do */
      }
    },
  };
}

/**
 * node:http's 'connect' and 'upgrade' events (CONNECT, and Upgrade with Connection: upgrade):
 * answered 501 as the adapters answer them, and the connection closes.
 */
function refuseTunnel(req: IncomingMessage, socket: Socket): void {
  const reason =
    unsupportedRequest({
      REQUEST_METHOD: req.method,
      HTTP_UPGRADE: req.headers.upgrade,
      HTTP_CONNECTION: req.headers.connection,
    } as unknown as Environ) ?? 'this request cannot be served';
  const body = `501 Not Implemented: ${reason}\n`;
  socket.on('error', () => {});
  socket.end(
    'HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\n' +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}

/** The request listener of the direct node path: node's own req/res go to `handler`. */
function nodeRequest(
  handler: NodeHandler,
  errors: ErrorLog,
  started: (res: ServerResponse) => void,
): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    started(res);
    callHandler(handler, req, res, errors);
  };
}
