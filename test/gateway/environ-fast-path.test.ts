/**
 * How environs are built on the fast path, and that it changes nothing a user can see:
 * - FcgiParser.pushVars() gives, in both codecs, exactly the variables cgiVariables() makes of
 *   push()'s pairs (same keys, same order, same values), whatever the names (every well-known
 *   name, repeats, dropped names, custom names), the chunking and the requests before it (the
 *   native value cache), and the native and TypeScript codecs agree.
 * - So do the SCGI and uwsgi parsers' pushVars() (the other fields of a params event kept).
 * - The environ object behaves as a plain object with no inherited names.
 * - sourcedEnviron()'s lazy tsgi.* keys: own enumerable keys, made once on first read, by the
 *   request's source; assignment and delete work as on any key.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { Readable, Writable } from 'node:stream';
import { pathToFileURL } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cgiVariables } from '../../lib/codec/environ.js';
import { NAMES } from '../../lib/codec/boundary.js';
import { tsCodec } from '../../lib/codec/ts/index.js';
import type {
  Codec,
  FcgiEvent,
  FcgiVarsEvent,
  ScgiEvent,
  ScgiVarsEvent,
  UwsgiEvent,
  UwsgiVarsEvent,
} from '../../lib/codec/types.js';
import { makeEnviron, sourcedEnviron, type EnvironSource } from '../../lib/gateway/environ.js';
import { BodyInput } from '../../lib/gateway/input.js';
import { checkEnviron } from '../../lib/gateway/validate.js';
import { describeEachCodec, native } from '../support/codecs.js';
import { ensureBuilt, ROOT } from '../support/build.js';

/** The variables as [key, value] entries, in key order. */
const entries = (v: object): [string, unknown][] => Object.entries(v);

/** A FastCGI request (BEGIN, PARAMS, empty PARAMS, empty STDIN) with these pairs. */
function request(codec: Codec, id: number, pairs: string[]): Uint8Array {
  return Buffer.concat([
    codec.fcgiBeginRequest(id, 1, 1),
    codec.fcgiParams(id, pairs),
    codec.fcgiStream(5, id, new Uint8Array(0), true),
  ]);
}

/** push()'s events with params turned into variables by cgiVariables(). */
function viaPairs(events: FcgiEvent[]): unknown[] {
  return events.map((e) =>
    e.type === 'params'
      ? { type: 'vars', requestId: e.requestId, vars: entries(cgiVariables(e.pairs)) }
      : e,
  );
}

function viaVars(events: FcgiVarsEvent[]): unknown[] {
  return events.map((e) => (e.type === 'vars' ? { ...e, vars: entries(e.vars) } : e));
}

/** Every well-known name once, then again (repeats: joined for HTTP_*, else the last wins). */
const wellKnown = (suffix: string): string[] => [
  ...NAMES.slice(1).flatMap((n, i) => [n, `${n.toLowerCase()}-${i}${suffix}`]),
  ...NAMES.slice(1).flatMap((n) => [n, `again${suffix}`]),
];

const odd = [
  'HTTP_X_CUSTOM', 'a',
  'HTTP_X_CUSTOM', 'b',
  'X_OTHER', '1',
  'X_OTHER', '2',
  '__proto__', 'p',
  'constructor', 'c',
  'HTTP_COOKIE', 'k=1',
  'HTTP_COOKIE', 'k=2',
  'HTTP', 'h',
  'http_host', 'lower',
  '', 'empty name',
  '0', 'index-like',
  'HTTP_\xe9', '\xff\x80',
]; // prettier-ignore

/** Any latin-1 character. */
const latin1Char = fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c));

