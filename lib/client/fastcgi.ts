/**
 * The FastCGI client: a pool of kept-alive connections (FCGI_KEEP_CONN) to one backend.
 *
 * - One request per connection at a time, request id 1, unless `multiplex` is asked for and
 *   the backend's GET_VALUES_RESULT says FCGI_MPXS_CONNS=1 (then up to FCGI_MAX_REQS ids per
 *   connection).
 * - A connection the backend closed while idle (php-fpm recycling a worker after
 *   pm.max_requests) leaves the pool; a request that fails on a reused connection before any
 *   byte of its answer arrived is sent again, once, on a new connection (when its body can be
 *   sent again: given whole, or a stream not yet read from).
 * - Records are encoded and parsed by the codec (records of at most 65535 content bytes both
 *   ways); STDOUT is parsed as a CGI response head (head.ts) then streamed with backpressure:
 *   while the caller does not read, the connection is not read either.
 * - STDERR goes to the `stderr` callback and never fails the response.
 * - An abort (the caller's signal, or a timeout) sends ABORT_REQUEST; the connection is
 *   reused once the backend ends that request, and closed when it does not within a second.
 */
import type { Socket } from 'node:net';
import { selectedCodec } from '../codec/index.js';
import { FCGI, type Codec, type FcgiEvent, type FcgiParser } from '../codec/types.js';
import {
  abortError,
  bodyChunks,
  LimitedClient,
  openSocket,
  ResponseBody,
  wholeBody,
  writeAndWait,
  type ClientRequest,
  type ClientResponse,
  type CommonOptions,
  type RequestBody,
  describeAddress,
  EMPTY,
} from './common.js';
import { ClientError, socketError } from './errors.js';
import { findHeadEnd, HeadError, parseHead } from './head.js';

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

interface Exchange {
  id: number;
  conn: Conn;
  headChunks: Buffer[];
  headBytes: number;
  response: ClientResponse | null;
  body: ResponseBody | null;
  resolve: (r: ClientResponse) => void;
  reject: (e: Error) => void;
  stderr: (chunk: Buffer) => void;
  /** A byte of the answer arrived: the request cannot be sent again. */
  answered: boolean;
  /** Finished (END_REQUEST, failure or abort). */
  done: boolean;
  /** ABORT_REQUEST was sent: wait for END_REQUEST, report nothing more. */
  aborting: boolean;
  readTimer: NodeJS.Timeout | null;
  /** The request was fully written (STDIN ended). */
  sent: boolean;
  /** The consumer's buffer is full: the read timer waits. */
  paused: boolean;
  /** Failed in a way that lets request() send it again: its slot is kept for the retry. */
  retrying: boolean;
  /** Removes the signal listeners and frees the request's slot (unless retrying). */
  cleanup?: () => void;
}

class Conn {
  readonly exchanges = new Map<number, Exchange>();
  /** Requests this connection carried (a reused connection may have been closed by the server). */
  served = 0;
  closed = false;
  /** Slots handed out by connection() whose exchange has not started yet. */
  reserved = 0;
  /** Exchanges that keep the socket paused (consumers not reading). */
  pausedBy = 0;
  idleTimer: NodeJS.Timeout | null = null;
  readonly parser: FcgiParser;
  constructor(
    readonly socket: Socket,
    codec: Codec,
  ) {
    this.parser = codec.createFcgiParser();
  }

  freeId(): number {
    let id = 1;
    while (this.exchanges.has(id)) id++;
    return id;
  }
}

/** What GET_VALUES reported (as strings, as the backend sent them). */
export type FastcgiValues = Record<string, string>;

/**
 * A FastCGI client with a connection pool. `request()` resolves once the response head has
 * arrived; `close()` ends idle connections and refuses new requests.
 */
export class FastcgiClient extends LimitedClient {
  private readonly codec: Codec;
  private readonly keepAlive: boolean;
  private readonly idleTimeout: number;
  private readonly multiplex: boolean;
  private readonly defaultStderr: (chunk: Buffer) => void;
  private readonly conns = new Set<Conn>();
  /** Requests per connection: 1, or FCGI_MAX_REQS once the backend said it multiplexes. */
  private perConn = 1;
  private probed: Promise<void> | null = null;
  /** The connection being opened now (multiplexing waits for it). */
  private opening: Promise<Conn> | null = null;
  /** BEGIN_REQUEST of request id 1 (what nearly every request uses), encoded once. */
  private readonly begin1: Uint8Array;
  /** The empty STDIN record (end of the body) of request id 1, encoded once. */
  private readonly stdinEnd1: Uint8Array;

