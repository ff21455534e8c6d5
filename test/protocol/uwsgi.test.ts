import { describe, expect, it } from 'vitest';
import type { App } from '../../lib/gateway/types.js';
import { createUwsgiServer } from '../../lib/protocol/uwsgi.js';
import { latin1 } from '../support/raw-client.js';
import {
  readAll,
  refusalTests,
  type Refusal,
  streamServers,
  streamServerSuite,
  TEXT,
  tick,
} from '../support/stream-suite.js';
import { UWSGI } from '../support/stream-kinds.js';
import { nginxUwsgiParams } from '../support/nginx-params.js';
import { parseHttp, uwsgiHead, uwsgiRequest } from '../support/uwsgi-client.js';

streamServerSuite(UWSGI);

const echo: App = async (env, start) => {
  const body = await readAll(env);
  start('200 OK', TEXT);
  return [`${env.REQUEST_METHOD} ${env.PATH_INFO} [${body.toString('latin1')}]`];
};
const reply = (text: string) =>
  `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${text.length}\r\n\r\n${text}`;

describe('uwsgi server', () => {
  const { start } = streamServers(UWSGI);
  const keepAlive = (app: App) =>
    start(app, {}, (a, o) => createUwsgiServer(a, { ...o, keepAlive: true }));

  it('answers a GET with a raw HTTP head, exact bytes, and ends the connection', async () => {
    const { exchange } = await start((env, start) => {
      start('200 OK', TEXT);
      return [`hello ${env.PATH_INFO}`];
    });
    /* modifier1 0, size 52 (0x34 0x00 little-endian), modifier2 0, then the vars */
    const request = latin1(
      '\x00\x34\x00\x00' +
        '\x0e\x00REQUEST_METHOD\x03\x00GET' +
        '\x09\x00PATH_INFO\x02\x00/a' +
        '\x0b\x00SERVER_NAME\x01\x00h',
    );
    expect(request.length).toBe(4 + 0x34);
    const { c, text } = await exchange(request);
    expect(text).toBe(reply('hello /a'));
    expect(c.ended).toBe(true);
    expect(c.error).toBeNull();
  });

  it("builds the exact environ from nginx's uwsgi_params, bytes 0x80-0xFF included", async () => {
    let seen: Record<string, unknown> = {};
    const { exchange } = await start(async (env, start) => {
      seen = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('tsgi.')));
      seen.body = (await readAll(env)).toString('latin1');
      for (const k of ['tsgi.url_scheme', 'tsgi.protocol']) seen[k] = env[k];
      start('200 OK', TEXT);
      return [];
    });
    const high = Array.from({ length: 128 }, (_, i) => String.fromCharCode(0x80 + i)).join('');
    await exchange(
      uwsgiRequest(
        nginxUwsgiParams('/app/x%FF?q=1', 'POST', [
          'HTTP_HOST',
          'example.org',
          'HTTP_X_HIGH',
          high,
          'HTTP_CONTENT_TYPE',
          'text/plain',
        ]),
        'body\xff',
      ),
    );
    expect(seen).toEqual({
      QUERY_STRING: 'q=1',
      REQUEST_METHOD: 'POST',
      CONTENT_TYPE: '',
      CONTENT_LENGTH: '5',
      REQUEST_URI: '/app/x%FF?q=1',
      PATH_INFO: '/app/x\xff',
      SCRIPT_NAME: '',
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
      body: 'body\xff',
      'tsgi.url_scheme': 'http',
      'tsgi.protocol': 'uwsgi',
    });
  });

  it('reads no body when CONTENT_LENGTH is absent (Apache, a GET)', async () => {
    const { exchange } = await start(echo);
    const params = nginxUwsgiParams('/g').filter((_, i, a) => a[i - (i % 2)] !== 'CONTENT_LENGTH');
    expect((await exchange(uwsgiHead(params))).text).toBe(reply('GET /g []'));
  });

  it('accepts a vars block of 65535 bytes', async () => {
    const { exchange } = await start((env, start) => {
      start('200 OK', TEXT);
      return [String((env.HTTP_X_BIG as string).length)];
    });
    const base = uwsgiHead(nginxUwsgiParams('/')).length - 4;
    const big = 'b'.repeat(65535 - base - 2 - 10 - 2);
    const bytes = uwsgiHead([...nginxUwsgiParams('/'), 'HTTP_X_BIG', big]);
    expect(bytes.readUInt16LE(1)).toBe(65535);
    expect((await exchange(bytes)).text).toBe(reply(String(big.length)));
  });

  const bad: Refusal[] = [
    [
      'modifier1 5 (another language plugin)',
      uwsgiHead(nginxUwsgiParams('/'), 5),
      'unsupported modifier1 5 (UWSGI_BAD_MODIFIER)',
    ],
    [
      'modifier1 255',
      uwsgiHead(nginxUwsgiParams('/'), 255),
      'unsupported modifier1 255 (UWSGI_BAD_MODIFIER)',
    ],
    [
      'a vars block that does not decode',
      latin1('\x00\x05\x00\x00\x09\x00PAT'),
      'malformed vars block (UWSGI_BAD_VARS)',
    ],
    [
      'a non-numeric CONTENT_LENGTH',
      uwsgiHead(['REQUEST_METHOD', 'POST', 'CONTENT_LENGTH', '1e3']),
      'invalid CONTENT_LENGTH (UWSGI_BAD_CONTENT_LENGTH)',
    ],
  ];
  refusalTests(UWSGI, bad);

  it('refuses a vars block over the limit', async () => {
    const { client, logs } = await start(echo, { limits: { maxParamsBytes: 100 } });
    const c = await client();
    const bytes = uwsgiHead(nginxUwsgiParams('/'));
    c.write(bytes);
    await c.serverEnded();
    expect(logs).toEqual([
      `closing uwsgi connection from 127.0.0.1:${c.socket.localPort}: vars block of ` +
        `${bytes.length - 4} bytes exceeds limit 100 (UWSGI_HEADERS_TOO_LARGE)`,
    ]);
  });

  it('by default ends the connection after one response, as uWSGI does', async () => {
    let calls = 0;
    const { exchange } = await start(async (env, start) => {
      calls++;
      return echo(env, start);
    });
    const two = Buffer.concat([
      uwsgiRequest(nginxUwsgiParams('/one', 'POST'), 'a'),
      uwsgiRequest(nginxUwsgiParams('/two', 'POST'), 'b'),
    ]);
    const { c, text } = await exchange(two);
    expect(text).toBe(reply('POST /one [a]'));
    expect(c.ended).toBe(true);
    await tick(20);
    expect(calls).toBe(1);
  });

  describe('keepAlive', () => {
    it('serves requests in sequence on one connection while the peer keeps it open', async () => {
      const { client } = await keepAlive(echo);
      const c = await client();
      let expected = '';
      for (let i = 0; i < 4; i++) {
        const body = i % 2 === 0 ? '' : `body${i}`;
        c.write(uwsgiRequest(nginxUwsgiParams(`/r${i}`, body ? 'POST' : 'GET'), body));
        expected += reply(`${body ? 'POST' : 'GET'} /r${i} [${body}]`);
        await c.until(() => (c.text().length >= expected.length ? true : undefined));
        expect(c.text()).toBe(expected);
      }
      await tick(20);
      expect(c.ended).toBe(false);
      c.end();
      await c.serverEnded();
      expect(c.text()).toBe(expected);
    });

    it('answers pipelined requests in order, the later waiting for the earlier', async () => {
      const order: string[] = [];
      const { client } = await keepAlive(async (env, start) => {
        const body = await readAll(env);
        order.push(`start ${env.PATH_INFO}`);
        if (env.PATH_INFO === '/slow') await tick(100);
        order.push(`end ${env.PATH_INFO}`);
        start('200 OK', TEXT);
        return [`${env.PATH_INFO} [${body.toString('latin1')}]`];
      });
      const c = await client();
      c.write(
        Buffer.concat([
          uwsgiRequest(nginxUwsgiParams('/slow', 'POST'), 'first'),
          uwsgiRequest(nginxUwsgiParams('/fast', 'POST'), 'second'),
          uwsgiRequest(nginxUwsgiParams('/last')),
        ]),
      );
      c.end();
      await c.serverEnded();
      expect(c.text()).toBe(reply('/slow [first]') + reply('/fast [second]') + reply('/last []'));
      expect(order).toEqual([
        'start /slow',
        'end /slow',
        'start /fast',
        'end /fast',
        'start /last',
        'end /last',
      ]);
    });

    it("keeps a pipelined request's body while other connections are read", async () => {
      let other: Promise<unknown> | null = null;
      const { client } = await keepAlive(async (env, start) => {
        const body = await readAll(env);
        if (env.PATH_INFO === '/slow') {
          /* another connection is read while /fast waits in the queue */
          const d = await client();
          d.write(uwsgiRequest(nginxUwsgiParams(`/${'o'.repeat(500)}`, 'POST'), 'O'.repeat(800)));
          d.end();
          other = d.serverEnded().then(() => d.text());
          await other;
        }
        start('200 OK', TEXT);
        return [`${env.PATH_INFO.slice(0, 5)} [${body.toString('latin1')}]`];
      });
      const c = await client();
      c.write(
        Buffer.concat([
          uwsgiRequest(nginxUwsgiParams('/slow', 'POST'), 'first'),
          uwsgiRequest(nginxUwsgiParams('/fast', 'POST'), 'second'),
        ]),
      );
      c.end();
      await c.serverEnded();
      expect(c.text()).toBe(reply('/slow [first]') + reply('/fast [second]'));
      expect(await other).toBe(reply(`/oooo [${'O'.repeat(800)}]`));
    });

    it('keeps the connection after 204, 304 and HEAD responses', async () => {
      const { client } = await keepAlive((env, start) => {
        const status =
          env.PATH_INFO === '/204'
            ? '204 No Content'
            : env.PATH_INFO === '/304'
              ? '304 Not Modified'
              : '200 OK';
        start(status, env.REQUEST_METHOD === 'HEAD' ? [...TEXT, ['Content-Length', '5']] : []);
        return [];
      });
      const c = await client();
      c.write(uwsgiRequest(nginxUwsgiParams('/204')));
      c.write(uwsgiRequest(nginxUwsgiParams('/304')));
      c.write(uwsgiRequest(nginxUwsgiParams('/head', 'HEAD')));
      const expected =
        'HTTP/1.1 204 No Content\r\n\r\n' +
        'HTTP/1.1 304 Not Modified\r\n\r\n' +
        'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n';
      await c.until(() => (c.text().length >= expected.length ? true : undefined));
      await tick(20);
      expect(c.text()).toBe(expected);
      expect(c.ended).toBe(false);
    });

    it('ends the connection after a response of unknown length (its end is the close)', async () => {
      const { client } = await keepAlive((_env, start) => {
        start('200 OK', TEXT);
        return (function* () {
          yield 'streamed';
        })();
      });
      const c = await client();
      c.write(
        Buffer.concat([uwsgiRequest(nginxUwsgiParams('/a')), uwsgiRequest(nginxUwsgiParams('/b'))]),
      );
      await c.serverEnded();
      expect(parseHttp(c.bytes())).toEqual({
        status: 'HTTP/1.1 200 OK',
        head: ['Content-Type: text/plain'],
        body: 'streamed',
      });
    });

    it('answers the requests before a malformed one, then closes with a logged reason', async () => {
      const { client, logs } = await keepAlive(echo);
      const c = await client();
      const port = c.socket.localPort;
      c.write(
        Buffer.concat([
          uwsgiRequest(nginxUwsgiParams('/ok', 'POST'), 'x'),
          uwsgiHead(nginxUwsgiParams('/refused'), 7),
        ]),
      );
      await c.serverEnded();
      expect(c.text()).toBe(reply('POST /ok [x]'));
      expect(logs).toEqual([
        `closing uwsgi connection from 127.0.0.1:${port}: unsupported modifier1 7 (UWSGI_BAD_MODIFIER)`,
      ]);
    });

    it('reads past the body of a request the app did not read before the next one', async () => {
      const { client } = await keepAlive((env, start) => {
        start('200 OK', TEXT);
        return [`${env.PATH_INFO}`];
      });
      const c = await client();
      c.write(uwsgiRequest(nginxUwsgiParams('/ignored', 'POST'), Buffer.alloc(2_000_000, 0x61)));
      c.write(uwsgiRequest(nginxUwsgiParams('/next')));
      const expected = reply('/ignored') + reply('/next');
      await c.until(() => (c.text().length >= expected.length ? true : undefined));
      expect(c.text()).toBe(expected);
    });
  });
});
