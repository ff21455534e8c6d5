/**
 * The FastCGI application side (responder, authorizer and filter roles) over any stream
 * socket: TCP, unix, or the listening socket a web server passed on fd 0.
 *
 * One FastcgiConnection per socket parses records with the codec and keeps a map of live
 * requests by id. A request starts its app when its PARAMS stream ends; STDIN (and DATA for a
 * filter) flow into tsgi.input (tsgi.data) with backpressure: while one request's consumer is
 * full the socket is paused. Output is framed by the codec, whole records per socket write,
 * so multiplexed responses never interleave mid-record; the gateway waits for 'drain' before
 * producing more body.
 *
 * Rules kept:
 * - END_REQUEST frees the id; records for ids that are not live are ignored.
 * - KEEP_CONN off: the socket is ended after END_REQUEST, once the request's input streams
 *   ended (unread STDIN is read and dropped first, so the peer sees no reset).
 * - ABORT_REQUEST: tsgi.signal aborts, tsgi.input closes early, END_REQUEST(0, COMPLETE) is
 *   sent at once and later output of that request is dropped.
 * - GET_VALUES is answered at any time with the names we know (MAX_CONNS, MAX_REQS = the
 *   per-connection cap, MPXS_CONNS = 1); a management record of an unknown type gets
 *   UNKNOWN_TYPE; a role other than 1-3 gets END_REQUEST(UNKNOWN_ROLE).
 * - A BEGIN_REQUEST is refused with END_REQUEST(OVERLOADED), for that request alone, when its
 *   connection already has maxConnRequests live requests (FCGI_MAX_REQS), when maxUnfinished
 *   requests over all connections have not finished their PARAMS, or when maxRequests are
 *   live over all connections. A peer that keeps sending requests without reading these
 *   answers (more than 256 KiB unread) loses the connection.
 * - A request is released when its connection ends, whatever its state: a request whose
 *   PARAMS had not ended when the peer half-closed will never start, and is dropped then (the
 *   connection closes once no started request is left); every request is dropped when the
 *   connection closes.
 * - Deadlines (lib/protocol/socket.ts ConnectionLimits, kept by the server's sweep): a new
 *   connection that sends nothing, bytes that do not become a whole request head, a request
 *   whose PARAMS do not end, and a kept connection idle between requests are each closed in
 *   their time; bytes held in unfinished heads count towards the server-wide maxHeadBytes.
 * - While the server drains, a request that arrives on an open connection is served (a web
 *   server may send one on a kept connection at any moment); the connection ends right after
 *   a response that leaves nothing in flight, or is handed over (DrainOptions.handover).
 * - A malformed stream (a codec error event) ends that connection with a logged reason.
 * - An app error after the head left ends the connection without END_REQUEST: the web server
 *   then knows the response is incomplete (nginx cuts the client's response too).
 */
import process from 'node:process';
import type { Socket } from 'node:net';
import type { Writable } from 'node:stream';
import {
  FCGI,
  selectedCodec,
  type Codec,
  type FcgiVarsEvent,
  type Limits,
} from '../codec/index.js';
import type { CgiVariables } from '../codec/environ.js';
import { takesLeanEnviron } from '../adapters/node.js';
import { sourcedEnviron, type EnvironSource } from '../gateway/environ.js';
import { ErrorStream, type ErrorTarget } from '../gateway/errors.js';
import { BodySource } from '../gateway/body-source.js';
import { BodyInput, contentLength } from '../gateway/input.js';
import type { Sink } from '../gateway/respond.js';
import type { App, Environ } from '../gateway/types.js';
import {
  ConnectionGateway,
  defaultLog,
  type DrainableServer,
  DrainWait,
  gatewayServer,
  HeldBytes,
  isPeerGone,
  peerName,
  runApp,
  secs,
  type ConnectionLimits,
} from './socket.js';
import {
  socketFd,
  WatchdogAnswer,
  watchdogTarget,
  type StreamSocket,
  type TransportName,
} from './transport.js';

