/**
 * What SCGI and uwsgi share: a stream socket that carries one request at a time, a header block
 * the codec parses into params, the body right after it, and a response that is a header block
 * (`Status:` for SCGI, `HTTP/1.1` for uwsgi) followed by raw body bytes, ended by closing the
 * connection. lib/protocol/scgi.ts and lib/protocol/uwsgi.ts describe their protocol
 * ({@link StreamProtocol}) and build on this.
 *
 * Rules kept:
 * - The request starts when its header block is in; the body (CONTENT_LENGTH bytes) flows into
 *   tsgi.input with backpressure: while the app's buffer is full, or 64 KiB wait for an app that
 *   has not asked for tsgi.input yet, the socket is paused.
 * - The response is written as it comes; the gateway waits for the socket's 'drain' before
 *   pulling more body from the app. When it ends (one request per connection, the default):
 *   - the whole request was read: the socket is closed at once, as uWSGI does — the kernel
 *     sends the rest of the response, then FIN. Nothing is awaited from the peer (nginx closes
 *     its side as soon as it has the response), so a request costs no extra wakeup. A response
 *     given whole (head and body in one call) is held until the request is read whole, then
 *     written and the socket closed in one call where the socket can (the native transport's
 *     one step: a single write, then close).
 *   - the body is still coming (an app that answered without reading it all): the connection
 *     is ended (FIN) and what the peer still sends is read and dropped, so that the peer sees
 *     no reset; the socket closes when the peer closes its side.
 * - Keep-alive (uwsgi with `keepAlive`): after a response whose end the peer can tell
 *   (Content-Length matched by the bytes sent, or no body for HEAD, 1xx, 204, 304), the next
 *   request on the connection is served; a request the peer sent early (pipelined) waits until
 *   the response before it is done. Any other response ends the connection: its end is the
 *   connection's end.
 * - A malformed header block (a codec error event) ends the connection at once with a logged
 *   line `closing PROTOCOL connection from ADDR: MESSAGE (CODE)`; a peer that closes in the
 *   middle of a header block is logged too; a connection that sends nothing is closed quietly.
 * - Deadlines and caps (lib/protocol/socket.ts ConnectionLimits, kept by the server's sweep):
 *   a connection that sends nothing is closed quietly after firstByteTimeoutMs, one whose
 *   header block is not whole headerTimeoutMs after its first byte is closed with a logged
 *   line, a kept (uwsgi keep-alive) connection idle between requests after idleTimeoutMs.
 *   Bytes of unfinished header blocks count towards the server-wide maxHeadBytes, and a
 *   connection that would start a header block while maxUnfinished are unfinished is closed;
 *   either is logged (many of a kind: one summary line a second).
 * - The peer gone (the socket closed or reset): tsgi.signal aborts, tsgi.input closes early,
 *   the response stops and close() runs. The peer half-closing (FIN) after a whole request is
 *   not an abort: the response is still sent.
 * - An app error after the head left: the connection is reset (RST on TCP), so that the web
 *   server sees the response as incomplete rather than ended.
 */
import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import type { Readable, Writable } from 'node:stream';
import {
  selectedCodec,
  type Codec,
  type HeadStyle,
  type Limits,
  type Parser,
  type ScgiEvent,
  type ScgiVarsEvent,
  type UwsgiEvent,
  type UwsgiVarsEvent,
} from '../codec/index.js';
import type { CgiVariables } from '../codec/environ.js';
import { BodySource, type FlowControl } from '../gateway/body-source.js';
import { EmptyInput } from '../gateway/input.js';
import { takesLeanEnviron } from '../adapters/node.js';
import { sourcedEnviron, type EnvironSource } from '../gateway/environ.js';
import { stderrStream } from '../gateway/errors.js';
import type { Sink } from '../gateway/respond.js';
import type { App, Environ } from '../gateway/types.js';
import {
  ConnectionGateway,
  defaultLog,
  DrainWait,
  gatewayServer,
  isPeerGone,
  peerName,
  HeldBytes,
  RequestSignal,
  runApp,
  secs,
  type ConnectionLimits,
  type DrainableServer,
} from './socket.js';
import {
  socketFd,
  WatchdogAnswer,
  watchdogTarget,
  type StreamSocket,
  type TransportName,
} from './transport.js';

/** The parser events of a one-request-at-a-time protocol. */
export type StreamEvent = ScgiEvent | UwsgiEvent;

