/**
 * FastCGI in the TypeScript codec: the incremental record parser (docs/codec.md, "FastCGI
 * parser") and the record encoders (docs/codec.md, "Encoders").
 *
 * The parser reads headers and small records straight from the input chunk when they are
 * whole in it, passes stream content on as views of the chunk, and copies only what must
 * outlive the chunk: a header or a small record split across chunks, and PARAMS content that
 * is still unfinished when push() returns. Allocation is bounded by the limits, checked at the
 * record header before any byte is stored.
 */
import { Buffer } from 'node:buffer';
import { asBytes, NOT_LATIN1_RE } from '../bytes.js';
import { cgiVariables } from '../environ.js';
import { codecError, errorEvent } from '../errors.js';
import {
  resolveLimits,
  type FcgiEvent,
  type FcgiParser,
  type FcgiVarsEvent,
  type Limits,
} from '../types.js';
import { headString } from './head.js';
import {
  checkPairsArray,
  copyBytes,
  decodeFcgiPairs,
  fcgiPairsString,
  latin1Write,
  TOO_MANY,
} from './pairs.js';

/** The most content bytes an encoder puts in one stream record (8 × 8191: no padding). */
export const MAX_STREAM_RECORD = 65528;

const ST_HEADER = 0;
const ST_CONTENT = 1;
const ST_PADDING = 2;

/* What to do with the content of the current record. */
const M_SKIP = 0; // ABORT_REQUEST content, unknown types
const M_STREAM = 1; // STDIN, STDOUT, STDERR, DATA
const M_PARAMS = 2; // non-empty PARAMS
const M_WHOLE = 3; // BEGIN_REQUEST, END_REQUEST, UNKNOWN_TYPE, GET_VALUES, GET_VALUES_RESULT

type StreamName = 'stdin' | 'stdout' | 'stderr' | 'data';
type StreamEndName = 'stdinEnd' | 'stdoutEnd' | 'stderrEnd' | 'dataEnd';
const STREAM_NAMES: StreamName[] = [
  'stdin',
  'stdin',
  'stdin',
  'stdin',
  'stdin',
  'stdin',
  'stdout',
  'stderr',
  'data',
];
const STREAM_END_NAMES: StreamEndName[] = [
  'stdinEnd',
  'stdinEnd',
  'stdinEnd',
  'stdinEnd',
  'stdinEnd',
  'stdinEnd',
  'stdoutEnd',
  'stderrEnd',
  'dataEnd',
];

/** An unfinished PARAMS stream of one request id. */
interface ParamsStream {
  /** Bytes announced by the record headers of this stream so far (counted in `held`). */
  size: number;
  /** Owned copy of the bytes received so far (`len` of them), or null. */
  buf: Uint8Array | null;
  len: number;
  /** When set, the whole stream so far is `view[vstart..vend)`, a part of the current chunk. */
  view: Uint8Array | null;
  vstart: number;
  vend: number;
}

/** The incremental FastCGI record parser (either side of a connection). */
class TsFcgiParser implements FcgiParser {
  private readonly maxParamsBytes: number;
  private readonly maxPairs: number;
  private readonly maxRecordBody: number;
  private dead = false;
  private state = ST_HEADER;
  /* A header split across chunks. */
  private readonly hdr = new Uint8Array(8);
  private hdrLen = 0;
  /* The current record. */
  private type = 0;
  private requestId = 0;
  private contentLength = 0;
  private left = 0;
  private padding = 0;
  private mode = M_SKIP;
  /* A BEGIN/END/UNKNOWN_TYPE/GET_VALUES(_RESULT) record split across chunks. */
  private acc: Uint8Array | null = null;
  private accLen = 0;
  /* PARAMS streams by request id, the bytes they hold, and the current one. */
  private readonly streams = new Map<number, ParamsStream>();
  private held = 0;
  private cur: ParamsStream | null = null;
  /* Streams holding a view of the current chunk (to copy before push() returns). */
  private readonly viewed: ParamsStream[] = [];