describeEachCodec('FcgiParser.pushVars', (codec) => {
  it('gives cgiVariables(pairs) for every well-known name, repeated, and odd names', () => {
    for (const pairs of [wellKnown(''), odd, [...odd, ...wellKnown('x')], []]) {
      const bytes = request(codec, 1, pairs);
      const a = viaPairs(codec.createFcgiParser().push(bytes));
      const b = viaVars(codec.createFcgiParser().pushVars(bytes));
      expect(b).toEqual(a);
      expect(b.some((e) => (e as { type: string }).type === 'vars')).toBe(true);
    }
  });

  it('keeps in step with the value cache over requests, mixing push() and pushVars()', () => {
    const reqs = [
      wellKnown(''),
      wellKnown(''),
      wellKnown('2'),
      wellKnown('2'),
      wellKnown('2'),
      odd,
      wellKnown('2'),
    ];
    const mixed = codec.createFcgiParser();
    const plain = codec.createFcgiParser();
    reqs.forEach((pairs, i) => {
      const bytes = request(codec, 1, pairs);
      const want = viaPairs(plain.push(bytes));
      const got = i % 2 === 0 ? viaVars(mixed.pushVars(bytes)) : viaPairs(mixed.push(bytes));
      expect(got).toEqual(want);
    });
  });

  it('agrees with push() for random params, chunkings and request sequences', () => {
    const name = fc.oneof(
      fc.constantFrom(...NAMES.slice(1)),
      fc.constantFrom('HTTP_X_A', 'X_B', 'HTTP_COOKIE', 'HTTP_PROXY', '__proto__', 'A'),
      fc.string({ maxLength: 6, unit: latin1Char }),
    );
    const value = fc.oneof(
      fc.constantFrom('', 'GET', '/', '127.0.0.1', 'same'),
      fc.string({ maxLength: 20, unit: latin1Char }),
    );
    const req = fc.array(fc.tuple(name, value), { maxLength: 25 });
    fc.assert(
      fc.property(
        fc.array(req, { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(), { maxLength: 5 }),
        (requests, cuts) => {
          const bytes = Buffer.concat(requests.map((r, i) => request(codec, i + 1, r.flat())));
          const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort(
            (a, b) => a - b,
          );
          const pushA = codec.createFcgiParser();
          const pushB = codec.createFcgiParser();
          const a: unknown[] = [];
          const b: unknown[] = [];
          let prev = 0;
          for (const p of [...points, bytes.length]) {
            const chunk = bytes.subarray(prev, p);
            a.push(...viaPairs(pushA.push(chunk)));
            b.push(...viaVars(pushB.pushVars(chunk)));
            prev = p;
          }
          expect(b).toEqual(a);
        },
      ),
      { numRuns: 150 },
    );
  });
});

describe('pushVars: the native and TypeScript codecs agree', () => {
  it.runIf(native.codec !== null)('same variables, same key order', () => {
    const n = native.codec!;
    for (const pairs of [wellKnown(''), odd, [...wellKnown('y'), ...odd]]) {
      const bytes = request(tsCodec, 7, pairs);
      expect(viaVars(n.createFcgiParser().pushVars(bytes))).toEqual(
        viaVars(tsCodec.createFcgiParser().pushVars(bytes)),
      );
    }
  });
});

type StreamKind = 'scgi' | 'uwsgi';

/** An SCGI request or a uwsgi packet with these pairs and no body. */
function streamRequest(codec: Codec, kind: StreamKind, pairs: string[]): Uint8Array {
  if (kind === 'scgi') return codec.scgiRequest(pairs, 0);
  /* uwsgi: CONTENT_LENGTH is the body's length, so it must be a number */
  const kept: string[] = [];
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    kept.push(pairs[i]!, pairs[i] === 'CONTENT_LENGTH' ? '0' : pairs[i + 1]!);
  }
  return codec.uwsgiRequest(kept, 0, 7);
}

function streamParser(codec: Codec, kind: StreamKind) {
  return kind === 'scgi' ? codec.createScgiParser() : codec.createUwsgiParser();
}

/** SCGI/uwsgi push() events with params turned into variables by cgiVariables(). */
function streamViaPairs(events: (ScgiEvent | UwsgiEvent)[]): unknown[] {
  return events.map((e) => {
    if (e.type !== 'params') return e;
    const { pairs, ...rest } = e;
    return { ...rest, type: 'vars', vars: entries(cgiVariables(pairs)) };
  });
}

function streamViaVars(events: (ScgiVarsEvent | UwsgiVarsEvent)[]): unknown[] {
  return events.map((e) => (e.type === 'vars' ? { ...e, vars: entries(e.vars) } : e));
}

