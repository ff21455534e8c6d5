/**
 * SCGI in the TypeScript codec: the request parser (docs/codec.md, "SCGI parser") and the
 * request head encoder.
 */
import { Buffer } from 'node:buffer';
import { codecError, errorEvent } from '../errors.js';
import { cgiVariables } from '../environ.js';
import {
  resolveLimits,
  type Limits,
  type ScgiEvent,
  type ScgiParser as ScgiParserType,
  type ScgiVarsEvent,
} from '../types.js';
import { asBytes, NOT_LATIN1_RE } from '../bytes.js';
import {
  checkPairsArray,
  copyBytes,
  decodeScgiPairs,
  isDigits15,
  latin1Write,
  TOO_MANY,
} from './pairs.js';

const ST_LENGTH = 0;
const ST_BLOCK = 1;
const ST_COMMA = 2;
const ST_BODY = 3;
const ST_DONE = 4;

/** The SCGI request parser: one request per connection, later bytes ignored. */
class ScgiParser implements ScgiParserType {
  private readonly maxParamsBytes: number;
  private readonly maxPairs: number;
  private dead = false;
  private state = ST_LENGTH;
  private digits = 0;
  private blockLength = 0;
  /* The header block: a view of the current chunk, or an owned copy (`have` bytes so far). */
  private block: Uint8Array | null = null;
  private blockStart = 0;
  private owned = false;
  private have = 0;
  private bodyLeft = 0;

  constructor(limits?: Partial<Limits>) {
    const l = resolveLimits(limits);
    this.maxParamsBytes = l.maxParamsBytes;
    this.maxPairs = l.maxPairs;
  }

  close(): void {
    this.dead = true;
    this.block = null;
  }

  pushVars(input: Uint8Array): ScgiVarsEvent[] {
    const events = this.push(input) as (ScgiEvent | ScgiVarsEvent)[];
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      if (ev.type === 'params') {
        events[i] = { type: 'vars', vars: cgiVariables(ev.pairs), contentLength: ev.contentLength };
      }
    }
    return events as ScgiVarsEvent[];
  }

  push(input: Uint8Array): ScgiEvent[] {
    const out: ScgiEvent[] = [];
    if (this.dead || this.state === ST_DONE) return out;
    const chunk = asBytes(input);
    if (chunk === null) return out;
    try {
      this.run(chunk, out);
    } catch {
      /* Not reachable by design; never let an exception escape push(). */
      this.fail(out, errorEvent('SCGI_BAD_HEADERS'));
    }
    if (this.block !== null && !this.owned) {
      /* The block is whole but its ',' is in a later chunk: keep a copy. */
      this.block = copyBytes(this.block, this.blockStart, this.blockStart + this.blockLength);
      this.blockStart = 0;
      this.owned = true;
    }
    return out;
  }

  private fail(out: ScgiEvent[], e: ScgiEvent): void {
    out.push(e);
    this.dead = true;
    this.block = null;
  }

  private run(chunk: Uint8Array, out: ScgiEvent[]): void {
    const n = chunk.length;
    let p = 0;
    while (p < n) {
      switch (this.state) {
        case ST_LENGTH: {
          const c = chunk[p++];
          if (c >= 48 && c <= 57) {
            if (this.digits === 10) {
              this.fail(out, errorEvent('SCGI_BAD_NETSTRING'));
              return;
            }
            this.digits++;
            this.blockLength = this.blockLength * 10 + (c - 48);
          } else if (c === 58 && this.digits !== 0) {
            if (this.blockLength > this.maxParamsBytes) {
              this.fail(
                out,
                errorEvent('SCGI_HEADERS_TOO_LARGE', this.blockLength, this.maxParamsBytes),
              );
              return;
            }
            this.state = this.blockLength === 0 ? ST_COMMA : ST_BLOCK;
          } else {
            this.fail(out, errorEvent('SCGI_BAD_NETSTRING'));
            return;
          }
          break;
        }
        case ST_BLOCK: {
          const len = this.blockLength;
          const avail = n - p;
          if (this.have === 0 && avail >= len) {
            this.block = chunk;
            this.blockStart = p;
            this.owned = false;
            p += len;
            this.state = ST_COMMA;
            break;
          }
          if (this.block === null) {
            this.block = new Uint8Array(len);
            this.blockStart = 0;
            this.owned = true;
          }
          const k = avail < len - this.have ? avail : len - this.have;
          this.block.set(chunk.subarray(p, p + k), this.have);
          this.have += k;
          p += k;
          if (this.have === len) this.state = ST_COMMA;
          break;
        }
        case ST_COMMA: {
          if (chunk[p++] !== 44) {
            this.fail(out, errorEvent('SCGI_BAD_NETSTRING', 0, 0, 1));
            return;
          }
          if (!this.headers(out)) return;
          break;
        }
        case ST_BODY: {
          const avail = n - p;
          const k = avail < this.bodyLeft ? avail : this.bodyLeft;
          out.push({ type: 'body', data: chunk.subarray(p, p + k) });
          p += k;
          this.bodyLeft -= k;
          if (this.bodyLeft === 0) {
            out.push({ type: 'bodyEnd' });
            this.state = ST_DONE;
          }
          break;
        }
        default:
          return;
      }
    }
  }

  /** Rules 4–7 once the ',' is in; emits params (and bodyEnd for an empty body). */
  private headers(out: ScgiEvent[]): boolean {
    const block = this.block;
    const start = this.blockStart;
    this.block = null;
    const r =
      block === null ? [] : decodeScgiPairs(block, start, start + this.blockLength, this.maxPairs);
    if (typeof r === 'number') {
      if (r === TOO_MANY) this.fail(out, errorEvent('SCGI_TOO_MANY_PARAMS', 0, this.maxPairs));
      else this.fail(out, errorEvent('SCGI_BAD_HEADERS'));
      return false;
    }
    if (r.length === 0 || r[0] !== 'CONTENT_LENGTH') {
      this.fail(out, errorEvent('SCGI_NO_CONTENT_LENGTH'));
      return false;
    }
    const cl = r[1];
    if (!isDigits15(cl)) {
      this.fail(out, errorEvent('SCGI_BAD_CONTENT_LENGTH'));
      return false;
    }
    let scgi = false;
    for (let i = 0; i < r.length; i += 2) {
      if (r[i] === 'SCGI' && r[i + 1] === '1') {
        scgi = true;
        break;
      }
    }
    if (!scgi) {
      this.fail(out, errorEvent('SCGI_NO_SCGI'));
      return false;
    }
    const contentLength = +cl;
    out.push({ type: 'params', pairs: r, contentLength });
    if (contentLength === 0) {
      out.push({ type: 'bodyEnd' });
      this.state = ST_DONE;
    } else {
      this.bodyLeft = contentLength;
      this.state = ST_BODY;
    }
    return true;
  }
}