export interface FastcgiOptions {
  /** Codec limits for params and records. */
  limits?: Partial<Limits>;
  /**
   * The codec that parses requests and frames responses. Default: the process's choice
   * ({@link selectedCodec}: TSGI_CODEC, the native codec when it loads, else the TypeScript
   * one), made when the server is created; a bad TSGI_CODEC makes creating it throw.
   */
  codec?: Codec;
  /** Live requests at once over all connections; more get OVERLOADED. Default 10000. */
  maxRequests?: number;
  /** Deadlines and caps of connections (FCGI_MAX_REQS is maxConnRequests). */
  connectionLimits?: Partial<ConnectionLimits>;
  /** Reported as FCGI_MAX_CONNS. */
  maxConnections?: number;
  /** Sets tsgi.multiprocess. */
  multiprocess?: boolean;
  /** Where the server's own messages go (default: stderr, one line each). */
  log?: (line: string) => void;
  /**
   * The connection transport: "native" (the addon's, over libuv) or "node" (node:net).
   * Default: the process's choice (TSGI_TRANSPORT; see lib/protocol/transport.ts).
   */
  transport?: TransportName;
}

const EMPTY = new Uint8Array(0);
const ROLE_NAMES = ['', 'RESPONDER', 'AUTHORIZER', 'FILTER'];
/* What happened to STDIN before its body source was made (FastcgiRequest.inputState). */
const INPUT_OPEN = 0;
const INPUT_ENDED = 1;
const INPUT_DROPPED = 2;
/* What a connection with no live request is waiting for (FastcgiConnection.phase). */
const PHASE_FRESH = 0; /* accepted, nothing received yet: firstByteTimeoutMs */
const PHASE_HEAD = 1; /* bytes of a request arrived, no BEGIN_REQUEST yet: headerTimeoutMs */
const PHASE_IDLE = 2; /* a kept connection between requests: idleTimeoutMs */
/**
 * Bytes written to a connection and not yet taken by its peer over which a refused
 * BEGIN_REQUEST ends the connection: a peer that floods refused requests without reading the
 * answers cannot make the server hold more.
 */
const MAX_UNREAD = 256 * 1024;

/** Serves FastCGI connections for one app; give it sockets with {@link FastcgiServer.handle}. */
export class FastcgiServer extends ConnectionGateway<FastcgiConnection> {
  readonly app: App;
  /** The app takes a lean environ (tsgi's own node adapter, unwrapped). */
  readonly lean: boolean;
  readonly limits: Partial<Limits> | undefined;
  /** The codec of this server's connections. */
  readonly codec: Codec;
  readonly maxRequests: number;
  readonly multiprocess: boolean;
  readonly log: (line: string) => void;
  private readonly values: Record<string, string>;
  /** Requests that have not sent END_REQUEST. */
  live = 0;

  constructor(app: App, options: FastcgiOptions = {}) {
    super(options.connectionLimits);
    this.app = app;
    this.lean = takesLeanEnviron(app);
    this.limits = options.limits;
    this.codec = options.codec ?? selectedCodec();
    this.maxRequests = options.maxRequests ?? 10000;
    this.multiprocess = options.multiprocess ?? false;
    this.log = options.log ?? defaultLog;
    this.values = {
      FCGI_MAX_CONNS: String(options.maxConnections ?? 10000),
      FCGI_MAX_REQS: String(this.connectionLimits.maxConnRequests),
      FCGI_MPXS_CONNS: '1',
    };
  }

  /** Serves one connected socket until it closes. */
  handle(socket: Socket | StreamSocket): FastcgiConnection {
    const conn = new FastcgiConnection(this, socket);
    this.track(conn);
    return conn;
  }

  /** The GET_VALUES_RESULT pairs for the asked names (unknown names are left out). */
  getValues(names: readonly string[]): string[] {
    const out: string[] = [];
    for (const name of names) {
      const v = this.values[name];
      if (v !== undefined) out.push(name, v);
    }
    return out;
  }