for (const kind of ['scgi', 'uwsgi'] as const) {
  describeEachCodec(`${kind} parser pushVars`, (codec) => {
    it('gives cgiVariables(pairs) for every well-known name, repeated, and odd names', () => {
      for (const pairs of [
        wellKnown(''),
        odd.slice(0, -4),
        [...odd.slice(0, -4), ...wellKnown('x')],
      ]) {
        const bytes = streamRequest(codec, kind, pairs);
        const a = streamViaPairs(streamParser(codec, kind).push(bytes));
        const b = streamViaVars(streamParser(codec, kind).pushVars(bytes));
        expect(b).toEqual(a);
        expect(b.filter((e) => (e as { type: string }).type === 'vars')).toHaveLength(1);
      }
    });

    it('keeps in step with the value cache over requests, mixing push() and pushVars()', () => {
      const reqs = [wellKnown(''), wellKnown(''), wellKnown('2'), wellKnown('2'), odd.slice(0, -4)];
      /* a parser per request (SCGI: one request a connection), one codec value cache */
      const plain: unknown[] = [];
      const mixed: unknown[] = [];
      reqs.forEach((pairs, i) => {
        const bytes = streamRequest(codec, kind, pairs);
        plain.push(streamViaPairs(streamParser(codec, kind).push(bytes)));
        const p = streamParser(codec, kind);
        mixed.push(i % 2 === 0 ? streamViaVars(p.pushVars(bytes)) : streamViaPairs(p.push(bytes)));
      });
      expect(mixed).toEqual(plain);
    });

    it('agrees with push() for random params and chunkings', () => {
      const name = fc.oneof(
        fc.constantFrom(...NAMES.slice(1)),
        fc.constantFrom('HTTP_X_A', 'X_B', 'HTTP_COOKIE', 'HTTP_PROXY', '__proto__', 'A'),
        fc
          .string({ minLength: 1, maxLength: 6, unit: latin1Char })
          .filter((n) => !n.includes('\0')),
      );
      const value = fc.oneof(
        fc.constantFrom('', 'GET', '/', '127.0.0.1', 'same'),
        fc.string({ maxLength: 20, unit: latin1Char }).filter((v) => !v.includes('\0')),
      );
      fc.assert(
        fc.property(
          fc.array(fc.tuple(name, value), { maxLength: 25 }),
          fc.array(fc.nat(), { maxLength: 5 }),
          (pairs, cuts) => {
            const bytes = streamRequest(codec, kind, pairs.flat());
            const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort(
              (a, b) => a - b,
            );
            const pushA = streamParser(codec, kind);
            const pushB = streamParser(codec, kind);
            const a: unknown[] = [];
            const b: unknown[] = [];
            let prev = 0;
            for (const p of [...points, bytes.length]) {
              const chunk = bytes.subarray(prev, p);
              a.push(...streamViaPairs(pushA.push(chunk)));
              b.push(...streamViaVars(pushB.pushVars(chunk)));
              prev = p;
            }
            expect(b).toEqual(a);
          },
        ),
        { numRuns: 150 },
      );
    });
  });

  describe(`${kind} pushVars: the native and TypeScript codecs agree`, () => {
    it.runIf(native.codec !== null)('same variables, same key order, same fields', () => {
      const n = native.codec!;
      for (const pairs of [
        wellKnown(''),
        odd.slice(0, -4),
        [...wellKnown('y'), ...odd.slice(0, -4)],
      ]) {
        const bytes = streamRequest(tsCodec, kind, pairs);
        expect(streamViaVars(streamParser(n, kind).pushVars(bytes))).toEqual(
          streamViaVars(streamParser(tsCodec, kind).pushVars(bytes)),
        );
      }
    });
  });
}