/** The events a server reads: params blocks come as CGI variables (see ScgiParser.pushVars). */
export type StreamVarsEvent = ScgiVarsEvent | UwsgiVarsEvent;

/** The request parser of a one-request-at-a-time protocol. */
export interface StreamParser extends Parser<StreamEvent> {
  pushVars(chunk: Uint8Array): StreamVarsEvent[];
}

/** What differs between the protocols served by a {@link StreamGateway}. */
export interface StreamProtocol {
  /** tsgi.protocol: "scgi", "uwsgi". */
  readonly name: string;
  /** The name in log lines: "SCGI", "uwsgi". */
  readonly title: string;
  /** How the response head starts: `Status: 200 OK` (cgi) or `HTTP/1.1 200 OK` (http). */
  readonly headStyle: HeadStyle;
  /** A request parser for one connection. */
  createParser(codec: Codec, limits?: Partial<Limits>): StreamParser;
}

/** Options of the SCGI and uwsgi servers. */
export interface StreamOptions {
  /** Codec limits for the header block (maxParamsBytes, maxPairs). */
  limits?: Partial<Limits>;
  /**
   * The codec that parses requests and frames responses. Default: the process's choice
   * ({@link selectedCodec}: TSGI_CODEC, the native codec when it loads, else the TypeScript
   * one), made when the server is created; a bad TSGI_CODEC makes creating it throw.
   */
  codec?: Codec;
  /** Deadlines and caps of connections (maxConnRequests is FastCGI's only). */
  connectionLimits?: Partial<ConnectionLimits>;
  /** Sets tsgi.multiprocess. */
  multiprocess?: boolean;
  /** Where the server's own messages go (default: stderr, one line each). */
  log?: (line: string) => void;
  /** tsgi.errors of every request (default: the process's stderr). */
  errors?: Writable;
  /**
   * The connection transport: "native" (the addon's, over libuv) or "node" (node:net).
   * Default: the process's choice (TSGI_TRANSPORT; see lib/protocol/transport.ts).
   */
  transport?: TransportName;
}

/** A net.Server for one of these protocols, with drain() for a graceful stop. */
export interface StreamListener extends DrainableServer {
  /** The protocol side: live connections, counts, destroy(). */
  readonly gateway: StreamGateway;
}

/** A head and a body up to this size leave in one buffer; larger ones in one writev. */
const CONCAT_LIMIT = 16 * 1024;

/** Serves connections of one protocol for one app; give it sockets with {@link handle}. */
export class StreamGateway extends ConnectionGateway<StreamConnection> {
  readonly limits: Partial<Limits> | undefined;
  /** The codec of this server's connections. */
  readonly codec: Codec;
  readonly multiprocess: boolean;
  readonly log: (line: string) => void;
  /** The app takes a lean environ (tsgi's own node adapter, unwrapped). */
  readonly lean: boolean;
  private errorStream: Writable | undefined;

  constructor(
    readonly protocol: StreamProtocol,
    readonly app: App,
    options: StreamOptions,
    /** Serve requests in sequence on one connection (see the module comment). */
    readonly keepAlive: boolean,
  ) {
    super(options.connectionLimits);
    this.limits = options.limits;
    this.codec = options.codec ?? selectedCodec();
    this.multiprocess = options.multiprocess ?? false;
    this.log = options.log ?? defaultLog;
    this.lean = takesLeanEnviron(app);
    this.errorStream = options.errors;
  }

  /** tsgi.errors for every request. */
  get errors(): Writable {
    if (this.errorStream === undefined) this.errorStream = stderrStream();
    return this.errorStream;
  }

  /** Serves one connected socket (a net.Socket or a native connection) until it closes. */
  handle(socket: Socket | StreamSocket): StreamConnection {
    const conn = new StreamConnection(this, socket);
    this.track(conn);
    return conn;
  }
}

