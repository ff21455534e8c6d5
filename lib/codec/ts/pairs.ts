/**
 * Name-value pair helpers of the TypeScript codec: decoding the FastCGI, SCGI and uwsgi
 * params blocks into flat latin-1 string arrays, and the latin-1 string utilities the encoders
 * share.
 *
 * Decoding makes one latin-1 string of a whole block (a single native call) and cuts names and
 * values out of it with `substring`: in latin-1 a character offset is a byte offset.
 */
import { Buffer } from 'node:buffer';
import { NOT_LATIN1_RE } from '../bytes.js';
import { codecError } from '../errors.js';

type Latin1Slice = (this: Uint8Array, start: number, end: number) => string;
type Latin1Write = (this: Uint8Array, s: string, offset: number, length: number) => number;

const bufferProto = Buffer.prototype as unknown as {
  latin1Slice?: Latin1Slice;
  latin1Write?: Latin1Write;
};

/* Buffer.prototype.latin1Slice/latin1Write accept any Uint8Array receiver; they exist on every
 * supported Node version, with a documented-API fallback just in case. */
const nativeSlice: Latin1Slice | undefined = bufferProto.latin1Slice;
const nativeWrite: Latin1Write | undefined = bufferProto.latin1Write;

/** The bytes `b[start..end)` as a latin-1 string (byte `x` becomes U+00xx). */
export const latin1Slice: (b: Uint8Array, start: number, end: number) => string = nativeSlice
  ? (b, start, end) => nativeSlice.call(b, start, end)
  : (b, start, end) => Buffer.from(b.buffer, b.byteOffset + start, end - start).toString('latin1');

/**
 * Writes the latin-1 string `s` (every character ≤ U+00FF, already checked) into `b` at
 * `offset`; returns the number of bytes written (`s.length`).
 */
export const latin1Write: (b: Uint8Array, s: string, offset: number) => number = nativeWrite
  ? (b, s, offset) => nativeWrite.call(b, s, offset, s.length)
  : (b, s, offset) =>
      Buffer.from(b.buffer, b.byteOffset, b.byteLength).write(s, offset, s.length, 'latin1');

/**
 * A copy of `b[start..end)` in memory of its own (Buffer#slice would only make a view).
 */
export function copyBytes(b: Uint8Array, start: number, end: number): Uint8Array {
  const out = new Uint8Array(end - start);
  out.set(b.subarray(start, end));
  return out;
}

/** Decoding failed: more than maxPairs pairs. */
export const TOO_MANY = 1;
/** Decoding failed: malformed block. */
export const MALFORMED = 2;

/**
 * Decodes FastCGI name-value pairs in `b[start..end)`. Returns the flat pairs array (only the
 * names when `namesOnly`), or {@link TOO_MANY} / {@link MALFORMED}. The pair count is checked
 * before each pair begins, then its lengths and bytes.
 */
export function decodeFcgiPairs(
  b: Uint8Array,
  start: number,
  end: number,
  maxPairs: number,
  namesOnly: boolean,
): string[] | number {
  const out: string[] = [];
  if (start >= end) return out;
  const s = latin1Slice(b, start, end);
  let p = start;
  let count = 0;
  while (p < end) {
    if (count >= maxPairs) return TOO_MANY;
    let nl = b[p];
    if (nl > 127) {
      if (end - p < 4) return MALFORMED;
      nl = ((nl & 0x7f) << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3];
      p += 4;
    } else p++;
    if (p >= end) return MALFORMED;
    let vl = b[p];
    if (vl > 127) {
      if (end - p < 4) return MALFORMED;
      vl = ((vl & 0x7f) << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3];
      p += 4;
    } else p++;
    if (nl + vl > end - p) return MALFORMED;
    const o = p - start;
    if (namesOnly) out.push(s.substring(o, o + nl));
    else out.push(s.substring(o, o + nl), s.substring(o + nl, o + nl + vl));
    p += nl + vl;
    count++;
  }
  return out;
}

/**
 * Decodes an SCGI header block `b[start..end)` (`name NUL value NUL` repeated). Returns the
 * flat pairs array, or {@link TOO_MANY} / {@link MALFORMED}.
 */
export function decodeScgiPairs(
  b: Uint8Array,
  start: number,
  end: number,
  maxPairs: number,
): string[] | number {
  const out: string[] = [];
  if (start >= end) return out;
  const s = latin1Slice(b, start, end);
  const n = s.length;
  let p = 0;
  let count = 0;
  while (p < n) {
    if (count >= maxPairs) return TOO_MANY;
    const a = s.indexOf('\0', p);
    if (a < 0) return MALFORMED;
    const z = s.indexOf('\0', a + 1);
    if (z < 0) return MALFORMED;
    out.push(s.substring(p, a), s.substring(a + 1, z));
    p = z + 1;
    count++;
  }
  return out;
}