  /** Requests that still owe END_REQUEST hold the drain too. */
  protected override holding(): boolean {
    return this.live !== 0;
  }
}

/** One socket. */
export class FastcgiConnection {
  private readonly parser;
  private readonly requests = new RequestTable();
  /** Requests whose input consumer is full (the socket is paused while any is). */
  private blocked = 0;
  /** KEEP_CONN off: end the socket once the input streams of this finished request end. */
  private drainId = -1;
  private drainStreams = 0;
  private readonly drainWait: DrainWait;
  private ended = false;
  closed = false;
  /** With no live request: what the connection waits for (PHASE_*), since {@link mark}. */
  private phase = PHASE_FRESH;
  /** The server's clock when the phase began (or, once closed, when we ended our side). */
  private mark: number;
  /** Live requests whose PARAMS have not ended. */
  private unfinished = 0;
  /** Bytes of unfinished heads held by this connection. */
  private readonly held: HeldBytes;
  /**
   * For a handover (see {@link FastcgiConnection.handOverIfIdle}): chunks received, the last
   * one that ended with the input of every live request complete, and whether requests ever
   * overlapped here (a multiplexing peer may have sent part of the next one: never handed).
   */
  private chunks = 0;
  /** The socket's descriptor for the request watchdog (-2: not looked up yet). */
  private fd = -2;
  private inputEndChunk = 0;
  private overlapped = false;

