/**
 * The FastCGI client: a pool of kept-alive connections (FCGI_KEEP_CONN) to one backend.
 *
 * - One request per connection at a time, request id 1, unless `multiplex` is asked for and
 *   the backend's GET_VALUES_RESULT says FCGI_MPXS_CONNS=1 (then up to FCGI_MAX_REQS ids per
 *   connection).
 * - A connection the backend closed while idle (php-fpm recycling a worker after
 *   pm.max_requests) leaves the pool; a request that fails on a reused connection before any
 *   byte of its answer arrived is sent again, once, on a new connection, when its body can be
 *   sent again: given whole, or streamed with no byte of it written yet (a chunk read from the
 *   stream but not written is kept for the new connection). Otherwise it fails (ECONNRESET):
 *   a body is never sent twice, nor half.
 * - Records are encoded and parsed by the codec (records of at most 65535 content bytes both
 *   ways); STDOUT is parsed as a CGI response head (head.ts) then streamed with backpressure:
 *   while the caller does not read, the connection is not read either. An answer that arrives
 *   whole (head, body and END_REQUEST in one read) is handed over as bytes, its stream made
 *   only if asked for.
 * - STDERR goes to the `stderr` callback and never fails the response.
 * - A request the backend ends before its streamed body was sent whole gets no more of it: its
 *   STDIN is ended with an empty record and the connection is kept (see `stdinCut`).
 * - An abort (the caller's signal, or a timeout) sends ABORT_REQUEST; the connection is
 *   reused once the backend ends that request, and closed when it does not within a second.
 *
 * The hot path allocates one object per request ({@link Call}: the request, its place in the
 * queue, its signal listener and its body's owner at once) and no promise, closure or timer:
 * the read and idle timeouts are one lazily re-armed timer per connection, the queue timeout
 * one timer per client, and a freed slot goes straight to the next queued request.
 */
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import { selectedCodec } from '../codec/index.js';
import { FCGI, type Codec, type FcgiParser } from '../codec/types.js';
import {
  abortError,
  Answer,
  describeAddress,
  EMPTY,
  LimitedClient,
  openSocket,
  requestParts,
  ResponseBody,
  Waiter,
  wholeBody,
  type BodyOwner,
  type ClientRequest,
  type ClientResponse,
  type CommonOptions,
  type Limiter,
  type Receiver,
  type RequestBody,
  type Settings,
  type Started,
} from './common.js';
import { ClientError, socketError } from './errors.js';
import { findHeadEnd, HeadError, parseHead, type ResponseHead } from './head.js';

/** Options of {@link FastcgiClient}. */
export interface FastcgiClientOptions extends CommonOptions {
  /**
   * Keep connections open between requests (FCGI_KEEP_CONN, default true). Each kept
   * connection holds one php-fpm worker while it is open: keep `maxConcurrent` at or below
   * pm.max_children.
   */
  keepAlive?: boolean;
  /** Milliseconds an idle connection stays in the pool (default 30000). */
  idleTimeout?: number;
  /**
   * Ask the backend (GET_VALUES) whether it multiplexes requests on a connection, and do so
   * when it says FCGI_MPXS_CONNS=1 (default false).
   */
  multiplex?: boolean;
  /** Where STDERR goes (default: the process's stderr, prefixed with the backend). */
  stderr?: (chunk: Buffer) => void;
  /** The codec (default: the active one). */
  codec?: Codec;
}

/** Milliseconds a connection may take to end an aborted request before it is closed. */
const ABORT_GRACE = 1000;

/** The largest response head. */
const MAX_HEAD = 65536;

/** One result of a body's iterator. */
type BodyResult = IteratorResult<Uint8Array | string>;

/**
 * A streamed request body, read for one request across its attempts: a chunk read while the
 * connection failed under it is kept for the retry, and `consumed` says whether any byte went
 * out (then the body cannot be sent again).
 */
class BodyReader {
  /** A chunk of the body was written to a connection. */
  consumed = false;
  private it: AsyncIterator<Uint8Array | string> | null = null;
  /** A result read while nobody was waiting for it. */
  private pending: BodyResult | null = null;
  private failure: { error: unknown } | null = null;
  private reading = false;
  private finished = false;
  /** Closed while a read was under way: ended once it comes back. */
  private abandoned = false;
  private owner: Call | null = null;
  private readonly onResult = (r: BodyResult): void => {
    this.reading = false;
    if (this.abandoned) {
      this.end();
      return;
    }
    if (r.done === true) this.finished = true;
    const owner = this.owner;
    if (owner === null) {
      this.pending = r;
      return;
    }
    this.owner = null;
    owner.pool.bodyChunk(owner, r);
  };
  private readonly onFailure = (error: unknown): void => {
    this.reading = false;
    this.finished = true;
    if (this.abandoned) return;
    this.failure = { error };
    const owner = this.owner;
    if (owner === null) return;
    this.owner = null;
    owner.pool.bodyFailed(owner, error);
  };

