/**
 * The native codec: loads the C++ addon (native/binding over native/core) and wraps it in
 * the {@link Codec} interface, event for event and byte for byte the same as the TypeScript
 * codec (docs/codec.md).
 *
 * The boundary is shaped by what N-API costs (a call is cheap, every JS value made in C++ is
 * not): the addon frames, validates and scans, and writes small fixed-size descriptors into a
 * reused Int32Array (`io`); this module builds the event objects, takes stream data as views
 * of the input chunk, and cuts names and values out of one latin-1 string per params block.
 * Well-known CGI names come as small ids and are taken from {@link NAMES}, so most names cost
 * no string at all. Parsers live in pooled native slots (no finalizer per parser). Encoders
 * pass their strings as one concatenated string plus per-string lengths in `io`; the hot ones
 * (head, response, stream, fixed records) write into a shared output slab sized here and
 * return Buffer views of it.
 * Errors come back as numbers and are formatted by lib/codec/errors.ts, like the TS codec's.
 */
import process from 'node:process';
import { Buffer } from 'node:buffer';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  F64_ERR_A,
  F64_ERR_B,
  F64_LIMITS,
  IO_COUNT,
  IO_DATA,
  IO_ERR_CODE,
  IO_ERR_VARIANT,
  IO_EVENTS,
  IO_MORE,
  IO_OUT_LEN,
  IO_OUT_OFF,
  IO_PAIRS_GROWN,
  IO_POS,
  IO_SLOT,
  IO_STANDING,
  IO_X,
  IO_Y,
  NAMES,
  PAIR_WORDS,
  VALUE_CACHED,
  VALUE_STORE,
} from './boundary.js';
import { asBytes, NOT_LATIN1_RE } from './bytes.js';
import { addVariable, environObject, type CgiVariables } from './environ.js';
import { ERROR_CODES, codecError, errorEvent } from './errors.js';
import {
  resolveLimits,
  type Codec,
  type ErrorCode,
  type FcgiEvent,
  type FcgiParser,
  type FcgiVarsEvent,
  type HeadStyle,
  type Limits,
  type ScgiEvent,
  type ScgiParser,
  type ScgiVarsEvent,
  type UwsgiEvent,
  type UwsgiParser,
  type UwsgiVarsEvent,
} from './types.js';
import { isFieldValue, isStatus, isToken } from '../http/grammar.js';

/** The addon's exports (native/binding). */
interface Binding {
  init(io: Int32Array, pairs: Int32Array): string[];
  pairArea(): Int32Array;
  release(slot: number): void;
  fcgiPush(slot: number, chunk: Uint8Array): string | undefined;
  scgiPush(slot: number, chunk: Uint8Array): string | undefined;
  uwsgiPush(slot: number, chunk: Uint8Array): string | undefined;
  setOut(slab: ArrayBuffer): void;
  encodeHead(s: string): number;
  encodeHeadText(s: string): number;
  fcgiResponse(s: string, body: Uint8Array): number;
  fcgiResponseText(s: string): number;
  fcgiStream(data: Uint8Array): number;
  fcgiRecord(): number;
  encodeRequest(kind: number, s: string, count: number, x: number, y: number): Uint8Array | number;
}

/* The io layout and pair flags: lib/codec/boundary.ts (generated from native/boundary.json). */
const SLAB_SIZE = 65536;
const SLAB_SHARE = 8192;
const IO_EVENT_SLOTS = 1024;

/* Event kinds (native/core/common.h). */
const EV_BEGIN = 1;
const EV_ABORT = 2;
const EV_END = 3;
const EV_PARAMS = 4;
const EV_GET_VALUES = 9;
const EV_GET_VALUES_RESULT = 10;
const EV_UNKNOWN_TYPE = 11;
const EV_UNKNOWN = 12;
const EV_BLOCK_PARAMS = 20;
const EV_BODY = 21;
const EV_BODY_END = 22;
const EV_ERROR = 31;

type StreamName = 'stdin' | 'stdout' | 'stderr' | 'data';
type StreamEndName = 'stdinEnd' | 'stdoutEnd' | 'stderrEnd' | 'dataEnd';
const STREAM_NAMES: readonly StreamName[] = ['stdin', 'stdout', 'stderr', 'data'];
const STREAM_END_NAMES: readonly StreamEndName[] = [
  'stdinEnd',
  'stdoutEnd',
  'stderrEnd',
  'dataEnd',
];

const MAX_STREAM_RECORD = 65528;
const TWO_32 = 4294967296;

/* Only for the rare path that finds a non-string among encoder strings (see typeError()). */

/* What a string list is for: per-string checks differ (see typeError()). */
const LIST_FCGI = 0;
const LIST_SCGI = 1;
const LIST_UWSGI = 2;

function isU16(x: number): boolean {
  return (x & 0xffff) === x;
}

function isU8(x: number): boolean {
  return (x & 0xff) === x;
}

function badArgument(variant = 0): Error {
  return codecError('ENCODE_BAD_ARGUMENT', 0, 0, '', variant);
}

/** Bytes needed to frame `total` stream bytes in records of at most 65528 content bytes. */
function framedSize(total: number): number {
  const full = Math.floor(total / MAX_STREAM_RECORD);
  const rem = total - full * MAX_STREAM_RECORD;
  return full * (MAX_STREAM_RECORD + 8) + (rem === 0 ? 0 : 8 + ((rem + 7) & ~7));
}

