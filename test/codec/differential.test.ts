/**
 * Differential property tests (fast-check).
 *
 * - Parsers: arbitrary streams — valid FastCGI, SCGI and uwsgi requests from a small generator,
 *   and mutations of them (flipped, inserted, deleted bytes, truncation), with random limits —
 *   fed to BOTH codecs with the SAME chunking must give identical raw event lists (stream data
 *   compared as hex), push by push. Each codec under two different chunkings gives identical
 *   normalised events.
 * - Encoders: random arguments (latin-1 and non-latin-1 strings, NULs, CR/LF, invalid header
 *   names and status lines, out-of-range numbers) must give identical bytes or identical
 *   CodecErrors in both codecs.
 *
 * Without the native codec only the chunking-invariance part runs (and says so); on CI a
 * missing native codec is a failure (see test/support/codecs.ts).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tsCodec } from '../../lib/codec/ts/index.js';
import { CodecError, type Codec, type Limits } from '../../lib/codec/types.js';
import { isCI, native, normalise, snapshot, type Ev } from '../support/codecs.js';

// ---------------------------------------------------------------------------------------------
// Byte builders (independent of the codecs)
// ---------------------------------------------------------------------------------------------

const latin1 = (s: string): number[] => Array.from(s, (c) => c.charCodeAt(0) & 0xff);

function fcgiRecord(type: number, id: number, content: number[], pad: number): number[] {
  const len = content.length;
  return [
    1,
    type,
    id >> 8,
    id & 0xff,
    len >> 8,
    len & 0xff,
    pad,
    0,
    ...content,
    ...new Array<number>(pad).fill(0),
  ];
}

function nvLength(n: number, long: boolean): number[] {
  return n < 128 && !long
    ? [n]
    : [0x80 | (n >>> 24), (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff];
}

/** Splits `bytes` at the sorted cut points. */
function cutAt(bytes: number[], cuts: number[]): number[][] {
  const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
  const out: number[][] = [];
  let prev = 0;
  for (const p of points) {
    out.push(bytes.slice(prev, p));
    prev = p;
  }
  out.push(bytes.slice(prev));
  return out;
}

// ---------------------------------------------------------------------------------------------
// Generators
// ---------------------------------------------------------------------------------------------

/** Latin-1 text, biased to short ASCII with some high bytes and NULs. */
const text = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.string({
      unit: fc.constantFrom('A', 'B', '_', 'x', '1', '=', '/'),
      maxLength: 12,
    }),
  },
  {
    weight: 2,
    arbitrary: fc.string({
      unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)),
      maxLength: 20,
    }),
  },
  { weight: 1, arbitrary: fc.string({ unit: fc.constant('v'), minLength: 120, maxLength: 300 }) },
);
const pairs = fc.array(fc.tuple(text, text), { maxLength: 6 }).map((ps) => ps.flat());
const bodyBytes = fc.uint8Array({ maxLength: 60 }).map((b) => Array.from(b));
const pad = fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 9 }), fc.constant(255));

