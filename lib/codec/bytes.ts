/** The bytes the codecs take: byte views, and strings whose characters are latin-1. */

/** Matches a UTF-16 code unit above U+00FF, i.e. a string that is not latin-1. */
export const NOT_LATIN1_RE = /[\u0100-\uffff]/;

/** Turns any chunk into a Uint8Array, or null when it holds no bytes we can read. */
export function asBytes(chunk: unknown): Uint8Array | null {
  if (chunk instanceof Uint8Array) return chunk;
  if (ArrayBuffer.isView(chunk))
    return new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength);
  if (chunk instanceof ArrayBuffer) return new Uint8Array(chunk);
  return null;
}
