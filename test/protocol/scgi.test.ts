import { describe, expect, it } from 'vitest';
import type { Environ } from '../../lib/gateway/types.js';
import { latin1 } from '../support/raw-client.js';
import { nginxScgiParams } from '../support/nginx-params.js';
import { netstring, scgiRequest } from '../support/scgi-client.js';
import {
  readAll,
  refusalTests,
  type Refusal,
  streamServers,
  streamServerSuite,
  TEXT,
} from '../support/stream-suite.js';
import { SCGI } from '../support/stream-kinds.js';

streamServerSuite(SCGI);

describe('SCGI server', () => {
  const { start } = streamServers(SCGI);

  it('answers a GET with exact bytes and ends the connection', async () => {
    const { exchange } = await start((env, start) => {
      start('200 OK', TEXT);
      return [`hello ${env.PATH_INFO}`];
    });
    const request = latin1(
      '87:CONTENT_LENGTH\x000\x00SCGI\x001\x00REQUEST_METHOD\x00GET\x00' +
        'REQUEST_URI\x00/a\x00SERVER_NAME\x00h\x00SERVER_PORT\x0080\x00,',
    );
    const { c, text } = await exchange(request);
    expect(text).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nhello /a',
    );
    expect(c.ended).toBe(true);
    expect(c.error).toBeNull();
  });

  it("builds the exact environ from nginx's scgi_params, bytes 0x80-0xFF included", async () => {
    let seen: Record<string, unknown> = {};
    const { exchange } = await start((env, start) => {
      seen = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('tsgi.')));
      for (const k of ['tsgi.url_scheme', 'tsgi.protocol', 'tsgi.run_once', 'tsgi.multithread'])
        seen[k] = env[k];
      start('200 OK', TEXT);
      return [];
    });
    const high = Array.from({ length: 128 }, (_, i) => String.fromCharCode(0x80 + i)).join('');
    await exchange(
      scgiRequest(
        nginxScgiParams('/app/x%FF?q=1', 'GET', [
          'HTTP_HOST',
          'example.org',
          'HTTP_X_HIGH',
          high,
          'HTTP_CONTENT_LENGTH',
          '0',
          'HTTP_PROXY',
          'http://evil',
        ]),
      ),
    );
    expect(seen).toEqual({
      CONTENT_LENGTH: '0',
      SCGI: '1',
      REQUEST_METHOD: 'GET',
      REQUEST_URI: '/app/x%FF?q=1',
      QUERY_STRING: 'q=1',
      CONTENT_TYPE: '',
      DOCUMENT_URI: '/app/x\xff',
      DOCUMENT_ROOT: '/usr/share/nginx/html',
      SERVER_PROTOCOL: 'HTTP/1.1',
      REQUEST_SCHEME: 'http',
      HTTPS: '',
      REMOTE_ADDR: '127.0.0.1',
      REMOTE_PORT: '50000',
      SERVER_PORT: '8080',
      SERVER_NAME: 'localhost',
      HTTP_HOST: 'example.org',
      HTTP_X_HIGH: high,
      SCRIPT_NAME: '',
      PATH_INFO: '/app/x\xff',
      'tsgi.url_scheme': 'http',
      'tsgi.protocol': 'scgi',
      'tsgi.run_once': false,
      'tsgi.multithread': true,
    });
  });

  it('accepts SCGI=1 as the last header, as lighttpd sends it', async () => {
    const { exchange } = await start(async (env, start) => {
      const body = await readAll(env);
      start('200 OK', TEXT);
      return [`${env.REQUEST_METHOD} ${env.PATH_INFO} ${body.toString('latin1')}`];
    });
    const bytes = Buffer.concat([
      netstring([
        'CONTENT_LENGTH',
        '4',
        'REQUEST_METHOD',
        'PUT',
        'SCRIPT_NAME',
        '/s',
        'PATH_INFO',
        '/p',
        'SERVER_NAME',
        'h',
        'SERVER_PORT',
        '80',
        'SCGI',
        '1',
      ]),
      latin1('data'),
    ]);
    expect((await exchange(bytes)).text).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\nPUT /p data',
    );
  });

  const bad: Refusal[] = [
    [
      'a bad netstring length',
      latin1('12x:CONTENT_LENGTH'),
      'malformed netstring length (SCGI_BAD_NETSTRING)',
    ],
    [
      'a netstring without its comma',
      latin1('24:CONTENT_LENGTH\x000\x00SCGI\x001\x00;'),
      "netstring not terminated by ',' (SCGI_BAD_NETSTRING)",
    ],
    [
      'a first header other than CONTENT_LENGTH',
      netstring(['SCGI', '1', 'CONTENT_LENGTH', '0']),
      'first header is not CONTENT_LENGTH (SCGI_NO_CONTENT_LENGTH)',
    ],
    [
      'no CONTENT_LENGTH at all',
      netstring(['SCGI', '1', 'REQUEST_METHOD', 'GET']),
      'first header is not CONTENT_LENGTH (SCGI_NO_CONTENT_LENGTH)',
    ],
    [
      'a non-numeric CONTENT_LENGTH',
      netstring(['CONTENT_LENGTH', '12a', 'SCGI', '1']),
      'invalid CONTENT_LENGTH (SCGI_BAD_CONTENT_LENGTH)',
    ],
    [
      'an empty CONTENT_LENGTH',
      netstring(['CONTENT_LENGTH', '', 'SCGI', '1']),
      'invalid CONTENT_LENGTH (SCGI_BAD_CONTENT_LENGTH)',
    ],
    [
      'no SCGI=1',
      netstring(['CONTENT_LENGTH', '0', 'REQUEST_METHOD', 'GET']),
      'missing SCGI=1 header (SCGI_NO_SCGI)',
    ],
    [
      'a header block over the limit',
      latin1('131073:CONTENT_LENGTH'),
      'header block of 131073 bytes exceeds limit 131072 (SCGI_HEADERS_TOO_LARGE)',
    ],
    [
      'a header block that is not NUL-terminated pairs',
      latin1('20:CONTENT_LENGTH\x000\x00SCG,'),
      'malformed header block (SCGI_BAD_HEADERS)',
    ],
  ];
  refusalTests(SCGI, bad);

  it('takes the header limit from the options', async () => {
    const { client, logs } = await start(
      (_env, start) => {
        start('200 OK', TEXT);
        return ['ok'];
      },
      { limits: { maxParamsBytes: 100 } },
    );
    const c = await client();
    c.write(scgiRequest(nginxScgiParams('/')));
    await c.serverEnded();
    expect(logs[0]).toMatch(
      /: header block of [0-9]+ bytes exceeds limit 100 \(SCGI_HEADERS_TOO_LARGE\)$/,
    );
  });

  it('a body cut short by the peer closes tsgi.input prematurely', async () => {
    let error: unknown = null;
    const { client } = await start(async (env: Environ, start) => {
      try {
        await readAll(env);
      } catch (err) {
        error = err;
      }
      start('200 OK', TEXT);
      return ['answered'];
    });
    const c = await client();
    c.write(scgiRequest(nginxScgiParams('/', 'POST'), 'x'.repeat(100)).subarray(0, -40));
    c.end();
    await c.serverEnded();
    expect((error as NodeJS.ErrnoException).code).toBe('ERR_STREAM_PREMATURE_CLOSE');
    expect(c.text()).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nanswered',
    );
  });
});
