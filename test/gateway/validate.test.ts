/** validate() and checkEnviron() (lib/gateway/validate.ts) around an app. */
import { describe, expect, it } from 'vitest';
import type { App, Environ, StartResponse } from '../../lib/gateway/types.js';
import { checkEnviron, validate, ValidationError } from '../../lib/gateway/validate.js';
import { ERROR_500, harness, TEXT } from '../support/gateway-sink.js';

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