  constructor(limits?: Partial<Limits>) {
    const l = resolveLimits(limits);
    this.maxParamsBytes = l.maxParamsBytes;
    this.maxPairs = l.maxPairs;
    this.maxRecordBody = l.maxRecordBody;
  }

  close(): void {
    this.dead = true;
    this.streams.clear();
    this.held = 0;
    this.cur = null;
    this.acc = null;
    this.viewed.length = 0;
  }

  pushVars(input: Uint8Array): FcgiVarsEvent[] {
    const events = this.push(input) as (FcgiEvent | FcgiVarsEvent)[];
    for (let i = 0; i < events.length; i++) {
      const ev = events[i]!;
      if (ev.type === 'params') {
        events[i] = { type: 'vars', requestId: ev.requestId, vars: cgiVariables(ev.pairs) };
      }
    }
    return events as FcgiVarsEvent[];
  }

  push(input: Uint8Array): FcgiEvent[] {
    const out: FcgiEvent[] = [];
    if (this.dead) return out;
    const chunk = asBytes(input);
    if (chunk === null) return out;
    try {
      this.run(chunk, out);
    } catch {
      /* Not reachable by design; never let an exception escape push(). */
      this.fail(out, errorEvent('FCGI_BAD_PARAMS'));
    }
    if (this.viewed.length !== 0) this.keepViews();
    return out;
  }

  private fail(out: FcgiEvent[], e: FcgiEvent): void {
    out.push(e);
    this.dead = true;
    this.streams.clear();
    this.viewed.length = 0;
    this.acc = null;
    this.cur = null;
  }

  private run(chunk: Uint8Array, out: FcgiEvent[]): void {
    const n = chunk.length;
    let p = 0;
    while (p < n) {
      if (this.state === ST_HEADER) {
        if (this.hdrLen === 0 && n - p >= 8) {
          if (!this.header(chunk, p, out)) return;
          p += 8;
        } else {
          const k = Math.min(8 - this.hdrLen, n - p);
          for (let i = 0; i < k; i++) this.hdr[this.hdrLen + i] = chunk[p + i];
          this.hdrLen += k;
          p += k;
          if (this.hdrLen < 8) return;
          this.hdrLen = 0;
          if (!this.header(this.hdr, 0, out)) return;
        }
      } else if (this.state === ST_CONTENT) {
        const avail = n - p;
        const left = this.left;
        const k = avail < left ? avail : left;
        switch (this.mode) {
          case M_STREAM:
            out.push({
              type: STREAM_NAMES[this.type],
              requestId: this.requestId,
              data: chunk.subarray(p, p + k),
            });
            break;
          case M_PARAMS:
            this.paramsContent(chunk, p, k);
            break;
          case M_WHOLE:
            if (this.accLen === 0 && k === this.contentLength) {
              if (!this.whole(chunk, p, out)) return;
            } else {
              let acc = this.acc;
              if (acc === null || acc.length < this.contentLength) {
                acc = this.acc = new Uint8Array(this.contentLength < 8 ? 8 : this.contentLength);
              }
              acc.set(chunk.subarray(p, p + k), this.accLen);
              this.accLen += k;
              if (k === left) {
                this.accLen = 0;
                const whole = this.whole(acc, 0, out);
                if (this.contentLength > 8) this.acc = null;
                if (!whole) return;
              }
            }
            break;
          default:
            break;
        }
        p += k;
        this.left = left - k;
        if (this.left === 0) this.state = this.padding !== 0 ? ST_PADDING : ST_HEADER;
      } else {
        const avail = n - p;
        const k = avail < this.padding ? avail : this.padding;
        p += k;
        this.padding -= k;
        if (this.padding === 0) this.state = ST_HEADER;
      }
    }
  }