  constructor(
    readonly server: FastcgiServer,
    readonly socket: StreamSocket,
  ) {
    this.parser = server.codec.createFcgiParser(server.limits);
    this.drainWait = new DrainWait(socket);
    this.held = new HeldBytes(server);
    this.mark = server.clock;
    socket.on('data', this.onData);
    socket.on('end', this.onEnd);
    socket.on('error', this.onError);
    socket.on('close', this.onClose);
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.closed) {
      /* what the peer still sends after our end is dropped; it is alive */
      this.mark = this.server.clock;
      return;
    }
    const requests = this.requests;
    if (requests.size === 0) {
      if (this.drainId !== -1) this.mark = this.server.clock;
      else if (this.phase !== PHASE_HEAD) {
        this.phase = PHASE_HEAD;
        this.mark = this.server.clock;
      }
    }
    const events = this.parser.pushVars(chunk);
    this.chunks++;
    for (let i = 0; i < events.length; i++) {
      if (this.closed) return;
      this.dispatch(events[i]!);
    }
    /* Bytes that stay in an unfinished head (no request of this connection has started, so
       they are not STDIN of one) count towards the server's cap. */
    if (
      !this.closed &&
      this.drainId === -1 &&
      (requests.size === 0 ? this.phase === PHASE_HEAD : this.unfinished === requests.size) &&
      !this.held.add(chunk.length)
    ) {
      this.server.logLimit(
        'head memory cap',
        `closing FastCGI connection${this.peer()}: unfinished request heads hold more than ` +
          `${this.server.connectionLimits.maxHeadBytes} bytes over all connections`,
      );
      this.destroy();
      return;
    }
    const last = events.length === 0 ? undefined : events[events.length - 1]!.type;
    if ((last === 'stdinEnd' || last === 'dataEnd') && this.inputComplete()) {
      this.inputEndChunk = this.chunks;
    }
  };

  private dispatch(ev: FcgiVarsEvent): void {
    switch (ev.type) {
      case 'begin':
        this.begin(ev.requestId, ev.role, ev.flags);
        break;
      case 'vars': {
        const req = this.requests.get(ev.requestId);
        if (req !== undefined && !req.started) {
          this.server.unfinished--;
          if (--this.unfinished === 0) this.held.release();
          req.start(ev.vars);
        }
        break;
      }
      case 'stdin':
      case 'data': {
        const req = this.requests.get(ev.requestId);
        if (req !== undefined) req.feed(ev.type, ev.data);
        break;
      }
      case 'stdinEnd':
      case 'dataEnd': {
        const req = this.requests.get(ev.requestId);
        if (req !== undefined) req.streamEnd(ev.type);
        else if (ev.requestId === this.drainId && --this.drainStreams <= 0) {
          if (this.server.draining) this.closeAtBoundary();
          else this.endSocket();
        }
        break;
      }
      case 'abort': {
        const req = this.requests.get(ev.requestId);
        if (req !== undefined) req.abortByPeer();
        break;
      }
      case 'getValues':
        this.write(this.server.codec.fcgiGetValuesResult(this.server.getValues(ev.names)));
        break;
      case 'unknown':
        if (ev.requestId === 0) this.write(this.server.codec.fcgiUnknownType(ev.recordType));
        break;
      case 'error':
        this.server.log(`closing FastCGI connection${this.peer()}: ${ev.message} (${ev.code})`);
        this.destroy();
        break;
      default:
        /* Records an application sends (STDOUT, END_REQUEST, ...) mean nothing here. */
        break;
    }
  }

  private begin(id: number, role: number, flags: number): void {
    const keepConn = (flags & FCGI.KEEP_CONN) !== 0;
    if (this.requests.has(id)) {
      this.server.log(`ignoring BEGIN_REQUEST for live request id ${id}${this.peer()}`);
      return;
    }
    if (this.requests.size !== 0) this.overlapped = true;
    const server = this.server;
    const limits = server.connectionLimits;
    let status = -1;
    if (role < FCGI.RESPONDER || role > FCGI.FILTER) status = FCGI.UNKNOWN_ROLE;
    else if (
      this.requests.size >= limits.maxConnRequests ||
      server.unfinished >= limits.maxUnfinished ||
      server.live >= server.maxRequests
    ) {
      status = FCGI.OVERLOADED;
    }
    if (status !== -1) {
      this.write(this.server.codec.fcgiEndRequest(id, 0, status));
      if (this.socket.writableLength > MAX_UNREAD) {
        /* the refusals pile up unread: the peer floods */
        server.logLimit(
          'unread refusals',
          `closing FastCGI connection${this.peer()}: it keeps sending refused ` +
            'BEGIN_REQUEST records without reading the answers',
        );
        this.destroy();
        return;
      }
      if (!keepConn) this.endSocket();
      else if (this.requests.size === 0) {
        /* nothing of this request is held: the connection waits for the next one */
        this.phase = PHASE_IDLE;
        this.mark = server.clock;
        this.held.release();
      }
      return;
    }
    server.live++;
    server.unfinished++;
    this.unfinished++;
    /* the head's deadline runs from its first byte, which may have come before this record */
    const began = this.requests.size === 0 && this.phase === PHASE_HEAD ? this.mark : server.clock;
    this.requests.add(new FastcgiRequest(this, id, role, keepConn, began));
  }

  /** Takes `req` off this connection's and the server's counts. */
  private drop(req: FastcgiRequest): void {
    this.requests.delete(req.id);
    this.server.live--;
    if (!req.started) {
      this.server.unfinished--;
      if (--this.unfinished === 0) this.held.release();
    }
  }

  /** Writes whole records; false when the socket's buffer is full. */
  write(bytes: Uint8Array): boolean {
    if (this.closed) return true;
    return this.socket.write(bytes);
  }

  /** A promise that resolves when the socket drained (or closed), or null when not needed. */
  ready(): Promise<void> | null {
    return this.closed ? null : this.drainWait.ready();
  }

  /** @internal A request's consumer is full. */
  block(): void {
    if (this.blocked++ === 0) this.socket.pause();
  }

  /** @internal A request's consumer wants more (or is gone). */
  unblock(): void {
    if (--this.blocked === 0 && !this.closed) this.socket.resume();
  }

  /** @internal END_REQUEST was sent for `req`. */
  finished(req: FastcgiRequest): void {
    this.drop(req);
    if (this.requests.size === 0) {
      this.phase = PHASE_IDLE;
      this.mark = this.server.clock;
    }
    if (!req.keepConn) {
      const open = req.openStreams;
      if (open === 0) this.endSocket();
      else {
        this.drainId = req.id;
        this.drainStreams = open;
      }
    } else if (this.requests.size === 0) {
      if (this.server.draining) {
        /* a request's input still arriving ends the socket when it ended (as above) */
        const open = req.openStreams;
        if (open === 0) this.closeAtBoundary();
        else {
          this.drainId = req.id;
          this.drainStreams = open;
        }
      } else if (this.ended) this.endSocket();
    }
    this.server.checkIdle();
  }

  /** Every live request received all of its input. */
  private inputComplete(): boolean {
    for (const r of this.requests.values()) if (r.openStreams !== 0) return false;
    return true;
  }

  /**
   * Between requests: nothing in flight, nothing received since the last request's input
   * ended (a web server sends the next request only after it read END_REQUEST), nothing
   * queued to send.
   */
  private betweenRequests(): boolean {
    return (
      !this.closed &&
      this.requests.size === 0 &&
      this.drainId === -1 &&
      !this.overlapped &&
      !this.ended &&
      this.inputEndChunk === this.chunks &&
      this.socket.writableLength === 0
    );
  }

  /** @internal While the server drains with a handover: hand this connection over if idle. */
  handOverIfIdle(): void {
    const handover = this.server.handover;
    if (handover === null || !this.betweenRequests()) return;
    const socket = this.socket;
    socket.off('data', this.onData);
    socket.off('end', this.onEnd);
    if (!handover(socket)) {
      socket.on('data', this.onData);
      socket.on('end', this.onEnd);
      return;
    }
    this.closed = true;
    const server = this.server;
    server.connections.delete(this);
    queueMicrotask(() => server.checkIdle());
  }

  /**
   * Draining, a response just ended and nothing is in flight. With a handover the connection
   * goes to a process that keeps serving, so the web server never sees it close. Else it
   * closes now, while the peer cannot have begun another request here; when the kernel took
   * the whole response the socket closes in this very call, so the FIN is there about when
   * the peer reads END_REQUEST (end() would send it an event-loop turn later). nginx can
   * still, rarely, send its next request on the connection in that instant: only the
   * handover (a worker retiring while others serve) leaves no such window.
   */
  private closeAtBoundary(): void {
    if (this.closed) return;
    this.handOverIfIdle();
    if (this.closed) return;
    if (this.socket.writableLength !== 0) {
      this.endSocket();
      return;
    }
    this.closed = true;
    this.socket.destroy();
  }

  /** @internal Cut: end the socket without END_REQUEST for the requests still on it. */
  cut(): void {
    this.endSocket();
  }

  /** @internal Called while the server drains. */
  closeIfIdle(): void {
    if (this.requests.size === 0 && this.drainId === -1) this.endSocket();
  }

  private endSocket(): void {
    if (this.closed) return;
    this.closed = true;
    this.mark = this.server.clock;
    this.abortAll();
    this.socket.end();
    this.socket.resume();
  }

  /** Ends the socket at once. */
  destroy(): void {
    this.closed = true;
    this.abortAll();
    this.socket.destroy();
  }

  private abortAll(): void {
    if (this.requests.size === 0) return;
    for (const req of this.requests.values()) {
      this.drop(req);
      req.gone();
    }
  }

  private readonly onEnd = (): void => {
    /* The peer sends no more: requests whose PARAMS had not ended never start and are
       dropped; answers to started requests may still go out. */
    this.ended = true;
    for (const req of this.requests.values()) {
      if (req.started) req.inputGone();
      else {
        this.drop(req);
        req.gone();
      }
    }
    if (this.requests.size === 0) this.endSocket();
  };

  private readonly onError = (err: Error): void => {
    if (!isPeerGone(err)) {
      this.server.log(`FastCGI connection${this.peer()}: ${err.message}`);
    }
  };

  private readonly onClose = (): void => {
    this.closed = true;
    this.abortAll();
    this.held.release();
    this.parser.close();
    this.server.connections.delete(this);
    this.server.checkIdle();
  };

  /** @internal Closes the connection when it passed a deadline (the server's sweep). */
  sweep(now: number): void {
    const server = this.server;
    const limits = server.connectionLimits;
    if (this.closed) {
      server.closeLingering(now, this.mark, this.socket);
      return;
    }
    if (this.requests.size === 0) {
      if (this.drainId !== -1) {
        if (server.passed(now, this.mark, limits.idleTimeoutMs)) this.destroy();
      } else if (this.phase === PHASE_HEAD) {
        if (server.passed(now, this.mark, limits.headerTimeoutMs)) this.headTimeout('record');
      } else if (
        server.passed(
          now,
          this.mark,
          this.phase === PHASE_FRESH ? limits.firstByteTimeoutMs : limits.idleTimeoutMs,
        )
      ) {
        this.destroy();
      }
      return;
    }
    if (this.unfinished === 0) return;
    for (const req of this.requests.values()) {
      if (!req.started && server.passed(now, req.began, limits.headerTimeoutMs)) {
        this.headTimeout(`PARAMS of request ${req.id}`);
        return;
      }
    }
  }

  private headTimeout(what: string): void {
    this.server.logLimit(
      'header timeout',
      `closing FastCGI connection${this.peer()}: no complete ${what} within ` +
        `${secs(this.server.connectionLimits.headerTimeoutMs)} (header timeout)`,
    );
    this.destroy();
  }

  /** @internal The request watchdog's target for request `id` on this connection. */
  answerTarget(id: number): number {
    if (this.closed) return -1;
    if (this.fd === -2) this.fd = socketFd(this.socket);
    return watchdogTarget(this.fd, WatchdogAnswer.Fastcgi, id);
  }

  /** @internal The local address, for SERVER_NAME / SERVER_PORT when the peer sent none. */
  readonly local = (): { address: string | undefined; port: number | undefined } => ({
    address: this.socket.localAddress,
    port: this.socket.localPort,
  });

  private peer(): string {
    return peerName(this.socket);
  }
}

