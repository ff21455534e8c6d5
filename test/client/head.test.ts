/** The CGI response head parser of the clients (lib/client/head.ts). */
import { describe, expect, it } from 'vitest';
import { findHeadEnd, HeadError, parseHead } from '../../lib/client/head.js';

const b = (s: string) => Buffer.from(s, 'latin1');

describe('findHeadEnd', () => {
  it.each([
    ['Status: 200 OK\r\nA: b\r\n\r\nbody', [22, 24]],
    ['A: b\n\nbody', [5, 6]],
    ['A: b\r\n\nbody', [6, 7]],
    ['A: b\n\r\nbody', [5, 7]],
    ['\r\nbody', [0, 2]],
    ['\nbody', [0, 1]],
  ])('%j', (text, end) => {
    expect(findHeadEnd(b(text))).toEqual(end);
  });

  it('null until the empty line arrives', () => {
    expect([findHeadEnd(b('A: b\r\n')), findHeadEnd(b('A: b\r\n\r')), findHeadEnd(b(''))]).toEqual([
      null,
      null,
      null,
    ]);
  });
});

describe('parseHead', () => {
  it('Status: gives the status; repeats, order and colons in values are kept', () => {
    expect(
      parseHead(
        'Status: 404 Not Found\r\nSet-Cookie: a=1\r\nX-Url: http://h:8/p\r\nSet-Cookie: b=2\r\n',
      ),
    ).toEqual({
      status: 404,
      statusText: 'Not Found',
      headers: [
        ['Set-Cookie', 'a=1'],
        ['X-Url', 'http://h:8/p'],
        ['Set-Cookie', 'b=2'],
      ],
      localRedirect: false,
      style: 'cgi',
    });
  });

  it('LF-only line ends, no space after the colon, trailing spaces trimmed', () => {
    expect(parseHead('Content-Type:text/plain  \nX-A:  b\n')).toMatchObject({
      status: 200,
      statusText: 'OK',
      headers: [
        ['Content-Type', 'text/plain'],
        ['X-A', 'b'],
      ],
    });
  });

  it('Location: without Status: is a 302, local when the value is a path', () => {
    expect(parseHead('Location: /elsewhere?x=1\r\n')).toMatchObject({
      status: 302,
      statusText: 'Found',
      localRedirect: true,
      headers: [['Location', '/elsewhere?x=1']],
    });
    expect(parseHead('Location: http://example.com/\r\n')).toMatchObject({
      status: 302,
      localRedirect: false,
    });
    expect(parseHead('Status: 301 Moved\r\nLocation: /x\r\n')).toMatchObject({
      status: 301,
      localRedirect: false,
    });
    /* a network-path reference names another host: a redirect for the client */
    expect(parseHead('Location: //evil.example/x\r\n')).toMatchObject({
      status: 302,
      localRedirect: false,
    });
  });

  it('a status without a reason, and Status in any case', () => {
    expect(parseHead('status: 204\r\n')).toMatchObject({ status: 204, statusText: '' });
  });

  it('an HTTP status line (uWSGI over uwsgi)', () => {
    expect(parseHead('HTTP/1.1 201 Created\r\nStatus: 500 kept\r\n')).toEqual({
      status: 201,
      statusText: 'Created',
      headers: [['Status', '500 kept']],
      localRedirect: false,
      style: 'http',
    });
  });

  it('an empty head is 200 with no headers', () => {
    expect(parseHead('')).toMatchObject({ status: 200, headers: [] });
  });

  it.each([
    ['no colon', 'Just text\r\n'],
    ['empty name', ': v\r\n'],
    ['space in the name', 'Bad Name: v\r\n'],
    ['a folded line', 'A: b\r\n  c\r\n'],
    ['a bad Status', 'Status: OK\r\n'],
    ['a bad Status code', 'Status: 2000 OK\r\n'],
    ['a bad HTTP line', 'HTTP/1.1 abc\r\n'],
  ])('refuses %s', (_what, text) => {
    expect(() => parseHead(text)).toThrow(HeadError);
  });
});