/** One socket. */
export class StreamConnection implements FlowControl {
  /** null once no more requests are read from this connection (later bytes are dropped). */
  private parser: StreamParser | null;
  /** The parser, kept to be closed with the connection. */
  private readonly ownParser: StreamParser;
  private current: StreamRequest | null = null;
  /** Events of a pipelined next request, kept until the current one is done (keep-alive). */
  private queue: StreamVarsEvent[] | null = null;
  /** Reasons to keep the socket paused (a full body consumer, a queued request). */
  private pauses = 0;
  /** Bytes of a header block that has not been parsed yet arrived. */
  private partial = false;
  /** A request was served (the connection is kept: idle, not new, between requests). */
  private served = false;
  /** The server's clock when the connection's current wait began (see sweep()). */
  private mark: number;
  /** Bytes of the unfinished header block held by this connection. */
  private readonly held: HeldBytes;
  /** The peer sent FIN. */
  private peerEnded = false;
  /** The events of one push are being handled. */
  private dispatching = false;
  /** A response ended before its body while dispatching: end the socket after the push. */
  private endPending = false;
  private readonly drainWait: DrainWait;
  /**
   * The whole response (head and body) of a request answered at once, held until the request
   * is read whole: then written and the socket closed in one step where the socket can
   * ({@link StreamSocket.endWith}), else written before whatever ends the connection.
   */
  private last: [Uint8Array, Uint8Array | null] | null = null;
  /** We ended or destroyed the socket: nothing more is written. */
  closed = false;
  /**
   * Chunks may be views of the native transport's read buffer, valid during onData() only
   * (see SocketHandlers.transientChunks): the native parser copies the header block, and body
   * bytes are copied before they are kept.
   */
  readonly transientChunks: boolean;

  constructor(
    readonly gateway: StreamGateway,
    readonly socket: StreamSocket,
  ) {
    this.parser = this.ownParser = gateway.protocol.createParser(gateway.codec, gateway.limits);
    this.drainWait = new DrainWait(socket);
    this.held = new HeldBytes(gateway);
    this.mark = gateway.clock;
    this.transientChunks = socket.handleWith !== undefined && gateway.codec.name === 'native';
    if (socket.handleWith !== undefined) socket.handleWith(this);
    else {
      socket.on('data', (chunk: Buffer) => this.onData(chunk));
      socket.on('end', () => this.onEnd());
      socket.on('error', (err: Error) => this.onError(err));
      socket.on('close', () => this.onClose());
    }
  }

  /** @internal Bytes from the peer. */
  onData(chunk: Buffer): void {
    const parser = this.parser;
    const gateway = this.gateway;
    if (parser === null) {
      /* dropping what the peer still sends after our end: it is alive */
      this.mark = gateway.clock;
      return;
    }
    if (this.current === null && !this.partial && this.queue === null) {
      if (gateway.unfinished >= gateway.connectionLimits.maxUnfinished) {
        this.refuse(
          'unfinished heads cap',
          `${gateway.connectionLimits.maxUnfinished} request heads are unfinished`,
        );
        return;
      }
      gateway.unfinished++;
      this.partial = true;
      this.mark = gateway.clock;
    }
    const events = parser.pushVars(chunk);
    this.dispatching = true;
    try {
      for (let i = 0; i < events.length; i++) {
        if (this.parser === null) break;
        this.event(events[i]!);
      }
    } finally {
      this.dispatching = false;
    }
    if (this.endPending) {
      this.endPending = false;
      this.endSocket();
    }
    if (this.partial && this.parser !== null && !this.held.add(chunk.length)) {
      this.refuse(
        'head memory cap',
        `unfinished request heads hold more than ${gateway.connectionLimits.maxHeadBytes} ` +
          'bytes over all connections',
      );
    }
  }

  /** Closes the connection over a limit of `kind`, with a logged line (see logLimit). */
  private refuse(kind: string, why: string): void {
    this.gateway.logLimit(
      kind,
      `closing ${this.gateway.protocol.title} connection${peerName(this.socket)}: ${why}`,
    );
    this.destroy();
  }

  /** The header block is whole, or will never be: it no longer counts as unfinished. */
  private headDone(): void {
    if (!this.partial) return;
    this.partial = false;
    this.gateway.unfinished--;
    this.held.release();
  }

  private event(ev: StreamVarsEvent): void {
    /* body bytes are kept (queued, or by the request's body source): never a view */
    if (ev.type === 'body' && this.transientChunks) {
      ev = { type: 'body', data: Buffer.from(ev.data) };
    }
    if (this.queue !== null) {
      if (this.queue.length === 0) this.block();
      this.queue.push(ev);
      return;
    }
    switch (ev.type) {
      case 'vars': {
        this.headDone();
        const req = new StreamRequest(this, ev.contentLength);
        this.current = req;
        req.start(ev.vars);
        break;
      }
      case 'body':
        this.current?.feed(ev.data);
        break;
      case 'bodyEnd': {
        const req = this.current;
        if (req === null) break;
        req.bodyEnd();
        if (req.responded) this.next(req);
        else if (!this.gateway.keepAlive) this.parser = null;
        else this.queue = [];
        break;
      }
      case 'error':
        this.gateway.log(
          `closing ${this.gateway.protocol.title} connection${peerName(this.socket)}: ${ev.message} (${ev.code})`,
        );
        this.destroy();
        break;
    }
  }

