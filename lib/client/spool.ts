/**
 * Request bodies of unknown length held to learn their length: SCGI and uwsgi send
 * CONTENT_LENGTH before the body, and PHP reads no body without one. The first
 * `bodyBufferSize` bytes stay in memory; a longer body goes to a temporary file, as nginx's
 * client_body_buffer_size does; past `maxBufferedBody` bytes the body is refused
 * (EBODYTOOLARGE, 413), as nginx's client_max_body_size refuses it.
 *
 * The temporary file is removed from its directory as soon as it is open (where the system
 * allows it: everywhere but Windows), so that no path — success, failure, abort, a crash —
 * leaves it behind; its descriptor is closed when the body has been read to its end, when the
 * reader stops early, or by dispose(), whichever comes first.
 */
import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { abortError, bodyChunks } from './common.js';
import { ClientError } from './errors.js';

/** How a request body of unknown length is held (SCGI, uwsgi, and the php-fpm proxy). */
export interface SpoolOptions {
  /**
   * The largest body of unknown length accepted (default 16 MiB); a longer one is refused
   * with EBODYTOOLARGE (413 from a proxy).
   */
  maxBufferedBody?: number;
  /** Bytes of such a body held in memory; a longer one goes to a temporary file (default 1 MiB). */
  bodyBufferSize?: number;
  /** Where the temporary files go (default: the system's temporary directory). */
  tempDir?: string;
}

/** The largest body of unknown length accepted, by default (16 MiB). */
export const DEFAULT_MAX_BUFFERED_BODY = 16 * 1024 * 1024;

/** Bytes of a body of unknown length held in memory, by default (1 MiB). */
export const DEFAULT_BODY_BUFFER_SIZE = 1024 * 1024;

/** Resolved spool options. */
export interface SpoolSettings {
  max: number;
  memory: number;
  dir: string | undefined;
}

export function spoolSettings(o: SpoolOptions): SpoolSettings {
  return {
    max: o.maxBufferedBody ?? DEFAULT_MAX_BUFFERED_BODY,
    memory: o.bodyBufferSize ?? DEFAULT_BODY_BUFFER_SIZE,
    dir: o.tempDir,
  };
}

/** A body whose length is known: in memory (`bytes`), or in a temporary file (`chunks()`). */
export interface Spooled {
  length: number;
  /** The whole body when it stayed in memory; null when it is in a file. */
  bytes: Uint8Array | null;
  /**
   * The body read back from its file, once (closes the file at the end, or when the reader
   * stops early).
   */
  chunks(): AsyncGenerator<Uint8Array>;
  /** Closes (and removes, if still there) the temporary file; idempotent. */
  dispose(): Promise<void>;
}

/** Size of the reads from a spooled file. */
const READ_SIZE = 64 * 1024;

const NOTHING: Spooled['dispose'] = () => Promise.resolve();

/**
 * Reads `body` whole (see the file's comment); EBODYTOOLARGE past `s.max` bytes, ABORT_ERR
 * when `signal` aborts. The file, if one was made, is gone when this rejects.
 */
export async function spoolBody(
  body: AsyncIterable<Uint8Array | string>,
  s: SpoolSettings,
  signal?: AbortSignal,
): Promise<Spooled> {
  const held: Uint8Array[] = [];
  let n = 0;
  let file: TempFile | null = null;
  try {
    for await (const c of bodyChunks(body)) {
      if (signal?.aborted) throw abortError(signal);
      n += c.length;
      if (n > s.max) {
        throw new ClientError(
          'EBODYTOOLARGE',
          `a request body of unknown length is over ${s.max} bytes`,
        );
      }
      if (file !== null) await file.write(c);
      else if (n <= s.memory) held.push(c);
      else {
        file = await TempFile.create(s.dir);
        for (const h of held.splice(0)) await file.write(h);
        await file.write(c);
      }
    }
    if (signal?.aborted) throw abortError(signal);
  } catch (err) {
    await file?.dispose();
    throw err;
  }
  if (file === null) {
    const bytes = held.length === 1 ? held[0]! : Buffer.concat(held, n);
    return { length: n, bytes, chunks: () => memoryChunks(bytes), dispose: NOTHING };
  }
  const f = file;
  return { length: n, bytes: null, chunks: () => f.chunks(n), dispose: () => f.dispose() };
}

async function* memoryChunks(bytes: Uint8Array): AsyncGenerator<Uint8Array> {
  if (bytes.length > 0) yield bytes;
}

/** A temporary file, removed from its directory once open where the system allows it. */
class TempFile {
  private closed = false;
  private constructor(
    private readonly fh: FileHandle,
    /** The path while the file is still in its directory (Windows), else null. */
    private path: string | null,
  ) {}

  static async create(dir: string | undefined): Promise<TempFile> {
    const path = join(dir ?? tmpdir(), `tsgi-body-${randomBytes(8).toString('hex')}`);
    const fh = await open(path, 'wx+', 0o600);
    try {
      await unlink(path);
      return new TempFile(fh, null);
    } catch {
      /* an open file cannot be removed here: it goes in dispose() */
      return new TempFile(fh, path);
    }
  }

  async write(chunk: Uint8Array): Promise<void> {
    let off = 0;
    while (off < chunk.length) {
      const { bytesWritten } = await this.fh.write(chunk, off, chunk.length - off);
      off += bytesWritten;
    }
  }

  async *chunks(length: number): AsyncGenerator<Uint8Array> {
    try {
      for (let pos = 0; pos < length;) {
        const buf = Buffer.allocUnsafe(Math.min(READ_SIZE, length - pos));
        const { bytesRead } = await this.fh.read(buf, 0, buf.length, pos);
        if (bytesRead === 0) throw new Error('the spooled request body is shorter than written');
        pos += bytesRead;
        yield buf.subarray(0, bytesRead);
      }
    } finally {
      await this.dispose();
    }
  }

  async dispose(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.fh.close().catch(() => undefined);
    if (this.path !== null) {
      const path = this.path;
      this.path = null;
      await unlink(path).catch(() => undefined);
    }
  }
}