  /** Checks a record header at `b[o..o+8)` and emits what is due at the header. */
  private header(b: Uint8Array, o: number, out: FcgiEvent[]): boolean {
    const version = b[o];
    if (version !== 1) {
      this.fail(out, errorEvent('FCGI_BAD_VERSION', version));
      return false;
    }
    const type = b[o + 1];
    const id = (b[o + 2] << 8) | b[o + 3];
    const len = (b[o + 4] << 8) | b[o + 5];
    if (len > this.maxRecordBody) {
      this.fail(out, errorEvent('FCGI_RECORD_TOO_LARGE', len, this.maxRecordBody));
      return false;
    }
    if (type >= 1 && type <= 11 && (type <= 8 ? id === 0 : id !== 0)) {
      this.fail(out, errorEvent('FCGI_BAD_REQUEST_ID', type, id));
      return false;
    }
    this.type = type;
    this.requestId = id;
    this.contentLength = len;
    this.left = len;
    this.padding = b[o + 6];
    switch (type) {
      case 1:
      case 3:
      case 11:
        if (len !== 8) {
          const code =
            type === 1 ? 'FCGI_BAD_BEGIN' : type === 3 ? 'FCGI_BAD_END' : 'FCGI_BAD_UNKNOWN_TYPE';
          this.fail(out, errorEvent(code, len));
          return false;
        }
        this.mode = M_WHOLE;
        break;
      case 2:
        out.push({ type: 'abort', requestId: id });
        this.mode = M_SKIP;
        break;
      case 4:
        if (this.held + len > this.maxParamsBytes) {
          this.fail(out, errorEvent('FCGI_PARAMS_TOO_LARGE', 0, this.maxParamsBytes));
          return false;
        }
        if (len === 0) {
          if (!this.endParams(id, out)) return false;
        } else {
          let st = this.streams.get(id);
          if (st === undefined) {
            st = { size: 0, buf: null, len: 0, view: null, vstart: 0, vend: 0 };
            this.streams.set(id, st);
          }
          st.size += len;
          this.held += len;
          this.cur = st;
          this.mode = M_PARAMS;
        }
        break;
      case 5:
      case 6:
      case 7:
      case 8:
        if (len === 0) out.push({ type: STREAM_END_NAMES[type], requestId: id });
        this.mode = M_STREAM;
        break;
      case 9:
      case 10:
        if (len > this.maxParamsBytes) {
          this.fail(out, errorEvent('FCGI_PARAMS_TOO_LARGE', 0, this.maxParamsBytes));
          return false;
        }
        if (len === 0) {
          if (type === 9) out.push({ type: 'getValues', names: [] });
          else out.push({ type: 'getValuesResult', pairs: [] });
        }
        this.mode = M_WHOLE;
        break;
      default:
        out.push({ type: 'unknown', requestId: id, recordType: type });
        this.mode = M_SKIP;
        break;
    }
    if (len !== 0) this.state = ST_CONTENT;
    else if (this.padding !== 0) this.state = ST_PADDING;
    return true;
  }

  /** Handles the complete content `b[o..o+contentLength)` of a M_WHOLE record. */
  private whole(b: Uint8Array, o: number, out: FcgiEvent[]): boolean {
    const id = this.requestId;
    switch (this.type) {
      case 1: {
        const st = this.streams.get(id);
        if (st !== undefined) {
          this.held -= st.size;
          st.view = null;
          this.streams.delete(id);
        }
        out.push({ type: 'begin', requestId: id, role: (b[o] << 8) | b[o + 1], flags: b[o + 2] });
        return true;
      }
      case 3:
        out.push({
          type: 'end',
          requestId: id,
          appStatus: ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0,
          protocolStatus: b[o + 4],
        });
        return true;
      case 11:
        out.push({ type: 'unknownType', recordType: b[o] });
        return true;
      default: {
        const r = decodeFcgiPairs(b, o, o + this.contentLength, this.maxPairs, this.type === 9);
        if (typeof r === 'number') {
          this.pairsError(r, out);
          return false;
        }
        if (this.type === 9) out.push({ type: 'getValues', names: r });
        else out.push({ type: 'getValuesResult', pairs: r });
        return true;
      }
    }
  }

  private pairsError(r: number, out: FcgiEvent[]): void {
    if (r === TOO_MANY) this.fail(out, errorEvent('FCGI_TOO_MANY_PARAMS', 0, this.maxPairs));
    else this.fail(out, errorEvent('FCGI_BAD_PARAMS'));
  }