/**
 * Decodes a uwsgi vars block `b[start..end)` ({u16 LE size, key, u16 LE size, value}
 * repeated). Returns the flat pairs array, or {@link TOO_MANY} / {@link MALFORMED}.
 */
export function decodeUwsgiPairs(
  b: Uint8Array,
  start: number,
  end: number,
  maxPairs: number,
): string[] | number {
  const out: string[] = [];
  if (start >= end) return out;
  const s = latin1Slice(b, start, end);
  let p = start;
  let count = 0;
  while (p < end) {
    if (count >= maxPairs) return TOO_MANY;
    if (end - p < 2) return MALFORMED;
    const kl = b[p] | (b[p + 1] << 8);
    p += 2;
    if (kl > end - p) return MALFORMED;
    const ko = p - start;
    p += kl;
    if (end - p < 2) return MALFORMED;
    const vl = b[p] | (b[p + 1] << 8);
    p += 2;
    if (vl > end - p) return MALFORMED;
    const vo = p - start;
    p += vl;
    out.push(s.substring(ko, ko + kl), s.substring(vo, vo + vl));
    count++;
  }
  return out;
}

/** Whether `s` is 1–15 ASCII digits (a CONTENT_LENGTH value both SCGI and uwsgi accept). */
export function isDigits15(s: string): boolean {
  const n = s.length;
  if (n === 0 || n > 15) return false;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return false;
  }
  return true;
}

/* One-character strings for lengths 0–255, so that length prefixes are built without calls. */
const CHARS: string[] = [];
for (let i = 0; i < 256; i++) CHARS.push(String.fromCharCode(i));

/** The FastCGI length prefix of `n` as latin-1 characters (1 byte up to 127, else 4 bytes). */
export function fcgiLength(n: number): string {
  if (n < 128) return CHARS[n];
  return (
    CHARS[((n >>> 24) & 0x7f) | 0x80] +
    CHARS[(n >>> 16) & 0xff] +
    CHARS[(n >>> 8) & 0xff] +
    CHARS[n & 0xff]
  );
}

/** The uwsgi u16 little-endian length prefix of `n` (≤ 65535) as latin-1 characters. */
export function uwsgiLength(n: number): string {
  return CHARS[n & 0xff] + CHARS[(n >>> 8) & 0xff];
}

/**
 * Checks `pairs` is an array of strings with an even length; throws ENCODE_BAD_ARGUMENT
 * (`invalid argument`, or `variant` for an odd length).
 */
export function checkPairsArray(pairs: readonly string[], variant: number): void {
  if (!Array.isArray(pairs)) throw codecError('ENCODE_BAD_ARGUMENT');
  if ((pairs.length & 1) !== 0) throw codecError('ENCODE_BAD_ARGUMENT', 0, 0, '', variant);
}

/**
 * Builds the FastCGI name-value block of `pairs` (or of `names` with empty values when
 * `namesOnly`) as one latin-1 string; throws ENCODE_NOT_LATIN1 (or ENCODE_BAD_ARGUMENT for a
 * non-string element) at the first offending string in order, name before value.
 */
export function fcgiPairsString(pairs: readonly string[], namesOnly: boolean): string {
  let s = '';
  const n = pairs.length;
  if (namesOnly) {
    for (let i = 0; i < n; i++) {
      const name = pairs[i];
      if (typeof name !== 'string') return slowCheck(pairs);
      s += fcgiLength(name.length) + '\0' + name;
    }
  } else {
    for (let i = 0; i < n; i += 2) {
      const name = pairs[i];
      const value = pairs[i + 1];
      if (typeof name !== 'string' || typeof value !== 'string') return slowCheck(pairs);
      s += fcgiLength(name.length) + fcgiLength(value.length) + name + value;
    }
  }
  if (NOT_LATIN1_RE.test(s)) slowCheck(pairs);
  return s;
}

/** Finds and throws the first error among `strings` in order (type, then latin-1). */
function slowCheck(strings: readonly string[]): never {
  for (let i = 0; i < strings.length; i++) {
    const x = strings[i];
    if (typeof x !== 'string') throw codecError('ENCODE_BAD_ARGUMENT');
    if (NOT_LATIN1_RE.test(x)) throw codecError('ENCODE_NOT_LATIN1');
  }
  /* Unreachable when called after a failed check; keep the contract anyway. */
  throw codecError('ENCODE_NOT_LATIN1');
}