  /** @internal The response of `req` ended (or was cut, or the peer is gone). */
  responded(req: StreamRequest): void {
    if (req !== this.current) return;
    if (req.bodyComplete) this.next(req);
    else if (!this.gateway.keepAlive) {
      /* The body's end may come in the events of this same push (an app that answered at
         once): then the request is whole and next() closes the socket. */
      if (this.dispatching) this.endPending = true;
      else this.endSocket();
    }
    /* else: the rest of the body is read (and dropped) before the next request */
  }

  /** `req` is over, its body read: the next request, or the end of the connection. */
  private next(req: StreamRequest): void {
    this.current = null;
    const g = this.gateway;
    const queued = this.queue;
    this.queue = null;
    if (!g.keepAlive) {
      this.closeSocket();
      return;
    }
    if (!req.delimited || g.draining || this.closed) {
      this.endSocket();
      return;
    }
    this.headDone();
    this.served = true;
    this.mark = g.clock;
    if (queued !== null && queued.length !== 0) {
      this.unblock();
      for (let i = 0; i < queued.length; i++) {
        if (this.parser === null) break;
        this.event(queued[i]!);
      }
    }
    if (this.peerEnded) {
      /* Requests the peer sent before its FIN are served; then the connection ends. */
      /* (this.current was set again by the replayed events) */
      const cur = this.current as StreamRequest | null;
      if (cur === null) this.endSocket();
      else cur.inputGone();
    }
  }

  /** @internal */
  get keepAlive(): boolean {
    return this.gateway.keepAlive;
  }

  /** Writes response bytes; false when the socket's buffer is full. */
  write(bytes: Uint8Array): boolean {
    if (this.closed) return true;
    return this.socket.write(bytes);
  }

  /**
   * Holds a whole response (see {@link last}) when the socket can end with it in one step and
   * the connection carries one request; false when it must be written now.
   */
  holdLast(head: Uint8Array, body: Uint8Array | null): boolean {
    if (this.closed || this.gateway.keepAlive || this.socket.endWith === undefined) return false;
    this.last = [head, body];
    return true;
  }

  /** Writes a held response the ordinary way (the connection ends otherwise). */
  private flushLast(): void {
    const last = this.last;
    if (last === null) return;
    this.last = null;
    this.writeHead(last[0], last[1]);
  }

  /** Writes a head and a body in one go (one buffer, or one writev). */
  writeHead(head: Uint8Array, body: Uint8Array | null): void {
    if (this.closed) return;
    const socket = this.socket;
    if (body === null || body.length === 0) socket.write(head);
    else if (head.length + body.length <= CONCAT_LIMIT) socket.write(Buffer.concat([head, body]));
    else {
      socket.cork();
      socket.write(head);
      socket.write(body);
      socket.uncork();
    }
  }

  /** A promise that resolves when the socket drained (or closed), or null when not needed. */
  ready(): Promise<void> | null {
    return this.closed ? null : this.drainWait.ready();
  }

  block(): void {
    if (this.pauses++ === 0) this.socket.pause();
  }

  unblock(): void {
    if (--this.pauses === 0 && !this.closed) this.socket.resume();
  }

  /** @internal While the server drains: close when no request is under way. */
  closeIfIdle(): void {
    if (this.current === null && !this.partial) this.endSocket();
  }

  /**
   * One request per connection, read whole and answered: close the socket now, as uWSGI does.
   * The kernel sends what is left of the response, then FIN; nothing from the peer is awaited
   * (it sends nothing after a request), which saves a wakeup and the peer's FIN round trip per
   * request. A response still queued in the socket takes the path of {@link endSocket}.
   */
  private closeSocket(): void {
    if (this.closed) return;
    const last = this.last;
    if (last !== null && this.socket.writableLength === 0) {
      this.last = null;
      this.closed = true;
      this.parser = null;
      this.queue = null;
      /* not all taken at once: ended as by endSocket(), what the peer sends is dropped */
      if (!this.socket.endWith!(last[0], last[1])) this.mark = this.gateway.clock;
      return;
    }
    this.flushLast();
    if (this.socket.writableLength !== 0) {
      this.endSocket();
      return;
    }
    this.closed = true;
    this.parser = null;
    this.queue = null;
    this.socket.destroy();
  }