describe('the environ object', () => {
  it('behaves as a plain object with nothing inherited', () => {
    const v = cgiVariables(['REQUEST_METHOD', 'GET', 'toString', 't', 'HTTP_HOST', 'h']);
    expect(Object.keys(v)).toEqual(['REQUEST_METHOD', 'toString', 'HTTP_HOST']);
    expect(JSON.stringify(v)).toBe('{"REQUEST_METHOD":"GET","toString":"t","HTTP_HOST":"h"}');
    expect('REQUEST_METHOD' in v).toBe(true);
    expect('hasOwnProperty' in v).toBe(false);
    expect('constructor' in v).toBe(false);
    expect('__proto__' in v).toBe(false);
    v.NEW = 'n';
    expect(delete v.REQUEST_METHOD).toBe(true);
    expect(Object.keys(v)).toEqual(['toString', 'HTTP_HOST', 'NEW']);
    expect({ ...v }).toEqual({ toString: 't', HTTP_HOST: 'h', NEW: 'n' });
    const proto = Object.getPrototypeOf(v) as object;
    expect(Reflect.ownKeys(proto)).toEqual([]);
    expect(Object.getPrototypeOf(proto)).toBe(null);
    expect(Object.isFrozen(proto)).toBe(true);
    expect(Reflect.ownKeys(v)).toEqual(Object.keys(v));
  });

  it('stays an object with fast properties, not a hash table, up to 96 keys', async () => {
    /* Not a timing: V8's own view of the object (a regression to Object.create(null) or a
     * literal filled by computed names makes a dictionary of it). */
    await ensureBuilt();
    const script = `
      const { cgiVariables } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'dist', 'codec', 'environ.js')).href)});
      const out = [];
      for (const n of [0, 30, 90]) {
        const pairs = ['REQUEST_METHOD', 'GET', 'HTTP_HOST', 'h'];
        for (let i = 0; i < n; i++) pairs.push('HTTP_X_' + i, String(i));
        out.push(%HasFastProperties(cgiVariables(pairs)));
      }
      console.log(JSON.stringify(out));`;
    const out = execFileSync(
      process.execPath,
      ['--allow-natives-syntax', '--input-type=module', '-e', script],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(out)).toEqual([true, true, true]);
  });

  it('stays in fast mode, with its tsgi.* keys, as the SCGI, uwsgi, FastCGI and HTTP servers hand it to the app, also under --timeout', async () => {
    /* Not a timing: V8's own view of the environ an app gets (a request of a browser's headers
     * through nginx's params; lazy keys and all), for each protocol */
    await ensureBuilt();
    const dist = (f: string) => JSON.stringify(pathToFileURL(join(ROOT, 'dist', f)).href);
    const script = `
      const { createScgiServer } = await import(${dist('protocol/scgi.js')});
      const { createUwsgiServer } = await import(${dist('protocol/uwsgi.js')});
      const { createFastcgiServer } = await import(${dist('protocol/fastcgi.js')});
      const { createHttpServer } = await import(${dist('protocol/http.js')});
      const { RequestTracker } = await import(${dist('server/request-tracker.js')});
      const timed = (app) => createFastcgiServer(new RequestTracker({ timeoutMs: 60000 }).wrap(app));
      const { SCGI_REQUEST, UWSGI_REQUEST, FCGI_REQUEST } = await import(${JSON.stringify(pathToFileURL(join(ROOT, 'bench', 'fixtures.mjs')).href)});
      const { connect } = await import('node:net');
      const http = 'GET /a?b HTTP/1.1\\r\\nHost: h\\r\\nUser-Agent: u\\r\\nConnection: close\\r\\n\\r\\n';
      const out = {};
      for (const [name, make, request] of [
        ['scgi', createScgiServer, SCGI_REQUEST],
        ['uwsgi', createUwsgiServer, UWSGI_REQUEST],
        ['fastcgi', createFastcgiServer, FCGI_REQUEST],
        ['http', createHttpServer, http],
        ['fastcgi --timeout', timed, FCGI_REQUEST],
      ]) {
        out[name] = [];
        const server = make((env, startResponse) => {
          out[name].push(%HasFastProperties(env) && Object.keys(env).includes('tsgi.signal'));
          startResponse('200 OK', [['Content-Type', 'text/plain']]);
          return ['x'];
        });
        await new Promise((r) => server.listen(0, '127.0.0.1', r));
        for (let i = 0; i < 2; i++) {
          await new Promise((r) => {
            const s = connect(server.address().port, '127.0.0.1');
            s.on('data', () => { if (name.startsWith('fastcgi')) s.end(); });
            s.on('close', r);
            s.write(request);
          });
        }
        server.close();
      }
      console.log(JSON.stringify(out));
      process.exit(0);`;
    const out = execFileSync(
      process.execPath,
      ['--allow-natives-syntax', '--input-type=module', '-e', script],
      { encoding: 'utf8' },
    );
    expect(JSON.parse(out)).toEqual({
      scgi: [true, true],
      uwsgi: [true, true],
      fastcgi: [true, true],
      http: [true, true],
      'fastcgi --timeout': [true, true],
    });
  });

  it('holds many keys (past what V8 keeps in fast mode) like any object', () => {
    const pairs: string[] = [];
    for (let i = 0; i < 300; i++) pairs.push(`HTTP_X_${i}`, String(i));
    const v = cgiVariables(pairs);
    expect(Object.keys(v)).toHaveLength(300);
    expect(v.HTTP_X_0).toBe('0');
    expect(v.HTTP_X_299).toBe('299');
  });
});

