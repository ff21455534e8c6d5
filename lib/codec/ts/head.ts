/**
 * The response head encoder of the TypeScript codec: validates the status line and the
 * headers (docs/codec.md, "Encoders") and writes the CRLF header block as latin-1.
 */
import { Buffer } from 'node:buffer';
import { codecError } from '../errors.js';
import type { HeadStyle } from '../types.js';
import { NOT_LATIN1_RE } from '../bytes.js';
import { latin1Write } from './pairs.js';
import { isFieldValue, isStatus, isToken } from '../../http/grammar.js';

/**
 * Validates a response head and returns it as one latin-1 string (every character ≤ U+00FF):
 * the status line (`Status: ` for cgi, `HTTP/1.1 ` for http), one `Name: value` line per
 * header, and the empty line, all CRLF. Throws a CodecError: ENCODE_BAD_ARGUMENT for bad
 * arguments (checked first), then HEAD_BAD_STATUS, then HEAD_BAD_NAME / HEAD_BAD_VALUE for the
 * first bad header in order, name before value.
 */
export function headString(status: string, headers: readonly string[], style: HeadStyle): string {
  let s: string;
  if (style === 'cgi') s = 'Status: ';
  else if (style === 'http') s = 'HTTP/1.1 ';
  else throw codecError('ENCODE_BAD_ARGUMENT');
  if (typeof status !== 'string' || !Array.isArray(headers))
    throw codecError('ENCODE_BAD_ARGUMENT');
  const n = headers.length;
  if ((n & 1) !== 0) throw codecError('ENCODE_BAD_ARGUMENT', 0, 0, '', 1);
  if (!isStatus(status)) throw codecError('HEAD_BAD_STATUS');
  s += status + '\r\n';
  for (let i = 0; i < n; i += 2) {
    const name = headers[i];
    const value = headers[i + 1];
    if (typeof name !== 'string') throw codecError('ENCODE_BAD_ARGUMENT');
    if (!isToken(name)) throw codecError('HEAD_BAD_NAME', 0, 0, name);
    if (typeof value !== 'string') throw codecError('ENCODE_BAD_ARGUMENT');
    if (!isFieldValue(value)) throw codecError('HEAD_BAD_VALUE', 0, 0, name);
    s += name + ': ' + value + '\r\n';
  }
  return s + '\r\n';
}

/** Encodes a validated response head (see {@link headString}) into a new buffer. */
export function encodeHead(
  status: string,
  headers: readonly string[],
  style: HeadStyle,
): Uint8Array {
  const s = headString(status, headers, style);
  const out = Buffer.allocUnsafe(s.length);
  latin1Write(out, s, 0);
  return out;
}

/**
 * {@link encodeHead} followed by the latin-1 bytes of `body`, in one new buffer: the style and
 * `body` are checked first (ENCODE_BAD_ARGUMENT), then the body's characters
 * (ENCODE_NOT_LATIN1), then the head as encodeHead checks it.
 */
export function encodeHeadText(
  status: string,
  headers: readonly string[],
  body: string,
  style: HeadStyle,
): Uint8Array {
  if ((style !== 'cgi' && style !== 'http') || typeof body !== 'string') {
    throw codecError('ENCODE_BAD_ARGUMENT');
  }
  if (NOT_LATIN1_RE.test(body)) throw codecError('ENCODE_NOT_LATIN1');
  const s = headString(status, headers, style);
  const out = Buffer.allocUnsafe(s.length + body.length);
  latin1Write(out, s, 0);
  latin1Write(out, body, s.length);
  return out;
}
