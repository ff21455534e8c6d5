/**
 * A raw stream client for protocol tests: writes exact bytes, keeps every byte it receives,
 * and tells how the server ended the connection. SCGI and uwsgi tests use it as it is;
 * FcgiClient (fcgi-client.ts) adds FastCGI records on top.
 */
import { connect, type Socket } from 'node:net';

export class RawClient {
  readonly chunks: Buffer[] = [];
  /** The server sent FIN. */
  ended = false;
  /** The socket closed. */
  closed = false;
  error: NodeJS.ErrnoException | null = null;
  private waiters: (() => void)[] = [];

  constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => {
      this.received(chunk);
      this.wake();
    });
    socket.on('end', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', (err) => {
      this.error = err;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
  }

  /** Keeps a chunk the server sent (subclasses also parse it). */
  protected received(chunk: Buffer): void {
    this.chunks.push(chunk);
  }

  /** Connects to a TCP port on 127.0.0.1 or to a unix socket path (half-open allowed). */
  static connect(target: number | string): Promise<RawClient> {
    return openSocket(target, true).then((socket) => new RawClient(socket));
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** Resolves when `check` returns something other than undefined. */
  async until<T>(check: () => T | undefined, what = 'condition'): Promise<T> {
    for (;;) {
      const v = check();
      if (v !== undefined) return v;
      if (this.closed) {
        const again = check();
        if (again !== undefined) return again;
        throw new Error(`connection closed while waiting for ${what}`);
      }
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }

  /** Every byte received so far. */
  bytes(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** Every byte received so far as latin-1. */
  text(): string {
    return this.bytes().toString('latin1');
  }

  /** Bytes as given, strings as latin-1. */
  write(data: Uint8Array | string): boolean {
    return this.socket.write(typeof data === 'string' ? Buffer.from(data, 'latin1') : data);
  }

  /** Writes `data` in pieces of `size` bytes, one write each. */
  async trickle(data: Uint8Array | string, size: number): Promise<void> {
    const b = typeof data === 'string' ? Buffer.from(data, 'latin1') : Buffer.from(data);
    for (let o = 0; o < b.length; o += size) {
      this.socket.write(b.subarray(o, o + size));
      await new Promise((r) => setImmediate(r));
    }
  }

  /** Resolves when the server ended the connection (FIN, or the socket closed). */
  serverEnded(): Promise<true> {
    return this.until(() => (this.ended || this.closed ? true : undefined), 'the server to end');
  }

  /** Resolves when the socket is closed. */
  whenClosed(): Promise<true> {
    return this.until(() => (this.closed ? true : undefined), 'the socket to close');
  }

  /** Half-closes: the server sees the end of the request stream. */
  end(): void {
    this.socket.end();
  }

  /** Closes at once. */
  close(): void {
    this.socket.destroy();
  }
}

/** Latin-1 bytes of a string. */
export const latin1 = (s: string): Buffer => Buffer.from(s, 'latin1');

/** `%XX` escapes decoded byte by byte to latin-1 characters (as nginx's $document_uri). */
export const percentDecoded = (s: string): string =>
  s.replace(/%([0-9A-Fa-f]{2})/g, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));

/** A connected socket to a TCP port on 127.0.0.1 or to a unix socket path. */
export function openSocket(target: number | string, allowHalfOpen: boolean): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket =
      typeof target === 'number'
        ? connect({ port: target, host: '127.0.0.1', allowHalfOpen })
        : connect({ path: target, allowHalfOpen });
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
