/**
 * Conformance: every vector of test/codec/vectors/*.json against every codec (test/support/codecs.ts).
 *
 * Parse vectors are fed in many chunkings (the ones the vector lists, always bytewise, a few
 * seeded random ones, and one with empty chunks in between); the events, normalised (stream
 * data as hex, consecutive stream events of one type and request id merged), must deep-equal
 * the vector's. Every raw event must have exactly the keys of lib/codec/types.ts, a stream
 * event is never empty, an error is the last event of its push() and push() returns []
 * afterwards. After each push the chunk is overwritten (the caller "reuses" it), so a parser
 * that kept a view of an old chunk instead of copying is caught. `emission` entries pin the
 * exact events of each push() for a given split (when events are emitted).
 *
 * Encode vectors call one encoder with the given arguments and compare the exact bytes, or
 * the thrown CodecError's code and message.
 *
 * The JSON notation is expanded here by trivial code that shares nothing with the codecs.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ERROR_CODES } from '../../lib/codec/errors.js';
import { CodecError, type Codec, type Limits } from '../../lib/codec/types.js';
import {
  describeEachCodec,
  normalise,
  snapshot,
  STREAM_TYPES,
  toHex,
  type Ev,
} from '../support/codecs.js';

// ---------------------------------------------------------------------------------------------
// The vector notation
// ---------------------------------------------------------------------------------------------

/**
 * A byte segment:
 * - a string: hex, spaces allowed;
 * - an array of segments, concatenated;
 * - {hex}, {latin1} (each character is one byte, code ≤ 0xFF), {repeat: byte, count};
 * - {rec: {type, id, content?, pad?, padByte?, version?, reserved?, length?}}: a FastCGI
 *   record: header (contentLength = `length` or the content's length; `pad` padding bytes,
 *   default 0, or "align8" for (8 - len % 8) % 8), the content, the padding (`padByte`, default 0);
 * - {nv: [name, value]}: a FastCGI name-value pair, 1-byte lengths below 128, else 4 bytes;
 *   name and value are latin-1 strings or segments;
 * - {uv: [key, value]}: a uwsgi var: u16 LE key size, key, u16 LE value size, value;
 * - {netstring: segments}: `<decimal length>:` content `,`.
 */
type Segment =
  | string
  | Segment[]
  | { hex: string }
  | { latin1: string }
  | { repeat: number; count: number }
  | {
      rec: {
        type: number;
        id: number;
        content?: Segment;
        pad?: number | 'align8';
        padByte?: number;
        version?: number;
        reserved?: number;
        length?: number;
      };
    }
  | { nv: [Segment | string, Segment | string] }
  | { uv: [Segment | string, Segment | string] }
  | { netstring: Segment };

function hexBytes(hex: string): number[] {
  const clean = hex.replace(/\s+/g, '');
  if (!/^([0-9a-fA-F]{2})*$/.test(clean)) throw new Error(`bad hex in vector: ${hex}`);
  const out: number[] = [];
  for (let i = 0; i < clean.length; i += 2) out.push(parseInt(clean.slice(i, i + 2), 16));
  return out;
}

function latin1Bytes(s: string): number[] {
  const out: number[] = [];
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new Error(`non-latin-1 character in a byte segment: ${s}`);
    out.push(c);
  }
  return out;
}

/** In nv/uv/str, a plain string is latin-1 text (elsewhere a plain string is hex). */
function textOrSegment(x: Segment | string): number[] {
  return typeof x === 'string' ? latin1Bytes(x) : expand(x);
}