/** A new SCGI request parser with `limits` (defaults from DEFAULT_LIMITS). */
export function createScgiParser(limits?: Partial<Limits>): ScgiParserType {
  return new ScgiParser(limits);
}

/**
 * An SCGI request head: the netstring of `CONTENT_LENGTH`, `SCGI` = `1`, then `pairs` minus
 * any CONTENT_LENGTH or SCGI pair. Checks, in order: contentLength (integer 0–2^53-1), an odd
 * pairs array, then each string of `pairs` in order (latin-1, then no NUL).
 */
export function scgiRequest(pairs: readonly string[], contentLength: number): Uint8Array {
  if (!Number.isSafeInteger(contentLength) || contentLength < 0) {
    throw codecError('ENCODE_BAD_ARGUMENT');
  }
  checkPairsArray(pairs, 2);
  let s = 'CONTENT_LENGTH\0' + contentLength + '\0SCGI\x001\0';
  const n = pairs.length;
  for (let i = 0; i < n; i++) {
    const x = pairs[i];
    if (typeof x !== 'string' || x.indexOf('\0') !== -1) checkScgiStrings(pairs, i);
  }
  for (let i = 0; i < n; i += 2) {
    const name = pairs[i];
    if (name === 'CONTENT_LENGTH' || name === 'SCGI') {
      /* Left out of the block, but checked like every other pair. */
      if (NOT_LATIN1_RE.test(pairs[i + 1])) checkScgiStrings(pairs, n);
      continue;
    }
    s += name + '\0' + pairs[i + 1] + '\0';
  }
  /* Every string was checked for NUL; a non-latin-1 one is found in order. */
  if (NOT_LATIN1_RE.test(s)) checkScgiStrings(pairs, n);
  const head = s.length + ':';
  const out = Buffer.allocUnsafe(head.length + s.length + 1);
  let o = latin1Write(out, head, 0);
  o += latin1Write(out, s, o);
  out[o] = 44;
  return out;
}

/** Throws the first error among `pairs[0..last]` in order; returns when there is none. */
function checkScgiStrings(pairs: readonly string[], last: number): void {
  for (let i = 0; i <= last && i < pairs.length; i++) {
    const x = pairs[i];
    if (typeof x !== 'string') throw codecError('ENCODE_BAD_ARGUMENT');
    if (NOT_LATIN1_RE.test(x)) throw codecError('ENCODE_NOT_LATIN1');
    if (x.indexOf('\0') !== -1) throw codecError('ENCODE_BAD_ARGUMENT', 0, 0, '', 3);
  }
}