  constructor(private readonly source: AsyncIterable<Uint8Array | string>) {}

  /** The next result goes to `owner` (now, when one is kept, or once read). */
  pull(owner: Call): void {
    this.owner = owner;
    if (this.pending !== null) {
      const r = this.pending;
      this.pending = null;
      this.owner = null;
      owner.pool.bodyChunk(owner, r);
      return;
    }
    if (this.failure !== null) {
      this.owner = null;
      owner.pool.bodyFailed(owner, this.failure.error);
      return;
    }
    if (this.reading) return;
    this.reading = true;
    try {
      this.it ??= this.source[Symbol.asyncIterator]();
      this.it.next().then(this.onResult, this.onFailure);
    } catch (err) {
      this.onFailure(err);
    }
  }

  /** Nobody waits for the result being read now: it is kept for the next pull(). */
  detach(): void {
    this.owner = null;
  }

  /**
   * No attempt reads more: the iterator is ended (a stream is destroyed), as a `for await`
   * loop would end it: at once when no read is under way, else when that read comes back.
   */
  close(): void {
    this.owner = null;
    if (this.finished || this.abandoned) return;
    if (this.reading) {
      this.abandoned = true;
      return;
    }
    this.end();
  }

  private end(): void {
    this.finished = true;
    const it = this.it;
    if (it === null || typeof it.return !== 'function') return;
    try {
      it.return().catch(() => undefined);
    } catch {
      /* a throwing return(): nothing more to do */
    }
  }
}

/** One request, from its admission to its end (across a retry). */
class Call extends Waiter implements Started, BodyOwner {
  conn: Conn | null = null;
  id = 0;
  /** Sent on a connection that carried requests before (the backend may have closed it). */
  reused = false;
  retried = false;
  /** Holds a slot of the limiter. */
  slot = false;
  /** A byte of the answer arrived: the request cannot be sent again. */
  answered = false;
  /** Finished (END_REQUEST, failure or abort). */
  done = false;
  /** ABORT_REQUEST was sent: wait for END_REQUEST, report nothing more. */
  aborting = false;
  /** The request was fully written (STDIN ended). */
  sent = false;
  /** The consumer's buffer is full: the connection waits, and so does the read timeout. */
  paused = false;
  /** When the backend last sent something for it (performance.now()), or when it was sent. */
  activeAt = 0;
  headBuf: Buffer | null = null;
  /** The head, parsed, until it is handed over (at the end of the read it came in). */
  head: ResponseHead | null = null;
  /** Body bytes that came with the head. */
  chunks: Buffer[] | null = null;
  /** END_REQUEST came in the read being handled (its protocol status), else -1. */
  endStatus = -1;
  /** onResponse() was called. */
  responded = false;
  body: ResponseBody | null = null;
  totalTimer: NodeJS.Timeout | null = null;

  constructor(
    readonly pool: Pool,
    readonly pairs: string[],
    readonly whole: Uint8Array | null,
    readonly reader: BodyReader | null,
    readonly signal: AbortSignal | undefined,
    readonly stderr: (chunk: Buffer) => void,
    readonly rx: Receiver,
  ) {
    super();
  }

  admitted(): void {
    this.slot = true;
    this.pool.go(this, false);
  }

  refused(err: Error): void {
    this.pool.failCall(this, err);
  }

  cancel(err?: Error): void {
    this.pool.abort(this, err ?? new ClientError('ABORT_ERR', 'the request was aborted'));
  }

  /** The signal aborted. */
  handleEvent(): void {
    this.pool.abort(this, abortError(this.signal!));
  }

  bodyRead(): void {
    this.pool.resume(this);
  }

  /** The consumer destroyed the body before its end: abort the request. */
  bodyClosed(): void {
    this.body = null;
    if (!this.done) this.pool.abort(this, abortError(AbortSignal.abort()));
  }
}

