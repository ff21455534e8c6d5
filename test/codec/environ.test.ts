/**
 * cgiVariables (lib/codec/environ.ts): the CGI variables of a request from decoded params.
 */
import { describe, expect, it } from 'vitest';
import { cgiVariables } from '../../lib/codec/environ.js';

/** The variables as a plain object with keys in insertion order. */
const plain = (v: Record<string, string>): Record<string, string> =>
  Object.fromEntries(Object.entries(v));

describe('cgiVariables', () => {
  it('maps pairs to variables', () => {
    expect(
      plain(cgiVariables(['REQUEST_METHOD', 'GET', 'QUERY_STRING', '', 'HTTP_HOST', 'x'])),
    ).toEqual({
      REQUEST_METHOD: 'GET',
      QUERY_STRING: '',
      HTTP_HOST: 'x',
    });
  });

  it('gives an empty object for no pairs', () => {
    expect(Object.keys(cgiVariables([]))).toEqual([]);
  });

  it('drops HTTP_CONTENT_LENGTH, HTTP_CONTENT_TYPE and HTTP_PROXY (httpoxy), keeps CONTENT_*', () => {
    const v = cgiVariables([
      'HTTP_CONTENT_LENGTH', '5',
      'CONTENT_LENGTH', '5',
      'HTTP_CONTENT_TYPE', 'text/plain',
      'CONTENT_TYPE', 'text/plain',
      'HTTP_PROXY', 'http://evil.example/',
      'HTTP_PROXY', 'again',
      'HTTP_HOST', 'h',
    ]); // prettier-ignore
    expect(plain(v)).toEqual({ CONTENT_LENGTH: '5', CONTENT_TYPE: 'text/plain', HTTP_HOST: 'h' });
    expect('HTTP_PROXY' in v).toBe(false);
  });

  it('drops only those exact names', () => {
    const v = cgiVariables([
      'HTTP_PROXY_X',
      'a',
      'HTTP_CONTENT_LENGTHS',
      'b',
      'http_proxy',
      'c',
      'PROXY',
      'd',
      'HTTPS',
      'on',
    ]);
    expect(plain(v)).toEqual({
      HTTP_PROXY_X: 'a',
      HTTP_CONTENT_LENGTHS: 'b',
      http_proxy: 'c',
      PROXY: 'd',
      HTTPS: 'on',
    });
  });

  it('joins a repeated HTTP_* variable with ", " in arrival order', () => {
    const v = cgiVariables([
      'HTTP_ACCEPT',
      'a',
      'HTTP_X',
      '1',
      'HTTP_ACCEPT',
      'b',
      'HTTP_ACCEPT',
      '',
      'HTTP_ACCEPT',
      'c',
    ]);
    expect(plain(v)).toEqual({ HTTP_ACCEPT: 'a, b, , c', HTTP_X: '1' });
  });

  it('joins a repeated HTTP_COOKIE with "; "', () => {
    const v = cgiVariables(['HTTP_COOKIE', 'a=1', 'HTTP_COOKIE', 'b=2', 'HTTP_COOKIE', 'c=3']);
    expect(plain(v)).toEqual({ HTTP_COOKIE: 'a=1; b=2; c=3' });
  });

  it('lets the last value win for any other repeated variable', () => {
    const v = cgiVariables([
      'SCRIPT_NAME', '/a',
      'PATH_INFO', '/x',
      'SCRIPT_NAME', '/b',
      'HTTP', 'p',
      'HTTP', 'q',
      'http_x', '1',
      'http_x', '2',
    ]); // prettier-ignore
    expect(plain(v)).toEqual({ SCRIPT_NAME: '/b', PATH_INFO: '/x', HTTP: 'q', http_x: '2' });
  });

  it('treats __proto__, constructor and toString as ordinary names', () => {
    const v = cgiVariables([
      '__proto__',
      'p',
      'constructor',
      'c',
      'toString',
      't',
      'hasOwnProperty',
      'h',
      '__proto__',
      'q',
    ]);
    expect(Object.keys(v)).toEqual(['__proto__', 'constructor', 'toString', 'hasOwnProperty']);
    expect(v['__proto__']).toBe('q');
    expect(v['constructor']).toBe('c');
    expect(Object.getOwnPropertyDescriptor(v, '__proto__')?.value).toBe('q');
    // no prototype pollution, and nothing inherited
    expect(({} as Record<string, unknown>)['p']).toBeUndefined();
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'q')).toBe(false);
    expect(cgiVariables([])['toString']).toBeUndefined();
    expect(cgiVariables([])['__proto__']).toBeUndefined();
  });

  it('joins a repeated HTTP___proto__ like any header', () => {
    const v = cgiVariables(['HTTP___PROTO__', 'a', 'HTTP___PROTO__', 'b']);
    expect(plain(v)).toEqual({ HTTP___PROTO__: 'a, b' });
  });

  it('keeps latin-1 strings byte-exact', () => {
    const all = Array.from({ length: 256 }, (_, i) => String.fromCharCode(i)).join('');
    const v = cgiVariables([
      'X\xe9\xff',
      all,
      'HTTP_X',
      '\x80',
      'HTTP_X',
      '\xff',
      'HTTP_COOKIE',
      'caf\xe9',
      'HTTP_COOKIE',
      '\x00',
    ]);
    expect(v['X\xe9\xff']).toBe(all);
    expect(
      Buffer.from(v['X\xe9\xff']!, 'latin1').equals(
        Buffer.from(Array.from({ length: 256 }, (_, i) => i)),
      ),
    ).toBe(true);
    expect(v['HTTP_X']).toBe('\x80, \xff');
    expect(v['HTTP_COOKIE']).toBe('caf\xe9; \x00');
  });

  it('a dropped variable does not disturb joining of others', () => {
    const v = cgiVariables([
      'HTTP_X',
      'a',
      'HTTP_PROXY',
      'p',
      'HTTP_X',
      'b',
      'HTTP_CONTENT_TYPE',
      't',
      'HTTP_X',
      'c',
    ]);
    expect(plain(v)).toEqual({ HTTP_X: 'a, b, c' });
  });
});