  /** Appends `chunk[p..p+k)` of the current PARAMS record to its stream. */
  private paramsContent(chunk: Uint8Array, p: number, k: number): void {
    const st = this.cur as ParamsStream;
    if (k === this.contentLength && st.size === k) {
      /* The whole stream so far is this record, whole in this chunk: keep a view. */
      st.view = chunk;
      st.vstart = p;
      st.vend = p + k;
      this.viewed.push(st);
      return;
    }
    let buf = st.buf;
    const need = st.size; // everything announced so far, this record included
    if (buf === null || buf.length < need) {
      let cap = buf === null ? need : buf.length * 2;
      if (cap > this.maxParamsBytes) cap = this.maxParamsBytes;
      if (cap < need) cap = need;
      const nb = new Uint8Array(cap);
      if (buf !== null && st.len !== 0) nb.set(buf.subarray(0, st.len));
      buf = st.buf = nb;
    }
    if (st.view !== null) {
      buf.set(st.view.subarray(st.vstart, st.vend), st.len);
      st.len += st.vend - st.vstart;
      st.view = null;
    }
    buf.set(chunk.subarray(p, p + k), st.len);
    st.len += k;
  }

  /** The empty PARAMS record of `id`: decode its stream and emit `params`. */
  private endParams(id: number, out: FcgiEvent[]): boolean {
    const st = this.streams.get(id);
    if (st === undefined) {
      out.push({ type: 'params', requestId: id, pairs: [] });
      return true;
    }
    this.streams.delete(id);
    this.held -= st.size;
    let r: string[] | number;
    if (st.view !== null) {
      r = decodeFcgiPairs(st.view, st.vstart, st.vend, this.maxPairs, false);
      st.view = null;
    } else {
      r = decodeFcgiPairs(st.buf as Uint8Array, 0, st.len, this.maxPairs, false);
    }
    if (typeof r === 'number') {
      this.pairsError(r, out);
      return false;
    }
    out.push({ type: 'params', requestId: id, pairs: r });
    return true;
  }

  /** Copies the PARAMS bytes still viewed in the chunk that push() is about to return. */
  private keepViews(): void {
    const v = this.viewed;
    for (let i = 0; i < v.length; i++) {
      const st = v[i];
      const view = st.view;
      if (view === null) continue;
      /* A viewed stream has no earlier bytes: the view is all of it. */
      st.buf = copyBytes(view, st.vstart, st.vend);
      st.len = st.vend - st.vstart;
      st.view = null;
    }
    v.length = 0;
  }
}

/** A new FastCGI record parser with `limits` (defaults from DEFAULT_LIMITS). */
export function createFcgiParser(limits?: Partial<Limits>): FcgiParser {
  return new TsFcgiParser(limits);
}

/* ---------------------------------------------------------------- encoders ---- */

function isU16(x: number): boolean {
  return (x & 0xffff) === x;
}

function isU8(x: number): boolean {
  return (x & 0xff) === x;
}

function badArgument(): Error {
  return codecError('ENCODE_BAD_ARGUMENT');
}

/** Writes a record header at `b[o..o+8)`. */
function writeHeader(
  b: Uint8Array,
  o: number,
  type: number,
  id: number,
  len: number,
  pad: number,
): void {
  b[o] = 1;
  b[o + 1] = type;
  b[o + 2] = id >>> 8;
  b[o + 3] = id & 0xff;
  b[o + 4] = len >>> 8;
  b[o + 5] = len & 0xff;
  b[o + 6] = pad;
  b[o + 7] = 0;
}

/** Bytes needed to frame `total` stream bytes in records of at most 65528 content bytes. */
function framedSize(total: number): number {
  const full = Math.floor(total / MAX_STREAM_RECORD);
  const rem = total - full * MAX_STREAM_RECORD;
  return full * (MAX_STREAM_RECORD + 8) + (rem === 0 ? 0 : 8 + ((rem + 7) & ~7));
}

/**
 * Frames the bytes `a` followed by `b` (either may be empty) as records of `type` into `out`
 * at `o`; returns the offset after them.
 */