class Conn {
  readonly exchanges = new Map<number, Call>();
  /** Requests this connection carried (a reused connection may have been closed by the server). */
  served = 0;
  closed = false;
  /** In the pool's idle stack. */
  idle = false;
  /** Since when it is idle (performance.now()). */
  idleSince = 0;
  /** Exchanges that keep the socket paused (consumers not reading). */
  pausedBy = 0;
  readTimer: NodeJS.Timeout | null = null;
  idleTimer: NodeJS.Timeout | null = null;
  /** Calls whose head came in the read being handled, to be handed over at its end. */
  readonly heads: Call[] = [];
  /** Calls whose END_REQUEST came in the read being handled. */
  readonly ends: Call[] = [];
  constructor(
    readonly socket: Socket,
    readonly parser: FcgiParser,
  ) {}

  freeId(): number {
    let id = 1;
    while (this.exchanges.has(id)) id++;
    return id;
  }
}

/** What GET_VALUES reported (as strings, as the backend sent them). */
export type FastcgiValues = Record<string, string>;

/** The FastCGI-specific options, resolved. */
interface PoolOptions {
  codec: Codec;
  keepAlive: boolean;
  idleTimeout: number;
  defaultStderr: (chunk: Buffer) => void;
}

/**
 * A FastCGI client with a connection pool. `request()` resolves once the response head has
 * arrived; `close()` ends idle connections and refuses new requests.
 */
export class FastcgiClient extends LimitedClient {
  private readonly codec: Codec;
  private readonly multiplex: boolean;
  private readonly pool: Pool;
  private probed: Promise<void> | null = null;
  private probeDone = false;

  constructor(options: FastcgiClientOptions) {
    super(options);
    this.codec = options.codec ?? selectedCodec();
    this.multiplex = options.multiplex ?? false;
    const where = describeAddress(this.s.address);
    this.pool = new Pool(this.s, this.limiter, {
      codec: this.codec,
      keepAlive: options.keepAlive ?? true,
      idleTimeout: options.idleTimeout ?? 30000,
      defaultStderr:
        options.stderr ??
        ((chunk) =>
          process.stderr.write(`tsgi: FastCGI stderr from ${where}: ${chunk.toString()}`)),
    });
  }

  /** Connections open now (idle or busy). */
  get connections(): number {
    return this.pool.conns.size;
  }

  /** Sends a request; resolves with the status, the headers and the streamed body. */
  request(req: ClientRequest): Promise<ClientResponse> {
    return new Promise<ClientResponse>((resolve, reject) => {
      const { pairs, body, signal } = requestParts(req);
      this.start(pairs, body, signal, { onResponse: resolve, onError: reject }, req.stderr);
    });
  }

  /**
   * Starts a request whose outcome goes to `rx` (see {@link Receiver}): what `request()` does,
   * without a promise. `pairs` becomes the client's. The returned handle cancels it.
   */
  start(
    pairs: string[],
    body: RequestBody,
    signal: AbortSignal | undefined,
    rx: Receiver,
    stderr?: (chunk: Buffer) => void,
  ): Started {
    let ready: Promise<void> | null = null;
    if (this.multiplex && !this.probeDone) {
      this.probed ??= this.probe().finally(() => {
        this.probeDone = true;
      });
      ready = this.probed;
    }
    return this.pool.start(pairs, body, signal, rx, stderr, this.closing, ready);
  }

  /**
   * Asks the backend for FastCGI values (FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS) on a
   * connection of its own: a health check.
   */
  async getValues(
    names: readonly string[] = ['FCGI_MAX_CONNS', 'FCGI_MAX_REQS', 'FCGI_MPXS_CONNS'],
  ): Promise<FastcgiValues> {
    const socket = await openSocket(this.s);
    const parser = this.codec.createFcgiParser();
    return new Promise<FastcgiValues>((resolve, reject) => {
      const timer = setTimeout(
        () => finish(new ClientError('ETIMEDOUT', 'no GET_VALUES_RESULT in time')),
        this.s.connectTimeout,
      );
      const finish = (err: Error | null, values?: FastcgiValues): void => {
        clearTimeout(timer);
        socket.destroy();
        if (err !== null) reject(err);
        else resolve(values!);
      };
      socket.on('data', (chunk: Buffer) => {
        for (const ev of parser.push(chunk)) {
          if (ev.type === 'getValuesResult') {
            const values: FastcgiValues = {};
            for (let i = 0; i + 1 < ev.pairs.length; i += 2)
              values[ev.pairs[i]!] = ev.pairs[i + 1]!;
            finish(null, values);
            return;
          }
          if (ev.type === 'error') {
            finish(new ClientError('EPROTO', `bad record from the backend: ${ev.message}`));
            return;
          }
        }
      });
      socket.on('error', (e) => finish(socketError(e, 'GET_VALUES')));
      socket.on('close', () =>
        finish(
          new ClientError(
            'ECONNRESET',
            'the backend closed the connection without GET_VALUES_RESULT',
          ),
        ),
      );
      socket.write(this.codec.fcgiGetValues(names));
    });
  }

