/**
 * The SCGI and uwsgi clients: one connection per request (both protocols end the response by
 * closing the connection). The request head is encoded by the codec (scgiRequest,
 * uwsgiRequest); the response is a head parsed as CGI defines it (`Status:` for SCGI,
 * `HTTP/1.1 200 OK` from uWSGI — head.ts takes both) and the body up to the close, streamed
 * with backpressure.
 *
 * Both protocols need CONTENT_LENGTH before the body. A body given whole, or a stream with a
 * CONTENT_LENGTH in the params, is sent as it is; a stream of unknown length (a chunked
 * upload) is read whole first (spool.ts: in memory up to `bodyBufferSize`, then in a
 * temporary file) up to `maxBufferedBody` bytes, and refused beyond with EBODYTOOLARGE (413),
 * as nginx's client_max_body_size refuses it.
 *
 * A backend that answers before reading the body and closes the connection (uWSGI refusing an
 * upload) leaves the body unread in its kernel, which then resets the connection instead of
 * closing it (RST, no FIN). A reset after the response head is therefore taken as the
 * response's end, as a close is: the answer the backend sent before it is delivered (a body
 * write the reset fails first does not lose it: see {@link BackendSocket}). Only a response
 * whose `Content-Length` says more bytes were due fails (ECONNRESET), as a truncated one.
 */
import { Buffer } from 'node:buffer';
import type { Socket } from 'node:net';
import { selectedCodec } from '../codec/index.js';
import type { Codec } from '../codec/types.js';
import {
  abortError,
  bodyChunks,
  LimitedClient,
  openSocket,
  pairValue,
  ResponseBody,
  setPair,
  wholeBody,
  writeAndWait,
  type ClientRequest,
  type ClientResponse,
  type CommonOptions,
} from './common.js';
import { contentLength } from '../gateway/input.js';
import { ClientError, socketError } from './errors.js';
import { findHeadEnd, parseHead, type ResponseHead } from './head.js';
import {
  spoolBody,
  spoolSettings,
  type SpoolOptions,
  type SpoolSettings,
  type Spooled,
} from './spool.js';

/** Options of {@link ScgiClient} and {@link UwsgiClient}. */
export interface StreamClientOptions extends CommonOptions, SpoolOptions {
  /** The codec (default: the active one). */
  codec?: Codec;
}

/** The uwsgi packet modifiers (default 0, 0: a WSGI request). */
export interface UwsgiClientOptions extends StreamClientOptions {
  modifier1?: number;
  modifier2?: number;
}

abstract class StreamClient extends LimitedClient {
  protected readonly codec: Codec;
  private readonly spool: SpoolSettings;
  private readonly sockets = new Set<Socket>();

  constructor(options: StreamClientOptions) {
    super(options);
    this.codec = options.codec ?? selectedCodec();
    this.spool = spoolSettings(options);
  }

  /** The request head for `pairs` (CONTENT_LENGTH already set). */
  protected abstract encode(pairs: string[], contentLength: number): Uint8Array;

  /** Sends a request; resolves with the status, the headers and the streamed body. */
  async request(req: ClientRequest): Promise<ClientResponse> {
    const { pairs, body, signal, release } = await this.admit(req);
    let spooled: Spooled | null = null;
    try {
      let whole = wholeBody(body);
      let stream = body as AsyncIterable<Uint8Array>;
      let length: number;
      if (whole !== null) length = whole.length;
      else {
        const declared = pairValue(pairs, 'CONTENT_LENGTH');
        if (declared !== undefined && /^[0-9]+$/.test(declared)) length = Number(declared);
        else {
          spooled = await spoolBody(stream, this.spool, signal);
          length = spooled.length;
          whole = spooled.bytes;
          stream = spooled.chunks();
        }
      }
      if (length > 0 || pairValue(pairs, 'CONTENT_LENGTH') !== undefined) {
        setPair(pairs, 'CONTENT_LENGTH', String(length));
      }
      const head = this.encode(pairs, length);
      const bodyless = pairValue(pairs, 'REQUEST_METHOD') === 'HEAD';
      const socket = await openSocket(this.s, signal);
      this.sockets.add(socket);
      socket.once('close', () => this.sockets.delete(socket));
      return await this.exchange(socket, head, whole, stream, signal, release, spooled, bodyless);
    } catch (err) {
      release();
      await spooled?.dispose();
      throw err;
    }
  }

  /** Refuses new requests, rejects queued ones; running ones finish. */
  close(): Promise<void> {
    this.stopAdmitting();
    return Promise.all(
      [...this.sockets].map(
        (s) => new Promise<void>((resolve) => s.once('close', () => resolve())),
      ),
    ).then(() => undefined);
  }