  constructor(options: FastcgiClientOptions) {
    super(options);
    this.codec = options.codec ?? selectedCodec();
    this.keepAlive = options.keepAlive ?? true;
    this.idleTimeout = options.idleTimeout ?? 30000;
    this.multiplex = options.multiplex ?? false;
    /* copies: a codec may hand out views of a buffer it reuses */
    this.begin1 = Buffer.from(
      this.codec.fcgiBeginRequest(1, FCGI.RESPONDER, this.keepAlive ? FCGI.KEEP_CONN : 0),
    );
    this.stdinEnd1 = Buffer.from(this.codec.fcgiStream(FCGI.STDIN, 1, EMPTY, true));
    const where = describeAddress(this.s.address);
    this.defaultStderr =
      options.stderr ??
      ((chunk) => process.stderr.write(`tsgi: FastCGI stderr from ${where}: ${chunk.toString()}`));
  }

  /** Connections open now (idle or busy). */
  get connections(): number {
    return this.conns.size;
  }

  /** Sends a request; resolves with the status, the headers and the streamed body. */
  async request(req: ClientRequest): Promise<ClientResponse> {
    if (this.multiplex && this.probed === null) this.probed = this.probe();
    const { pairs, body, signal, release } = await this.admit(req, this.probed);
    const stderr = req.stderr ?? this.defaultStderr;
    const whole = wholeBody(body);
    const total = this.s.timeout > 0 ? AbortSignal.timeout(this.s.timeout) : undefined;
    try {
      let first = true;
      for (;;) {
        /* a streamed body can be sent again only when nothing was read from it yet */
        const state = { started: false };
        try {
          const conn = await this.connection(!first, signal);
          const res = await this.exchange(
            conn,
            pairs,
            whole,
            body,
            state,
            stderr,
            signal,
            total,
            release,
          );
          return res;
        } catch (err) {
          const retry =
            first &&
            err instanceof RetryableError &&
            (whole !== null || !state.started) &&
            !signal?.aborted;
          if (!retry) throw err instanceof RetryableError ? err.error : err;
          first = false;
        }
      }
    } catch (err) {
      release();
      throw err;
    }
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
    const waits: Promise<void>[] = [];
    for (const c of this.conns) {
      waits.push(
        new Promise((resolve) => (c.closed ? resolve() : c.socket.once('close', () => resolve()))),
      );
      if (c.exchanges.size === 0) c.socket.destroy();
    }
    return Promise.all(waits).then(() => undefined);
  }

  /* ---- the pool ---- */

  private async probe(): Promise<void> {
    try {
      const v = await this.getValues();
      if (v.FCGI_MPXS_CONNS === '1') {
        const max = Number(v.FCGI_MAX_REQS);
        this.perConn = Number.isInteger(max) && max > 0 ? Math.min(max, 65535) : 100;
      }
    } catch {
      /* the backend did not answer: one request per connection */
    }
  }

  /** A connection with a free request slot: an open one, else a new one. */
  private async connection(fresh: boolean, signal?: AbortSignal): Promise<Conn> {
    for (;;) {
      if (!fresh) {
        let best: Conn | null = null;
        for (const c of this.conns) {
          if (c.closed || c.exchanges.size + c.reserved >= this.perConn) continue;
          if (best === null || c.served > best.served) best = c;
        }
        if (best !== null) {
          if (best.idleTimer !== null) {
            clearTimeout(best.idleTimer);
            best.idleTimer = null;
          }
          best.reserved++;
          return best;
        }
        /* multiplexing: wait for the connection being opened rather than open one more */
        if (this.perConn > 1 && this.opening !== null) {
          await this.opening.catch(() => undefined);
          continue;
        }
      }
      const opening = openSocket(this.s, signal).then((socket) => {
        const conn = new Conn(socket, this.codec);
        this.conns.add(conn);
        socket.on('data', (chunk: Buffer) => this.onData(conn, chunk));
        socket.on('error', (err) => this.onClose(conn, err));
        socket.on('close', () => this.onClose(conn, null));
        return conn;
      });
      this.opening = opening;
      try {
        const conn = await opening;
        conn.reserved++;
        return conn;
      } finally {
        if (this.opening === opening) this.opening = null;
      }
    }
  }

