/**
 * The gateway's header and chunk handling, exactly as the plain rules say: a response header
 * is hop-by-hop, Content-Type or Content-Length by its name lower-cased with toLowerCase()
 * (also for names with non-ASCII characters, which toLowerCase() may map onto ASCII), and a
 * string chunk is its latin-1 bytes, whatever its length.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { cgiVariables } from '../../lib/codec/environ.js';
import { makeEnviron } from '../../lib/gateway/environ.js';
import { errorStream } from '../../lib/gateway/errors.js';
import { BodyInput } from '../../lib/gateway/input.js';
import { chunkBytes, respond, type Sink } from '../../lib/gateway/respond.js';
import type { App } from '../../lib/gateway/types.js';

const HOP = [
  'connection',
  'keep-alive',
  'proxy-authenticate',
  'proxy-authorization',
  'proxy-connection',
  'te',
  'trailer',
  'trailers',
  'transfer-encoding',
  'upgrade',
];

/** What the gateway does with one extra response header: its fate, by the reference rule. */
function expected(name: string): 'dropped' | 'type' | 'length' | 'kept' {
  const lower = name.toLowerCase();
  if (HOP.includes(lower)) return 'dropped';
  if (lower === 'content-type') return 'type';
  if (lower === 'content-length') return 'length';
  return 'kept';
}

interface Seen {
  headers: string[] | null;
  errors: string;
  status: string | null;
}

/** Runs an app returning ['body'] with these headers; what reached the sink. */
async function run(headers: [string, string][]): Promise<Seen> {
  const seen: Seen = { headers: null, errors: '', status: null };
  const controller = new AbortController();
  const sink: Sink = {
    head: (status, h) => {
      seen.status = status;
      seen.headers = h;
    },
    write: () => {},
    end: () => {},
    ready: () => null,
    cut: () => {},
    aborted: false,
    signal: controller.signal,
  };
  const env = makeEnviron(
    cgiVariables(['REQUEST_METHOD', 'GET', 'SERVER_NAME', 'h', 'SERVER_PORT', '80']),
    {
      protocol: 'test',
      input: new BodyInput(0),
      errors: errorStream((b) => (seen.errors += Buffer.from(b).toString('utf8'))),
      signal: controller.signal,
    },
  );
  const app: App = (_e, start) => {
    start('200 OK', headers);
    return ['body'];
  };
  await respond(app, env, sink);
  return seen;
}

/** Checks one name against the reference rule. */
async function check(name: string): Promise<void> {
  const fate = expected(name);
  const withType: [string, string][] =
    fate === 'type'
      ? [[name, 'text/plain']]
      : [
          ['Content-Type', 'text/plain'],
          [name, '7'],
        ];
  const seen = await run(withType);
  if (fate === 'dropped') {
    expect(seen.headers).toEqual(['Content-Type', 'text/plain', 'Content-Length', '4']);
    expect(seen.errors).toContain(`dropped hop-by-hop header "${name}"`);
  } else if (fate === 'type') {
    expect(seen.headers).toEqual([name, 'text/plain', 'Content-Length', '4']);
  } else if (fate === 'length') {
    /* the app's own Content-Length: the gateway adds none */
    expect(seen.headers).toEqual(['Content-Type', 'text/plain', name, '7']);
  } else {
    expect(seen.headers).toEqual(['Content-Type', 'text/plain', name, '7', 'Content-Length', '4']);
  }
}

describe('response header names', () => {
  it('are classified case-insensitively, as toLowerCase() would', async () => {
    const names = [
      ...HOP,
      ...HOP.map((n) => n.toUpperCase()),
      'Keep-Alive',
      'Transfer-Encoding',
      'TE',
      'Te',
      'Content-Type',
      'CONTENT-TYPE',
      'content-length',
      'Content-Length',
      'X-Custom',
      'Conection',
      'Keep_Alive',
      'Content-Typo',
      'Content-Lengths',
      'Upgrade-',
      'tf',
      'Trailerz',
      /* non-ASCII names: toLowerCase() decides (KELVIN SIGN lower-cases to "k") */
      '\u212aeep-alive',
      'Content-Type\u0130',
      '\xe9',
      'Conn\xe9ction',
    ];
    for (const name of names) await check(name);
  });

  it('agree with toLowerCase() on random names around the special ones', async () => {
    const base = fc.constantFrom(...HOP, 'content-type', 'content-length', 'x-other');
    const name = fc
      .tuple(base, fc.array(fc.nat(), { maxLength: 4 }), fc.boolean())
      .map(([n, flips, odd]) => {
        const chars = [...n];
        for (const f of flips) {
          const i = f % chars.length;
          const c = chars[i]!;
          chars[i] = f % 3 === 0 ? c.toUpperCase() : f % 3 === 1 ? '\u212a' : c;
        }
        if (odd) chars.push('x');
        return chars.join('');
      });
    await fc.assert(
      fc.asyncProperty(name, (n) => check(n)),
      { numRuns: 200 },
    );
  });
});

describe('chunkBytes', () => {
  it('gives the latin-1 bytes of short and long strings', () => {
    for (const n of [0, 1, 14, 63, 64, 65, 200]) {
      const s = Array.from({ length: n }, (_, i) => String.fromCharCode((i * 37) % 256)).join('');
      expect(Buffer.from(chunkBytes(s)).equals(Buffer.from(s, 'latin1'))).toBe(true);
    }
  });

  it('refuses a character above U+00FF in short and long strings', () => {
    for (const s of [
      '\u0100',
      'abc\u20ac',
      'x'.repeat(63) + '\u0100',
      'y'.repeat(100) + '\u0101',
    ]) {
      expect(() => chunkBytes(s)).toThrow(
        'body chunk is not a latin-1 string (a character is above U+00FF)',
      );
    }
  });
});