function frameInto(
  out: Uint8Array,
  o: number,
  type: number,
  id: number,
  a: Uint8Array,
  b: Uint8Array,
): number {
  const total = a.length + b.length;
  let done = 0;
  while (done < total) {
    let len = total - done;
    if (len > MAX_STREAM_RECORD) len = MAX_STREAM_RECORD;
    const pad = (8 - (len & 7)) & 7;
    writeHeader(out, o, type, id, len, pad);
    o += 8;
    /* Copy [done, done+len) of the concatenation a ++ b. */
    const stop = done + len;
    if (done < a.length) {
      const e = stop < a.length ? stop : a.length;
      out.set(a.subarray(done, e), o);
      o += e - done;
      done = e;
    }
    if (done < stop) {
      out.set(b.subarray(done - a.length, stop - a.length), o);
      o += stop - done;
      done = stop;
    }
    for (let i = 0; i < pad; i++) out[o++] = 0;
  }
  return o;
}

const EMPTY = new Uint8Array(0);

/**
 * Frames `data` as records of `type` for `requestId` (at most 65528 content bytes each, padded
 * to a multiple of 8), then with `end` the empty record ending the stream.
 */
export function fcgiStream(
  type: number,
  requestId: number,
  data: Uint8Array,
  end: boolean,
): Uint8Array {
  if (!isU8(type) || type === 0 || !isU16(requestId) || !(data instanceof Uint8Array))
    throw badArgument();
  const size = framedSize(data.length) + (end ? 8 : 0);
  const out = Buffer.allocUnsafe(size);
  const o = frameInto(out, 0, type, requestId, data, EMPTY);
  if (end) writeHeader(out, o, type, requestId, 0, 0);
  return out;
}

/**
 * A FastCGI response: STDOUT records carrying the CGI-style head then `body` (one stream),
 * and with `end` the empty STDOUT record and END_REQUEST(0, REQUEST_COMPLETE).
 */
export function fcgiResponse(
  requestId: number,
  status: string,
  headers: readonly string[],
  body: Uint8Array,
  end: boolean,
): Uint8Array {
  if (!isU16(requestId) || !(body instanceof Uint8Array)) throw badArgument();
  const head = headString(status, headers, 'cgi');
  const total = head.length + body.length;
  const tail = end ? 24 : 0;
  let out: Buffer;
  let o: number;
  if (total <= MAX_STREAM_RECORD) {
    const pad = (8 - (total & 7)) & 7;
    out = Buffer.allocUnsafe(8 + total + pad + tail);
    writeHeader(out, 0, 6, requestId, total, pad);
    o = 8 + latin1Write(out, head, 8);
    out.set(body, o);
    o += body.length;
    for (let i = 0; i < pad; i++) out[o++] = 0;
  } else {
    const h = Buffer.allocUnsafe(head.length);
    latin1Write(h, head, 0);
    out = Buffer.allocUnsafe(framedSize(total) + tail);
    o = frameInto(out, 0, 6, requestId, h, body);
  }
  if (end) {
    writeHeader(out, o, 6, requestId, 0, 0);
    writeEndRequest(out, o + 8, requestId, 0, 0);
  }
  return out;
}

/** fcgiResponse() with a latin-1 string body (docs/codec.md). */
export function fcgiResponseText(
  requestId: number,
  status: string,
  headers: readonly string[],
  body: string,
  end: boolean,
): Uint8Array {
  if (!isU16(requestId) || typeof body !== 'string') throw badArgument();
  if (NOT_LATIN1_RE.test(body)) throw codecError('ENCODE_NOT_LATIN1');
  return fcgiResponse(requestId, status, headers, Buffer.from(body, 'latin1'), end);
}

function writeEndRequest(
  b: Uint8Array,
  o: number,
  id: number,
  appStatus: number,
  protocolStatus: number,
): void {
  writeHeader(b, o, 3, id, 8, 0);
  b[o + 8] = appStatus >>> 24;
  b[o + 9] = (appStatus >>> 16) & 0xff;
  b[o + 10] = (appStatus >>> 8) & 0xff;
  b[o + 11] = appStatus & 0xff;
  b[o + 12] = protocolStatus;
  b[o + 13] = 0;
  b[o + 14] = 0;
  b[o + 15] = 0;
}