  /** Sends one request on `conn`; resolves with the head. */
  private exchange(
    conn: Conn,
    pairs: string[],
    whole: Uint8Array | null,
    body: RequestBody,
    state: { started: boolean },
    stderr: (chunk: Buffer) => void,
    signal: AbortSignal | undefined,
    total: AbortSignal | undefined,
    release: () => void,
  ): Promise<ClientResponse> {
    return new Promise<ClientResponse>((resolve, reject) => {
      conn.reserved--;
      const id = conn.freeId();
      const reused = conn.served > 0;
      conn.served++;
      const ex: Exchange = {
        id,
        conn,
        headChunks: [],
        headBytes: 0,
        response: null,
        body: null,
        resolve,
        reject: (err) => {
          if (reused && !ex.answered && isConnectionLoss(err)) {
            ex.retrying = true;
            reject(new RetryableError(err));
          } else reject(err);
        },
        retrying: false,
        stderr,
        answered: false,
        done: false,
        aborting: false,
        readTimer: null,
        sent: false,
        paused: false,
      };
      conn.exchanges.set(id, ex);
      const onAbort = (): void => this.abort(ex, abortError(signal!));
      const onTimeout = (): void =>
        this.abort(
          ex,
          new ClientError('ETIMEDOUT', `the request took longer than ${this.s.timeout} ms`),
        );
      signal?.addEventListener('abort', onAbort, { once: true });
      total?.addEventListener('abort', onTimeout, { once: true });
      const cleanup = (): void => {
        signal?.removeEventListener('abort', onAbort);
        total?.removeEventListener('abort', onTimeout);
        if (!ex.retrying) release();
      };
      ex.cleanup = cleanup;

      const c = this.codec;
      const begin =
        id === 1
          ? this.begin1
          : c.fcgiBeginRequest(id, FCGI.RESPONDER, this.keepAlive ? FCGI.KEEP_CONN : 0);
      let head: Uint8Array;
      try {
        head = c.fcgiParams(id, pairs);
      } catch (err) {
        this.finish(ex);
        conn.exchanges.delete(id);
        this.settle(conn);
        reject(err);
        return;
      }
      const socket = conn.socket;
      if (whole !== null) {
        /* one write (one syscall) for the whole request */
        const stdin =
          id === 1 && whole.length === 0
            ? this.stdinEnd1
            : c.fcgiStream(FCGI.STDIN, id, whole, true);
        socket.write(Buffer.concat([begin, head, stdin]));
        ex.sent = true;
        this.armRead(ex);
        return;
      }
      socket.write(Buffer.concat([begin, head]));
      void this.pump(ex, body as AsyncIterable<Uint8Array>, state);
    });
  }

  /** Streams a request body as STDIN records, waiting for the socket to drain. */
  private async pump(
    ex: Exchange,
    body: AsyncIterable<Uint8Array | string>,
    state: { started: boolean },
  ): Promise<void> {
    const socket = ex.conn.socket;
    try {
      for await (const chunk of bodyChunks(body)) {
        state.started = true;
        if (ex.done || ex.aborting || socket.destroyed) return;
        const wait = writeAndWait(socket, this.codec.fcgiStream(FCGI.STDIN, ex.id, chunk, false));
        if (wait !== null) await wait;
      }
      state.started = true;
      if (ex.done || ex.aborting || socket.destroyed) return;
      socket.write(this.codec.fcgiStream(FCGI.STDIN, ex.id, new Uint8Array(0), true));
      ex.sent = true;
      this.armRead(ex);
    } catch (err) {
      state.started = true;
      this.abort(
        ex,
        new ClientError('ECONNRESET', `the request body failed: ${(err as Error).message}`, {
          cause: err,
        }),
      );
    }
  }