  /** Refuses new requests, rejects queued ones, closes idle connections; running ones finish. */
  close(): Promise<void> {
    this.stopAdmitting();
    return this.pool.close();
  }

  private async probe(): Promise<void> {
    try {
      const v = await this.getValues();
      if (v.FCGI_MPXS_CONNS === '1') {
        const max = Number(v.FCGI_MAX_REQS);
        this.pool.perConn = Number.isInteger(max) && max > 0 ? Math.min(max, 65535) : 100;
      }
    } catch {
      /* the backend did not answer: one request per connection */
    }
  }
}

/** The connections to one backend and the requests on them. */
class Pool {
  readonly conns = new Set<Conn>();
  /** Requests per connection: 1, or FCGI_MAX_REQS once the backend said it multiplexes. */
  perConn = 1;
  closing = false;
  /** Idle connections, the most recently used last (one request per connection). */
  private readonly idle: Conn[] = [];
  /** The connection being opened now (multiplexing waits for it). */
  private opening: Promise<Conn> | null = null;
  private readonly codec: Codec;
  private readonly keepAlive: boolean;
  private readonly idleTimeout: number;
  private readonly defaultStderr: (chunk: Buffer) => void;
  /** BEGIN_REQUEST of request id 1 (what nearly every request uses), encoded once. */
  private readonly begin1: Uint8Array;
  /** The empty STDIN record (end of the body) of request id 1, encoded once. */
  private readonly stdinEnd1: Uint8Array;

  constructor(
    readonly s: Settings,
    private readonly limiter: Limiter,
    o: PoolOptions,
  ) {
    this.codec = o.codec;
    this.keepAlive = o.keepAlive;
    this.idleTimeout = o.idleTimeout;
    this.defaultStderr = o.defaultStderr;
    /* copies: a codec may hand out views of a buffer it reuses */
    this.begin1 = Buffer.from(
      this.codec.fcgiBeginRequest(1, FCGI.RESPONDER, this.keepAlive ? FCGI.KEEP_CONN : 0),
    );
    this.stdinEnd1 = Buffer.from(this.codec.fcgiStream(FCGI.STDIN, 1, EMPTY, true));
  }

  start(
    pairs: string[],
    body: RequestBody,
    signal: AbortSignal | undefined,
    rx: Receiver,
    stderr: ((chunk: Buffer) => void) | undefined,
    closing: boolean,
    ready: Promise<void> | null,
  ): Call {
    const whole = wholeBody(body);
    const call = new Call(
      this,
      pairs,
      whole,
      whole === null ? new BodyReader(body as AsyncIterable<Uint8Array | string>) : null,
      signal,
      stderr ?? this.defaultStderr,
      rx,
    );
    if (closing || this.closing) {
      this.failCall(call, new ClientError('ECLOSED', 'the client is closed'));
      return call;
    }
    if (signal !== undefined) {
      if (signal.aborted) {
        this.failCall(call, abortError(signal));
        return call;
      }
      signal.addEventListener('abort', call);
    }
    if (this.s.timeout > 0) {
      call.totalTimer = setTimeout(onTotalTimeout, this.s.timeout, call);
      call.totalTimer.unref();
    }
    if (ready !== null) void ready.then(() => this.admit(call));
    else this.admit(call);
    return call;
  }

  private admit(call: Call): void {
    if (call.done) return;
    if (this.closing) {
      this.failCall(call, new ClientError('ECLOSED', 'the client is closed'));
      return;
    }
    let now: boolean;
    try {
      now = this.limiter.enter(call);
    } catch (err) {
      this.failCall(call, err as Error);
      return;
    }
    if (now) {
      call.slot = true;
      this.go(call, false);
    }
  }

  /** Puts `call` (holding a slot) on a connection: an idle one, else a new one. */
  go(call: Call, fresh: boolean): void {
    if (call.done) return;
    if (!fresh) {
      const conn = this.pick();
      if (conn !== null) {
        this.send(call, conn);
        return;
      }
      /* multiplexing: wait for the connection being opened rather than open one more */
      if (this.perConn > 1 && this.opening !== null) {
        const again = (): void => this.go(call, false);
        this.opening.then(again, again);
        return;
      }
    }
    const opening = openSocket(this.s, call.signal).then((socket) => this.addConn(socket));
    this.opening = opening;
    opening.then(
      (conn) => {
        if (this.opening === opening) this.opening = null;
        if (call.done || conn.closed) {
          /* the request went away meanwhile: the connection joins the pool */
          if (call.done) this.settle(conn);
          else this.failCall(call, connectionLost(null));
          return;
        }
        this.send(call, conn);
      },
      (err: Error) => {
        if (this.opening === opening) this.opening = null;
        this.failCall(call, err);
      },
    );
  }

