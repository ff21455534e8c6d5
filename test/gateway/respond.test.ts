/**
 * respond() (lib/gateway/respond.ts): the PEP 3333 response rules as the protocol sees them
 * through a recording sink: the head and Content-Length, streamed and async bodies, the legacy
 * write(), excInfo, the 500 answer to a failing app, close(), aborts and backpressure.
 */
import { describe, expect, it } from 'vitest';
import { NOT_LATIN1_RE } from '../../lib/codec/bytes.js';
import { codecError } from '../../lib/codec/errors.js';
import { respond } from '../../lib/gateway/respond.js';
import type { App } from '../../lib/gateway/types.js';
import { ERROR_500, harness, TEXT } from '../support/gateway-sink.js';

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

  it.each([false, true])(
    'a one-string body for a sink with headText (checking it itself: %s): latin-1 or a 500',
    async (checks) => {
      const run = async (body: string) => {
        const h = harness();
        const texts: string[] = [];
        const sink = Object.assign(h.sink, {
          headTextChecks: checks,
          headText(status: string, headers: string[], text: string, last: boolean) {
            /* as tsgi's sinks do when they check: refuse before sending anything */
            if (checks && NOT_LATIN1_RE.test(text)) throw codecError('ENCODE_NOT_LATIN1');
            texts.push(text);
            h.calls.push(['headText', status, headers, text, last]);
          },
        });
        await respond(
          (_e, start) => {
            start('200 OK', TEXT);
            return [body];
          },
          h.env,
          sink,
        );
        return { calls: h.calls, errors: h.errors.join(''), texts };
      };
      expect((await run('caf\xe9')).calls).toEqual([
        [
          'headText',
          '200 OK',
          ['Content-Type', 'text/plain', 'Content-Length', '4'],
          'caf\xe9',
          true,
        ],
      ]);
      const bad = await run('caf\u0101');
      expect(bad.texts).toEqual([]);
      expect(bad.calls).toEqual([ERROR_500]);
      expect(bad.errors).toContain(
        'TypeError: body chunk is not a latin-1 string (a character is above U+00FF)',
      );
    },
  );

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
