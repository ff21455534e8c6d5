/**
 * tsgi.errors: a Writable whose bytes go somewhere right away (FastCGI STDERR records for the
 * request, or the server's log). Strings are written as UTF-8, as console output is.
 */
import { Writable } from 'node:stream';

/** A Writable that passes every chunk to `sink` synchronously. */
export function errorStream(sink: (bytes: Uint8Array) => void): Writable {
  return new Writable({
    decodeStrings: true,
    write(chunk: Buffer, _encoding, callback) {
      try {
        sink(chunk);
        callback();
      } catch (err) {
        callback(err as Error);
      }
    },
  });
}

/** tsgi.errors for protocols without an error channel: the process's stderr. */
export function stderrStream(): Writable {
  return errorStream((bytes) => {
    process.stderr.write(bytes);
  });
}