  /** Ends our side (FIN) and drops whatever the peer still sends. */
  private endSocket(): void {
    if (this.closed) return;
    this.flushLast();
    this.closed = true;
    this.mark = this.gateway.clock;
    this.parser = null;
    this.queue = null;
    this.abortCurrent();
    this.socket.end();
    this.pauses = 0;
    this.socket.resume();
  }

  /** @internal An error after the head left: the peer must see the response as incomplete. */
  cut(): void {
    this.closed = true;
    this.parser = null;
    this.abortCurrent();
    try {
      this.socket.resetAndDestroy();
    } catch {
      /* not TCP (a unix socket): a plain close */
      this.socket.destroy();
    }
  }

  /** Ends the socket at once. */
  destroy(): void {
    this.flushLast();
    this.closed = true;
    this.parser = null;
    this.abortCurrent();
    this.socket.destroy();
  }

  private abortCurrent(): void {
    const req = this.current;
    if (req === null) return;
    this.current = null;
    req.gone();
  }

  /** @internal The peer ended its side. */
  onEnd(): void {
    this.peerEnded = true;
    const req = this.current;
    if (req !== null) {
      /* The response still goes out; an unfinished body ends early. */
      req.inputGone();
      return;
    }
    if (this.partial && !this.closed) {
      this.gateway.log(
        `closing ${this.gateway.protocol.title} connection${peerName(this.socket)}: ` +
          'the peer closed it in the middle of a request header',
      );
    }
    this.endSocket();
  }

  /** @internal A socket error (the socket closes next). */
  onError(err: Error): void {
    if (!isPeerGone(err)) {
      this.gateway.log(
        `${this.gateway.protocol.title} connection${peerName(this.socket)}: ${err.message}`,
      );
    }
  }

  /** @internal The socket closed. */
  onClose(): void {
    this.closed = true;
    this.parser = null;
    this.abortCurrent();
    this.headDone();
    this.ownParser.close();
    this.gateway.connections.delete(this);
    this.gateway.checkIdle();
  }

  /** @internal Closes the connection when it passed a deadline (the server's sweep). */
  sweep(now: number): void {
    const g = this.gateway;
    const limits = g.connectionLimits;
    if (this.closed) {
      g.closeLingering(now, this.mark, this.socket);
    } else if (this.current !== null || this.queue !== null) {
      /* a request runs: its time is the app's (--timeout) */
    } else if (this.partial) {
      if (g.passed(now, this.mark, limits.headerTimeoutMs)) {
        this.refuse(
          'header timeout',
          `no complete request header within ${secs(limits.headerTimeoutMs)} (header timeout)`,
        );
      }
    } else if (
      g.passed(now, this.mark, this.served ? limits.idleTimeoutMs : limits.firstByteTimeoutMs)
    ) {
      this.destroy();
    }
  }

  /** @internal The local address, for SERVER_NAME / SERVER_PORT when the peer sent none. */
  readonly local = (): { address: string | undefined; port: number | undefined } => ({
    address: this.socket.localAddress,
    port: this.socket.localPort,
  });
}

/** One request on a connection; the gateway's Sink for its response. */
class StreamRequest implements Sink, EnvironSource {
  /** headText() refuses a string that is not latin-1 (see Sink.headTextChecks). */
  readonly headTextChecks = true;
  private readonly input: BodySource;
  private readonly abort = new RequestSignal();
  /** The response ended, was cut, or the connection is gone: output is dropped. */
  private done = false;
  /** The whole body was read from the connection. */
  bodyComplete = false;
  /** The response ended (its end is the last byte written). */
  responded = false;
  /** Keep-alive only: the Content-Length the app declared (-1: none), and body bytes sent. */
  private declared = -1;
  private sent = 0;
  private bodyless = false;
  private method = '';

  constructor(
    private readonly conn: StreamConnection,
    /** CONTENT_LENGTH. */
    private readonly length: number,
  ) {
    this.input = new BodySource(length, conn);
  }

  get aborted(): boolean {
    return this.abort.aborted;
  }

  get signal(): AbortSignal {
    return this.abort.signal;
  }

  /** The peer can tell where the response ended without the connection closing. */
  get delimited(): boolean {
    return this.sent === this.declared || (this.sent === 0 && this.bodyless);
  }

