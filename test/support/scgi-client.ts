/**
 * SCGI request bytes for tests, written here by hand (not with the codec under test): the
 * netstring of `name NUL value NUL` pairs, then the body.
 */
import { latin1 } from './raw-client.js';

/** `<len>:<pairs>,` with the pairs in the order given (put CONTENT_LENGTH first yourself). */
export function netstring(pairs: readonly string[]): Buffer {
  let block = '';
  for (const s of pairs) block += s + '\0';
  return latin1(`${block.length}:${block},`);
}

/** A whole request: CONTENT_LENGTH (the body's length) first, SCGI=1, `pairs`, then the body. */
export function scgiRequest(pairs: readonly string[], body: string | Buffer = ''): Buffer {
  const b = typeof body === 'string' ? latin1(body) : body;
  return Buffer.concat([netstring(['CONTENT_LENGTH', String(b.length), 'SCGI', '1', ...pairs]), b]);
}
