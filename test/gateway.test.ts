import { describe, expect, it } from 'vitest';
import { cgiVariables } from '../lib/codec/environ.js';
import { makeEnviron } from '../lib/gateway/environ.js';
import { errorStream } from '../lib/gateway/errors.js';
import { BodyInput } from '../lib/gateway/input.js';
import { respond, type Sink } from '../lib/gateway/respond.js';
import type { App, Environ, StartResponse } from '../lib/gateway/types.js';
import { checkEnviron, validate, ValidationError } from '../lib/gateway/validate.js';

type Call = (string | string[] | boolean | null)[];

const latin1 = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

/** A sink that records what the gateway sends, and the environ's error output. */
function harness(pairs: string[] = [], opts: { ready?: () => Promise<void> | null } = {}) {
  const calls: Call[] = [];
  const errors: string[] = [];
  const controller = new AbortController();
  const sink: Sink = {
    head: (status, headers, body, last) =>
      calls.push(['head', status, headers, body === null ? null : latin1(body), last]),
    write: (chunk) => calls.push(['write', latin1(chunk)]),
    end: () => calls.push(['end']),
    ready: opts.ready ?? (() => null),
    cut: () => calls.push(['cut']),
    get aborted() {
      return controller.signal.aborted;
    },
    signal: controller.signal,
  };
  const env = makeEnviron(
    cgiVariables([
      'REQUEST_METHOD',
      'GET',
      'SERVER_NAME',
      'example.org',
      'SERVER_PORT',
      '80',
      'SERVER_PROTOCOL',
      'HTTP/1.1',
      'REQUEST_URI',
      '/',
      ...pairs,
    ]),
    {
      protocol: 'test',
      input: new BodyInput(0),
      errors: errorStream((b) => errors.push(latin1(b))),
      signal: controller.signal,
    },
  );
  const run = async (app: App) => {
    await respond(app, env, sink);
    return calls;
  };
  return { calls, errors, env, controller, run, sink };
}

const TEXT: [string, string][] = [['Content-Type', 'text/plain']];
const ERROR_500: Call = [
  'head',
  '500 Internal Server Error',
  ['Content-Type', 'text/plain; charset=us-ascii', 'Content-Length', '22'],
  'Internal Server Error\n',
  true,
];