/** END_REQUEST: appStatus u32 BE, protocolStatus, 3 zero bytes (16 bytes in all). */
export function fcgiEndRequest(
  requestId: number,
  appStatus: number,
  protocolStatus: number,
): Uint8Array {
  if (!isU16(requestId) || appStatus >>> 0 !== appStatus || !isU8(protocolStatus))
    throw badArgument();
  const out = Buffer.allocUnsafe(16);
  writeEndRequest(out, 0, requestId, appStatus, protocolStatus);
  return out;
}

/** BEGIN_REQUEST: role u16 BE, flags, 5 zero bytes (16 bytes in all). */
export function fcgiBeginRequest(requestId: number, role: number, flags: number): Uint8Array {
  if (!isU16(requestId) || !isU16(role) || !isU8(flags)) throw badArgument();
  const out = Buffer.alloc(16);
  writeHeader(out, 0, 1, requestId, 8, 0);
  out[8] = role >>> 8;
  out[9] = role & 0xff;
  out[10] = flags;
  return out;
}

/** ABORT_REQUEST: a header with content length 0. */
export function fcgiAbortRequest(requestId: number): Uint8Array {
  if (!isU16(requestId)) throw badArgument();
  const out = Buffer.allocUnsafe(8);
  writeHeader(out, 0, 2, requestId, 0, 0);
  return out;
}

/** UNKNOWN_TYPE (request id 0): the type byte and 7 zero bytes. */
export function fcgiUnknownType(recordType: number): Uint8Array {
  if (!isU8(recordType)) throw badArgument();
  const out = Buffer.alloc(16);
  writeHeader(out, 0, 11, 0, 8, 0);
  out[8] = recordType;
  return out;
}

/** PARAMS records carrying `pairs` (split as stream records), then the empty PARAMS record. */
export function fcgiParams(requestId: number, pairs: readonly string[]): Uint8Array {
  if (!isU16(requestId)) throw badArgument();
  checkPairsArray(pairs, 2);
  const s = fcgiPairsString(pairs, false);
  const total = s.length;
  let out: Buffer;
  let o: number;
  if (total <= MAX_STREAM_RECORD) {
    const pad = (8 - (total & 7)) & 7;
    out = Buffer.allocUnsafe((total === 0 ? 0 : 8 + total + pad) + 8);
    o = 0;
    if (total !== 0) {
      writeHeader(out, 0, 4, requestId, total, pad);
      o = 8 + latin1Write(out, s, 8);
      for (let i = 0; i < pad; i++) out[o++] = 0;
    }
  } else {
    const c = Buffer.allocUnsafe(total);
    latin1Write(c, s, 0);
    out = Buffer.allocUnsafe(framedSize(total) + 8);
    o = frameInto(out, 0, 4, requestId, c, EMPTY);
  }
  writeHeader(out, o, 4, requestId, 0, 0);
  return out;
}

/** One record of `type` (GET_VALUES or GET_VALUES_RESULT, id 0) with the latin-1 content `s`. */
function managementRecord(type: number, s: string): Uint8Array {
  const len = s.length;
  if (len > 65535) throw codecError('ENCODE_TOO_LARGE');
  const pad = (8 - (len & 7)) & 7;
  const out = Buffer.allocUnsafe(8 + len + pad);
  writeHeader(out, 0, type, 0, len, pad);
  let o = 8 + latin1Write(out, s, 8);
  for (let i = 0; i < pad; i++) out[o++] = 0;
  return out;
}

/** One GET_VALUES record (request id 0) asking for `names` (values empty). */
export function fcgiGetValues(names: readonly string[]): Uint8Array {
  if (!Array.isArray(names)) throw badArgument();
  return managementRecord(9, fcgiPairsString(names, true));
}

/** One GET_VALUES_RESULT record (request id 0) with `pairs`. */
export function fcgiGetValuesResult(pairs: readonly string[]): Uint8Array {
  checkPairsArray(pairs, 2);
  return managementRecord(10, fcgiPairsString(pairs, false));
}