/**
 * The live requests of one connection by id. A web server that does not multiplex (nginx,
 * Apache, lighttpd) has one at a time: it is kept in a field, and a Map is made only for more,
 * so that a request costs no Map entry (a Map that empties shrinks, which allocates).
 * values() is in the order the requests came.
 */
class RequestTable {
  private first: FastcgiRequest | null = null;
  private more: Map<number, FastcgiRequest> | null = null;
  size = 0;

  get(id: number): FastcgiRequest | undefined {
    const f = this.first;
    if (f !== null && f.id === id) return f;
    return this.more === null ? undefined : this.more.get(id);
  }

  has(id: number): boolean {
    return this.get(id) !== undefined;
  }

  /** Adds a request whose id is not live. */
  add(req: FastcgiRequest): void {
    if (this.first === null && (this.more === null || this.more.size === 0)) this.first = req;
    else (this.more ??= new Map()).set(req.id, req);
    this.size++;
  }

  delete(id: number): void {
    if (this.first !== null && this.first.id === id) this.first = null;
    else if (this.more === null || !this.more.delete(id)) return;
    this.size--;
  }

  values(): FastcgiRequest[] {
    const out: FastcgiRequest[] = [];
    if (this.first !== null) out.push(this.first);
    if (this.more !== null) for (const r of this.more.values()) out.push(r);
    return out;
  }