describe('respond(): PEP 3333 response rules', () => {
  it('sends an array body with its Content-Length in one head call', async () => {
    const h = harness();
    await h.run((_e, start) => {
      start('200 OK', TEXT);
      return ['hel', '', Buffer.from('lo')];
    });
    expect(h.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain', 'Content-Length', '5'], 'hello', true],
    ]);
    expect(h.errors).toEqual([]);
  });

  it('sends an empty array body as Content-Length: 0 at the end', async () => {
    const h = harness();
    await h.run((_e, start) => {
      start('302 Found', [['Location', '/elsewhere']]);
      return [];
    });
    expect(h.calls).toEqual([
      ['head', '302 Found', ['Location', '/elsewhere', 'Content-Length', '0'], null, true],
    ]);
  });

  it('adds no Content-Length for HEAD, 204 and 304, nor a second one', async () => {
    const head = harness(['REQUEST_METHOD', 'HEAD']);
    await head.run((_e, start) => {
      start('200 OK', TEXT);
      return [];
    });
    expect(head.calls).toEqual([['head', '200 OK', ['Content-Type', 'text/plain'], null, true]]);
    for (const status of ['204 No Content', '304 Not Modified']) {
      const h = harness();
      await h.run((_e, start) => {
        start(status, []);
        return [];
      });
      expect(h.calls).toEqual([['head', status, [], null, true]]);
    }
    const h = harness();
    await h.run((_e, start) => {
      start('200 OK', [...TEXT, ['content-length', '2']]);
      return ['ok'];
    });
    expect(h.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain', 'content-length', '2'], 'ok', true],
    ]);
  });

  it('sends headers with the first non-empty chunk of a generator, then streams', async () => {
    const h = harness();
    const seen: string[] = [];
    await h.run((_e, start) => {
      start('200 OK', TEXT);
      return (function* () {
        yield '';
        seen.push(`after empty: ${h.calls.length}`);
        yield 'a';
        yield new Uint8Array(0);
        yield 'b';
      })();
    });
    expect(seen).toEqual(['after empty: 0']);
    expect(h.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain'], 'a', false],
      ['write', 'b'],
      ['end'],
    ]);
  });

  it('iterates async iterables and lets startResponse be called inside the body', async () => {
    const h = harness();
    await h.run((_e, start) => ({
      async *[Symbol.asyncIterator]() {
        start('201 Created', TEXT);
        yield 'x';
        await new Promise((r) => setTimeout(r, 1));
        yield 'y';
      },
    }));
    expect(h.calls).toEqual([
      ['head', '201 Created', ['Content-Type', 'text/plain'], 'x', false],
      ['write', 'y'],
      ['end'],
    ]);
  });

  it('awaits an async app', async () => {
    const h = harness();
    await h.run(async (_e, start) => {
      await new Promise((r) => setTimeout(r, 1));
      start('200 OK', TEXT);
      return ['async'];
    });
    expect(h.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain', 'Content-Length', '5'], 'async', true],
    ]);
  });

  it('sends the head when an iterable body ends empty (its length is known then)', async () => {
    const h = harness();
    await h.run((_e, start) => {
      start('200 OK', TEXT);
      return new Set<string>(['']);
    });
    expect(h.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain', 'Content-Length', '0'], null, true],
    ]);
  });

  it('encodes strings as latin-1 and refuses characters above U+00FF', async () => {
    const h = harness();
    await h.run((_e, start) => {
      start('200 OK', TEXT);
      return ['\x00\x80\xff'];
    });
    expect(h.calls[0]![3]).toBe('\x00\x80\xff');
    const bad = harness();
    await bad.run((_e, start) => {
      start('200 OK', TEXT);
      return ['caf\u0101'];
    });
    expect(bad.calls).toEqual([ERROR_500]);
    expect(bad.errors.join('')).toContain('body chunk is not a latin-1 string');
  });

  it('supports the legacy write() callable (no Content-Length then)', async () => {
    const h = harness();
    await h.run((_e, start) => {
      const write = start('200 OK', TEXT);
      write('abc');
      write('');
      write('def');
      return ['g'];
    });
    expect(h.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain'], 'abc', false],
      ['write', 'def'],
      ['write', 'g'],
      ['end'],
    ]);
  });

  it('refuses a second startResponse without excInfo', async () => {
    const h = harness();
    await h.run((_e, start) => {
      start('200 OK', TEXT);
      start('404 Not Found', TEXT);
      return ['x'];
    });
    expect(h.calls).toEqual([ERROR_500]);
    expect(h.errors.join('')).toContain('startResponse() called a second time without excInfo');
  });

  it('lets excInfo replace the status before the headers left', async () => {
    const h = harness();
    await h.run((_e, start) => {
      start('200 OK', TEXT);
      try {
        throw new Error('db down');
      } catch (err) {
        start('503 Service Unavailable', TEXT, err);
      }
      return ['later'];
    });
    expect(h.calls).toEqual([
      [
        'head',
        '503 Service Unavailable',
        ['Content-Type', 'text/plain', 'Content-Length', '5'],
        'later',
        true,
      ],
    ]);
  });

  it('rethrows excInfo after the headers left, which cuts the response', async () => {
    const h = harness();
    const boom = new Error('late failure');
    let closed = 0;
    await h.run((_e, start) => {
      start('200 OK', TEXT);
      const body = (function* () {
        yield 'part';
        start('500 Internal Server Error', TEXT, boom);
        yield 'never';
      })();
      return Object.assign(body, { close: () => void closed++ });
    });
    expect(h.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain'], 'part', false],
      ['cut'],
    ]);
    expect(h.errors.join('')).toContain('Error: late failure');
    expect(closed).toBe(1);
  });

  it('gives 500 and reports the error when the app throws before the headers', async () => {
    const h = harness();
    await h.run(() => {
      throw new Error('boom');
    });
    expect(h.calls).toEqual([ERROR_500]);
    expect(h.errors.join('')).toMatch(/^tsgi: error in application: Error: boom\n {4}at /);
    const rejected = harness();
    await rejected.run(async () => {
      throw new TypeError('async boom');
    });
    expect(rejected.calls).toEqual([ERROR_500]);
    expect(rejected.errors.join('')).toContain('TypeError: async boom');
  });

  it('reports a body without startResponse, a string body, a non-iterable body', async () => {
    const cases: [App, string][] = [
      [() => [], 'the app returned without calling startResponse()'],
      [() => ['x'], 'the app sent a body before calling startResponse()'],
      [
        (_e, start) => {
          start('200 OK', TEXT);
          return 'text' as never;
        },
        'the app returned a string as its body; return an iterable of chunks, such as [body]',
      ],
      [
        (_e, start) => {
          start('200 OK', TEXT);
          return 42 as never;
        },
        'the app returned number 42, not an iterable body',
      ],
      [
        (_e, start) => {
          start('200 OK', TEXT);
          return [{}] as never;
        },
        'body chunk must be a string or a Uint8Array, not an object (Object)',
      ],
      [
        (_e, start) => {
          start('200 OK', [['X', 'y']]);
          return ['body'];
        },
        'the response has a body but no Content-Type header',
      ],
      [
        (_e, start) => {
          start(200 as never, TEXT);
          return ['body'];
        },
        'status must be a string such as "200 OK", not number 200',
      ],
      [
        (_e, start) => {
          start('200 OK', [['Content-Type']] as never);
          return ['body'];
        },
        'each header must be a [name, value] pair of strings, not an array',
      ],
    ];
    for (const [app, message] of cases) {
      const h = harness();
      await h.run(app);
      expect(h.calls).toEqual([ERROR_500]);
      expect(h.errors.join('')).toContain(message);
    }
  });

  it('drops hop-by-hop headers and says so on tsgi.errors', async () => {
    const h = harness();
    await h.run((_e, start) => {
      start('200 OK', [
        ['Connection', 'close'],
        ['Content-Type', 'text/plain'],
        ['Transfer-Encoding', 'chunked'],
        ['Keep-Alive', 'timeout=5'],
        ['X-Kept', 'yes'],
      ]);
      return ['ok'];
    });
    expect(h.calls).toEqual([
      [
        'head',
        '200 OK',
        ['Content-Type', 'text/plain', 'X-Kept', 'yes', 'Content-Length', '2'],
        'ok',
        true,
      ],
    ]);
    expect(h.errors).toEqual([
      'tsgi: dropped hop-by-hop header "Connection" from the response\n',
      'tsgi: dropped hop-by-hop header "Transfer-Encoding" from the response\n',
      'tsgi: dropped hop-by-hop header "Keep-Alive" from the response\n',
    ]);
  });

  it('calls close() once on every path: done, error before and after headers', async () => {
    const events: string[] = [];
    const closable = (chunks: (string | Error)[]) =>
      Object.assign(
        (function* () {
          try {
            for (const c of chunks) {
              if (c instanceof Error) throw c;
              yield c;
            }
          } finally {
            events.push('finally');
          }
        })(),
        { close: () => void events.push('close') },
      );
    const done = harness();
    await done.run((_e, start) => {
      start('200 OK', TEXT);
      return closable(['a', 'b']);
    });
    expect(done.calls.at(-1)).toEqual(['end']);
    expect(events).toEqual(['finally', 'close']);
    events.length = 0;
    const early = harness();
    await early.run((_e, start) => {
      start('200 OK', TEXT);
      return closable([new Error('before')]);
    });
    expect(early.calls).toEqual([ERROR_500]);
    expect(events).toEqual(['finally', 'close']);
    events.length = 0;
    const late = harness();
    await late.run((_e, start) => {
      start('200 OK', TEXT);
      return closable(['a', new Error('after')]);
    });
    expect(late.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain'], 'a', false],
      ['cut'],
    ]);
    expect(events).toEqual(['finally', 'close']);
  });

  it('awaits an async close() and reports its errors without changing the response', async () => {
    const h = harness();
    let closed = false;
    await h.run((_e, start) => {
      start('200 OK', TEXT);
      return Object.assign(['x'], {
        close: async () => {
          await new Promise((r) => setTimeout(r, 1));
          closed = true;
          throw new Error('close failed');
        },
      });
    });
    expect(closed).toBe(true);
    expect(h.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain', 'Content-Length', '1'], 'x', true],
    ]);
    expect(h.errors.join('')).toContain('tsgi: error in body.close(): Error: close failed');
  });

  it('stops at an abort: no more output, the generator ends, close() runs', async () => {
    const h = harness();
    const events: string[] = [];
    let resume: () => void = () => {};
    const p = h.run((_e, start) => {
      start('200 OK', TEXT);
      return Object.assign(
        (async function* () {
          try {
            yield 'first';
            await new Promise<void>((r) => (resume = r));
            yield 'second';
          } finally {
            events.push('finally');
          }
        })(),
        { close: () => void events.push('close') },
      );
    });
    await new Promise((r) => setTimeout(r, 5));
    h.controller.abort();
    await p;
    expect(events).toEqual(['close']);
    resume();
    await new Promise((r) => setTimeout(r, 5));
    expect(events).toEqual(['close', 'finally']);
    expect(h.calls).toEqual([['head', '200 OK', ['Content-Type', 'text/plain'], 'first', false]]);
  });

  it('closes the body of an app that answers after an abort, sending nothing', async () => {
    const h = harness();
    let closed = 0;
    const p = h.run(async (_e, start) => {
      await new Promise((r) => setTimeout(r, 5));
      start('200 OK', TEXT);
      return Object.assign(['late'], { close: () => void closed++ });
    });
    h.controller.abort();
    await p;
    expect(h.calls).toEqual([]);
    expect(closed).toBe(1);
  });

  it('waits for the sink before pulling the next chunk (backpressure)', async () => {
    let release: () => void = () => {};
    let pending = true;
    const h = harness([], {
      ready: () => (pending ? new Promise<void>((r) => (release = r)) : null),
    });
    let pulled = 0;
    const p = h.run((_e, start) => {
      start('200 OK', TEXT);
      return (function* () {
        for (let i = 0; i < 3; i++) {
          pulled++;
          yield String(i);
        }
      })();
    });
    await new Promise((r) => setTimeout(r, 5));
    expect(pulled).toBe(1);
    pending = false;
    release();
    await p;
    expect(pulled).toBe(3);
    expect(h.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain'], '0', false],
      ['write', '1'],
      ['write', '2'],
      ['end'],
    ]);
  });
});