/** Wraps a loaded addon in the Codec interface (one instance per JS environment). */
function createNativeCodec(B: Binding): Codec {
  let io: Int32Array = new Int32Array(IO_DATA + 4 * IO_EVENT_SLOTS);
  let f64 = new Float64Array(io.buffer);
  let pairArea: Int32Array = new Int32Array(PAIR_WORDS * 256);
  const names = B.init(io, pairArea);
  if (
    !Array.isArray(names) ||
    names.length !== NAMES.length ||
    names.some((n, i) => n !== NAMES[i])
  ) {
    throw new Error('the addon was built with a different table of well-known names');
  }

  /** Room for `count` string lengths in io (events use the same words). */
  function ensureIo(count: number): void {
    if (IO_DATA + count <= io.length) return;
    io = new Int32Array(IO_DATA + Math.max(count, 2 * (io.length - IO_DATA)));
    f64 = new Float64Array(io.buffer);
    B.init(io, pairArea);
  }

  /** The error the addon reported in io, as a CodecError (`strings` names a bad header). */
  function encodeError(strings?: readonly string[]): Error {
    const code = ERROR_CODES[io[IO_ERR_CODE]] as ErrorCode;
    const a = f64[F64_ERR_A];
    const name =
      (code === 'HEAD_BAD_NAME' || code === 'HEAD_BAD_VALUE') && strings ? strings[a] : '';
    return codecError(code, a, f64[F64_ERR_B], name, io[IO_ERR_VARIANT]);
  }

  function parserError(w: number): FcgiEvent & ScgiEvent & UwsgiEvent {
    const code = ERROR_CODES[io[w + 1]] as ErrorCode;
    return errorEvent(code, f64[F64_ERR_A], f64[F64_ERR_B], io[IO_ERR_VARIANT]);
  }

  /*
   * The last value string of each well-known name (native/binding/codec.cc, MarkCachedValues): the
   * addon flags a value equal to the cached one, so that a value repeated from request to
   * request is made once.
   */
  const valueCache: string[] = NAMES.map(() => '');

  /** The flat pairs of a block: interned names from NAMES, the rest cut out of `s`. */
  function pairsOf(s: string, n: number): string[] {
    const P = pairArea;
    const cache = valueCache;
    const out: string[] = [];
    for (let i = 0, k = 0; i < n; i++, k += PAIR_WORDS) {
      const w = P[k];
      /* One value per push(): V8 inlines a single-argument push, not a two-argument one. */
      if (w === 0) {
        const no = P[k + 1];
        out.push(s.substring(no, no + P[k + 2]));
      } else {
        out.push(NAMES[w & 0xff]);
      }
      if (w >= VALUE_CACHED && w < VALUE_STORE) {
        out.push(cache[w & 0xff]);
      } else {
        const vo = P[k + 3];
        const v = s.substring(vo, vo + P[k + 4]);
        /* Stored as a copy, so that it does not keep the whole block string alive. */
        if (w >= VALUE_STORE) cache[w & 0xff] = (v + ' ').slice(0, -1);
        out.push(v);
      }
    }
    return out;
  }

  /**
   * The CGI variables of a block, as cgiVariables(pairsOf(s, n)) gives them (the same value
   * cache steps, the same keys in the same order), without the pairs array: a well-known name
   * is stored by setKnown(), whose stores name their property, so that V8 handles each with an
   * inline cache of its own instead of one generic store for every name.
   */
  function varsOf(s: string, n: number): CgiVariables {
    const P = pairArea;
    const cache = valueCache;
    const vars = environObject();
    for (let i = 0, k = 0; i < n; i++, k += PAIR_WORDS) {
      const w = P[k];
      let v: string;
      if (w >= VALUE_CACHED && w < VALUE_STORE) {
        v = cache[w & 0xff];
      } else {
        const vo = P[k + 3];
        v = s.substring(vo, vo + P[k + 4]);
        if (w >= VALUE_STORE) cache[w & 0xff] = (v + ' ').slice(0, -1);
      }
      const id = w & 0xff;
      /*
       * A well-known name is stored by name: each store has an inline cache of its own (one
       * generic store for every name costs several times more). The cases are generated by
       * scripts/gen-boundary.mjs from native/boundary.json, by addVariable()'s rules:
       * HTTP_CONTENT_TYPE, HTTP_CONTENT_LENGTH and HTTP_PROXY are dropped, a repeated HTTP_*
       * variable is joined (", ", HTTP_COOKIE "; "), any other repeat replaces. test/gateway/environ-fast-path.test.ts checks every name against cgiVariables().
       */
      // prettier-ignore
      switch (id) {
        // BEGIN generated by scripts/gen-boundary.mjs from native/boundary.json
        case 1: vars.REQUEST_METHOD = v; continue;
        case 2: vars.REQUEST_URI = v; continue;
        case 3: vars.REQUEST_SCHEME = v; continue;
        case 4: vars.QUERY_STRING = v; continue;
        case 5: vars.CONTENT_TYPE = v; continue;
        case 6: vars.CONTENT_LENGTH = v; continue;
        case 7: vars.SCRIPT_NAME = v; continue;
        case 8: vars.SCRIPT_FILENAME = v; continue;
        case 9: vars.PATH_INFO = v; continue;
        case 10: vars.PATH_TRANSLATED = v; continue;
        case 11: vars.DOCUMENT_URI = v; continue;
        case 12: vars.DOCUMENT_ROOT = v; continue;
        case 13: vars.SERVER_PROTOCOL = v; continue;
        case 14: vars.SERVER_SOFTWARE = v; continue;
        case 15: vars.SERVER_NAME = v; continue;
        case 16: vars.SERVER_PORT = v; continue;
        case 17: vars.SERVER_ADDR = v; continue;
        case 18: vars.SERVER_ADMIN = v; continue;
        case 19: vars.SERVER_SIGNATURE = v; continue;
        case 20: vars.GATEWAY_INTERFACE = v; continue;
        case 21: vars.REMOTE_ADDR = v; continue;
        case 22: vars.REMOTE_PORT = v; continue;
        case 23: vars.REMOTE_HOST = v; continue;
        case 24: vars.REMOTE_USER = v; continue;
        case 25: vars.AUTH_TYPE = v; continue;
        case 26: vars.HTTPS = v; continue;
        case 27: vars.REDIRECT_STATUS = v; continue;
        case 28: vars.CONTEXT_PREFIX = v; continue;
        case 29: vars.CONTEXT_DOCUMENT_ROOT = v; continue;
        case 30: vars.PATH = v; continue;
        case 31: vars.SCGI = v; continue;
        case 32: vars.UWSGI_SCHEME = v; continue;
        case 33: vars.FCGI_MAX_CONNS = v; continue;
        case 34: vars.FCGI_MAX_REQS = v; continue;
        case 35: vars.FCGI_MPXS_CONNS = v; continue;
        case 36: { const p = vars.HTTP_HOST; vars.HTTP_HOST = p === undefined ? v : p + ', ' + v; continue; }
        case 37: { const p = vars.HTTP_USER_AGENT; vars.HTTP_USER_AGENT = p === undefined ? v : p + ', ' + v; continue; }
        case 38: { const p = vars.HTTP_ACCEPT; vars.HTTP_ACCEPT = p === undefined ? v : p + ', ' + v; continue; }
        case 39: { const p = vars.HTTP_ACCEPT_ENCODING; vars.HTTP_ACCEPT_ENCODING = p === undefined ? v : p + ', ' + v; continue; }
        case 40: { const p = vars.HTTP_ACCEPT_LANGUAGE; vars.HTTP_ACCEPT_LANGUAGE = p === undefined ? v : p + ', ' + v; continue; }
        case 41: { const p = vars.HTTP_ACCEPT_CHARSET; vars.HTTP_ACCEPT_CHARSET = p === undefined ? v : p + ', ' + v; continue; }
        case 42: { const p = vars.HTTP_CONNECTION; vars.HTTP_CONNECTION = p === undefined ? v : p + ', ' + v; continue; }
        case 43: { const p = vars.HTTP_KEEP_ALIVE; vars.HTTP_KEEP_ALIVE = p === undefined ? v : p + ', ' + v; continue; }
        case 44: { const p = vars.HTTP_COOKIE; vars.HTTP_COOKIE = p === undefined ? v : p + '; ' + v; continue; }
        case 45: { const p = vars.HTTP_REFERER; vars.HTTP_REFERER = p === undefined ? v : p + ', ' + v; continue; }
        case 46: { const p = vars.HTTP_ORIGIN; vars.HTTP_ORIGIN = p === undefined ? v : p + ', ' + v; continue; }
        case 47: { const p = vars.HTTP_CACHE_CONTROL; vars.HTTP_CACHE_CONTROL = p === undefined ? v : p + ', ' + v; continue; }
        case 48: { const p = vars.HTTP_PRAGMA; vars.HTTP_PRAGMA = p === undefined ? v : p + ', ' + v; continue; }
        case 49: { const p = vars.HTTP_AUTHORIZATION; vars.HTTP_AUTHORIZATION = p === undefined ? v : p + ', ' + v; continue; }
        case 50: /* HTTP_CONTENT_TYPE: dropped */ continue;
        case 51: /* HTTP_CONTENT_LENGTH: dropped */ continue;
        case 52: { const p = vars.HTTP_TRANSFER_ENCODING; vars.HTTP_TRANSFER_ENCODING = p === undefined ? v : p + ', ' + v; continue; }
        case 53: { const p = vars.HTTP_TE; vars.HTTP_TE = p === undefined ? v : p + ', ' + v; continue; }
        case 54: { const p = vars.HTTP_EXPECT; vars.HTTP_EXPECT = p === undefined ? v : p + ', ' + v; continue; }
        case 55: { const p = vars.HTTP_RANGE; vars.HTTP_RANGE = p === undefined ? v : p + ', ' + v; continue; }
        case 56: { const p = vars.HTTP_IF_RANGE; vars.HTTP_IF_RANGE = p === undefined ? v : p + ', ' + v; continue; }
        case 57: { const p = vars.HTTP_IF_MATCH; vars.HTTP_IF_MATCH = p === undefined ? v : p + ', ' + v; continue; }
        case 58: { const p = vars.HTTP_IF_NONE_MATCH; vars.HTTP_IF_NONE_MATCH = p === undefined ? v : p + ', ' + v; continue; }
        case 59: { const p = vars.HTTP_IF_MODIFIED_SINCE; vars.HTTP_IF_MODIFIED_SINCE = p === undefined ? v : p + ', ' + v; continue; }
        case 60: { const p = vars.HTTP_IF_UNMODIFIED_SINCE; vars.HTTP_IF_UNMODIFIED_SINCE = p === undefined ? v : p + ', ' + v; continue; }
        case 61: { const p = vars.HTTP_UPGRADE; vars.HTTP_UPGRADE = p === undefined ? v : p + ', ' + v; continue; }
        case 62: { const p = vars.HTTP_UPGRADE_INSECURE_REQUESTS; vars.HTTP_UPGRADE_INSECURE_REQUESTS = p === undefined ? v : p + ', ' + v; continue; }
        case 63: { const p = vars.HTTP_DNT; vars.HTTP_DNT = p === undefined ? v : p + ', ' + v; continue; }
        case 64: { const p = vars.HTTP_X_FORWARDED_FOR; vars.HTTP_X_FORWARDED_FOR = p === undefined ? v : p + ', ' + v; continue; }
        case 65: { const p = vars.HTTP_X_FORWARDED_PROTO; vars.HTTP_X_FORWARDED_PROTO = p === undefined ? v : p + ', ' + v; continue; }
        case 66: { const p = vars.HTTP_X_FORWARDED_HOST; vars.HTTP_X_FORWARDED_HOST = p === undefined ? v : p + ', ' + v; continue; }
        case 67: { const p = vars.HTTP_X_FORWARDED_PORT; vars.HTTP_X_FORWARDED_PORT = p === undefined ? v : p + ', ' + v; continue; }
        case 68: { const p = vars.HTTP_X_REAL_IP; vars.HTTP_X_REAL_IP = p === undefined ? v : p + ', ' + v; continue; }
        case 69: { const p = vars.HTTP_X_REQUESTED_WITH; vars.HTTP_X_REQUESTED_WITH = p === undefined ? v : p + ', ' + v; continue; }
        case 70: { const p = vars.HTTP_FORWARDED; vars.HTTP_FORWARDED = p === undefined ? v : p + ', ' + v; continue; }
        case 71: { const p = vars.HTTP_VIA; vars.HTTP_VIA = p === undefined ? v : p + ', ' + v; continue; }
        case 72: { const p = vars.HTTP_SEC_FETCH_DEST; vars.HTTP_SEC_FETCH_DEST = p === undefined ? v : p + ', ' + v; continue; }
        case 73: { const p = vars.HTTP_SEC_FETCH_MODE; vars.HTTP_SEC_FETCH_MODE = p === undefined ? v : p + ', ' + v; continue; }
        case 74: { const p = vars.HTTP_SEC_FETCH_SITE; vars.HTTP_SEC_FETCH_SITE = p === undefined ? v : p + ', ' + v; continue; }
        case 75: { const p = vars.HTTP_SEC_FETCH_USER; vars.HTTP_SEC_FETCH_USER = p === undefined ? v : p + ', ' + v; continue; }
        case 76: { const p = vars.HTTP_SEC_CH_UA; vars.HTTP_SEC_CH_UA = p === undefined ? v : p + ', ' + v; continue; }
        case 77: { const p = vars.HTTP_SEC_CH_UA_MOBILE; vars.HTTP_SEC_CH_UA_MOBILE = p === undefined ? v : p + ', ' + v; continue; }
        case 78: { const p = vars.HTTP_SEC_CH_UA_PLATFORM; vars.HTTP_SEC_CH_UA_PLATFORM = p === undefined ? v : p + ', ' + v; continue; }
        case 79: /* HTTP_PROXY: dropped */ continue;
        // END generated
        default: {
          const no = P[k + 1];
          addVariable(vars, id === 0 ? s.substring(no, no + P[k + 2]) : NAMES[id], v);
        }
      }
    }
    return vars;
  }

  function namesOf(s: string, n: number): string[] {
    const P = pairArea;
    const out: string[] = [];
    for (let i = 0, k = 0; i < n; i++, k += PAIR_WORDS) {
      const id = P[k] & 0xff;
      const no = P[k + 1];
      out.push(id !== 0 ? NAMES[id] : s.substring(no, no + P[k + 2]));
    }
    return out;
  }

  /* A busy parser that becomes garbage gives its native slot back. */
  const registry = new FinalizationRegistry<number>((slot) => B.release(slot));

  /**
   * A parser's hold on a native slot. Native parsers live in pooled slots (native/binding/codec.cc):
   * a slot is taken at a push and given back by the addon as soon as the parser is not busy
   * (between records or requests, finished or dead), so a request that arrives whole costs no
   * native allocation and no finalizer. Only while busy between pushes is the parser tracked
   * by the FinalizationRegistry.
   */
  class SlotParser {
    /** Dead or finished: push() returns []. */
    protected dead = false;
    private slot = -1;
    private registered = false;
    private readonly maxParamsBytes: number;
    private readonly maxPairs: number;
    private readonly maxRecordBody: number;

    constructor(
      private readonly kind: number,
      limits?: Partial<Limits>,
    ) {
      const l = resolveLimits(limits);
      this.maxParamsBytes = Number(l.maxParamsBytes);
      this.maxPairs = Number(l.maxPairs);
      this.maxRecordBody = Number(l.maxRecordBody);
    }

    /** Whether a push of `chunk` can do nothing at all (no bytes, no state). */
    protected idle(chunk: Uint8Array): boolean {
      return chunk.length === 0 && this.slot < 0;
    }

    /**
     * The slot argument of the next native push: the parser's slot, or -1 with the limits in
     * io, for the addon to take a slot from the pool in the same call (see adopt()).
     */
    protected take(): number {
      const slot = this.slot;
      if (slot < 0) {
        f64[F64_LIMITS] = this.maxParamsBytes;
        f64[F64_ERR_A] = this.maxPairs;
        f64[F64_ERR_B] = this.maxRecordBody;
      }
      return slot;
    }

    /** After a native push with slot -1: the slot the addon took. */
    protected adopt(): number {
      this.slot = io[IO_SLOT];
      return this.slot;
    }

    /** Gives the native slot back now (its parser's buffers are freed) and stops parsing. */
    close(): void {
      this.dead = true;
      if (this.registered) {
        registry.unregister(this);
        this.registered = false;
      }
      if (this.slot >= 0) {
        B.release(this.slot);
        this.slot = -1;
      }
    }

    /** After the last native call of a push(): follow what the addon did with the slot. */
    protected settle(): void {
      const standing = io[IO_STANDING];
      if (standing === 0) {
        if (!this.registered) {
          registry.register(this, this.slot, this);
          this.registered = true;
        }
        return;
      }
      this.slot = -1;
      if (standing >= 2) this.dead = true;
      if (this.registered) {
        registry.unregister(this);
        this.registered = false;
      }
    }
  }

  class NativeFcgiParser extends SlotParser implements FcgiParser {
    constructor(limits?: Partial<Limits>) {
      super(0, limits);
    }

    push(input: Uint8Array): FcgiEvent[] {
      return this.run(input, false) as FcgiEvent[];
    }

    pushVars(input: Uint8Array): FcgiVarsEvent[] {
      return this.run(input, true) as FcgiVarsEvent[];
    }

    /** push(); with `vars`, params blocks become CGI variables (see varsOf). */
    private run(input: Uint8Array, vars: boolean): (FcgiEvent | FcgiVarsEvent)[] {
      const out: (FcgiEvent | FcgiVarsEvent)[] = [];
      if (this.dead) return out;
      const chunk = asBytes(input);
      if (chunk === null || this.idle(chunk)) return out;
      let slot = this.take();
      let start = 0;
      for (;;) {
        io[IO_POS] = start;
        const block = B.fcgiPush(slot, chunk);
        if (slot < 0) slot = this.adopt();
        const n = io[IO_EVENTS];
        if (n !== 0 && io[IO_PAIRS_GROWN] !== 0) pairArea = B.pairArea();
        for (let i = 0, w = IO_DATA; i < n; i++, w += 4) {
          const w0 = io[w];
          const kind = w0 & 0xff;
          const requestId = w0 >>> 8;
          switch (kind) {
            case EV_BEGIN:
              out.push({ type: 'begin', requestId, role: io[w + 1], flags: io[w + 2] });
              break;
            case EV_ABORT:
              out.push({ type: 'abort', requestId });
              break;
            case EV_END:
              out.push({
                type: 'end',
                requestId,
                appStatus: io[w + 1] >>> 0,
                protocolStatus: io[w + 2],
              });
              break;
            case EV_PARAMS:
              if (vars) {
                out.push({ type: 'vars', requestId, vars: varsOf(block as string, io[w + 1]) });
              } else {
                out.push({ type: 'params', requestId, pairs: pairsOf(block as string, io[w + 1]) });
              }
              break;
            case 5:
            case 6:
            case 7:
            case 8: {
              const o = io[w + 1];
              out.push({
                type: STREAM_NAMES[kind - 5],
                requestId,
                data: chunk.subarray(o, o + io[w + 2]),
              });
              break;
            }
            case 13:
            case 14:
            case 15:
            case 16:
              out.push({ type: STREAM_END_NAMES[kind - 13], requestId });
              break;
            case EV_GET_VALUES:
              out.push({ type: 'getValues', names: namesOf(block as string, io[w + 1]) });
              break;
            case EV_GET_VALUES_RESULT:
              out.push({ type: 'getValuesResult', pairs: pairsOf(block as string, io[w + 1]) });
              break;
            case EV_UNKNOWN_TYPE:
              out.push({ type: 'unknownType', recordType: io[w + 1] });
              break;
            case EV_UNKNOWN:
              out.push({ type: 'unknown', requestId, recordType: io[w + 1] });
              break;
            case EV_ERROR:
            default:
              out.push(parserError(w));
              this.settle();
              return out;
          }
        }
        if (io[IO_MORE] === 0) {
          this.settle();
          return out;
        }
        start = io[IO_POS];
      }
    }
  }

  /** SCGI and uwsgi: params, body, bodyEnd, error. */
  class RequestParser extends SlotParser implements ScgiParser, UwsgiParser {
    constructor(
      private readonly uwsgi: boolean,
      limits?: Partial<Limits>,
    ) {
      super(uwsgi ? 2 : 1, limits);
    }

    push(input: Uint8Array): ScgiEvent[] & UwsgiEvent[] {
      return this.run(input, false) as ScgiEvent[] & UwsgiEvent[];
    }

    pushVars(input: Uint8Array): ScgiVarsEvent[] & UwsgiVarsEvent[] {
      return this.run(input, true) as ScgiVarsEvent[] & UwsgiVarsEvent[];
    }

    /** push(), or pushVars() when `vars`: a params block becomes varsOf() instead of pairs. */
    private run(
      input: Uint8Array,
      vars: boolean,
    ): (ScgiEvent | UwsgiEvent | ScgiVarsEvent | UwsgiVarsEvent)[] {
      const out: (ScgiEvent | UwsgiEvent | ScgiVarsEvent | UwsgiVarsEvent)[] = [];
      if (this.dead) return out;
      const chunk = asBytes(input);
      if (chunk === null || this.idle(chunk)) return out;
      let slot = this.take();
      let start = 0;
      for (;;) {
        io[IO_POS] = start;
        const block = this.uwsgi ? B.uwsgiPush(slot, chunk) : B.scgiPush(slot, chunk);
        if (slot < 0) slot = this.adopt();
        const n = io[IO_EVENTS];
        if (n !== 0 && io[IO_PAIRS_GROWN] !== 0) pairArea = B.pairArea();
        for (let i = 0, w = IO_DATA; i < n; i++, w += 4) {
          const w0 = io[w];
          const kind = w0 & 0xff;
          if (kind === EV_BODY) {
            const o = io[w + 1];
            out.push({ type: 'body', data: chunk.subarray(o, o + io[w + 2]) });
          } else if (kind === EV_BODY_END) {
            out.push({ type: 'bodyEnd' });
          } else if (kind === EV_BLOCK_PARAMS) {
            const contentLength = (io[w + 2] >>> 0) + (io[w + 3] >>> 0) * TWO_32;
            if (vars) {
              const v = varsOf(block as string, io[w + 1]);
              if (this.uwsgi) {
                const m = w0 >>> 8;
                out.push({
                  type: 'vars',
                  vars: v,
                  modifier1: m & 0xff,
                  modifier2: m >>> 8,
                  contentLength,
                });
              } else {
                out.push({ type: 'vars', vars: v, contentLength });
              }
              continue;
            }
            const pairs = pairsOf(block as string, io[w + 1]);
            if (this.uwsgi) {
              const m = w0 >>> 8;
              out.push({
                type: 'params',
                pairs,
                modifier1: m & 0xff,
                modifier2: m >>> 8,
                contentLength,
              });
            } else {
              out.push({ type: 'params', pairs, contentLength });
            }
          } else {
            out.push(parserError(w));
            this.settle();
            return out;
          }
        }
        if (io[IO_MORE] === 0) {
          this.settle();
          return out;
        }
        start = io[IO_POS];
      }
    }
  }

  /**
   * The first error the TS codec reports for a string list whose element `bad` is not a string:
   * per-string errors of the strings before it, in order, else ENCODE_BAD_ARGUMENT.
   */
  function typeError(list: readonly unknown[], bad: number, mode: number): Error {
    for (let i = 0; i < bad; i++) {
      const x = list[i] as string;
      if (NOT_LATIN1_RE.test(x)) return codecError('ENCODE_NOT_LATIN1');
      if (mode === LIST_SCGI && x.indexOf('\0') !== -1) return badArgument(3);
      if (mode === LIST_UWSGI && x.length > 65535)
        return codecError('ENCODE_TOO_LARGE', 0, 0, '', 1);
    }
    return badArgument();
  }

  /** As typeError() for a head: status, then each header name before its value. */
  function headTypeError(status: string, headers: readonly unknown[], bad: number): Error {
    if (!isStatus(status)) return codecError('HEAD_BAD_STATUS');
    for (let i = 0; i < bad; i++) {
      const x = headers[i] as string;
      if ((i & 1) === 0) {
        if (!isToken(x)) return codecError('HEAD_BAD_NAME', 0, 0, x);
      } else if (!isFieldValue(x)) {
        return codecError('HEAD_BAD_VALUE', 0, 0, headers[i - 1] as string);
      }
    }
    return badArgument();
  }

  /*
   * Output slab of the hot encoders: outputs are carved from a shared 64 KiB ArrayBuffer (as
   * Node's Buffer pool does with 8 KiB) and returned as Buffer views of it, so an encoder call
   * allocates one small view instead of a buffer; an output over 8 KiB gets a slab of its own.
   */
  let slab = new ArrayBuffer(SLAB_SIZE);
  let slabOff = 0;
  B.setOut(slab);

  /** Reserves `size` bytes of the slab for the next encoder call (io[0..1]). */
  function reserve(size: number): void {
    if (size > SLAB_SHARE || slabOff + size > slab.byteLength) {
      slab = new ArrayBuffer(size > SLAB_SHARE ? size : SLAB_SIZE);
      slabOff = 0;
      B.setOut(slab);
    }
    io[IO_OUT_OFF] = slabOff;
    io[IO_OUT_LEN] = size;
  }

  /** The output of a successful call, as a Buffer view of the reserved bytes. */
  function commit(size: number): Buffer {
    const out = Buffer.from(slab, slabOff, size);
    slabOff += (size + 7) & ~7;
    return out;
  }

  /** A fixed-size record (BEGIN, ABORT, END, UNKNOWN_TYPE); arguments already checked. */
  function record(type: number, requestId: number, a: number, b: number, size: number): Buffer {
    reserve(size);
    io[IO_X] = type | (requestId << 8);
    io[IO_COUNT] = a | 0;
    io[IO_Y] = b;
    if (B.fcgiRecord() !== 0) throw encodeError();
    return commit(size);
  }

  /* Total characters of the last packed list (set by packHead/packList). */
  let packedChars = 0;

  /** Writes the lengths of status + headers to io and returns them joined. */
  function packHead(status: string, headers: readonly string[]): string {
    const n = headers.length;
    ensureIo(n + 1);
    const L = io;
    let total = status.length;
    L[IO_DATA] = total;
    for (let i = 0; i < n; i++) {
      const h = headers[i];
      if (typeof h !== 'string') throw headTypeError(status, headers, i);
      const len = h.length;
      L[IO_DATA + 1 + i] = len;
      total += len;
    }
    packedChars = total;
    if (n > 64) return status + headers.join('');
    /* A rope of a few pieces is cheaper than join(); the addon reads it without flattening. */
    let s = status;
    for (let i = 0; i < n; i++) s += headers[i];
    return s;
  }

  /** Writes the lengths of `list` to io and returns it joined. */
  function packList(list: readonly string[], mode: number): string {
    const n = list.length;
    ensureIo(n);
    const L = io;
    let total = 0;
    for (let i = 0; i < n; i++) {
      const x = list[i];
      if (typeof x !== 'string') throw typeError(list, i, mode);
      L[IO_DATA + i] = x.length;
      total += x.length;
    }
    packedChars = total;
    if (n > 64) return list.join('');
    let s = '';
    for (let i = 0; i < n; i++) s += list[i];
    return s;
  }

  /**
   * A bad argument found after the body of fcgiResponseText() or encodeHeadText(): the body's
   * error first.
   */
  function bodyFirst(body: string, variant = 0): Error {
    return NOT_LATIN1_RE.test(body) ? codecError('ENCODE_NOT_LATIN1') : badArgument(variant);
  }

  /**
   * packHead() for a head followed by a string body (`body` already checked to be a string):
   * the body's length is the last io length and its characters end the returned string;
   * io[IO_COUNT] counts the body too. The addon checks the body before the head; so must the
   * errors found here.
   */
  function packHeadText(status: string, headers: readonly string[], body: string): string {
    if (typeof status !== 'string' || !Array.isArray(headers)) throw bodyFirst(body);
    const n = headers.length;
    if ((n & 1) !== 0) throw bodyFirst(body, 1);
    ensureIo(n + 2);
    let s: string;
    try {
      s = packHead(status, headers);
    } catch (err) {
      throw NOT_LATIN1_RE.test(body) ? codecError('ENCODE_NOT_LATIN1') : err;
    }
    io[IO_DATA + n + 1] = body.length;
    io[IO_COUNT] = n + 2;
    return s + body;
  }

  /** Whether a head style is `http` (not `cgi`); ENCODE_BAD_ARGUMENT for anything else. */
  function httpStyle(style: HeadStyle): boolean {
    if (style === 'cgi') return false;
    if (style === 'http') return true;
    throw badArgument();
  }

  function checkPairsArray(pairs: readonly string[]): void {
    if (!Array.isArray(pairs)) throw badArgument();
    if ((pairs.length & 1) !== 0) throw badArgument(2);
  }

  function request(
    kind: number,
    s: string,
    count: number,
    x: number,
    y: number,
    list: readonly string[],
  ) {
    /* room for the longest output the packed strings can give: at most 8 length bytes per
     string (FastCGI's two 4-byte lengths for a name alone), one record header and its padding
     per 65528 bytes, and the netstring's or packet's own head */
    const longest = packedChars + count * 8 + 32;
    reserve(longest + 16 * Math.ceil(longest / MAX_STREAM_RECORD));
    const r = B.encodeRequest(kind, s, count, x, y);
    if (r === 0) return commit(io[IO_OUT_LEN]);
    if (typeof r === 'number') throw encodeError(list);
    return r;
  }

  const codec: Codec = {
    name: 'native',

    createFcgiParser(limits?: Partial<Limits>): FcgiParser {
      return new NativeFcgiParser(limits);
    },

    createScgiParser(limits?: Partial<Limits>): ScgiParser {
      return new RequestParser(false, limits);
    },

    createUwsgiParser(limits?: Partial<Limits>): UwsgiParser {
      return new RequestParser(true, limits);
    },

    encodeHead(status: string, headers: readonly string[], style: HeadStyle): Uint8Array {
      const http = httpStyle(style);
      if (typeof status !== 'string' || !Array.isArray(headers)) throw badArgument();
      const n = headers.length;
      if ((n & 1) !== 0) throw badArgument(1);
      const s = packHead(status, headers);
      const size = (http ? 13 : 12) + packedChars + n * 2;
      reserve(size);
      io[IO_COUNT] = n + 1;
      io[IO_Y] = http ? 1 : 0;
      if (B.encodeHead(s) !== 0) throw encodeError(headers);
      return commit(size);
    },

    encodeHeadText(
      status: string,
      headers: readonly string[],
      body: string,
      style: HeadStyle,
    ): Uint8Array {
      const http = httpStyle(style);
      if (typeof body !== 'string') throw badArgument();
      const s = packHeadText(status, headers, body);
      const size = (http ? 13 : 12) + packedChars + headers.length * 2 + body.length;
      reserve(size);
      io[IO_Y] = http ? 1 : 0;
      if (B.encodeHeadText(s) !== 0) throw encodeError(headers);
      return commit(size);
    },

    fcgiStream(type: number, requestId: number, data: Uint8Array, end: boolean): Uint8Array {
      if (!isU8(type) || type === 0 || !isU16(requestId) || !(data instanceof Uint8Array)) {
        throw badArgument();
      }
      const size = framedSize(data.length) + (end ? 8 : 0);
      reserve(size);
      io[IO_X] = type | (requestId << 8);
      io[IO_Y] = end ? 1 : 0;
      if (B.fcgiStream(data) !== 0) throw encodeError();
      return commit(size);
    },

    fcgiResponse(
      requestId: number,
      status: string,
      headers: readonly string[],
      body: Uint8Array,
      end: boolean,
    ): Uint8Array {
      if (!isU16(requestId) || !(body instanceof Uint8Array)) throw badArgument();
      if (typeof status !== 'string' || !Array.isArray(headers)) throw badArgument();
      const n = headers.length;
      if ((n & 1) !== 0) throw badArgument(1);
      const s = packHead(status, headers);
      const size = framedSize(12 + packedChars + n * 2 + body.length) + (end ? 24 : 0);
      reserve(size);
      io[IO_COUNT] = n + 1;
      io[IO_X] = requestId;
      io[IO_Y] = end ? 1 : 0;
      if (B.fcgiResponse(s, body) !== 0) throw encodeError(headers);
      return commit(size);
    },

    fcgiResponseText(
      requestId: number,
      status: string,
      headers: readonly string[],
      body: string,
      end: boolean,
    ): Uint8Array {
      if (!isU16(requestId) || typeof body !== 'string') throw badArgument();
      const s = packHeadText(status, headers, body);
      const size = framedSize(12 + packedChars + headers.length * 2 + body.length) + (end ? 24 : 0);
      reserve(size);
      io[IO_X] = requestId;
      io[IO_Y] = end ? 1 : 0;
      if (B.fcgiResponseText(s) !== 0) throw encodeError(headers);
      return commit(size);
    },

    fcgiEndRequest(requestId: number, appStatus: number, protocolStatus: number): Uint8Array {
      if (!isU16(requestId) || appStatus >>> 0 !== appStatus || !isU8(protocolStatus)) {
        throw badArgument();
      }
      return record(3, requestId, appStatus, protocolStatus, 16);
    },

    fcgiBeginRequest(requestId: number, role: number, flags: number): Uint8Array {
      if (!isU16(requestId) || !isU16(role) || !isU8(flags)) throw badArgument();
      return record(1, requestId, role, flags, 16);
    },

    fcgiAbortRequest(requestId: number): Uint8Array {
      if (!isU16(requestId)) throw badArgument();
      return record(2, requestId, 0, 0, 8);
    },

    fcgiUnknownType(recordType: number): Uint8Array {
      if (!isU8(recordType)) throw badArgument();
      return record(11, 0, recordType, 0, 16);
    },

    fcgiParams(requestId: number, pairs: readonly string[]): Uint8Array {
      if (!isU16(requestId)) throw badArgument();
      checkPairsArray(pairs);
      const s = packList(pairs, LIST_FCGI);
      return request(0, s, pairs.length, requestId, 0, pairs);
    },

    fcgiGetValues(names: readonly string[]): Uint8Array {
      if (!Array.isArray(names)) throw badArgument();
      const s = packList(names, LIST_FCGI);
      return request(1, s, names.length, 0, 0, names);
    },

    fcgiGetValuesResult(pairs: readonly string[]): Uint8Array {
      checkPairsArray(pairs);
      const s = packList(pairs, LIST_FCGI);
      return request(2, s, pairs.length, 0, 0, pairs);
    },

    scgiRequest(pairs: readonly string[], contentLength: number): Uint8Array {
      if (!Number.isSafeInteger(contentLength) || contentLength < 0) throw badArgument();
      checkPairsArray(pairs);
      const s = packList(pairs, LIST_SCGI);
      return request(3, s, pairs.length, contentLength, 0, pairs);
    },

    uwsgiRequest(pairs: readonly string[], modifier1: number, modifier2: number): Uint8Array {
      if (!isU8(modifier1) || !isU8(modifier2)) throw badArgument();
      checkPairsArray(pairs);
      const s = packList(pairs, LIST_UWSGI);
      return request(4, s, pairs.length, modifier1, modifier2, pairs);
    },
  };
  return Object.freeze(codec);
}