  start(vars: CgiVariables): void {
    const conn = this.conn;
    const gateway = conn.gateway;
    const env: Environ = sourcedEnviron(
      vars,
      gateway.protocol.name,
      gateway.multiprocess,
      this,
      conn.local,
      gateway.errors,
      /* no body: an input that ends is given rather than the lazy key (a lean environ has none) */
      this.length === 0 && !gateway.lean ? new EmptyInput() : undefined,
      gateway.lean,
    );
    this.method = env.REQUEST_METHOD;
    runApp(gateway, gateway.app, env, this);
  }

  /** @internal tsgi.input, on first read. */
  makeInput(): Readable {
    return this.input.get();
  }

  /** @internal tsgi.errors, on first read. */
  makeErrors(): Writable {
    return this.conn.gateway.errors;
  }

  /** @internal tsgi.signal, on first read. */
  makeSignal(): AbortSignal {
    return this.signal;
  }

  /** @internal Where the request watchdog answers this request (see watchdogTarget). */
  answerTarget(): number {
    if (this.done) return -1;
    const style = this.conn.gateway.protocol.headStyle;
    return watchdogTarget(
      socketFd(this.conn.socket),
      style === 'cgi' ? WatchdogAnswer.Cgi : WatchdogAnswer.Http,
    );
  }

  feed(bytes: Uint8Array): void {
    this.input.feed(bytes);
  }

  bodyEnd(): void {
    this.bodyComplete = true;
    this.input.end();
  }

  /** The peer sends nothing more (FIN): an unfinished body ends early. */
  inputGone(): void {
    this.input.peerGone();
  }

  /** The connection is gone (or ended under the request). */
  gone(): void {
    this.input.drop();
    if (this.done) return;
    this.done = true;
    this.abort.abort();
  }

  private finish(): void {
    this.done = true;
    this.responded = true;
    this.input.drop();
    this.conn.responded(this);
  }

  head(status: string, headers: string[], body: Uint8Array | null, last: boolean): void {
    if (this.done) return;
    const gateway = this.conn.gateway;
    const head = gateway.codec.encodeHead(status, headers, gateway.protocol.headStyle);
    this.sendHead(status, headers, head, body, body === null ? 0 : body.length, last);
  }

  /** A short latin-1 string body: encoded with the head into one buffer by the codec. */
  headText(status: string, headers: string[], body: string, last: boolean): void {
    if (this.done) return;
    const gateway = this.conn.gateway;
    const bytes = gateway.codec.encodeHeadText(status, headers, body, gateway.protocol.headStyle);
    this.sendHead(status, headers, bytes, null, body.length, last);
  }

  /** Writes (or holds) an encoded head and the body bytes that follow it. */
  private sendHead(
    status: string,
    headers: string[],
    head: Uint8Array,
    body: Uint8Array | null,
    bodyLength: number,
    last: boolean,
  ): void {
    if (this.conn.keepAlive) this.framing(status, headers);
    if (!last || !this.conn.holdLast(head, body)) this.conn.writeHead(head, body);
    this.sent += bodyLength;
    if (last) this.finish();
  }

  /** Notes what tells the peer where this response ends (keep-alive only). */
  private framing(status: string, headers: string[]): void {
    for (let i = 0; i < headers.length; i += 2) {
      if (headers[i]!.toLowerCase() === 'content-length') {
        const v = headers[i + 1]!;
        if (/^[0-9]{1,15}$/.test(v)) this.declared = Number(v);
        break;
      }
    }
    const c = status.charCodeAt(0);
    this.bodyless =
      c === 49 /* 1xx */ ||
      status.startsWith('204') ||
      status.startsWith('304') ||
      this.method === 'HEAD';
  }

  write(chunk: Uint8Array): void {
    if (this.done) return;
    this.sent += chunk.length;
    this.conn.write(chunk);
  }

  end(): void {
    if (this.done) return;
    this.finish();
  }

  ready(): Promise<void> | null {
    if (this.done) return null;
    return this.conn.ready();
  }

  cut(): void {
    if (this.done) return;
    this.done = true;
    this.input.drop();
    this.conn.cut();
  }
}

/** A net.Server serving `protocol` to `app`; bind it with lib/server/listen.ts or listen(). */
export function createStreamServer(
  protocol: StreamProtocol,
  app: App,
  options: StreamOptions,
  keepAlive: boolean,
): StreamListener {
  return gatewayServer(
    'gateway',
    new StreamGateway(protocol, app, options, keepAlive),
    options.transport,
  );
}