describe('makeEnviron(): CGI variables made consistent', () => {
  const base = ['REQUEST_METHOD', 'GET', 'SERVER_NAME', 'h', 'SERVER_PORT', '80'];
  const paths = (pairs: string[]) => {
    const env = harness([...base, ...pairs]).env;
    return [env.SCRIPT_NAME, env.PATH_INFO];
  };

  it('derives PATH_INFO from DOCUMENT_URI minus SCRIPT_NAME (nginx default params)', () => {
    expect(paths(['SCRIPT_NAME', '/a/b', 'DOCUMENT_URI', '/a/b', 'REQUEST_URI', '/a/b?x'])).toEqual(
      ['/a/b', ''],
    );
    expect(paths(['SCRIPT_NAME', '/app', 'DOCUMENT_URI', '/app/x/\xff'])).toEqual([
      '/app',
      '/x/\xff',
    ]);
    expect(paths(['SCRIPT_NAME', '/app', 'DOCUMENT_URI', '/application'])).toEqual([
      '',
      '/application',
    ]);
    expect(paths(['SCRIPT_NAME', '', 'DOCUMENT_URI', '/p'])).toEqual(['', '/p']);
    expect(paths(['SCRIPT_NAME', '/a/', 'DOCUMENT_URI', '/a/b'])).toEqual(['/a', '/b']);
  });

  it('percent-decodes REQUEST_URI byte by byte when there is no DOCUMENT_URI', () => {
    expect(paths(['REQUEST_URI', '/x%41%ff%e9/%2F%zz%4?q=%41'])).toEqual([
      '',
      '/xA\xff\xe9//%zz%4',
    ]);
    expect(paths(['REQUEST_URI', 'http://host:81/abs?q'])).toEqual(['', '/abs']);
    expect(paths([])).toEqual(['', '/']); /* the harness sends REQUEST_URI / */
  });

  it('keeps a PATH_INFO the front server sent and fixes the slashes', () => {
    expect(paths(['PATH_INFO', '/given', 'DOCUMENT_URI', '/other'])).toEqual(['', '/given']);
    expect(paths(['SCRIPT_NAME', '/', 'PATH_INFO', 'x'])).toEqual(['', '/x']);
    expect(paths(['SCRIPT_NAME', 'mount', 'PATH_INFO', ''])).toEqual(['/mount', '']);
  });

  it('sets tsgi.url_scheme from HTTPS and REQUEST_SCHEME', () => {
    const scheme = (pairs: string[]) => harness([...base, ...pairs]).env['tsgi.url_scheme'];
    expect(scheme([])).toBe('http');
    expect(scheme(['HTTPS', 'on'])).toBe('https');
    expect(scheme(['HTTPS', 'ON'])).toBe('https');
    expect(scheme(['HTTPS', '1'])).toBe('https');
    expect(scheme(['HTTPS', 'off'])).toBe('http');
    expect(scheme(['REQUEST_SCHEME', 'https'])).toBe('https');
    expect(scheme(['REQUEST_SCHEME', 'http'])).toBe('http');
  });

  it('builds the exact environ of nginx-style params', () => {
    const signal = new AbortController().signal;
    const input = new BodyInput(0);
    const errors = errorStream(() => {});
    const env = makeEnviron(
      cgiVariables([
        'QUERY_STRING',
        'a=%ff',
        'REQUEST_METHOD',
        'POST',
        'CONTENT_TYPE',
        'text/plain',
        'CONTENT_LENGTH',
        '3',
        'SCRIPT_NAME',
        '',
        'REQUEST_URI',
        '/p%C3%A9?a=%ff',
        'DOCUMENT_URI',
        '/p\xc3\xa9',
        'SERVER_PROTOCOL',
        'HTTP/1.1',
        'REQUEST_SCHEME',
        'http',
        'REMOTE_ADDR',
        '127.0.0.1',
        'SERVER_PORT',
        '8080',
        'SERVER_NAME',
        'localhost',
        'HTTP_HOST',
        'localhost:8080',
        'HTTP_CONTENT_LENGTH',
        '3',
        'HTTP_CONTENT_TYPE',
        'text/plain',
        'HTTP_PROXY',
        'http://evil/',
        'HTTP_COOKIE',
        'a=1',
        'HTTP_COOKIE',
        'b=2',
        'HTTP_X_A',
        '1',
        'HTTP_X_A',
        '2',
      ]),
      { protocol: 'fastcgi', input, errors, signal },
    );
    expect({ ...env }).toEqual({
      QUERY_STRING: 'a=%ff',
      REQUEST_METHOD: 'POST',
      CONTENT_TYPE: 'text/plain',
      CONTENT_LENGTH: '3',
      SCRIPT_NAME: '',
      PATH_INFO: '/p\xc3\xa9',
      REQUEST_URI: '/p%C3%A9?a=%ff',
      DOCUMENT_URI: '/p\xc3\xa9',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REQUEST_SCHEME: 'http',
      REMOTE_ADDR: '127.0.0.1',
      SERVER_PORT: '8080',
      SERVER_NAME: 'localhost',
      HTTP_HOST: 'localhost:8080',
      HTTP_COOKIE: 'a=1; b=2',
      HTTP_X_A: '1, 2',
      'tsgi.version': [1, 0],
      'tsgi.url_scheme': 'http',
      'tsgi.input': input,
      'tsgi.errors': errors,
      'tsgi.multithread': true,
      'tsgi.multiprocess': false,
      'tsgi.run_once': false,
      'tsgi.protocol': 'fastcgi',
      'tsgi.signal': signal,
    });
    expect(checkEnviron(env)).toEqual([]);
  });

  it('fills what a bare CGI client leaves out', () => {
    const env = makeEnviron(cgiVariables(['HTTP_HOST', '[::1]:81']), {
      protocol: 'fastcgi',
      input: new BodyInput(0),
      errors: errorStream(() => {}),
      signal: new AbortController().signal,
      local: () => ({ address: '::1', port: 9000 }),
    });
    expect([env.REQUEST_METHOD, env.SERVER_NAME, env.SERVER_PORT, env.SERVER_PROTOCOL]).toEqual([
      'GET',
      '[::1]',
      '9000',
      'HTTP/1.0',
    ]);
    expect([env.SCRIPT_NAME, env.PATH_INFO, env.QUERY_STRING]).toEqual(['', '', '']);
    expect(checkEnviron(env)).toEqual([]);
  });
});