/** A FastCGI connection: a few requests (possibly interleaved), management and odd records. */
const fcgiStream = fc
  .array(
    fc.oneof(
      {
        weight: 6,
        arbitrary: fc.record({
          kind: fc.constant('request' as const),
          id: fc.constantFrom(1, 2, 3, 65535),
          role: fc.integer({ min: 0, max: 4 }),
          flags: fc.integer({ min: 0, max: 255 }),
          pairs,
          long: fc.boolean(),
          paramsCuts: fc.array(fc.nat(), { maxLength: 4 }),
          body: bodyBytes,
          bodyCuts: fc.array(fc.nat(), { maxLength: 3 }),
          pad,
          stream: fc.constantFrom(5, 6, 7, 8),
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('other' as const),
          type: fc.integer({ min: 0, max: 15 }),
          id: fc.constantFrom(0, 1, 2),
          content: fc.uint8Array({ maxLength: 12 }).map((b) => Array.from(b)),
          pad,
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({
          kind: fc.constant('getValues' as const),
          names: fc.array(text, { maxLength: 4 }),
          type: fc.constantFrom(9, 10),
        }),
      },
    ),
    { minLength: 1, maxLength: 5 },
  )
  .chain((items) => {
    // each request as a list of records; then the records of all items interleaved at random
    const lists = items.map((it) => {
      if (it.kind === 'other') return [fcgiRecord(it.type, it.id, it.content, it.pad)];
      if (it.kind === 'getValues') {
        const content = it.names.flatMap((n) => [...nvLength(n.length, false), 0, ...latin1(n)]);
        return [fcgiRecord(it.type, 0, content, 0)];
      }
      const recs: number[][] = [
        fcgiRecord(1, it.id, [it.role >> 8, it.role & 0xff, it.flags, 0, 0, 0, 0, 0], 0),
      ];
      const content: number[] = [];
      for (let i = 0; i < it.pairs.length; i += 2) {
        const n = latin1(it.pairs[i]!);
        const v = latin1(it.pairs[i + 1]!);
        content.push(...nvLength(n.length, it.long), ...nvLength(v.length, false), ...n, ...v);
      }
      for (const part of cutAt(content, it.paramsCuts))
        if (part.length) recs.push(fcgiRecord(4, it.id, part, it.pad));
      recs.push(fcgiRecord(4, it.id, [], 0));
      for (const part of cutAt(it.body, it.bodyCuts))
        if (part.length) recs.push(fcgiRecord(it.stream, it.id, part, it.pad));
      recs.push(fcgiRecord(it.stream, it.id, [], 0));
      return recs;
    });
    const total = lists.reduce((n, l) => n + l.length, 0);
    return fc
      .array(fc.nat({ max: lists.length - 1 }), { minLength: total, maxLength: total })
      .map((order) => {
        const idx = lists.map(() => 0);
        const out: number[] = [];
        for (const want of order) {
          // take the next record of the chosen list, or of the first list that has one left
          let k = want;
          while (idx[k]! >= lists[k]!.length) k = (k + 1) % lists.length;
          out.push(...lists[k]![idx[k]!++]!);
        }
        return out;
      });
  });

/** An SCGI request: CONTENT_LENGTH first, SCGI somewhere (usually last), body, maybe extra. */
const scgiStream = fc
  .record({
    pairs,
    body: bodyBytes,
    extra: bodyBytes,
    scgiLast: fc.boolean(),
    zeros: fc.nat({ max: 3 }),
    lie: fc.boolean(),
  })
  .map(({ pairs: ps, body, extra, scgiLast, zeros, lie }) => {
    const names = ps.map((s) => s.replace(/\0/g, ''));
    const block: number[] = [...latin1(`CONTENT_LENGTH\0${lie ? body.length + 5 : body.length}\0`)];
    if (!scgiLast) block.push(...latin1('SCGI\x001\0'));
    for (const s of names) block.push(...latin1(s), 0);
    if (scgiLast) block.push(...latin1('SCGI\x001\0'));
    return [...latin1('0'.repeat(zeros) + `${block.length}:`), ...block, 0x2c, ...body, ...extra];
  });

/** One to three uwsgi requests back to back. */
const uwsgiStream = fc
  .array(
    fc.record({
      pairs,
      body: bodyBytes,
      cl: fc.constantFrom('exact', 'none', 'empty'),
      m2: fc.integer({ min: 0, max: 255 }),
    }),
    { minLength: 1, maxLength: 3 },
  )
  .map((reqs) => {
    const out: number[] = [];
    for (const r of reqs) {
      const vars: number[] = [];
      const kv = [...r.pairs];
      if (r.cl !== 'none')
        kv.unshift('CONTENT_LENGTH', r.cl === 'exact' ? String(r.body.length) : '');
      for (const s of kv) {
        const b = latin1(s);
        vars.push(b.length & 0xff, b.length >> 8, ...b);
      }
      out.push(
        0,
        vars.length & 0xff,
        vars.length >> 8,
        r.m2,
        ...vars,
        ...(r.cl === 'exact' ? r.body : []),
      );
    }
    return out;
  });

type Mutation =
  | { op: 'flip'; at: number; xor: number }
  | { op: 'insert'; at: number; byte: number }
  | { op: 'delete'; at: number }
  | { op: 'truncate'; at: number }
  | { op: 'set'; at: number; byte: number };

const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({
    op: fc.constant('flip' as const),
    at: fc.nat(),
    xor: fc.integer({ min: 1, max: 255 }),
  }),
  fc.record({
    op: fc.constant('insert' as const),
    at: fc.nat(),
    byte: fc.integer({ min: 0, max: 255 }),
  }),
  fc.record({ op: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ op: fc.constant('truncate' as const), at: fc.nat() }),
  fc.record({
    op: fc.constant('set' as const),
    at: fc.nat(),
    byte: fc.constantFrom(0, 1, 0x3a, 0x2c, 0x7f, 0x80, 0xff),
  }),
);

function mutate(bytes: number[], muts: readonly Mutation[]): number[] {
  const b = [...bytes];
  for (const m of muts) {
    if (b.length === 0) break;
    const at = m.at % b.length;
    if (m.op === 'flip') b[at] = b[at]! ^ m.xor;
    else if (m.op === 'set') b[at] = m.byte;
    else if (m.op === 'insert') b.splice(at, 0, m.byte);
    else if (m.op === 'delete') b.splice(at, 1);
    else b.length = at;
  }
  return b;
}

const limits: fc.Arbitrary<Partial<Limits> | undefined> = fc.oneof(
  { weight: 3, arbitrary: fc.constant(undefined) },
  {
    weight: 1,
    arbitrary: fc.record(
      {
        maxParamsBytes: fc.integer({ min: 0, max: 400 }),
        maxPairs: fc.integer({ min: 0, max: 8 }),
        maxRecordBody: fc.integer({ min: 0, max: 300 }),
      },
      { requiredKeys: [] },
    ),
  },
);

type Protocol = 'fastcgi' | 'scgi' | 'uwsgi';
const STREAMS: Record<Protocol, fc.Arbitrary<number[]>> = {
  fastcgi: fcgiStream,
  scgi: scgiStream,
  uwsgi: uwsgiStream,
};

/** A stream, mutated or not, with chunk cut points. */
function input(protocol: Protocol) {
  return fc.record({
    bytes: fc
      .tuple(
        STREAMS[protocol],
        fc.oneof(
          { weight: 1, arbitrary: fc.constant([]) },
          { weight: 2, arbitrary: fc.array(mutation, { minLength: 1, maxLength: 3 }) },
        ),
      )
      .map(([b, m]) => mutate(b, m)),
    cutsA: fc.array(fc.nat(), { maxLength: 12 }),
    cutsB: fc.array(fc.nat(), { maxLength: 12 }),
    limits,
  });
}

/** Raw events of each push (data as hex), the chunk overwritten after each push. */
function feed(
  codec: Codec,
  protocol: Protocol,
  lim: Partial<Limits> | undefined,
  chunks: number[][],
): Ev[][] {
  const parser = (
    protocol === 'fastcgi'
      ? codec.createFcgiParser(lim)
      : protocol === 'scgi'
        ? codec.createScgiParser(lim)
        : codec.createUwsgiParser(lim)
  ) as { push(c: Uint8Array): Ev[] };
  return chunks.map((c) => {
    const chunk = Uint8Array.from(c);
    const events = parser.push(chunk).map(snapshot);
    chunk.fill(0xa5);
    return events;
  });
}

const RUNS = { fastcgi: 200, scgi: 150, uwsgi: 150 };

// ---------------------------------------------------------------------------------------------
// Chunking invariance (always runs)
// ---------------------------------------------------------------------------------------------

const availableCodecs: Codec[] = native.codec ? [tsCodec, native.codec] : [tsCodec];

describe('chunking invariance', () => {
  for (const codec of availableCodecs) {
    for (const protocol of ['fastcgi', 'scgi', 'uwsgi'] as const) {
      it(`${codec.name} ${protocol}: two chunkings give the same normalised events`, () => {
        fc.assert(
          fc.property(input(protocol), ({ bytes, cutsA, cutsB, limits: lim }) => {
            const a = normalise(feed(codec, protocol, lim, cutAt(bytes, cutsA)).flat());
            const b = normalise(feed(codec, protocol, lim, cutAt(bytes, cutsB)).flat());
            const bytewise = normalise(
              feed(
                codec,
                protocol,
                lim,
                bytes.map((x) => [x]),
              ).flat(),
            );
            expect(a).toEqual(b);
            expect(a).toEqual(bytewise);
          }),
          { numRuns: RUNS[protocol] },
        );
      });
    }
  }
});

// ---------------------------------------------------------------------------------------------
// ts versus native
// ---------------------------------------------------------------------------------------------

function describeDifferential(title: string, body: (nat: Codec) => void): void {
  if (native.codec) {
    const nat = native.codec;
    describe(title, () => body(nat));
  } else if (isCI) {
    describe(title, () => {
      it('native codec is available on CI', () => {
        throw new Error(`native codec did not load on CI: ${native.reason}`);
      });
    });
  } else {
    describe.skip(`${title} (native codec unavailable, only chunking invariance ran: ${native.reason})`, () => {
      it('skipped', () => {});
    });
  }
}

describeDifferential('ts and native parsers agree', (nat) => {
  for (const protocol of ['fastcgi', 'scgi', 'uwsgi'] as const) {
    it(`${protocol}: same events, push by push`, () => {
      fc.assert(
        fc.property(input(protocol), ({ bytes, cutsA, limits: lim }) => {
          const chunks = cutAt(bytes, cutsA);
          expect(feed(nat, protocol, lim, chunks)).toEqual(feed(tsCodec, protocol, lim, chunks));
          const bytewise = bytes.map((x) => [x]);
          expect(feed(nat, protocol, lim, bytewise)).toEqual(
            feed(tsCodec, protocol, lim, bytewise),
          );
        }),
        { numRuns: RUNS[protocol] * 2 },
      );
    });
  }
});

/** The outcome of an encoder call: bytes as hex, or the error. */
function outcome(fn: () => Uint8Array): unknown {
  try {
    const out = fn();
    return {
      ok: Buffer.from(out.buffer, out.byteOffset, out.byteLength).toString('hex'),
      isU8: out instanceof Uint8Array,
    };
  } catch (err) {
    return {
      err: err instanceof CodecError ? 'CodecError' : String(err),
      code: (err as CodecError).code,
      message: (err as Error).message,
    };
  }
}

/** Any string: latin-1, non-latin-1 (BMP and astral), NUL, CR, LF, tab, DEL, space, colon. */
const anyString = fc.oneof(
  { weight: 4, arbitrary: text },
  {
    weight: 2,
    arbitrary: fc.string({
      unit: fc.constantFrom(
        'a',
        'Z',
        '-',
        ' ',
        ':',
        '\0',
        '\r',
        '\n',
        '\t',
        '\x7f',
        '\xe9',
        '\xff',
        '\u0100',
        '\u20ac',
        '\u{1f600}',
        '"',
        '(',
        '9',
      ),
      maxLength: 8,
    }),
  },
);
const tokenish = fc.oneof(
  fc.string({
    unit: fc.constantFrom('A', 'b', '-', '_', '!', '~', '9'),
    minLength: 1,
    maxLength: 10,
  }),
  anyString,
);
const statusString = fc.oneof(
  fc
    .tuple(fc.integer({ min: 0, max: 999 }), fc.option(anyString))
    .map(([n, r]) => String(n).padStart(3, '0') + (r === null ? '' : ' ' + r)),
  anyString,
);
const anyNumber = fc.oneof(
  { weight: 4, arbitrary: fc.integer({ min: 0, max: 300 }) },
  {
    weight: 2,
    arbitrary: fc.constantFrom(
      0,
      1,
      255,
      256,
      65535,
      65536,
      4294967295,
      4294967296,
      2 ** 53 - 1,
      2 ** 53,
      -1,
      1.5,
      NaN,
      Infinity,
      -0,
    ),
  },
  { weight: 1, arbitrary: fc.double() },
);
const anyPairs = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.array(fc.tuple(anyString, anyString), { maxLength: 5 }).map((p) => p.flat()),
  },
  { weight: 1, arbitrary: fc.array(anyString, { maxLength: 5 }) },
  {
    weight: 1,
    arbitrary: fc
      .array(fc.tuple(fc.constantFrom('CONTENT_LENGTH', 'SCGI', 'X'), anyString), { maxLength: 4 })
      .map((p) => p.flat()),
  },
);
const headerList = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.array(fc.tuple(tokenish, anyString), { maxLength: 4 }).map((p) => p.flat()),
  },
  { weight: 1, arbitrary: fc.array(tokenish, { maxLength: 5 }) },
);
const smallBytes = fc.oneof(
  { weight: 5, arbitrary: fc.uint8Array({ maxLength: 40 }) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 65500, max: 65560 }).map((n) => new Uint8Array(n).fill(0x61)),
  },
);
const bigString = fc.integer({ min: 65520, max: 65540 }).map((n) => 'k'.repeat(n));