  clear(): void {
    this.first = null;
    this.more = null;
    this.size = 0;
  }
}

/** One request on a connection; the gateway's Sink for its response. */
class FastcgiRequest implements Sink, EnvironSource, ErrorTarget {
  /** headText() refuses a string that is not latin-1 (see Sink.headTextChecks). */
  readonly headTextChecks = true;
  /** STDIN as tsgi.input, made when the app asks for it or bytes come (most GETs: never). */
  private input: BodySource | null = null;
  /** tsgi.input's length (CONTENT_LENGTH, or -1), and what happened before it was made. */
  private inputLength = -1;
  private inputState = INPUT_OPEN;
  private data: BodySource | null = null;
  /** Made when the app (or the gateway) first asks for tsgi.signal. */
  private controller: AbortController | null = null;
  private abortedFlag = false;
  /** STDIN / DATA streams not yet ended by the peer. */
  openStreams: number;
  /** STDERR records were sent (an empty one must end them). */
  private stderrUsed = false;
  /** END_REQUEST sent, or the connection is gone: output is dropped. */
  private done = false;
  /** PARAMS ended and the app was started. */
  started = false;

  constructor(
    private readonly conn: FastcgiConnection,
    readonly id: number,
    readonly role: number,
    readonly keepConn: boolean,
    /** The server's clock at BEGIN_REQUEST (for the header deadline). */
    readonly began: number,
  ) {
    this.openStreams = role === FCGI.FILTER ? 2 : role === FCGI.AUTHORIZER ? 0 : 1;
  }