  private exchange(
    socket: Socket,
    head: Uint8Array,
    whole: Uint8Array | null,
    body: AsyncIterable<Uint8Array>,
    signal: AbortSignal | undefined,
    release: () => void,
    spooled: Spooled | null,
    bodyless: boolean,
  ): Promise<ClientResponse> {
    return new Promise<ClientResponse>((resolve, reject) => {
      const s = this.s;
      let res: ClientResponse | null = null;
      let out: ResponseBody | null = null;
      let headBuf: Buffer | null = null;
      /* the body bytes the head announced (-1: none announced), and those received */
      let due = -1;
      let received = 0;
      let done = false;
      let sent = false;
      let readTimer: NodeJS.Timeout | null = null;
      let paused = false;
      const totalTimer =
        s.timeout > 0
          ? setTimeout(
              () =>
                fail(new ClientError('ETIMEDOUT', `the request took longer than ${s.timeout} ms`)),
              s.timeout,
            )
          : null;
      const armRead = (): void => {
        if (readTimer !== null) clearTimeout(readTimer);
        readTimer = null;
        if (s.readTimeout <= 0 || done || paused || !sent) return;
        readTimer = setTimeout(
          () =>
            fail(new ClientError('ETIMEDOUT', `the backend sent nothing for ${s.readTimeout} ms`)),
          s.readTimeout,
        );
      };
      const finish = (): void => {
        done = true;
        if (readTimer !== null) clearTimeout(readTimer);
        if (totalTimer !== null) clearTimeout(totalTimer);
        signal?.removeEventListener('abort', onAbort);
        release();
      };
      const fail = (err: Error): void => {
        if (done) return;
        finish();
        socket.destroy();
        if (res === null) reject(err);
        else out!.destroy(err);
      };
      const onAbort = (): void => fail(abortError(signal!));
      signal?.addEventListener('abort', onAbort, { once: true });

      socket.on('data', (chunk: Buffer) => {
        if (done) return;
        armRead();
        if (out !== null) {
          received += chunk.length;
          if (!out.push(chunk)) {
            paused = true;
            if (readTimer !== null) clearTimeout(readTimer);
            socket.pause();
          }
          return;
        }
        headBuf = headBuf === null ? chunk : Buffer.concat([headBuf, chunk]);
        const end = findHeadEnd(headBuf);
        if (end === null) {
          if (headBuf.length > 65536)
            fail(new ClientError('EPROTO', 'the response head is over 64 KiB'));
          return;
        }
        let parsed;
        try {
          parsed = parseHead(headBuf.toString('latin1', 0, end[0]));
        } catch (err) {
          fail(new ClientError('EPROTO', (err as Error).message));
          return;
        }
        out = new ResponseBody({
          bodyRead: () => {
            if (paused) {
              paused = false;
              armRead();
              socket.resume();
            }
          },
          /* the consumer destroyed the body before its end: stop the request */
          bodyClosed: () => {
            if (!done) fail(abortError(AbortSignal.abort()));
          },
        });
        res = { ...parsed, body: out };
        due = announcedLength(parsed, bodyless);
        const rest = headBuf.subarray(end[1]);
        headBuf = null;
        received = rest.length;
        if (rest.length > 0 && !out.push(rest)) {
          paused = true;
          socket.pause();
        }
        resolve(res);
      });
      /* the response ends with the connection: a FIN, or a reset after the head */
      const ended = (): void => {
        const b = out!;
        finish();
        b.push(null);
      };
      socket.on('end', () => {
        if (done) return;
        if (out === null) {
          fail(
            new ClientError(
              'ECONNRESET',
              'the backend closed the connection before a complete response head',
            ),
          );
          return;
        }
        ended();
      });
      socket.on('error', (err: NodeJS.ErrnoException) => {
        if (done) return;
        const code = err.code;
        if (out !== null && (code === 'ECONNRESET' || code === 'EPIPE')) {
          if (due < 0 || received >= due) {
            ended();
            return;
          }
          fail(
            new ClientError(
              'ECONNRESET',
              `the backend reset the connection ${received} bytes into a body of ${due}`,
              { cause: err },
            ),
          );
          return;
        }
        fail(socketError(err, 'the connection to the backend failed'));
      });
      socket.on('close', () =>
        fail(
          new ClientError(
            'ECONNRESET',
            'the backend closed the connection before the response ended',
          ),
        ),
      );

      if (whole !== null) {
        socket.cork();
        socket.write(head);
        if (whole.length > 0) socket.write(whole);
        socket.uncork();
        sent = true;
        armRead();
        return;
      }
      void (async () => {
        try {
          socket.write(head);
          for await (const c of bodyChunks(body)) {
            if (done) return;
            const w = writeAndWait(socket, c);
            if (w !== null) await w;
          }
          sent = true;
          armRead();
        } catch (err) {
          fail(
            new ClientError('ECONNRESET', `the request body failed: ${(err as Error).message}`, {
              cause: err,
            }),
          );
        } finally {
          /* sent, or stopped early: the temporary file goes either way */
          await spooled?.dispose();
        }
      })();
    });
  }
}

/** An SCGI client (a connection per request). */
export class ScgiClient extends StreamClient {
  protected encode(pairs: string[], contentLength: number): Uint8Array {
    return this.codec.scgiRequest(pairs, contentLength);
  }
}

/** A uwsgi client (a connection per request; modifier 0/0 unless told). */
export class UwsgiClient extends StreamClient {
  private readonly m1: number;
  private readonly m2: number;
  constructor(options: UwsgiClientOptions) {
    super(options);
    this.m1 = options.modifier1 ?? 0;
    this.m2 = options.modifier2 ?? 0;
  }

  protected encode(pairs: string[]): Uint8Array {
    return this.codec.uwsgiRequest(pairs, this.m1, this.m2);
  }
}

/**
 * The body length a response head announces: its `Content-Length`, 0 when it can have no
 * body (a HEAD request, 1xx, 204, 304), -1 when it announces none (the close ends it).
 */
function announcedLength(head: ResponseHead, bodyless: boolean): number {
  const s = head.status;
  if (bodyless || s < 200 || s === 204 || s === 304) return 0;
  for (const [name, value] of head.headers) {
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      return contentLength(value.trim());
    }
  }
  return -1;
}
