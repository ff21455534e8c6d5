/**
 * What the proxy does with a request body the backend did not read whole (it answered first: a
 * 413, a script that never reads its input): the body is never destroyed under the answer, since
 * closing a socket with unread bytes makes the kernel reset the connection and the client can
 * lose the answer it was being sent. Once the answer is out, the rest of the body is read and
 * thrown away, as node:http and nginx do; the connection stays usable when it ends in time. A
 * client that sends more than `lingerBytes`, for longer than `lingerTime`, or that stays silent
 * for `lingerTimeout`, has its connection ended (FIN, after the answer) and then closed
 * `lingerTimeout` later (nginx's lingering close).
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';

/** nginx's lingering_timeout: how long a connection ended after its answer stays open. */
export const LINGERING_TIMEOUT_MS = 5000;

/**
 * nginx's lingering close: ends `socket` after what it was given (FIN) and closes it `ms`
 * later, so that the reset a close with unread bytes sends comes after the client read the
 * answer.
 */
export function lingeringClose(socket: Socket, ms: number): void {
  socket.end();
  setTimeout(() => socket.destroy(), ms).unref();
}

/** Bounds on reading and discarding the rest of a request body after the answer. */
export interface LingerOptions {
  /**
   * Bytes of an unread request body read and thrown away after the answer before the
   * connection is closed instead (default 64 MiB).
   */
  lingerBytes?: number;
  /** Milliseconds that may take in all (default 30000, nginx's lingering_time). */
  lingerTime?: number;
  /**
   * Milliseconds the client may stay silent meanwhile, and the time it has to go away after
   * its connection was ended (default 5000, nginx's lingering_timeout).
   */
  lingerTimeout?: number;
}

/** Resolved {@link LingerOptions}. */
export interface LingerSettings {
  bytes: number;
  time: number;
  timeout: number;
}

/** The bounds by default. */
export function lingerSettings(o: LingerOptions): LingerSettings {
  return {
    bytes: o.lingerBytes ?? 64 * 1024 * 1024,
    time: o.lingerTime ?? 30000,
    timeout: o.lingerTimeout ?? LINGERING_TIMEOUT_MS,
  };
}

/**
 * `stream` as a body a client may stop reading without destroying it (a `for await` loop that
 * stops early destroys its stream: for a request, its socket).
 */
export function keptBody(stream: Readable): AsyncIterable<Uint8Array> {
  return { [Symbol.asyncIterator]: () => stream.iterator({ destroyOnReturn: false }) };
}

/**
 * Reads and throws away the rest of `stream` within the bounds `s`; `over()` is called once
 * when they are passed (and the stream is read on, for the bytes already under way).
 */
export function discardRest(stream: Readable, s: LingerSettings, over: () => void): void {
  if (stream.readableEnded || stream.destroyed) return;
  let left = s.bytes;
  let done = false;
  const stop = (): void => {
    clearTimeout(total);
    clearTimeout(idle);
    stream.off('data', onData);
    stream.off('end', stop);
    stream.off('close', stop);
  };
  const pass = (): void => {
    if (done) return;
    done = true;
    stop();
    over();
  };
  const total = setTimeout(pass, s.time);
  const idle = setTimeout(pass, s.timeout);
  const onData = (chunk: Uint8Array): void => {
    left -= chunk.length;
    if (left < 0) {
      pass();
      return;
    }
    idle.refresh();
  };
  total.unref();
  idle.unref();
  stream.on('data', onData);
  stream.once('end', stop);
  stream.once('close', stop);
  stream.resume();
  /* resume() waits for the reader that stopped early to let go of the stream */
  if (stream.readableFlowing !== true) setImmediate(() => stream.resume());
}

/**
 * After the answer to `req` was written: its unread body discarded within `s`; past the
 * bounds, the connection ended after the answer (FIN) and closed `s.timeout` later.
 */
export function lingerRequest(req: IncomingMessage, s: LingerSettings): void {
  if (req.complete) return;
  discardRest(req, s, () => {
    const socket = req.socket;
    /* keep reading (and dropping) what is under way while the client sees the end */
    req.on('data', ignore);
    req.resume();
    if (!socket.destroyed) lingeringClose(socket, s.timeout);
  });
}

function ignore(): void {}