  private armRead(ex: Exchange): void {
    if (ex.readTimer !== null) clearTimeout(ex.readTimer);
    ex.readTimer = null;
    const ms = this.s.readTimeout;
    if (ms <= 0 || ex.done || ex.paused || !ex.sent) return;
    ex.readTimer = setTimeout(() => {
      ex.readTimer = null;
      this.abort(ex, new ClientError('ETIMEDOUT', `the backend sent nothing for ${ms} ms`));
    }, ms);
  }

  private onData(conn: Conn, chunk: Buffer): void {
    const events = conn.parser.push(chunk);
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      if (ev.type === 'error') {
        this.failConn(
          conn,
          new ClientError('EPROTO', `bad record from the backend: ${ev.message}`),
        );
        return;
      }
      this.onEvent(conn, ev);
    }
  }

  private onEvent(conn: Conn, ev: FcgiEvent): void {
    switch (ev.type) {
      case 'stdout': {
        const ex = conn.exchanges.get(ev.requestId);
        if (ex === undefined || ex.done) return;
        ex.answered = true;
        if (ex.aborting) return;
        this.armRead(ex);
        this.stdout(ex, ev.data);
        return;
      }
      case 'stderr': {
        const ex = conn.exchanges.get(ev.requestId);
        if (ex === undefined || ex.done) return;
        ex.answered = true;
        this.armRead(ex);
        try {
          ex.stderr(Buffer.from(ev.data));
        } catch {
          /* a throwing logger never fails the response */
        }
        return;
      }
      case 'stdoutEnd':
      case 'stderrEnd': {
        const ex = conn.exchanges.get(ev.requestId);
        if (ex !== undefined) ex.answered = true;
        return;
      }
      case 'end': {
        const ex = conn.exchanges.get(ev.requestId);
        if (ex === undefined) return;
        ex.answered = true;
        conn.exchanges.delete(ev.requestId);
        this.ended(ex, ev.protocolStatus);
        this.settle(conn);
        return;
      }
      case 'getValuesResult':
      case 'unknownType':
        return;
      default:
        this.failConn(
          conn,
          new ClientError('EPROTO', `unexpected ${ev.type} record from the backend`),
        );
    }
  }

  private stdout(ex: Exchange, data: Uint8Array): void {
    if (ex.body !== null) {
      if (!ex.body.push(data)) this.pause(ex);
      return;
    }
    const chunk = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    ex.headChunks.push(chunk);
    ex.headBytes += chunk.length;
    const buf = ex.headChunks.length === 1 ? chunk : Buffer.concat(ex.headChunks);
    ex.headChunks = [buf];
    const end = findHeadEnd(buf);
    if (end === null) {
      if (ex.headBytes > 65536) {
        this.fail(ex, new ClientError('EPROTO', 'the response head is over 64 KiB'), true);
      }
      return;
    }
    let parsed;
    try {
      parsed = parseHead(buf.toString('latin1', 0, end[0]));
    } catch (err) {
      this.fail(ex, new ClientError('EPROTO', (err as HeadError).message), true);
      return;
    }
    ex.headChunks = [];
    const body = new ResponseBody(() => this.resume(ex));
    ex.body = body;
    body.on('close', () => {
      /* the consumer destroyed the body before its end: abort the request */
      if (!ex.done) this.abort(ex, abortError(AbortSignal.abort()));
    });
    const res: ClientResponse = { ...parsed, body };
    ex.response = res;
    if (end[1] < buf.length) {
      if (!body.push(buf.subarray(end[1]))) this.pause(ex);
    }
    ex.resolve(res);
  }

  private pause(ex: Exchange): void {
    if (ex.paused) return;
    ex.paused = true;
    if (ex.readTimer !== null) clearTimeout(ex.readTimer);
    ex.readTimer = null;
    if (ex.conn.pausedBy++ === 0) ex.conn.socket.pause();
  }

  private resume(ex: Exchange): void {
    if (!ex.paused) return;
    ex.paused = false;
    this.armRead(ex);
    if (--ex.conn.pausedBy === 0 && !ex.conn.closed) ex.conn.socket.resume();
  }

  /** END_REQUEST for `ex`. */
  private ended(ex: Exchange, protocolStatus: number): void {
    if (ex.done) return;
    if (ex.aborting) {
      this.finish(ex);
      return;
    }
    if (protocolStatus !== FCGI.REQUEST_COMPLETE) {
      const code =
        protocolStatus === FCGI.OVERLOADED
          ? 'OVERLOADED'
          : protocolStatus === FCGI.CANT_MPX_CONN
            ? 'CANT_MPX_CONN'
            : 'UNKNOWN_ROLE';
      this.fail(ex, new ClientError(code, `the backend refused the request: ${code}`), false);
      return;
    }
    if (ex.body === null) {
      this.fail(
        ex,
        new ClientError('EPROTO', 'the backend ended the request without a complete response head'),
        false,
      );
      return;
    }
    const body = ex.body;
    this.finish(ex);
    body.push(null);
  }

  /** Stops `ex` with `err`: ABORT_REQUEST, then wait for its END_REQUEST (or close). */
  private abort(ex: Exchange, err: Error): void {
    if (ex.done || ex.aborting) return;
    const conn = ex.conn;
    this.report(ex, err);
    if (conn.closed) return;
    ex.aborting = true;
    if (ex.paused) this.resume(ex);
    conn.socket.write(this.codec.fcgiAbortRequest(ex.id));
    const timer = setTimeout(() => {
      if (!ex.done) this.failConn(conn, err);
    }, ABORT_GRACE);
    timer.unref();
  }

  /** Reports `err` for `ex` (reject before the head, destroy the body after). */
  private report(ex: Exchange, err: Error): void {
    if (ex.readTimer !== null) clearTimeout(ex.readTimer);
    ex.readTimer = null;
    if (ex.response === null) ex.reject(err);
    else if (ex.body !== null && !ex.body.destroyed) {
      const body = ex.body;
      ex.body = null;
      body.destroy(err);
    }
    ex.cleanup?.();
  }

  /** Fails `ex`; a protocol error closes the connection, a refusal keeps it. */
  private fail(ex: Exchange, err: Error, closeConn: boolean): void {
    if (closeConn) {
      this.failConn(ex.conn, err);
      return;
    }
    this.report(ex, err);
    this.finish(ex);
  }

  private finish(ex: Exchange): void {
    ex.done = true;
    if (ex.readTimer !== null) clearTimeout(ex.readTimer);
    ex.readTimer = null;
    if (ex.paused) {
      ex.paused = false;
      if (--ex.conn.pausedBy === 0 && !ex.conn.closed) ex.conn.socket.resume();
    }
    ex.cleanup?.();
  }

  /** After an exchange left `conn`: keep it idle, or close it. */
  private settle(conn: Conn): void {
    if (conn.closed || conn.exchanges.size > 0) return;
    if (!this.keepAlive || this.closing) {
      conn.socket.destroy();
      return;
    }
    if (this.idleTimeout > 0) {
      conn.idleTimer = setTimeout(() => conn.socket.destroy(), this.idleTimeout);
      conn.idleTimer.unref();
    }
  }

  private failConn(conn: Conn, err: Error): void {
    for (const ex of conn.exchanges.values()) {
      if (!ex.done) {
        if (!ex.aborting) this.report(ex, err);
        this.finish(ex);
      }
    }
    conn.exchanges.clear();
    conn.socket.destroy();
    this.onClose(conn, null);
  }

  private onClose(conn: Conn, err: Error | null): void {
    if (conn.closed) return;
    conn.closed = true;
    this.conns.delete(conn);
    if (conn.idleTimer !== null) clearTimeout(conn.idleTimer);
    if (conn.exchanges.size === 0) return;
    const e =
      err !== null
        ? socketError(err as NodeJS.ErrnoException, 'the connection to the backend failed')
        : new ClientError(
            'ECONNRESET',
            'the backend closed the connection before the response ended',
          );
    for (const ex of conn.exchanges.values()) {
      if (!ex.done) {
        if (!ex.aborting) this.report(ex, e);
        this.finish(ex);
      }
    }
    conn.exchanges.clear();
    conn.socket.destroy();
  }
}

/** A failure on a reused connection before any answer: the request may be sent again. */
class RetryableError extends Error {
  constructor(readonly error: Error) {
    super(error.message);
  }
}

function isConnectionLoss(err: Error): boolean {
  return err instanceof ClientError && (err.code === 'ECONNRESET' || err.code === 'EPIPE');
}
