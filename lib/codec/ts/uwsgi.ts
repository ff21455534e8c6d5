/**
 * uwsgi in the TypeScript codec: the request parser (docs/codec.md, "uwsgi parser") and the
 * request head encoder.
 */
import { Buffer } from 'node:buffer';
import { codecError, errorEvent } from '../errors.js';
import { cgiVariables } from '../environ.js';
import {
  resolveLimits,
  type Limits,
  type UwsgiEvent,
  type UwsgiParser as UwsgiParserType,
  type UwsgiVarsEvent,
} from '../types.js';
import { asBytes, NOT_LATIN1_RE } from '../bytes.js';
import {
  checkPairsArray,
  decodeUwsgiPairs,
  isDigits15,
  latin1Write,
  TOO_MANY,
  uwsgiLength,
} from './pairs.js';

const ST_HEADER = 0;
const ST_VARS = 1;
const ST_BODY = 2;

/** The uwsgi request parser: requests follow each other on one connection. */
class UwsgiParser implements UwsgiParserType {
  private readonly maxParamsBytes: number;
  private readonly maxPairs: number;
  private dead = false;
  private state = ST_HEADER;
  private readonly hdr = new Uint8Array(4);
  private hdrLen = 0;
  private modifier1 = 0;
  private modifier2 = 0;
  private size = 0;
  /* A vars block split across chunks (`have` bytes so far). */
  private vars: Uint8Array | null = null;
  private have = 0;
  private bodyLeft = 0;

  constructor(limits?: Partial<Limits>) {
    const l = resolveLimits(limits);
    this.maxParamsBytes = l.maxParamsBytes;
    this.maxPairs = l.maxPairs;
  }

  close(): void {
    this.dead = true;
    this.vars = null;
  }

  pushVars(input: Uint8Array): UwsgiVarsEvent[] {
    const events = this.push(input) as (UwsgiEvent | UwsgiVarsEvent)[];
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      if (ev.type === 'params') {
        events[i] = {
          type: 'vars',
          vars: cgiVariables(ev.pairs),
          modifier1: ev.modifier1,
          modifier2: ev.modifier2,
          contentLength: ev.contentLength,
        };
      }
    }
    return events as UwsgiVarsEvent[];
  }

  push(input: Uint8Array): UwsgiEvent[] {
    const out: UwsgiEvent[] = [];
    if (this.dead) return out;
    const chunk = asBytes(input);
    if (chunk === null) return out;
    try {
      this.run(chunk, out);
    } catch {
      /* Not reachable by design; never let an exception escape push(). */
      this.fail(out, errorEvent('UWSGI_BAD_VARS'));
    }
    return out;
  }

  private fail(out: UwsgiEvent[], e: UwsgiEvent): void {
    out.push(e);
    this.dead = true;
    this.vars = null;
  }

  private run(chunk: Uint8Array, out: UwsgiEvent[]): void {
    const n = chunk.length;
    let p = 0;
    while (p < n) {
      if (this.state === ST_HEADER) {
        let m1: number, size: number, m2: number;
        if (this.hdrLen === 0 && n - p >= 4) {
          m1 = chunk[p];
          size = chunk[p + 1] | (chunk[p + 2] << 8);
          m2 = chunk[p + 3];
          p += 4;
        } else {
          const k = Math.min(4 - this.hdrLen, n - p);
          for (let i = 0; i < k; i++) this.hdr[this.hdrLen + i] = chunk[p + i];
          this.hdrLen += k;
          p += k;
          if (this.hdrLen < 4) return;
          this.hdrLen = 0;
          const h = this.hdr;
          m1 = h[0];
          size = h[1] | (h[2] << 8);
          m2 = h[3];
        }
        if (m1 !== 0) {
          this.fail(out, errorEvent('UWSGI_BAD_MODIFIER', m1));
          return;
        }
        if (size > this.maxParamsBytes) {
          this.fail(out, errorEvent('UWSGI_HEADERS_TOO_LARGE', size, this.maxParamsBytes));
          return;
        }
        this.modifier1 = m1;
        this.modifier2 = m2;
        this.size = size;
        if (size === 0) {
          if (!this.params(chunk, 0, 0, out)) return;
        } else if (n - p >= size) {
          /* The whole block is in this chunk: decode it in place. */
          const s = p;
          p += size;
          if (!this.params(chunk, s, p, out)) return;
        } else {
          this.state = ST_VARS;
          this.have = 0;
          this.vars = new Uint8Array(size);
        }
      } else if (this.state === ST_VARS) {
        const vars = this.vars as Uint8Array;
        const want = this.size - this.have;
        const avail = n - p;
        const k = avail < want ? avail : want;
        vars.set(chunk.subarray(p, p + k), this.have);
        this.have += k;
        p += k;
        if (this.have === this.size) {
          this.vars = null;
          if (!this.params(vars, 0, this.size, out)) return;
        }
      } else {
        const avail = n - p;
        const k = avail < this.bodyLeft ? avail : this.bodyLeft;
        out.push({ type: 'body', data: chunk.subarray(p, p + k) });
        p += k;
        this.bodyLeft -= k;
        if (this.bodyLeft === 0) {
          out.push({ type: 'bodyEnd' });
          this.state = ST_HEADER;
        }
      }
    }
  }

  /** Rules 3–4 on the whole vars block `b[s..e)`; emits params (and bodyEnd when empty). */
  private params(b: Uint8Array, s: number, e: number, out: UwsgiEvent[]): boolean {
    const r = decodeUwsgiPairs(b, s, e, this.maxPairs);
    if (typeof r === 'number') {
      if (r === TOO_MANY) this.fail(out, errorEvent('UWSGI_TOO_MANY_PARAMS', 0, this.maxPairs));
      else this.fail(out, errorEvent('UWSGI_BAD_VARS'));
      return false;
    }
    let contentLength = 0;
    for (let i = 0; i < r.length; i += 2) {
      if (r[i] === 'CONTENT_LENGTH') {
        const v = r[i + 1];
        if (v.length !== 0) {
          if (!isDigits15(v)) {
            this.fail(out, errorEvent('UWSGI_BAD_CONTENT_LENGTH'));
            return false;
          }
          contentLength = +v;
        }
        break;
      }
    }
    out.push({
      type: 'params',
      pairs: r,
      modifier1: this.modifier1,
      modifier2: this.modifier2,
      contentLength,
    });
    if (contentLength === 0) {
      out.push({ type: 'bodyEnd' });
      this.state = ST_HEADER;
    } else {
      this.bodyLeft = contentLength;
      this.state = ST_BODY;
    }
    return true;
  }
}