function expand(seg: Segment): number[] {
  if (typeof seg === 'string') return hexBytes(seg);
  if (Array.isArray(seg)) return seg.flatMap((s) => expand(s));
  if ('hex' in seg) return hexBytes(seg.hex);
  if ('latin1' in seg) return latin1Bytes(seg.latin1);
  if ('repeat' in seg) return new Array<number>(seg.count).fill(seg.repeat);
  if ('rec' in seg) {
    const r = seg.rec;
    const content = r.content === undefined ? [] : expand(r.content);
    const len = r.length ?? content.length;
    const pad = r.pad === 'align8' ? (8 - (content.length % 8)) % 8 : (r.pad ?? 0);
    return [
      r.version ?? 1,
      r.type,
      (r.id >> 8) & 0xff,
      r.id & 0xff,
      (len >> 8) & 0xff,
      len & 0xff,
      pad,
      r.reserved ?? 0,
      ...content,
      ...new Array<number>(pad).fill(r.padByte ?? 0),
    ];
  }
  if ('nv' in seg) {
    const name = textOrSegment(seg.nv[0]);
    const value = textOrSegment(seg.nv[1]);
    const len = (n: number): number[] =>
      n < 128 ? [n] : [((n >>> 24) & 0x7f) | 0x80, (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
    return [...len(name.length), ...len(value.length), ...name, ...value];
  }
  if ('uv' in seg) {
    const key = textOrSegment(seg.uv[0]);
    const value = textOrSegment(seg.uv[1]);
    return [
      key.length & 0xff,
      key.length >> 8,
      ...key,
      value.length & 0xff,
      value.length >> 8,
      ...value,
    ];
  }
  if ('netstring' in seg) {
    const content = expand(seg.netstring);
    return [...latin1Bytes(`${content.length}:`), ...content, 0x2c];
  }
  throw new Error(`unknown segment ${JSON.stringify(seg)}`);
}

function latin1String(bytes: number[]): string {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return s;
}

/** An expected string inside pairs/names: a plain string, or {str: segments}. */
function expectedString(x: unknown): string {
  if (typeof x === 'string') return x;
  if (x && typeof x === 'object' && 'str' in x)
    return latin1String(expand((x as { str: Segment }).str));
  throw new Error(`bad expected string ${JSON.stringify(x)}`);
}

/** Expected events (normalised form) as written in a vector, resolved to plain values. */
function expectedEvents(events: Ev[]): Ev[] {
  return events.map((e) => {
    const out: Ev = { ...e };
    if ('data' in e)
      out.data =
        typeof e.data === 'string' ? toHex(hexBytes(e.data)) : toHex(expand(e.data as Segment));
    for (const key of ['pairs', 'names']) {
      if (key in e) out[key] = (e[key] as unknown[]).map(expectedString);
    }
    return out;
  });
}

// ---------------------------------------------------------------------------------------------
// Event checks and normalisation
// ---------------------------------------------------------------------------------------------

type Protocol = 'fastcgi' | 'scgi' | 'uwsgi';

/** The exact keys of every event type (lib/codec/types.ts). */
const EVENT_KEYS: Record<Protocol, Record<string, string[]>> = {
  fastcgi: {
    begin: ['type', 'requestId', 'role', 'flags'],
    params: ['type', 'requestId', 'pairs'],
    stdin: ['type', 'requestId', 'data'],
    stdout: ['type', 'requestId', 'data'],
    stderr: ['type', 'requestId', 'data'],
    data: ['type', 'requestId', 'data'],
    stdinEnd: ['type', 'requestId'],
    stdoutEnd: ['type', 'requestId'],
    stderrEnd: ['type', 'requestId'],
    dataEnd: ['type', 'requestId'],
    abort: ['type', 'requestId'],
    end: ['type', 'requestId', 'appStatus', 'protocolStatus'],
    getValues: ['type', 'names'],
    getValuesResult: ['type', 'pairs'],
    unknownType: ['type', 'recordType'],
    unknown: ['type', 'requestId', 'recordType'],
    error: ['type', 'code', 'message'],
  },
  scgi: {
    params: ['type', 'pairs', 'contentLength'],
    body: ['type', 'data'],
    bodyEnd: ['type'],
    error: ['type', 'code', 'message'],
  },
  uwsgi: {
    params: ['type', 'pairs', 'modifier1', 'modifier2', 'contentLength'],
    body: ['type', 'data'],
    bodyEnd: ['type'],
    error: ['type', 'code', 'message'],
  },
};

/** Checks one raw event's shape; returns a problem or ''. */
function shapeProblem(protocol: Protocol, e: unknown): string {
  if (!e || typeof e !== 'object') return `event is not an object: ${String(e)}`;
  const ev = e as Ev;
  const keys = EVENT_KEYS[protocol][ev.type as string];
  if (!keys) return `unknown event type ${String(ev.type)}`;
  const have = Object.keys(ev).sort();
  if (JSON.stringify(have) !== JSON.stringify([...keys].sort())) {
    return `event ${String(ev.type)} has keys ${have.join(',')}, expected ${keys.join(',')}`;
  }
  for (const k of keys) {
    const v = ev[k];
    if (k === 'type' || k === 'code' || k === 'message') {
      if (typeof v !== 'string') return `${k} is not a string`;
    } else if (k === 'data') {
      if (!(v instanceof Uint8Array)) return 'data is not a Uint8Array';
      if (v.length === 0) return `empty ${String(ev.type)} event`;
    } else if (k === 'pairs' || k === 'names') {
      if (!Array.isArray(v) || v.some((s) => typeof s !== 'string'))
        return `${k} is not a string[]`;
      if (k === 'pairs' && v.length % 2 !== 0) return 'pairs has odd length';
    } else if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      return `${k} is not a non-negative integer: ${String(v)}`;
    }
  }
  return '';
}

// ---------------------------------------------------------------------------------------------
// Chunkings
// ---------------------------------------------------------------------------------------------

/** mulberry32: a tiny seeded generator, so random chunkings are reproducible. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function hashString(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

/** Chunk lengths for a chunking spec; a 0 length is an empty push. */
type Chunking = { label: string; lengths: number[] };

function splitAt(total: number, offsets: number[]): number[] {
  const lengths: number[] = [];
  let prev = 0;
  for (const o of offsets) {
    if (o < prev || o > total) throw new Error(`bad split offset ${o} (input is ${total} bytes)`);
    lengths.push(o - prev);
    prev = o;
  }
  lengths.push(total - prev);
  return lengths;
}

function chunkings(name: string, total: number, specs: unknown[] | undefined): Chunking[] {
  const out: Chunking[] = [];
  const seen = new Set<string>();
  const add = (label: string, lengths: number[]): void => {
    const key = lengths.join(',');
    if (seen.has(key)) return;
    seen.add(key);
    out.push({ label, lengths });
  };
  for (const spec of specs ?? ['whole']) {
    if (spec === 'whole') add('whole', [total]);
    else if (spec === 'bytewise') add('bytewise', new Array<number>(total).fill(1));
    else if (Array.isArray(spec))
      add(`split ${JSON.stringify(spec)}`, splitAt(total, spec as number[]));
    else throw new Error(`bad chunking ${JSON.stringify(spec)}`);
  }
  add('whole', [total]);
  add('bytewise', new Array<number>(total).fill(1));
  for (let seed = 1; seed <= 3; seed++) {
    const r = rng(hashString(name) + seed);
    const lengths: number[] = [];
    let left = total;
    while (left > 0) {
      // mostly small pieces, sometimes large ones
      const max = r() < 0.8 ? 17 : 4096;
      const n = Math.min(left, 1 + Math.floor(r() * max));
      lengths.push(n);
      left -= n;
    }
    add(`random seed ${seed}`, lengths);
  }
  {
    // empty pushes between random pieces: a zero-length chunk completes nothing
    const r = rng(hashString(name) + 99);
    const lengths: number[] = [0];
    let left = total;
    while (left > 0) {
      const n = Math.min(left, 1 + Math.floor(r() * 9));
      lengths.push(n, 0);
      left -= n;
    }
    add('with empty chunks', lengths);
  }
  return out;
}

function createParser(codec: Codec, protocol: Protocol, limits?: Partial<Limits>) {
  const parser =
    protocol === 'fastcgi'
      ? codec.createFcgiParser(limits)
      : protocol === 'scgi'
        ? codec.createScgiParser(limits)
        : codec.createUwsgiParser(limits);
  return parser as { push(chunk: Uint8Array): Ev[] };
}

/**
 * Feeds `input` in chunks of `lengths`; returns the raw events of each push (data as hex).
 * Throws on a contract violation that does not depend on the expected events.
 */
function run(
  codec: Codec,
  protocol: Protocol,
  limits: Partial<Limits> | undefined,
  input: Uint8Array,
  lengths: number[],
): Ev[][] {
  const parser = createParser(codec, protocol, limits);
  const pushes: Ev[][] = [];
  let dead = false;
  let offset = 0;
  for (const n of lengths) {
    // a fresh buffer per chunk, with bytes around the chunk that the parser must not read
    const backing = new Uint8Array(n + 16).fill(0xee);
    backing.set(input.subarray(offset, offset + n), 8);
    const chunk = backing.subarray(8, 8 + n);
    offset += n;
    const events = parser.push(chunk);
    if (!Array.isArray(events)) throw new Error('push() did not return an array');
    if (dead && events.length > 0) {
      throw new Error(`push() after an error returned ${JSON.stringify(events.map(snapshot))}`);
    }
    if (n === 0 && events.length > 0) {
      throw new Error(`an empty chunk produced events: ${JSON.stringify(events.map(snapshot))}`);
    }
    events.forEach((e, i) => {
      const problem = shapeProblem(protocol, e);
      if (problem) throw new Error(`${problem}: ${JSON.stringify(snapshot(e as Ev))}`);
      if ((e as Ev).type === 'error') {
        if (i !== events.length - 1)
          throw new Error('an error event is not the last of its push()');
        dead = true;
      }
    });
    pushes.push(events.map((e) => snapshot(e as Ev)));
    backing.fill(0x5a); // the caller reuses its buffer: old views must not be needed any more
  }
  if (dead) {
    const after = parser.push(Uint8Array.of(1, 1, 0, 1, 0, 0, 0, 0, 0x30, 0x3a, 0x2c));
    if (after.length !== 0)
      throw new Error(`push() after an error returned ${after.length} events`);
  }
  return pushes;
}

// ---------------------------------------------------------------------------------------------
// Vectors
// ---------------------------------------------------------------------------------------------

interface ParseVector {
  name: string;
  note: string;
  protocol?: Protocol;
  limits?: Partial<Limits>;
  input: Segment;
  events: Ev[];
  chunkings?: unknown[];
  emission?: { split: number[] | 'whole'; pushes: Ev[][] }[];
}

interface EncodeVector {
  name: string;
  note: string;
  fn: keyof Codec;
  args: unknown[];
  expect?: Segment;
  error?: { code: string; message: string };
}

interface VectorFile {
  description: string;
  protocol?: Protocol;
  parse?: ParseVector[];
  encode?: EncodeVector[];
}

const VECTOR_DIR = new URL('./vectors/', import.meta.url);
const files = readdirSync(VECTOR_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((f) => ({
    file: f,
    data: JSON.parse(readFileSync(new URL(f, VECTOR_DIR), 'utf8')) as VectorFile,
  }));

/** An encoder argument: {bytes: segments} → Uint8Array, {str: segments} → latin-1 string,
 * {num: "NaN" | "Infinity" | "-Infinity" | "-0"} → that number; arrays map element-wise. */
function encodeArg(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(encodeArg);
  if (x && typeof x === 'object') {
    if ('bytes' in x) {
      // a view at an offset into a larger buffer, with bytes around it the encoder must not read
      const content = expand((x as { bytes: Segment }).bytes);
      const backing = new Uint8Array(content.length + 6).fill(0xee);
      backing.set(content, 3);
      return backing.subarray(3, 3 + content.length);
    }
    if ('str' in x) return latin1String(expand((x as { str: Segment }).str));
    if ('num' in x) return Number((x as { num: string }).num);
    throw new Error(`bad encoder argument ${JSON.stringify(x)}`);
  }
  return x;
}

/** A second, different-looking copy of an argument (other buffers, same content). */
function encodeArgAgain(x: unknown): unknown {
  if (Array.isArray(x)) return x.map(encodeArgAgain);
  if (x instanceof Uint8Array) return Uint8Array.from(x).fill(0x33);
  return x;
}

function checkUniqueNames(): void {
  const names = new Set<string>();
  for (const { file, data } of files) {
    for (const v of [...(data.parse ?? []), ...(data.encode ?? [])]) {
      const key = `${file}:${v.name}`;
      if (names.has(key)) throw new Error(`duplicate vector name ${key}`);
      if (!v.note) throw new Error(`vector ${key} has no note`);
      names.add(key);
    }
  }
}
checkUniqueNames();

describe('vectors', () => {
  it('cover every error code and every message variant', () => {
    const seen = new Set<string>();
    const note = (e: { code?: unknown; message?: unknown }): void => {
      if (typeof e.code === 'string') {
        seen.add(e.code);
        seen.add(
          `${e.code}: ${String(e.message)
            .replace(/[0-9]+/g, 'N')
            .replace(/"[^]*"$/, '"NAME"')}`,
        );
      }
    };
    for (const { data } of files) {
      for (const v of data.parse ?? []) {
        v.events.forEach(note);
      }
      for (const v of data.encode ?? []) if (v.error) note(v.error);
    }
    const want = ERROR_CODES.filter((c) => c !== '');
    expect(want.filter((c) => !seen.has(c))).toEqual([]);
    const variants = [
      'SCGI_BAD_NETSTRING: malformed netstring length',
      "SCGI_BAD_NETSTRING: netstring not terminated by ','",
      'ENCODE_BAD_ARGUMENT: invalid argument',
      'ENCODE_BAD_ARGUMENT: headers must be name/value pairs',
      'ENCODE_BAD_ARGUMENT: pairs must be name/value pairs',
      'ENCODE_BAD_ARGUMENT: NUL in SCGI header',
      'ENCODE_TOO_LARGE: record content exceeds N bytes',
      'ENCODE_TOO_LARGE: uwsgi vars block exceeds N bytes',
    ];
    expect(variants.filter((m) => !seen.has(m))).toEqual([]);
  });
});

describeEachCodec('conformance', (codec) => {
  for (const { file, data } of files) {
    for (const v of data.parse ?? []) {
      const protocol = (v.protocol ?? data.protocol)!;
      it(`${file} parse: ${v.name}`, () => {
        const input = Uint8Array.from(expand(v.input));
        const want = expectedEvents(v.events);
        for (const ch of chunkings(v.name, input.length, v.chunkings)) {
          const pushes = run(codec, protocol, v.limits, input, ch.lengths);
          const got = normalise(pushes.flat());
          expect(got, `${v.name}, chunking ${ch.label}`).toEqual(want);
          if (ch.label === 'bytewise') {
            // one byte per push: every stream byte is emitted by the push that brought it
            for (const p of pushes) {
              const stream = p.filter((e) => STREAM_TYPES.has(e.type as string));
              expect(
                stream.length,
                `${v.name}: bytewise push with ${stream.length} stream events`,
              ).toBeLessThanOrEqual(1);
            }
          }
        }
        for (const em of v.emission ?? []) {
          const lengths = em.split === 'whole' ? [input.length] : splitAt(input.length, em.split);
          const pushes = run(codec, protocol, v.limits, input, lengths);
          expect(
            pushes,
            `${v.name}: events per push for split ${JSON.stringify(em.split)}`,
          ).toEqual(em.pushes.map(expectedEvents));
        }
      });
    }
    for (const v of data.encode ?? []) {
      it(`${file} encode: ${v.name}`, () => {
        const fn = codec[v.fn] as unknown as (...a: unknown[]) => Uint8Array;
        expect(typeof fn, `codec.${String(v.fn)}`).toBe('function');
        const args = v.args.map(encodeArg);
        if (v.error) {
          let thrown: unknown = undefined;
          let result: Uint8Array | undefined;
          try {
            result = fn.apply(codec, args);
          } catch (err) {
            thrown = err;
          }
          expect(
            thrown,
            `${v.name}: expected a throw, got ${result ? toHex(result) : 'nothing'}`,
          ).toBeInstanceOf(CodecError);
          const e = thrown as CodecError;
          expect({ name: e.name, code: e.code, message: e.message }).toEqual({
            name: 'CodecError',
            ...v.error,
          });
        } else {
          const out = fn.apply(codec, args);
          expect(out).toBeInstanceOf(Uint8Array);
          const want = toHex(expand(v.expect!));
          const got = toHex(out);
          // the result is the caller's: a second call must not change it
          fn.apply(codec, args.map(encodeArgAgain));
          expect(toHex(out), `${v.name}: result changed by a later call`).toBe(got);
          if (got !== want) {
            // the first differing byte and what follows it, before the whole thing
            let i = 0;
            while (i < got.length && got[i] === want[i]) i++;
            i -= i % 2;
            const show = (h: string) => ({
              atByte: i / 2,
              bytes: h.slice(i, i + 64),
              length: h.length / 2,
            });
            expect(show(got), `${v.name}: first difference`).toEqual(show(want));
          }
          expect(got).toBe(want);
        }
      });
    }
  }
});