  /** A connection with a free request slot, or null. */
  private pick(): Conn | null {
    if (this.perConn === 1) {
      const idle = this.idle;
      while (idle.length > 0) {
        const c = idle.pop()!;
        c.idle = false;
        if (!c.closed && c.exchanges.size === 0) return c;
      }
      return null;
    }
    let best: Conn | null = null;
    for (const c of this.conns) {
      if (c.closed || c.exchanges.size >= this.perConn) continue;
      if (best === null || c.served > best.served) best = c;
    }
    return best;
  }

  private addConn(socket: Socket): Conn {
    const conn = new Conn(socket, this.codec.createFcgiParser());
    this.conns.add(conn);
    socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
    socket.on('error', (err) => this.onClose(conn, err));
    socket.on('close', () => this.onClose(conn, null));
    return conn;
  }

  /** Writes `call`'s request on `conn`: one write when its body is whole. */
  private send(call: Call, conn: Conn): void {
    const id = conn.freeId();
    call.conn = conn;
    call.id = id;
    call.reused = conn.served > 0;
    conn.served++;
    conn.exchanges.set(id, call);
    const c = this.codec;
    let params: Uint8Array;
    try {
      params = c.fcgiParams(id, call.pairs);
    } catch (err) {
      conn.exchanges.delete(id);
      call.conn = null;
      this.settle(conn);
      this.failCall(call, err as Error);
      return;
    }
    const begin =
      id === 1
        ? this.begin1
        : c.fcgiBeginRequest(id, FCGI.RESPONDER, this.keepAlive ? FCGI.KEEP_CONN : 0);
    const whole = call.whole;
    if (whole !== null) {
      const stdin =
        id === 1 && whole.length === 0 ? this.stdinEnd1 : c.fcgiStream(FCGI.STDIN, id, whole, true);
      conn.socket.write(Buffer.concat([begin, params, stdin]));
      this.sent(call, conn);
      return;
    }
    conn.socket.write(Buffer.concat([begin, params]));
    call.reader!.pull(call);
  }

  private sent(call: Call, conn: Conn): void {
    call.sent = true;
    if (this.s.readTimeout > 0) {
      call.activeAt = performance.now();
      this.armRead(conn);
    }
  }

  /** The next result of `call`'s streamed body. */
  bodyChunk(call: Call, r: BodyResult): void {
    const conn = call.conn;
    if (call.done || call.aborting || conn === null || conn.closed) return;
    const socket = conn.socket;
    if (r.done === true) {
      socket.write(
        call.id === 1 ? this.stdinEnd1 : this.codec.fcgiStream(FCGI.STDIN, call.id, EMPTY, true),
      );
      this.sent(call, conn);
      return;
    }
    const v = r.value;
    const chunk = typeof v === 'string' ? Buffer.from(v, 'utf8') : v;
    const reader = call.reader!;
    if (chunk.length === 0) {
      reader.pull(call);
      return;
    }
    reader.consumed = true;
    if (socket.write(this.codec.fcgiStream(FCGI.STDIN, call.id, chunk, false))) {
      reader.pull(call);
      return;
    }
    socket.once('drain', () => {
      if (!call.done && !call.aborting && call.conn === conn) reader.pull(call);
    });
  }

  /**
   * The backend ended `call` before its body was sent whole (it answered without reading it):
   * no more of the body goes out, and its STDIN stream is ended with an empty record. The
   * request id is inactive for the backend by then, so the record is ignored (FastCGI 1.0
   * §3.3) by a server that reads no further, and ends the read of one that still drains the
   * body after its answer (php-fpm after fastcgi_finish_request()) instead of leaving it
   * waiting for body bytes that never come, or taking the next request's records for them.
   * It goes out before anything of the next request on this connection.
   */
  private stdinCut(call: Call, conn: Conn): void {
    call.sent = true;
    call.reader?.detach();
    if (!call.aborting && !conn.closed) {
      conn.socket.write(
        call.id === 1 ? this.stdinEnd1 : this.codec.fcgiStream(FCGI.STDIN, call.id, EMPTY, true),
      );
    }
  }

  /** `call`'s streamed body failed. */
  bodyFailed(call: Call, err: unknown): void {
    if (call.done || call.aborting) return;
    this.abort(
      call,
      new ClientError('ECONNRESET', `the request body failed: ${(err as Error).message}`, {
        cause: err,
      }),
    );
  }

