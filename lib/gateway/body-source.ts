/**
 * A request body that a protocol connection pushes in as it arrives (FastCGI STDIN and DATA
 * records, the SCGI and uwsgi body after the header block) and that the app pulls from as
 * tsgi.input, with backpressure both ways.
 *
 * The stream itself (a {@link BodyInput}) is made on first access: most apps never read the
 * body of a GET. Bytes that arrive before are kept, and past 64 KiB the source is paused
 * (its {@link FlowControl}, usually the socket) until the app asks for the stream. While the
 * app's buffer is full the source stays paused; it is resumed when the app reads on, when the
 * body is complete, or when the request is over and later bytes are only dropped.
 */
import { BodyInput } from './input.js';

/** What a body source pauses while its consumer is full: a socket. Calls are counted. */
export interface FlowControl {
  /** Stop reading (one more reason to). */
  block(): void;
  /** One reason less to stop reading. */
  unblock(): void;
}

/** Body bytes kept for an app that has not asked for tsgi.input yet before the source pauses. */
const PENDING_LIMIT = 64 * 1024;

/** One request body stream fed by a protocol connection; see the module comment. */
export class BodySource {
  private stream: BodyInput | null = null;
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  private ended = false;
  private dropped = false;
  private blocked = false;

  /**
   * @param length CONTENT_LENGTH (the stream ends there), or -1 when the protocol's end of
   *   body decides.
   * @param flow paused while the consumer is full.
   */
  constructor(
    private readonly length: number,
    private readonly flow: FlowControl,
  ) {}

  /** The stream (tsgi.input or tsgi.data). */
  get(): BodyInput {
    if (this.stream !== null) return this.stream;
    const s = new BodyInput(this.length);
    this.stream = s;
    s.onWant = () => this.unblock();
    let ok = true;
    for (const c of this.pending) ok = s.feed(c);
    this.pending = [];
    if (this.dropped) s.abort();
    else if (this.ended) s.finish();
    if (ok || s.complete) this.unblock();
    return s;
  }

  /** Body bytes from the peer. */
  feed(bytes: Uint8Array): void {
    if (this.dropped || this.ended) return;
    const s = this.stream;
    if (s !== null) {
      if (!s.feed(bytes)) this.block();
      return;
    }
    this.pending.push(bytes);
    this.pendingBytes += bytes.length;
    if (this.pendingBytes >= PENDING_LIMIT) this.block();
  }

  /** The peer's end of the body. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.stream?.finish();
  }

  /** The peer sends nothing more: an unfinished stream ends early. */
  peerGone(): void {
    if (!this.ended) this.drop();
  }

  /** The request is over: the stream closes (if unfinished) and nothing more is kept. */
  drop(): void {
    this.dropped = true;
    this.pending = [];
    this.stream?.abort();
    this.unblock();
  }

  private block(): void {
    if (!this.blocked) {
      this.blocked = true;
      this.flow.block();
    }
  }

  private unblock(): void {
    if (this.blocked) {
      this.blocked = false;
      this.flow.unblock();
    }
  }
}