  get aborted(): boolean {
    return this.abortedFlag;
  }

  get signal(): AbortSignal {
    let c = this.controller;
    if (c === null) {
      c = this.controller = new AbortController();
      if (this.abortedFlag) c.abort();
    }
    return c.signal;
  }

  private abortSignal(): void {
    this.abortedFlag = true;
    this.controller?.abort();
  }

  start(vars: CgiVariables): void {
    if (this.started) return;
    this.started = true;
    vars.FCGI_ROLE = ROLE_NAMES[this.role]!;
    const conn = this.conn;
    this.inputLength = this.role === FCGI.AUTHORIZER ? 0 : contentLength(vars.CONTENT_LENGTH);
    const env: Environ = sourcedEnviron(
      vars,
      'fastcgi',
      conn.server.multiprocess,
      this,
      conn.local,
      new ErrorStream(this),
      undefined,
      conn.server.lean,
    );
    if (this.role === FCGI.FILTER) {
      const data = new BodySource(contentLength(vars.FCGI_DATA_LENGTH), conn);
      this.data = data;
      env['tsgi.data'] = data.get();
    }
    const server = conn.server;
    runApp(server, server.app, env, this);
  }

  /** STDIN's body source, made on first need with what happened to STDIN before. */
  private inputSource(): BodySource {
    let s = this.input;
    if (s === null) {
      s = this.input = new BodySource(this.inputLength, this.conn);
      if (this.inputState === INPUT_ENDED) s.end();
      else if (this.inputState === INPUT_DROPPED) s.drop();
    }
    return s;
  }

  /** @internal tsgi.input, on first read. */
  makeInput(): BodyInput {
    return this.inputSource().get();
  }

  /** @internal tsgi.errors (made with the environ): STDERR records of this request. */
  makeErrors(): Writable {
    return new ErrorStream(this);
  }

  /** @internal Bytes written to tsgi.errors. */
  errorBytes(bytes: Uint8Array): void {
    this.stderr(bytes);
  }

  /** @internal tsgi.signal, on first read. */
  makeSignal(): AbortSignal {
    return this.signal;
  }

  /** @internal Where the request watchdog answers this request (see watchdogTarget). */
  answerTarget(): number {
    return this.done ? -1 : this.conn.answerTarget(this.id);
  }

  feed(type: 'stdin' | 'data', bytes: Uint8Array): void {
    if (type === 'stdin') {
      if (this.role !== FCGI.AUTHORIZER && this.started) this.inputSource().feed(bytes);
    } else {
      this.data?.feed(bytes);
    }
  }

  streamEnd(type: 'stdinEnd' | 'dataEnd'): void {
    if (type === 'stdinEnd') {
      if (this.role === FCGI.AUTHORIZER) return;
      this.openStreams--;
      if (this.input !== null) this.input.end();
      else if (this.started && this.inputState === INPUT_OPEN) this.inputState = INPUT_ENDED;
    } else if (this.role === FCGI.FILTER) {
      this.openStreams--;
      this.data?.end();
    }
  }