  /* ---- the read timeout: one timer per connection, re-armed lazily ---- */

  private armRead(conn: Conn): void {
    if (conn.readTimer !== null || conn.closed) return;
    conn.readTimer = setTimeout(onReadTimer, this.s.readTimeout, this, conn);
    conn.readTimer.unref();
  }

  /** The read timer of `conn`: fails the requests the backend left silent for too long. */
  readTimedOut(conn: Conn): void {
    conn.readTimer = null;
    if (conn.closed) return;
    const ms = this.s.readTimeout;
    const now = performance.now();
    let next = Infinity;
    for (const call of [...conn.exchanges.values()]) {
      if (call.done || call.aborting || call.paused || !call.sent) continue;
      const left = call.activeAt + ms - now;
      if (left <= 0) {
        this.abort(call, new ClientError('ETIMEDOUT', `the backend sent nothing for ${ms} ms`));
      } else if (left < next) next = left;
    }
    if (next !== Infinity && !conn.closed && conn.readTimer === null) {
      conn.readTimer = setTimeout(onReadTimer, Math.ceil(next), this, conn);
      conn.readTimer.unref();
    }
  }

  /* ---- the answer ---- */

  private onData(conn: Conn, chunk: Buffer): void {
    const events = conn.parser.push(chunk);
    const now = this.s.readTimeout > 0 ? performance.now() : 0;
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      switch (ev.type) {
        case 'stdout': {
          const call = conn.exchanges.get(ev.requestId);
          if (call === undefined || call.done) break;
          call.answered = true;
          call.activeAt = now;
          if (!call.aborting) this.stdout(call, conn, ev.data);
          break;
        }
        case 'stderr': {
          const call = conn.exchanges.get(ev.requestId);
          if (call === undefined || call.done) break;
          call.answered = true;
          call.activeAt = now;
          const data = Buffer.from(ev.data);
          try {
            if (call.rx.onStderr !== undefined) call.rx.onStderr(data);
            else call.stderr(data);
          } catch {
            /* a throwing logger never fails the response */
          }
          break;
        }
        case 'stdoutEnd':
        case 'stderrEnd': {
          const call = conn.exchanges.get(ev.requestId);
          if (call !== undefined) call.answered = true;
          break;
        }
        case 'end': {
          const call = conn.exchanges.get(ev.requestId);
          if (call === undefined) break;
          call.answered = true;
          conn.exchanges.delete(ev.requestId);
          if (!call.sent) this.stdinCut(call, conn);
          call.endStatus = ev.protocolStatus;
          conn.ends.push(call);
          break;
        }
        case 'getValuesResult':
        case 'unknownType':
          break;
        case 'error':
          this.failConn(
            conn,
            new ClientError('EPROTO', `bad record from the backend: ${ev.message}`),
          );
          return;
        default:
          this.failConn(
            conn,
            new ClientError('EPROTO', `unexpected ${ev.type} record from the backend`),
          );
          return;
      }
      if (conn.closed) return;
    }
    /* heads that arrived without their END_REQUEST: handed over with a body stream */
    const heads = conn.heads;
    if (heads.length > 0) {
      for (let i = 0; i < heads.length; i++) {
        const call = heads[i]!;
        if (call.endStatus === -1 && !call.done) this.respond(call);
      }
      heads.length = 0;
    }
    const ends = conn.ends;
    if (ends.length > 0) {
      /* the connection is idle again before the slots are freed, so that a queued request
       * freed by them takes it */
      this.settle(conn);
      for (let i = 0; i < ends.length; i++) this.ended(ends[i]!);
      ends.length = 0;
    }
  }

  private stdout(call: Call, conn: Conn, data: Uint8Array): void {
    const chunk = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    if (call.body !== null) {
      if (!call.body.push(chunk)) this.pause(call);
      return;
    }
    if (call.head !== null) {
      call.chunks!.push(chunk);
      return;
    }
    if (call.responded) return;
    const buf = call.headBuf === null ? chunk : Buffer.concat([call.headBuf, chunk]);
    const end = findHeadEnd(buf);
    if (end === null) {
      if (buf.length > MAX_HEAD) {
        this.failConn(conn, new ClientError('EPROTO', 'the response head is over 64 KiB'));
        return;
      }
      call.headBuf = buf;
      return;
    }
    call.headBuf = null;
    try {
      call.head = parseHead(buf.toString('latin1', 0, end[0]));
    } catch (err) {
      this.failConn(conn, new ClientError('EPROTO', (err as HeadError).message));
      return;
    }
    call.chunks = end[1] < buf.length ? [buf.subarray(end[1])] : [];
    conn.heads.push(call);
  }

  /** Hands `call`'s head over with a stream for its body (the rest is still coming). */
  private respond(call: Call): void {
    const body = new ResponseBody(call);
    call.body = body;
    const chunks = call.chunks!;
    call.chunks = null;
    for (let i = 0; i < chunks.length; i++) if (!body.push(chunks[i])) this.pause(call);
    const head = call.head!;
    call.head = null;
    call.responded = true;
    call.rx.onResponse(new Answer(head, body, null));
  }

  private pause(call: Call): void {
    if (call.paused) return;
    call.paused = true;
    const conn = call.conn!;
    if (conn.pausedBy++ === 0) conn.socket.pause();
  }

  resume(call: Call): void {
    if (!call.paused) return;
    call.paused = false;
    const conn = call.conn!;
    if (this.s.readTimeout > 0 && call.sent && !call.done) {
      call.activeAt = performance.now();
      this.armRead(conn);
    }
    if (--conn.pausedBy === 0 && !conn.closed) conn.socket.resume();
  }

  /** END_REQUEST for `call` (it left its connection already). */
  private ended(call: Call): void {
    if (call.done) return;
    if (call.aborting) {
      this.finish(call);
      return;
    }
    const status = call.endStatus;
    if (status !== FCGI.REQUEST_COMPLETE) {
      const code =
        status === FCGI.OVERLOADED
          ? 'OVERLOADED'
          : status === FCGI.CANT_MPX_CONN
            ? 'CANT_MPX_CONN'
            : 'UNKNOWN_ROLE';
      this.failCall(call, new ClientError(code, `the backend refused the request: ${code}`));
      return;
    }
    const body = call.body;
    if (body !== null) {
      this.finish(call);
      body.push(null);
      return;
    }
    const head = call.head;
    if (head === null || call.responded) {
      this.failCall(
        call,
        new ClientError('EPROTO', 'the backend ended the request without a complete response head'),
      );
      return;
    }
    /* the whole answer came in this read: its body as bytes, no stream */
    const chunks = call.chunks!;
    call.head = null;
    call.chunks = null;
    this.finish(call);
    call.responded = true;
    call.rx.onResponse(
      new Answer(head, null, chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)),
    );
  }

  /* ---- failures ---- */

  /** Stops `call` with `err`: ABORT_REQUEST once sent, then wait for its END_REQUEST (or close). */
  abort(call: Call, err: Error): void {
    if (call.done || call.aborting) return;
    const conn = call.conn;
    if (conn === null || conn.closed) {
      this.failCall(call, err);
      return;
    }
    this.report(call, err);
    call.aborting = true;
    call.reader?.close();
    if (call.paused) this.resume(call);
    conn.socket.write(this.codec.fcgiAbortRequest(call.id));
    setTimeout(onAbortGrace, ABORT_GRACE, this, call, err).unref();
  }

  /** The grace of an aborted request ran out: its connection is closed. */
  abortOverdue(call: Call, err: Error): void {
    if (!call.done && call.conn !== null) this.failConn(call.conn, err);
  }

  /** Tells `call`'s caller about `err` (before the head: onError; after: the body fails). */
  private report(call: Call, err: Error): void {
    if (!call.responded) {
      call.responded = true;
      call.head = null;
      call.chunks = null;
      call.rx.onError(err);
      return;
    }
    const body = call.body;
    if (body !== null) {
      call.body = null;
      body.detach();
      if (!body.destroyed) body.destroy(err);
    }
  }

  /** Fails `call` for good (no ABORT_REQUEST: it is not on a connection, or that one is gone). */
  failCall(call: Call, err: Error): void {
    if (call.done) return;
    this.report(call, err);
    this.finish(call);
  }

  /** `call` is over: its timers, its signal listener, its body and its slot let go. */
  private finish(call: Call): void {
    call.done = true;
    if (call.totalTimer !== null) {
      clearTimeout(call.totalTimer);
      call.totalTimer = null;
    }
    call.signal?.removeEventListener('abort', call);
    if (call.paused) {
      call.paused = false;
      const conn = call.conn!;
      if (--conn.pausedBy === 0 && !conn.closed) conn.socket.resume();
    }
    call.reader?.close();
    this.limiter.leave(call);
    if (call.slot) {
      call.slot = false;
      this.limiter.release();
    }
  }

  /**
   * `call` lost its connection (`err`): sent again on a new one when that is safe (a reused
   * connection, nothing of the answer yet, the body replayable, the first retry), else failed.
   */
  private lost(call: Call, err: Error): void {
    if (call.done) return;
    if (call.aborting) {
      this.finish(call);
      return;
    }
    if (
      call.reused &&
      !call.retried &&
      !call.answered &&
      isConnectionLoss(err) &&
      !call.signal?.aborted
    ) {
      if (call.whole !== null || !call.reader!.consumed) {
        call.retried = true;
        call.reader?.detach();
        call.conn = null;
        call.sent = false;
        call.headBuf = null;
        call.head = null;
        call.chunks = null;
        this.go(call, true);
        return;
      }
      err = new ClientError(
        'ECONNRESET',
        `${err.message}, after part of the streamed request body was sent: ` +
          'it cannot be sent again',
        { cause: err },
      );
    }
    this.failCall(call, err);
  }

  /** After the requests of `conn` left: keep it idle, or close it. */
  private settle(conn: Conn): void {
    if (conn.closed || conn.exchanges.size > 0) return;
    if (!this.keepAlive || this.closing) {
      conn.socket.destroy();
      return;
    }
    if (!conn.idle && this.perConn === 1) {
      conn.idle = true;
      this.idle.push(conn);
    }
    if (this.idleTimeout > 0) {
      conn.idleSince = performance.now();
      if (conn.idleTimer === null) {
        conn.idleTimer = setTimeout(onIdleTimer, this.idleTimeout, this, conn);
        conn.idleTimer.unref();
      }
    }
  }

  /** The idle timer of `conn`: closes it when it stayed idle for idleTimeout. */
  idleTimedOut(conn: Conn): void {
    conn.idleTimer = null;
    if (conn.closed || conn.exchanges.size > 0) return;
    const left = conn.idleSince + this.idleTimeout - performance.now();
    if (left <= 0) {
      conn.socket.destroy();
      return;
    }
    conn.idleTimer = setTimeout(onIdleTimer, Math.ceil(left), this, conn);
    conn.idleTimer.unref();
  }

  /** A protocol error on `conn`: every request on it fails, and it is closed. */
  private failConn(conn: Conn, err: Error): void {
    const calls = [...conn.exchanges.values()];
    /* requests whose END_REQUEST came earlier in the read that failed: they are complete */
    const ends = conn.ends.splice(0);
    conn.exchanges.clear();
    conn.heads.length = 0;
    conn.socket.destroy();
    this.onClose(conn, null);
    for (const call of calls) {
      if (call.aborting) this.finish(call);
      else this.failCall(call, err);
    }
    for (const call of ends) this.ended(call);
  }

  private onClose(conn: Conn, err: Error | null): void {
    if (conn.closed) return;
    conn.closed = true;
    this.conns.delete(conn);
    if (conn.idleTimer !== null) clearTimeout(conn.idleTimer);
    if (conn.readTimer !== null) clearTimeout(conn.readTimer);
    conn.idleTimer = conn.readTimer = null;
    conn.socket.destroy();
    if (conn.exchanges.size === 0) return;
    const calls = [...conn.exchanges.values()];
    conn.exchanges.clear();
    const e = connectionLost(err);
    for (const call of calls) this.lost(call, e);
  }

  /** Refuses new requests, closes idle connections; running ones finish. */
  close(): Promise<void> {
    this.closing = true;
    const waits: Promise<void>[] = [];
    for (const c of this.conns) {
      waits.push(
        new Promise((resolve) => (c.closed ? resolve() : c.socket.once('close', () => resolve()))),
      );
      if (c.exchanges.size === 0) c.socket.destroy();
    }
    return Promise.all(waits).then(() => undefined);
  }
}

function onTotalTimeout(call: Call): void {
  call.totalTimer = null;
  call.pool.abort(
    call,
    new ClientError('ETIMEDOUT', `the request took longer than ${call.pool.s.timeout} ms`),
  );
}

function onReadTimer(pool: Pool, conn: Conn): void {
  pool.readTimedOut(conn);
}

function onIdleTimer(pool: Pool, conn: Conn): void {
  pool.idleTimedOut(conn);
}

function onAbortGrace(pool: Pool, call: Call, err: Error): void {
  pool.abortOverdue(call, err);
}

/** The error of a connection that closed (`err`: the socket's error, if any) under requests. */
function connectionLost(err: Error | null): ClientError {
  return err !== null
    ? socketError(err as NodeJS.ErrnoException, 'the connection to the backend failed')
    : new ClientError('ECONNRESET', 'the backend closed the connection before the response ended');
}

function isConnectionLoss(err: Error): boolean {
  return err instanceof ClientError && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
}
