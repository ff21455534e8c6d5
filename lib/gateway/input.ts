/**
 * tsgi.input (and tsgi.data): a Readable of the request body fed by a protocol connection, with
 * backpressure: feed() returns false when the app is not reading, and `onWant` is called when
 * it wants more. The stream ends at CONTENT_LENGTH bytes (later bytes are dropped) or at the
 * protocol's end of body, whichever comes first. A body that ends short of CONTENT_LENGTH, or
 * a request that is aborted, destroys the stream without an error argument: readers see a
 * premature close (for await / pipeline reject with ERR_STREAM_PREMATURE_CLOSE) and a stream
 * nobody listens to cannot crash the process.
 */
import { Buffer } from 'node:buffer';
import { Readable } from 'node:stream';

const HIGH_WATER_MARK = 64 * 1024;

/** Parses a CONTENT_LENGTH value: its number, or -1 when absent, empty or not decimal. */
export function contentLength(value: string | undefined): number {
  if (value === undefined || value === '' || !/^[0-9]{1,15}$/.test(value)) return -1;
  return Number(value);
}

/**
 * tsgi.input of a request known to have no body (CONTENT_LENGTH 0): it ends when first read.
 * Nothing feeds it, and it costs less to make than the environ's lazy key would.
 */
export class EmptyInput extends Readable {
  override _read(): void {
    this.push(null);
  }
}

export class BodyInput extends Readable {
  /** Bytes still expected (CONTENT_LENGTH), or -1 when the protocol's end of body decides. */
  private remaining: number;
  /** True while the consumer's buffer is full and the source was told to stop. */
  private full = false;
  private over = false;
  /** Called when the consumer wants more after feed() returned false. */
  onWant: (() => void) | null = null;

  constructor(length: number) {
    super({ highWaterMark: HIGH_WATER_MARK });
    this.remaining = length;
    if (length === 0) this.finishNow();
  }

  /** True once the body is complete (or the stream gone): later bytes are not wanted. */
  get complete(): boolean {
    return this.over;
  }

  override _read(): void {
    if (this.full) {
      this.full = false;
      const want = this.onWant;
      if (want !== null) want();
    }
  }

  /** Passes body bytes on; false means "stop sending until onWant is called". */
  feed(data: Uint8Array): boolean {
    if (this.over) return true;
    let chunk = data;
    if (this.remaining >= 0) {
      if (chunk.length >= this.remaining) {
        chunk = chunk.subarray(0, this.remaining);
        this.remaining = 0;
        if (chunk.length !== 0) this.push(toBuffer(chunk));
        this.finishNow();
        return true;
      }
      this.remaining -= chunk.length;
    }
    if (chunk.length === 0) return true;
    if (!this.push(toBuffer(chunk))) {
      this.full = true;
      return false;
    }
    return true;
  }

  /** The protocol's end of body. */
  finish(): void {
    if (this.over) return;
    if (this.remaining > 0) this.abort();
    else this.finishNow();
  }

  /** The request is gone: readers see a premature close. */
  abort(): void {
    if (this.over) return;
    this.over = true;
    this.full = false;
    this.destroy();
  }

  private finishNow(): void {
    this.over = true;
    this.full = false;
    this.push(null);
  }

  /** True while the consumer is full (the source should be paused). */
  get blocked(): boolean {
    return this.full;
  }
}

function toBuffer(u: Uint8Array): Buffer {
  return Buffer.isBuffer(u) ? u : Buffer.from(u.buffer, u.byteOffset, u.byteLength);
}

/** An input with no body. */
export function emptyInput(): BodyInput {
  return new BodyInput(0);
}