describeDifferential('ts and native encoders agree', (nat) => {
  const same = (call: (c: Codec) => Uint8Array): void => {
    expect(outcome(() => call(nat))).toEqual(outcome(() => call(tsCodec)));
  };
  const runs = 200;
  it('encodeHead', () => {
    fc.assert(
      fc.property(
        statusString,
        headerList,
        fc.constantFrom('cgi', 'http') as fc.Arbitrary<'cgi' | 'http'>,
        (s, h, style) => {
          same((c) => c.encodeHead(s, h, style));
        },
      ),
      { numRuns: runs },
    );
  });
  it('fcgiStream, fcgiResponse', () => {
    fc.assert(
      fc.property(
        anyNumber,
        anyNumber,
        smallBytes,
        fc.boolean(),
        statusString,
        headerList,
        (type, id, data, end, s, h) => {
          same((c) => c.fcgiStream(type, id, data, end));
          same((c) => c.fcgiResponse(id, s, h, data, end));
        },
      ),
      { numRuns: 150 },
    );
  });
  it('fcgiBeginRequest, fcgiEndRequest, fcgiAbortRequest, fcgiUnknownType', () => {
    fc.assert(
      fc.property(anyNumber, anyNumber, anyNumber, (a, b, c3) => {
        same((c) => c.fcgiBeginRequest(a, b, c3));
        same((c) => c.fcgiEndRequest(a, b, c3));
        same((c) => c.fcgiAbortRequest(a));
        same((c) => c.fcgiUnknownType(a));
      }),
      { numRuns: runs },
    );
  });
  it('fcgiParams, fcgiGetValues, fcgiGetValuesResult', () => {
    fc.assert(
      fc.property(anyNumber, anyPairs, fc.option(bigString, { freq: 8 }), (id, p, big) => {
        const ps = big === null ? p : [...p, big, ''];
        same((c) => c.fcgiParams(id, ps));
        same((c) => c.fcgiGetValues(ps));
        same((c) => c.fcgiGetValuesResult(ps));
      }),
      { numRuns: runs },
    );
  });
  it('scgiRequest, uwsgiRequest', () => {
    fc.assert(
      fc.property(
        anyPairs,
        anyNumber,
        anyNumber,
        anyNumber,
        fc.option(bigString, { freq: 8 }),
        (p, n, m1, m2, big) => {
          const ps = big === null ? p : [...p, 'K', big];
          same((c) => c.scgiRequest(ps, n));
          same((c) => c.uwsgiRequest(ps, m1, m2));
        },
      ),
      { numRuns: runs },
    );
  });
});