describe('BodyInput (tsgi.input)', () => {
  const readAll = async (input: BodyInput) => {
    const parts: Buffer[] = [];
    for await (const c of input) parts.push(c as Buffer);
    return Buffer.concat(parts).toString('latin1');
  };

  it('ends at CONTENT_LENGTH and drops later bytes', async () => {
    const input = new BodyInput(5);
    expect(input.feed(Buffer.from('abc'))).toBe(true);
    input.feed(Buffer.from('defgh'));
    expect(input.complete).toBe(true);
    input.feed(Buffer.from('ignored'));
    expect(await readAll(input)).toBe('abcde');
  });

  it('ends at the end of body when the length is unknown (chunked upload)', async () => {
    const input = new BodyInput(-1);
    input.feed(Buffer.from('chunk1'));
    input.feed(Buffer.from('chunk2'));
    input.finish();
    expect(await readAll(input)).toBe('chunk1chunk2');
  });

  it('is empty for a zero length', async () => {
    expect(await readAll(new BodyInput(0))).toBe('');
  });

  it('closes prematurely when the body ends short of CONTENT_LENGTH, or on abort', async () => {
    const short = new BodyInput(10);
    short.feed(Buffer.from('abc'));
    short.finish();
    await expect(readAll(short)).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
    const aborted = new BodyInput(-1);
    aborted.abort();
    await expect(readAll(aborted)).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
    /* Nobody listening: no uncaught error. */
    const unread = new BodyInput(10);
    unread.abort();
    await new Promise((r) => setTimeout(r, 1));
    expect(unread.destroyed).toBe(true);
  });

  it('reports backpressure and asks for more when the reader drains', async () => {
    const input = new BodyInput(-1);
    let wants = 0;
    input.onWant = () => wants++;
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    const accepted: boolean[] = [];
    for (let i = 0; i < 5; i++) accepted.push(input.feed(chunk));
    expect(accepted).toEqual([true, true, true, false, false]);
    expect(input.blocked).toBe(true);
    expect(wants).toBe(0);
    input.read();
    await new Promise((r) => setImmediate(r));
    expect(wants).toBe(1);
    expect(input.blocked).toBe(false);
  });
});

