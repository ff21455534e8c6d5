/**
 * makeEnviron() (lib/gateway/environ.ts): the CGI variables a front server sends made
 * consistent (SCRIPT_NAME and PATH_INFO, the URL scheme, what a bare client leaves out) and the
 * exact environ of nginx-style params.
 */
import { describe, expect, it } from 'vitest';
import { cgiVariables } from '../../lib/codec/environ.js';
import { makeEnviron, requestPath } from '../../lib/gateway/environ.js';
import { errorStream } from '../../lib/gateway/errors.js';
import { BodyInput } from '../../lib/gateway/input.js';
import { checkEnviron } from '../../lib/gateway/validate.js';
import { harness } from '../support/gateway-sink.js';

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

describe('requestPath()', () => {
  it('is the path of an origin-form or absolute-form target, without query or fragment', () => {
    const cases: [string, string][] = [
      ['/', '/'],
      ['/a/b', '/a/b'],
      ['/a?b=1', '/a'],
      ['/a#f', '/a'],
      ['/a?b#c', '/a'],
      ['/a#f?x', '/a'],
      ['/?u=http://h/x', '/'],
      ['/p%20q?', '/p%20q'],
      ['http://h/p?q', '/p'],
      ['http://h?q=/x', '/'],
      ['http://h', '/'],
      ['https://h:8/a/b#f', '/a/b'],
      ['*', '*'],
      ['', ''],
      ['h/p?q', 'h/p'],
    ];
    expect(cases.map(([uri]) => [uri, requestPath(uri)])).toEqual(cases);
  });
});
