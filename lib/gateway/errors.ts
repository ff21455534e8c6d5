/**
 * tsgi.errors: a Writable whose bytes go somewhere right away (FastCGI STDERR records for the
 * request, or the server's log). Strings are written as UTF-8, as console output is.
 */
import process from 'node:process';
import { Writable } from 'node:stream';

/** @internal What an {@link ErrorStream} hands its bytes to (a protocol's request). */
export interface ErrorTarget {
  errorBytes(bytes: Uint8Array): void;
}

/**
 * @internal The Writable of {@link errorStream}: every chunk goes to the target synchronously.
 * A class with its own _write (no options, no closure) is the cheapest Writable to make, which
 * matters for a protocol that makes one per request.
 */
export class ErrorStream extends Writable {
  constructor(private readonly target: ErrorTarget) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (e?: Error) => void): void {
    try {
      this.target.errorBytes(chunk);
      callback();
    } catch (err) {
      callback(err as Error);
    }
  }
}

/** A Writable that passes every chunk to `sink` synchronously. */
export function errorStream(sink: (bytes: Uint8Array) => void): Writable {
  return new ErrorStream({ errorBytes: sink });
}

/** tsgi.errors for protocols without an error channel: the process's stderr. */
export function stderrStream(): Writable {
  return errorStream((bytes) => {
    process.stderr.write(bytes);
  });
}