describe('sourcedEnviron(): lazy tsgi.input, tsgi.errors and tsgi.signal', () => {
  class Source implements EnvironSource {
    made: string[] = [];
    readonly input = new BodyInput(0);
    readonly errors = new Writable({ write: (_c, _e, cb) => cb() });
    readonly controller = new AbortController();
    makeInput(): Readable {
      this.made.push('input');
      return this.input;
    }
    makeErrors(): Writable {
      this.made.push('errors');
      return this.errors;
    }
    makeSignal(): AbortSignal {
      this.made.push('signal');
      return this.controller.signal;
    }
  }
  const build = (source: EnvironSource) =>
    sourcedEnviron(
      cgiVariables(['REQUEST_METHOD', 'GET', 'SERVER_NAME', 'h', 'SERVER_PORT', '80']),
      'fastcgi',
      false,
      source,
    );

  it('are own enumerable keys, in PEP 3333 order, made once on first read', () => {
    const s = new Source();
    const env = build(s);
    expect(Object.keys(env).slice(-9)).toEqual([
      'tsgi.version',
      'tsgi.url_scheme',
      'tsgi.input',
      'tsgi.errors',
      'tsgi.multithread',
      'tsgi.multiprocess',
      'tsgi.run_once',
      'tsgi.protocol',
      'tsgi.signal',
    ]);
    expect('tsgi.signal' in env && Object.prototype.hasOwnProperty.call(env, 'tsgi.signal')).toBe(
      true,
    );
    expect(s.made).toEqual([]);
    expect(env['tsgi.errors']).toBe(s.errors);
    expect(env['tsgi.errors']).toBe(s.errors);
    expect(s.made).toEqual(['errors']);
    expect(Object.getOwnPropertyDescriptor(env, 'tsgi.errors')).toEqual({
      value: s.errors,
      writable: true,
      enumerable: true,
      configurable: true,
    });
    expect(checkEnviron(env)).toEqual([]);
    expect(s.made).toEqual(['errors', 'input', 'signal']);
  });

  it('assignment replaces, delete removes, spreading makes the values', () => {
    const s = new Source();
    const env = build(s);
    const mine = Readable.from([]);
    env['tsgi.input'] = mine;
    expect(env['tsgi.input']).toBe(mine);
    expect(delete (env as Record<string, unknown>)['tsgi.signal']).toBe(true);
    expect('tsgi.signal' in env).toBe(false);
    expect(s.made).toEqual([]);
    const copy = { ...env };
    expect(copy['tsgi.errors']).toBe(s.errors);
    expect(copy['tsgi.input']).toBe(mine);
    expect(s.made).toEqual(['errors']);
  });

  it('an object inheriting from the environ reads the values of its source', () => {
    const s = new Source();
    const env = build(s);
    const child = Object.create(env) as Record<string, unknown>;
    expect(child['tsgi.signal']).toBe(s.controller.signal);
    expect(Object.prototype.hasOwnProperty.call(child, 'tsgi.signal')).toBe(true);
  });

  it('makeEnviron() with functions and with values gives the same keys', () => {
    const s = new Source();
    const vars = () => cgiVariables(['REQUEST_METHOD', 'GET', 'SERVER_NAME', 'h']);
    const lazy = makeEnviron(vars(), {
      protocol: 'scgi',
      input: () => s.input,
      errors: () => s.errors,
      signal: () => s.controller.signal,
    });
    const eager = makeEnviron(vars(), {
      protocol: 'scgi',
      input: s.input,
      errors: s.errors,
      signal: s.controller.signal,
    });
    expect(Object.keys(lazy)).toEqual(Object.keys(eager));
    expect({ ...lazy }).toEqual({ ...eager });
  });
});