/** The package root: the nearest directory above this module holding tsgi's package.json. */
function packageRoot(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  let dir = here;
  for (let i = 0; i < 6; i++) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg)) {
      try {
        if ((JSON.parse(readFileSync(pkg, 'utf8')) as { name?: string }).name === 'tsgi')
          return dir;
      } catch {
        /* not ours: keep looking */
      }
    }
    const up = dirname(dir);
    if (up === dir) break;
    dir = up;
  }
  /* lib/codec/native.ts and dist/codec/native.js both sit two levels below the root. */
  return join(here, '..', '..');
}

/**
 * Whether this process runs on musl libc. node-gyp-build (which picks the `glibc` or `musl`
 * prebuild) only looks for /etc/alpine-release; this also knows other musl systems (Void,
 * Chimera, distroless musl images). Without a musl dynamic loader in /lib the answer is no at
 * once; with one (a musl system, or a glibc one with musl-tools) process.report decides: its
 * header names a glibc version only under glibc. (getReport costs ~15 ms, hence the fast path.)
 */
export function isMusl(): boolean {
  if (process.platform !== 'linux') return false;
  if (existsSync('/etc/alpine-release')) return true;
  try {
    if (!readdirSync('/lib').some((f) => f.startsWith('ld-musl-'))) return false;
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } };
    return report?.header !== undefined && !report.header.glibcVersionRuntime;
  } catch {
    return false;
  }
}

