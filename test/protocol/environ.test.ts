/**
 * One HTTP request, as nginx (FastCGI, SCGI, uwsgi) and Apache (CGI) hand it to tsgi with their
 * stock params files plus the lines that mount an app at /app: the app must see the same
 * request whatever the protocol. And the rule for two header names that map to one HTTP_
 * variable, checked over every protocol.
 */
import { connect, type AddressInfo, type Server } from 'node:net';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import type { App, Environ } from '../../lib/gateway/types.js';
import { validate } from '../../lib/gateway/validate.js';
import { runCgi } from '../../lib/protocol/cgi.js';
import { createFastcgiServer } from '../../lib/protocol/fastcgi.js';
import { createHttpServer } from '../../lib/protocol/http.js';
import { createScgiServer } from '../../lib/protocol/scgi.js';
import { createUwsgiServer } from '../../lib/protocol/uwsgi.js';
import { listen } from '../../lib/server/listen.js';
import { FcgiClient } from '../support/fcgi-client.js';
import { RawClient } from '../support/raw-client.js';
import { scgiRequest } from '../support/scgi-client.js';
import { uwsgiRequest } from '../support/uwsgi-client.js';

type Protocol = 'fastcgi' | 'scgi' | 'uwsgi' | 'cgi';

const servers: Server[] = [];
const closers: (() => void)[] = [];
afterEach(async () => {
  for (const c of closers.splice(0)) c();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

async function bind<S extends Server>(server: S): Promise<number> {
  servers.push(server);
  await listen(server, { type: 'tcp', host: '127.0.0.1', port: 0 });
  return (server.address() as AddressInfo).port;
}

/** Runs `app` for one request given as `pairs` and `body` over `protocol`. */
async function run(protocol: Protocol, app: App, pairs: string[], body: string): Promise<void> {
  const checked = validate(app);
  const quiet = { log: () => {} };
  switch (protocol) {
    case 'fastcgi': {
      const s = createFastcgiServer(checked, quiet);
      closers.push(() => s.fastcgi.destroy());
      const c = await FcgiClient.connect(await bind(s));
      closers.push(() => c.close());
      c.request(1, pairs, body);
      await c.reply(1);
      return;
    }
    case 'scgi':
    case 'uwsgi': {
      const s = (protocol === 'scgi' ? createScgiServer : createUwsgiServer)(checked, quiet);
      closers.push(() => s.gateway.destroy());
      const c = await RawClient.connect(await bind(s));
      closers.push(() => c.close());
      c.write(protocol === 'scgi' ? scgiRequest(pairs, body) : uwsgiRequest(pairs, body));
      await c.serverEnded();
      return;
    }
    case 'cgi': {
      const out = new PassThrough();
      out.resume();
      await runCgi(checked, {
        environ: pairs,
        stdin: Readable.from([Buffer.from(body, 'latin1')]),
        stdout: out,
        stderr: new PassThrough(),
      });
      return;
    }
  }
}

/** What the app saw: the CGI keys every protocol shares, HTTP_*, the scheme and the body. */
async function seen(protocol: Protocol, pairs: string[], body: string) {
  let view: Record<string, unknown> = {};
  await run(
    protocol,
    async (env: Environ, start) => {
      const parts: Buffer[] = [];
      for await (const c of env['tsgi.input']) parts.push(c as Buffer);
      view = {};
      for (const key of [
        'REQUEST_METHOD',
        'SCRIPT_NAME',
        'PATH_INFO',
        'QUERY_STRING',
        'CONTENT_TYPE',
        'CONTENT_LENGTH',
        'SERVER_NAME',
        'SERVER_PORT',
        'SERVER_PROTOCOL',
        'REMOTE_ADDR',
      ])
        view[key] = env[key];
      for (const key of Object.keys(env)) if (key.startsWith('HTTP_')) view[key] = env[key];
      view.scheme = env['tsgi.url_scheme'];
      view.protocol = env['tsgi.protocol'];
      view.body = Buffer.concat(parts).toString('latin1');
      start('204 No Content', []);
      return [];
    },
    pairs,
    body,
  );
  return view;
}

/* POST /app/caf%C3%A9/x?q=1&r=%20 HTTP/1.1 with a body of 5 bytes. */
const URI = '/app/caf%C3%A9/x?q=1&r=%20';
const DECODED = '/app/caf\xc3\xa9/x';
const HEADERS = [
  'HTTP_HOST',
  'example.org',
  'HTTP_CONTENT_TYPE',
  'application/x-www-form-urlencoded',
  'HTTP_CONTENT_LENGTH',
  '5',
  'HTTP_X_FORWARDED_FOR',
  '10.0.0.1',
  'HTTP_COOKIE',
  'a=1',
  'HTTP_COOKIE',
  'b=2',
  'HTTP_X_HIGH',
  'caf\xe9',
];
const COMMON = {
  REQUEST_METHOD: 'POST',
  SCRIPT_NAME: '/app',
  PATH_INFO: '/caf\xc3\xa9/x',
  QUERY_STRING: 'q=1&r=%20',
  CONTENT_TYPE: 'application/x-www-form-urlencoded',
  CONTENT_LENGTH: '5',
  SERVER_NAME: 'example.org',
  SERVER_PORT: '443',
  SERVER_PROTOCOL: 'HTTP/1.1',
  REMOTE_ADDR: '192.0.2.7',
  HTTP_HOST: 'example.org',
  HTTP_X_FORWARDED_FOR: '10.0.0.1',
  HTTP_COOKIE: 'a=1; b=2',
  HTTP_X_HIGH: 'caf\xe9',
  scheme: 'https',
  body: 'hello',
};
const SERVER = ['REMOTE_ADDR', '192.0.2.7', 'REMOTE_PORT', '50000', 'SERVER_PORT', '443'];

/** nginx: include fastcgi_params; fastcgi_param SCRIPT_NAME /app; (then the headers). */
// prettier-ignore
const NGINX_FASTCGI = [
  'QUERY_STRING', 'q=1&r=%20', 'REQUEST_METHOD', 'POST',
  'CONTENT_TYPE', 'application/x-www-form-urlencoded', 'CONTENT_LENGTH', '5',
  'SCRIPT_NAME', DECODED, 'REQUEST_URI', URI, 'DOCUMENT_URI', DECODED,
  'DOCUMENT_ROOT', '/srv/www', 'SERVER_PROTOCOL', 'HTTP/1.1', 'REQUEST_SCHEME', 'https',
  'HTTPS', 'on', 'GATEWAY_INTERFACE', 'CGI/1.1', 'SERVER_SOFTWARE', 'nginx/1.22.1',
  ...SERVER, 'SERVER_ADDR', '192.0.2.1', 'SERVER_NAME', 'example.org', 'REDIRECT_STATUS', '200',
  'SCRIPT_NAME', '/app',
  ...HEADERS,
];
/** nginx: include scgi_params; scgi_param SCRIPT_NAME /app; (CONTENT_LENGTH goes first). */
// prettier-ignore
const NGINX_SCGI = [
  'REQUEST_METHOD', 'POST', 'REQUEST_URI', URI, 'QUERY_STRING', 'q=1&r=%20',
  'CONTENT_TYPE', 'application/x-www-form-urlencoded', 'DOCUMENT_URI', DECODED,
  'DOCUMENT_ROOT', '/srv/www', 'SERVER_PROTOCOL', 'HTTP/1.1', 'REQUEST_SCHEME', 'https',
  'HTTPS', 'on', ...SERVER, 'SERVER_NAME', 'example.org',
  'SCRIPT_NAME', '/app',
  ...HEADERS,
];
/** nginx: location ~ ^/app(/.*)$ { include uwsgi_params; uwsgi_param SCRIPT_NAME /app; uwsgi_param PATH_INFO $1; } */
// prettier-ignore
const NGINX_UWSGI = [
  'QUERY_STRING', 'q=1&r=%20', 'REQUEST_METHOD', 'POST',
  'CONTENT_TYPE', 'application/x-www-form-urlencoded', 'CONTENT_LENGTH', '5',
  'REQUEST_URI', URI, 'PATH_INFO', DECODED, 'DOCUMENT_ROOT', '/srv/www',
  'SERVER_PROTOCOL', 'HTTP/1.1', 'REQUEST_SCHEME', 'https', 'HTTPS', 'on',
  ...SERVER, 'SERVER_NAME', 'example.org',
  'SCRIPT_NAME', '/app', 'PATH_INFO', '/caf\xc3\xa9/x',
  ...HEADERS,
];
/** Apache: ScriptAlias /app /usr/lib/cgi-bin/app.cgi (mod_cgi's environment). */
// prettier-ignore
const APACHE_CGI = [
  ...HEADERS.filter((_, i) => !HEADERS[i - (i % 2)]!.startsWith('HTTP_CONTENT_')),
  'PATH', '/usr/bin:/bin', 'SERVER_SIGNATURE', '', 'SERVER_SOFTWARE', 'Apache/2.4.71',
  'SERVER_NAME', 'example.org', 'SERVER_ADDR', '192.0.2.1', ...SERVER,
  'HTTPS', 'on', 'DOCUMENT_ROOT', '/srv/www', 'REQUEST_SCHEME', 'https',
  'SCRIPT_FILENAME', '/usr/lib/cgi-bin/app.cgi', 'GATEWAY_INTERFACE', 'CGI/1.1',
  'SERVER_PROTOCOL', 'HTTP/1.1', 'REQUEST_METHOD', 'POST', 'QUERY_STRING', 'q=1&r=%20',
  'REQUEST_URI', URI, 'SCRIPT_NAME', '/app', 'PATH_INFO', '/caf\xc3\xa9/x',
  'PATH_TRANSLATED', '/srv/www/caf\xc3\xa9/x', 'CONTENT_LENGTH', '5',
  'CONTENT_TYPE', 'application/x-www-form-urlencoded',
];

describe('the same request gives the same environ over every protocol', () => {
  const cases: [Protocol, string[]][] = [
    ['fastcgi', NGINX_FASTCGI],
    ['scgi', NGINX_SCGI],
    ['uwsgi', NGINX_UWSGI],
    ['cgi', APACHE_CGI],
  ];
  for (const [protocol, pairs] of cases) {
    it(`${protocol}: mounted at /app`, async () => {
      expect(await seen(protocol, pairs, 'hello')).toEqual({ ...COMMON, protocol });
    });
  }

  it('at the root, with the stock scgi_params and uwsgi_params (no SCRIPT_NAME sent)', async () => {
    const root = { ...COMMON, SCRIPT_NAME: '', PATH_INFO: DECODED };
    const noMount = (pairs: string[], drop: number) =>
      pairs.slice(0, pairs.length - HEADERS.length - drop).concat(HEADERS);
    expect(await seen('scgi', noMount(NGINX_SCGI, 2), 'hello')).toEqual({
      ...root,
      protocol: 'scgi',
    });
    expect(await seen('uwsgi', noMount(NGINX_UWSGI, 4), 'hello')).toEqual({
      ...root,
      protocol: 'uwsgi',
    });
    const fcgi = noMount(NGINX_FASTCGI, 2).concat('SCRIPT_NAME', '');
    expect(await seen('fastcgi', fcgi, 'hello')).toEqual({ ...root, protocol: 'fastcgi' });
  });
});

describe('two header names mapped to one HTTP_ variable (X-Foo-Bar and X_Foo_Bar)', () => {
  /* lighttpd maps every non-alphanumeric header character to "_": both arrive as HTTP_X_FOO_BAR */
  // prettier-ignore
  const pairs = [
    'REQUEST_METHOD', 'GET', 'REQUEST_URI', '/', 'SERVER_NAME', 'h', 'SERVER_PORT', '80',
    'HTTP_X_FOO_BAR', 'set by the proxy', 'HTTP_X_FOO_BAR', 'sent by the client',
  ];
  for (const protocol of ['fastcgi', 'scgi', 'uwsgi', 'cgi'] as const) {
    it(`${protocol}: both values are kept, joined in arrival order`, async () => {
      const v = await seen(protocol, pairs, '');
      expect(v.HTTP_X_FOO_BAR).toBe('set by the proxy, sent by the client');
    });
  }

  it('http: a header name with "_" is dropped, as nginx, Apache and gunicorn do', async () => {
    let value: unknown = null;
    const s = createHttpServer(
      validate((env, start) => {
        value = env.HTTP_X_FOO_BAR;
        start('204 No Content', []);
        return [];
      }),
    );
    const port = await bind(s);
    closers.push(() => s.closeAllConnections());
    const reply = await new Promise<string>((resolve) => {
      const sock = connect(port, '127.0.0.1', () =>
        sock.write(
          'GET / HTTP/1.1\r\nHost: h\r\nX-Foo-Bar: set by the proxy\r\n' +
            'X_Foo_Bar: sent by the client\r\nConnection: close\r\n\r\n',
        ),
      );
      let out = '';
      sock.on('data', (d: Buffer) => (out += d.toString('latin1')));
      sock.on('close', () => resolve(out));
    });
    expect(reply.startsWith('HTTP/1.1 204 No Content\r\n')).toBe(true);
    expect(value).toBe('set by the proxy');
  });
});