/** A new uwsgi request parser with `limits` (defaults from DEFAULT_LIMITS). */
export function createUwsgiParser(limits?: Partial<Limits>): UwsgiParserType {
  return new UwsgiParser(limits);
}

/**
 * A uwsgi request head: `modifier1, size LE, modifier2` and the vars block of `pairs`. Checks,
 * in order: the modifiers (0–255), an odd pairs array, each string in order (latin-1, then at
 * most 65535 bytes), then the whole block (at most 65535 bytes).
 */
export function uwsgiRequest(
  pairs: readonly string[],
  modifier1: number,
  modifier2: number,
): Uint8Array {
  if ((modifier1 & 0xff) !== modifier1 || (modifier2 & 0xff) !== modifier2) {
    throw codecError('ENCODE_BAD_ARGUMENT');
  }
  checkPairsArray(pairs, 2);
  const n = pairs.length;
  let s = '';
  let long = false;
  for (let i = 0; i < n; i += 2) {
    const k = pairs[i];
    const v = pairs[i + 1];
    if (typeof k !== 'string' || typeof v !== 'string') {
      checkUwsgiStrings(pairs);
      break;
    }
    if (k.length > 65535 || v.length > 65535) {
      long = true;
      break;
    }
    s += uwsgiLength(k.length) + k + uwsgiLength(v.length) + v;
  }
  if (long || NOT_LATIN1_RE.test(s)) checkUwsgiStrings(pairs);
  const size = s.length;
  if (size > 65535) throw codecError('ENCODE_TOO_LARGE', 0, 0, '', 1);
  const out = Buffer.allocUnsafe(4 + size);
  out[0] = modifier1;
  out[1] = size & 0xff;
  out[2] = size >>> 8;
  out[3] = modifier2;
  latin1Write(out, s, 4);
  return out;
}

/** Throws the first per-string error of `pairs` in order; returns when there is none. */
function checkUwsgiStrings(pairs: readonly string[]): void {
  for (let i = 0; i < pairs.length; i++) {
    const x = pairs[i];
    if (typeof x !== 'string') throw codecError('ENCODE_BAD_ARGUMENT');
    if (NOT_LATIN1_RE.test(x)) throw codecError('ENCODE_NOT_LATIN1');
    if (x.length > 65535) throw codecError('ENCODE_TOO_LARGE', 0, 0, '', 1);
  }
}