let loaded: { codec: Codec | null; reason: string } | undefined;
/** The addon's exports once loaded (lib/protocol/transport.ts takes its Transport class). */
let loadedBinding: object | null = null;

/** The loaded addon's exports (loading it if needed), or null when it does not load. */
export function loadNativeBinding(): object | null {
  loadNativeCodec();
  return loadedBinding;
}

/*
 * One codec per loaded binding in the whole process: the ESM and the CommonJS copies of tsgi
 * load the same .node file (one exports object), whose output slab and parser slots a second
 * createNativeCodec() would take over from the first.
 */
const SHARED = Symbol.for('tsgi.nativeCodecs');
function sharedCodec(binding: Binding): Codec {
  const g = globalThis as { [SHARED]?: WeakMap<object, Codec> };
  const map = (g[SHARED] ??= new WeakMap<object, Codec>());
  let codec = map.get(binding);
  if (codec === undefined) {
    codec = createNativeCodec(binding);
    map.set(binding, codec);
  }
  return codec;
}

/**
 * Loads the native codec: `TSGI_NATIVE_PATH` (a .node file) when set, else node-gyp-build from
 * the package root (prebuilds/<platform>-<arch>/, then build/Release). Never throws: when
 * nothing loads, `codec` is null and `reason` says why.
 */
export function loadNativeCodec(): { codec: Codec | null; reason: string } {
  if (loaded !== undefined) return loaded;
  const require = createRequire(import.meta.url);
  let where = '';
  try {
    let binding: unknown;
    const explicit = process.env.TSGI_NATIVE_PATH;
    if (explicit !== undefined && explicit !== '') {
      where = resolve(explicit);
      binding = require(where);
    } else {
      where = packageRoot();
      /* node-gyp-build reads LIBC once, when first loaded: tell it about musl it cannot see. */
      const setLibc = process.env.LIBC === undefined && isMusl();
      if (setLibc) process.env.LIBC = 'musl';
      let load: (dir: string) => unknown;
      try {
        load = require('node-gyp-build') as (dir: string) => unknown;
      } finally {
        if (setLibc) delete process.env.LIBC;
      }
      binding = load(where);
    }
    loaded = { codec: sharedCodec(binding as Binding), reason: `loaded from ${where}` };
    loadedBinding = binding as object;
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    loaded = { codec: null, reason: `${where}: ${message}` };
  }
  return loaded;
}