  /** ABORT_REQUEST from the web server. */
  abortByPeer(): void {
    if (this.done) return;
    this.release();
    this.abortSignal();
    this.sendEnd();
  }

  /** The peer will send nothing more: unfinished input streams end early. */
  inputGone(): void {
    this.openStreams = 0;
    if (this.input !== null) this.input.peerGone();
    else if (this.started && this.inputState === INPUT_OPEN) this.inputState = INPUT_DROPPED;
    this.data?.peerGone();
  }

  /** The connection is gone. */
  gone(): void {
    if (this.done) return;
    this.done = true;
    this.release();
    this.abortSignal();
  }

  /** Drops the input streams and unpauses the socket for them. */
  private release(): void {
    if (this.input !== null) this.input.drop();
    else if (this.started) this.inputState = INPUT_DROPPED;
    this.data?.drop();
  }

  private stderr(bytes: Uint8Array): void {
    if (this.done || bytes.length === 0) {
      if (bytes.length !== 0) process.stderr.write(bytes);
      return;
    }
    this.stderrUsed = true;
    this.conn.write(this.conn.server.codec.fcgiStream(FCGI.STDERR, this.id, bytes, false));
  }

  /** The empty STDERR (when used), the empty STDOUT and END_REQUEST, then the id is free. */
  private sendEnd(): void {
    this.done = true;
    const id = this.id;
    if (this.stderrUsed)
      this.conn.write(this.conn.server.codec.fcgiStream(FCGI.STDERR, id, EMPTY, true));
    this.conn.write(this.conn.server.codec.fcgiStream(FCGI.STDOUT, id, EMPTY, true));
    this.conn.write(this.conn.server.codec.fcgiEndRequest(id, 0, FCGI.REQUEST_COMPLETE));
    this.finish();
  }

  private finish(): void {
    this.release();
    this.conn.finished(this);
  }

  head(status: string, headers: string[], body: Uint8Array | null, last: boolean): void {
    if (this.done) return;
    const whole = last && !this.stderrUsed;
    const codec = this.conn.server.codec;
    this.writeHead(codec.fcgiResponse(this.id, status, headers, body ?? EMPTY, whole), whole, last);
  }

  headText(status: string, headers: string[], body: string, last: boolean): void {
    if (this.done) return;
    const whole = last && !this.stderrUsed;
    const codec = this.conn.server.codec;
    this.writeHead(codec.fcgiResponseText(this.id, status, headers, body, whole), whole, last);
  }

  /**
   * Writes the head's records; `whole` when they end the request (END_REQUEST included),
   * else `last` when only END_REQUEST is left to send.
   */
  private writeHead(bytes: Uint8Array, whole: boolean, last: boolean): void {
    this.conn.write(bytes);
    if (whole) {
      this.done = true;
      this.finish();
    } else if (last) {
      this.sendEnd();
    }
  }

  write(chunk: Uint8Array): void {
    if (this.done) return;
    this.conn.write(this.conn.server.codec.fcgiStream(FCGI.STDOUT, this.id, chunk, false));
  }

  end(): void {
    if (this.done) return;
    this.sendEnd();
  }

  ready(): Promise<void> | null {
    if (this.done) return null;
    return this.conn.ready();
  }

  cut(): void {
    if (this.done) return;
    this.done = true;
    this.release();
    this.conn.cut();
  }
}

/** A net.Server speaking FastCGI to `app`, with drain() for a graceful stop. */
export interface FastcgiListener extends DrainableServer {
  readonly fastcgi: FastcgiServer;
}

/** A net.Server for FastCGI; bind it with lib/server/listen.ts or server.listen(). */
export function createFastcgiServer(app: App, options: FastcgiOptions = {}): FastcgiListener {
  return gatewayServer('fastcgi', new FastcgiServer(app, options), options.transport);
}