describe('validate(app)', () => {
  const ok: App = (_e, start) => {
    start('200 OK', TEXT);
    return ['fine'];
  };

  it('passes a valid exchange through unchanged', async () => {
    const h = harness();
    await h.run(validate(ok));
    expect(h.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain', 'Content-Length', '4'], 'fine', true],
    ]);
    const g = harness();
    await g.run(
      validate((_e, start) => {
        start('200 OK', TEXT);
        return (async function* () {
          yield 'a';
          yield 'b';
        })();
      }),
    );
    expect(g.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain'], 'a', false],
      ['write', 'b'],
      ['end'],
    ]);
    expect(g.errors).toEqual([]);
    // The reason phrase is optional, as on the wire: a bare code passes through unchanged.
    for (const status of ['200', '200 ']) {
      const b = harness();
      await b.run(
        validate((_e, start) => {
          start(status, TEXT);
          return ['fine'];
        }),
      );
      expect(b.calls).toEqual([
        ['head', status, ['Content-Type', 'text/plain', 'Content-Length', '4'], 'fine', true],
      ]);
      expect(b.errors).toEqual([]);
    }
  });

  it('lists every environ violation in one error', () => {
    const env = {
      REQUEST_METHOD: 'GET',
      SERVER_NAME: '',
      SERVER_PORT: 80,
      SERVER_PROTOCOL: 'HTTP/1.1',
      PATH_INFO: 'no-slash',
      HTTP_CONTENT_LENGTH: '1',
      HTTP_X: 'caf\u0101',
      CONTENT_LENGTH: 'abc',
      'tsgi.version': [2, 0],
      'tsgi.url_scheme': 'ftp',
      'tsgi.input': {},
      'tsgi.errors': {},
      'tsgi.multithread': 'yes',
      'tsgi.multiprocess': false,
      'tsgi.run_once': false,
      'tsgi.protocol': 'test',
    } as unknown as Environ;
    expect(() => validate(ok)(env, (() => () => {}) as StartResponse)).toThrow(ValidationError);
    expect(checkEnviron(env)).toEqual([
      'environ lacks the required key tsgi.signal',
      'environ.SERVER_PORT must be a string, not number 80',
      'environ.HTTP_X is not latin-1 (a character is above U+00FF)',
      'environ must not contain HTTP_CONTENT_LENGTH (use CONTENT_LENGTH)',
      'environ.SERVER_NAME must not be empty',
      'environ.PATH_INFO must be empty or start with "/": "no-slash"',
      'environ.CONTENT_LENGTH must be digits: "abc"',
      'environ["tsgi.version"] must be [1, 0], not [2,0]',
      'environ["tsgi.url_scheme"] must be "http" or "https", not "ftp"',
      'environ["tsgi.input"] must be a Readable',
      'environ["tsgi.errors"] must be a Writable (it has no write())',
      'environ["tsgi.multithread"] must be a boolean, not a string',
    ]);
  });

  it('reports app-side violations as a 500 with the message on tsgi.errors', async () => {
    const cases: [App, string][] = [
      [
        (_e, start) => {
          start('200OK', TEXT);
          return ['x'];
        },
        'tsgi.validate: status must be three digits, optionally a space and a reason ("200 OK", "200"): "200OK"',
      ],
      [
        (_e, start) => {
          start('200 OK', [
            ['Status', '200'],
            ['Connection', 'close'],
            ['X-Bad', 'a\nb'],
            ['Y_', 'v'],
          ]);
          return ['x'];
        },
        'tsgi.validate: 4 violations:\n' +
          '  - the "Status" header is not allowed (the status is an argument)\n' +
          '  - hop-by-hop header "Connection" is not allowed\n' +
          '  - header "X-Bad" has a control character or a character above U+00FF in its value\n' +
          '  - header name "Y_" must not end with "-" or "_"',
      ],
      [
        (_e, start) => {
          start('200 OK', []);
          return ['needs a type'];
        },
        'tsgi.validate: a response with a body needs a Content-Type header',
      ],
      [
        (_e, start) => {
          start('204 No Content', TEXT);
          return ['x'];
        },
        'tsgi.validate: a 204 response must not have a body',
      ],
      [
        (_e, start) => {
          start('200 OK', TEXT);
          return 'oops' as never;
        },
        'tsgi.validate: the app returned a string as its body; return an iterable such as [body]',
      ],
      [
        (_e, start) => {
          start('200 OK', TEXT);
          start('200 OK', TEXT);
          return [];
        },
        'tsgi.validate: startResponse() called a second time without excInfo',
      ],
      [
        () =>
          (function* () {
            yield 'x';
          })(),
        'tsgi.validate: body chunk 0 was produced before startResponse() was called',
      ],
    ];
    for (const [app, message] of cases) {
      const h = harness();
      await h.run(validate(app));
      expect(h.calls).toEqual([ERROR_500]);
      expect(h.errors.join('')).toContain(`ValidationError: ${message}\n`);
    }
  });
});
