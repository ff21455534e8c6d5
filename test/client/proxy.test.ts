/**
 * The php-fpm proxy (phpFpm) in Express, Fastify, Hono and as a TSGI app behind tsgi's HTTP
 * server, against a real php-fpm: the SCRIPT_FILENAME / PATH_INFO split, the cgi.fix_pathinfo
 * exploit refused, index files, HTTP_PROXY stripped, repeated Set-Cookie, binary bodies,
 * chunked uploads; and the error mapping (502, 504, 503) and the generic forward; a client
 * that goes away before the head stops the backend request (ABORT_REQUEST).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request as httpRequest, type Server } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Socket } from 'node:net';
import { setTimeout as tick } from 'node:timers/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import express from 'express';
import Fastify from 'fastify';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  createFastcgiServer,
  createHttpServer,
  createScgiServer,
  createUwsgiServer,
  FastcgiClient,
  forward,
  phpFpm,
  type App,
  type Proxy,
} from '../../lib/index.js';
import { codec, FCGI } from '../../lib/codec/index.js';
import { listen } from '../../lib/server/listen.js';
import { findPhpFpm, startPhpFpm } from '../support/backends.js';
import { freePort, isCI, missingPeerMessage } from '../support/peers.js';
import type { Child } from '../support/spawn.js';

const ROOT = join(import.meta.dirname, 'php');
const bin = findPhpFpm();
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Reply {
  status: number;
  raw: string[];
  body: Buffer;
}

/** One HTTP request with a raw target; `chunks` are sent chunked (no Content-Length). */
function get(
  port: number,
  path: string,
  o: { method?: string; headers?: Record<string, string>; chunks?: Buffer[] } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      {
        host: '127.0.0.1',
        port,
        path,
        method: o.method ?? 'GET',
        headers: o.headers,
        agent: false,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolve({ status: res.statusCode!, raw: res.rawHeaders, body: Buffer.concat(chunks) }),
        );
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    for (const c of o.chunks ?? []) req.write(c);
    req.end();
  });
}

const values = (r: Reply, name: string): string[] => {
  const out: string[] = [];
  for (let i = 0; i < r.raw.length; i += 2)
    if (r.raw[i]!.toLowerCase() === name) out.push(r.raw[i + 1]!);
  return out;
};

describe.runIf(bin === null && isCI)('php-fpm', () => {
  it('is installed', () => {
    throw new Error(missingPeerMessage('php-fpm', 'php-fpm'));
  });
});

type Close = () => Promise<void>;

/** Each interface: start a server with `php` mounted at /, resolve with its port and closer. */
const FRONTS: Record<string, (php: Proxy) => Promise<[number, Close]>> = {
  express: async (php) => {
    const app = express();
    app.use(php.node);
    const server = app.listen(0, '127.0.0.1');
    await new Promise((r) => server.once('listening', r));
    return [(server.address() as AddressInfo).port, () => closeServer(server)];
  },
  fastify: async (php) => {
    const f = Fastify();
    /* the body stays unread for php-fpm */
    f.removeAllContentTypeParsers();
    f.addContentTypeParser('*', (_req, _payload, done) => done(null));
    f.all('/*', (req, reply) => {
      reply.hijack();
      php.node(req.raw, reply.raw);
    });
    await f.listen({ port: 0, host: '127.0.0.1' });
    return [(f.server.address() as AddressInfo).port, () => f.close()];
  },
  hono: async (php) => {
    const app = new Hono();
    app.all('*', (c) => php.fetch(c.req.raw));
    const server = serve({ fetch: app.fetch, port: 0, hostname: '127.0.0.1' }) as Server;
    await new Promise((r) => server.once('listening', r));
    return [(server.address() as AddressInfo).port, () => closeServer(server)];
  },
  'tsgi app': async (php) => {
    const server = createHttpServer(php.app);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return [(server.address() as AddressInfo).port, () => closeServer(server)];
  },
};

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

describe.runIf(bin !== null)('phpFpm proxy against php-fpm', () => {
  let dir: string;
  let fpm: Child;
  let address: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsgi-client-proxy-'));
    address = `127.0.0.1:${await freePort()}`;
    fpm = await startPhpFpm(bin!, dir, [{ name: 'proxy', listen: address, children: 4 }]);
  }, 30000);

  afterAll(async () => {
    await fpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const [name, front] of Object.entries(FRONTS)) {
    describe(`in ${name}`, () => {
      let php: Proxy;
      let port: number;
      let close: Close;
      const errors: string[] = [];
      beforeAll(async () => {
        php = phpFpm({
          address,
          root: ROOT,
          maxConcurrent: 4,
          onError: (e) => errors.push(e.message),
        });
        [port, close] = await front(php);
      });
      afterAll(async () => {
        await close?.();
        await php?.close();
      });

      it('splits SCRIPT_FILENAME / PATH_INFO, strips HTTP_PROXY, keeps the query', async () => {
        const r = await get(port, '/info.php/extra/p%41th?q=1&r=%20', {
          headers: { Proxy: 'http://evil.example', 'X-Test': 'yes' },
        });
        expect(r.status).toBe(200);
        expect(JSON.parse(r.body.toString())).toMatchObject({
          SCRIPT_FILENAME: join(ROOT, 'info.php'),
          SCRIPT_NAME: '/info.php',
          PATH_INFO: '/extra/pAth',
          PATH_TRANSLATED: join(ROOT, 'extra/pAth'),
          DOCUMENT_ROOT: ROOT,
          DOCUMENT_URI: '/info.php/extra/pAth',
          REQUEST_URI: '/info.php/extra/p%41th?q=1&r=%20',
          QUERY_STRING: 'q=1&r=%20',
          REQUEST_METHOD: 'GET',
          HTTP_PROXY: null,
          HTTP_X_TEST: 'yes',
        });
      });

      it('the cgi.fix_pathinfo exploit: /uploads/avatar.jpg/x.php never reaches php-fpm', async () => {
        const r = await get(port, '/uploads/avatar.jpg/x.php');
        expect(r.status).toBe(404);
        expect(r.body.toString()).not.toContain('EXPLOITED');
      });

      it('a file that is not a script, a path outside the root, a missing script: 404', async () => {
        for (const path of [
          '/readme.txt',
          '/%2e%2e/php-fpm.test.ts',
          '/nothing.php',
          '/sub',
          '/readme.txt/x.php',
          `/${'a'.repeat(300)}.php`,
        ]) {
          expect([path, (await get(port, path)).status]).toEqual([path, 404]);
        }
      });

      it('a directory path runs its index file', async () => {
        const r = await get(port, '/sub/');
        expect([r.status, r.body.toString()]).toEqual([200, 'index of sub: /sub/index.php\n']);
      });

      it.runIf(name === 'express' || name === 'fastify')(
        'node handler: a small answer without Content-Length goes out with its length, not chunked',
        async () => {
          const r = await get(port, '/hello.php');
          expect([
            r.status,
            values(r, 'content-length'),
            values(r, 'transfer-encoding'),
            r.body.toString(),
          ]).toEqual([200, ['14'], [], 'Hello, world!\n']);
          const head = await get(port, '/hello.php', { method: 'HEAD' });
          expect([head.status, values(head, 'content-length'), head.body.length]).toEqual([
            200,
            [],
            0,
          ]);
        },
      );

      it('three Set-Cookie headers arrive as three', async () => {
        const r = await get(port, '/cookies.php');
        expect(values(r, 'set-cookie')).toEqual(['a=1', 'b=2', 'c=3']);
        expect(values(r, 'x-colon')).toEqual(['a:b: c']);
      });

      it('binary output byte for byte', async () => {
        const r = await get(port, '/binary.php');
        const all = Buffer.alloc(256);
        for (let i = 0; i < 256; i++) all[i] = i;
        expect(r.status).toBe(200);
        expect(r.body.equals(Buffer.concat(Array(1024).fill(all)))).toBe(true);
      });

      it('a chunked POST reaches PHP whole, with its CONTENT_LENGTH', async () => {
        const chunks = Array.from({ length: 30 }, (_, i) => Buffer.alloc(50000, i));
        const all = Buffer.concat(chunks);
        const r = await get(port, '/upload.php', {
          method: 'POST',
          headers: { 'Content-Type': 'application/octet-stream' },
          chunks,
        });
        expect(r.body.toString()).toBe(`${all.length} ${sha(all)} ${all.length}\n`);
      });

      it('a local redirect (Location: /path, no Status) runs the request again as a GET for that path', async () => {
        const r = await get(port, '/redirect.php?x=1', {
          method: 'POST',
          headers: { 'Content-Type': 'text/plain', 'X-Test': 'kept' },
          chunks: [Buffer.from('a body for the first script only')],
        });
        expect([r.status, values(r, 'location'), values(r, 'set-cookie')]).toEqual([200, [], []]);
        const env = JSON.parse(r.body.toString());
        delete env.pid;
        expect(env).toEqual({
          SCRIPT_FILENAME: join(ROOT, 'info.php'),
          SCRIPT_NAME: '/info.php',
          PATH_INFO: '/after',
          PATH_TRANSLATED: join(ROOT, 'after'),
          DOCUMENT_ROOT: ROOT,
          DOCUMENT_URI: '/info.php/after',
          REQUEST_URI: '/info.php/after?from=redirect',
          QUERY_STRING: 'from=redirect',
          REQUEST_METHOD: 'GET',
          HTTP_PROXY: null,
          HTTP_X_TEST: 'kept',
          CONTENT_TYPE: null,
          CONTENT_LENGTH: null,
        });
      });

      it('a redirect for the client (a Location with a Status, an absolute URL) is passed through', async () => {
        const withStatus = await get(port, '/redirect.php?client=1');
        expect([
          withStatus.status,
          values(withStatus, 'location'),
          withStatus.body.toString(),
        ]).toEqual([302, ['/info.php/after?from=redirect'], 'not sent\n']);
        const absolute = await get(
          port,
          `/redirect.php?to=${encodeURIComponent('http://example.com/x')}`,
        );
        expect([absolute.status, values(absolute, 'location'), absolute.body.toString()]).toEqual([
          302,
          ['http://example.com/x'],
          'not sent\n',
        ]);
        const network = await get(
          port,
          `/redirect.php?to=${encodeURIComponent('//example.com/x')}`,
        );
        expect([network.status, values(network, 'location')]).toEqual([302, ['//example.com/x']]);
      });

      it('a local redirect loop ends with 500 after 10 redirects', async () => {
        errors.length = 0;
        const r = await get(port, '/loop.php');
        expect([r.status, r.body.toString()]).toEqual([500, '500 Internal Server Error\n']);
        expect(errors).toEqual([
          'more than 10 local redirects (a loop?): the last to /loop.php?n=11',
        ]);
      });

      it('a 5 MiB POST with Content-Length reaches PHP whole', async () => {
        const body = Buffer.alloc(5 * 1024 * 1024, 0xa5);
        const r = await get(port, '/upload.php', {
          method: 'POST',
          headers: {
            'Content-Type': 'application/octet-stream',
            'Content-Length': String(body.length),
          },
          chunks: [body],
        });
        expect(r.body.toString()).toBe(`${body.length} ${sha(body)} ${body.length}\n`);
      });
    });
  }

  describe('errors', () => {
    const running: (() => Promise<void>)[] = [];
    afterAll(async () => {
      for (const f of running) await f();
    });
    async function front(php: Proxy): Promise<number> {
      const [port, close] = await FRONTS['tsgi app']!(php);
      running.push(async () => {
        await close();
        await php.close();
      });
      return port;
    }

    it('a refused connection is 502', async () => {
      const port = await front(
        phpFpm({ address: `127.0.0.1:${await freePort()}`, root: ROOT, onError: () => {} }),
      );
      const r = await get(port, '/hello.php');
      expect([r.status, r.body.toString()]).toEqual([502, '502 Bad Gateway\n']);
    });

    it('a script past the read timeout is 504', async () => {
      const port = await front(
        phpFpm({ address, root: ROOT, readTimeout: 300, onError: () => {} }),
      );
      const r = await get(port, '/sleep.php?s=2');
      expect([r.status, r.body.toString()]).toEqual([504, '504 Gateway Timeout\n']);
    });

    it('a full queue is 503', async () => {
      const php = phpFpm({ address, root: ROOT, maxConcurrent: 1, maxQueue: 0, onError: () => {} });
      const port = await front(php);
      const first = get(port, '/sleep.php?s=1');
      await new Promise((r) => setTimeout(r, 100));
      const r = await get(port, '/hello.php');
      expect([r.status, r.body.toString()]).toEqual([503, '503 Service Unavailable\n']);
      expect((await first).body.toString()).toBe('woke\n');
    });

    it('forward: the incoming variables as they are, plus params; "Primary script unknown" is 404', async () => {
      const port = await front(
        forward({
          address,
          params: { SCRIPT_FILENAME: join(ROOT, 'info.php') },
          onError: () => {},
        }),
      );
      const r = await get(port, '/any/path?x=1', { headers: { Proxy: 'evil' } });
      expect(JSON.parse(r.body.toString())).toMatchObject({
        SCRIPT_FILENAME: join(ROOT, 'info.php'),
        PATH_INFO: '/any/path',
        QUERY_STRING: 'x=1',
        HTTP_PROXY: null,
      });
      const missing = await front(
        forward({
          address,
          params: { SCRIPT_FILENAME: join(ROOT, 'gone.php') },
          onError: () => {},
        }),
      );
      expect((await get(missing, '/')).status).toBe(404);
    });

    it('forward in Express under /blog: a local redirect below the mount keeps SCRIPT_NAME; one outside it is 500', async () => {
      const errors: string[] = [];
      const proxy = forward({
        address,
        params: { SCRIPT_FILENAME: join(ROOT, 'route.php') },
        onError: (e) => errors.push(e.message),
      });
      const app = express();
      app.use('/blog', proxy.node);
      const server = app.listen(0, '127.0.0.1');
      await new Promise((r) => server.once('listening', r));
      running.push(async () => {
        await closeServer(server);
        await proxy.close();
      });
      const port = (server.address() as AddressInfo).port;
      const r = await get(port, '/blog/start?x=1', { method: 'DELETE' });
      const env = JSON.parse(r.body.toString());
      expect([r.status, env.SCRIPT_NAME, env.PATH_INFO, env.QUERY_STRING]).toEqual([
        200,
        '/blog',
        '/landed',
        'y=2',
      ]);
      expect([env.REQUEST_URI, env.REQUEST_METHOD]).toEqual(['/blog/landed?y=2', 'GET']);
      const out = await get(port, `/blog/start?to=${encodeURIComponent('/elsewhere')}`);
      expect([out.status, out.body.toString()]).toEqual([500, '500 Internal Server Error\n']);
      expect(errors).toEqual([
        'a local redirect to /elsewhere leaves the path this proxy is mounted at (/blog)',
      ]);
    });
  });
});

describe("forward to tsgi's own servers: a Location that comes with a Status is the client's", () => {
  /* tsgi always sends a status: its redirects are for the client, whatever the Location */
  const app: App = (env, start) => {
    if (env.PATH_INFO === '/moved') {
      start('302 Found', [
        ['Location', '/target?from=moved'],
        ['Content-Type', 'text/plain'],
      ]);
      return ['moved\n'];
    }
    start('200 OK', [
      ['Location', '/kept'],
      ['Content-Type', 'text/plain'],
    ]);
    return [`${env.REQUEST_METHOD} ${env.PATH_INFO}\n`];
  };
  for (const protocol of ['fastcgi', 'scgi', 'uwsgi'] as const) {
    it(`over ${protocol}, through tsgi's HTTP server`, async () => {
      const backend =
        protocol === 'fastcgi'
          ? createFastcgiServer(app, { log: () => {} })
          : protocol === 'scgi'
            ? createScgiServer(app, { log: () => {} })
            : createUwsgiServer(app, { log: () => {} });
      await listen(backend, { type: 'tcp', host: '127.0.0.1', port: 0 });
      const proxy = forward({
        protocol,
        address: `127.0.0.1:${(backend.address() as AddressInfo).port}`,
        onError: () => {},
      });
      const [port, close] = await FRONTS['tsgi app']!(proxy);
      try {
        const moved = await get(port, '/moved', { method: 'POST', chunks: [Buffer.from('x')] });
        expect([moved.status, values(moved, 'location'), moved.body.toString()]).toEqual([
          302,
          ['/target?from=moved'],
          'moved\n',
        ]);
        const kept = await get(port, '/other', { method: 'PUT', chunks: [Buffer.from('x')] });
        expect([kept.status, values(kept, 'location'), kept.body.toString()]).toEqual([
          200,
          ['/kept'],
          'PUT /other\n',
        ]);
      } finally {
        await close();
        await proxy.close();
        await new Promise((r) => backend.close(r));
      }
    });
  }
});

describe('forward in a node:http server: the client going away stops the backend request', () => {
  it('closed before the head: ABORT_REQUEST goes out, and the connection serves the next request', async () => {
    /* a FastCGI backend that holds its first request and answers the others */
    const seen: string[] = [];
    let requests = 0;
    const sockets: Socket[] = [];
    const backend = createNetServer((socket) => {
      sockets.push(socket);
      const parser = codec.createFcgiParser();
      socket.on('data', (chunk) => {
        for (const ev of parser.push(chunk)) {
          seen.push(ev.type);
          if (ev.type === 'abort') {
            socket.write(codec.fcgiEndRequest(ev.requestId, 0, FCGI.REQUEST_COMPLETE));
          } else if (ev.type === 'stdinEnd' && ++requests > 1) {
            socket.write(
              codec.fcgiResponse(
                ev.requestId,
                '200 OK',
                ['Content-Type', 'text/plain'],
                Buffer.from('second'),
                true,
              ),
            );
          }
        }
      });
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const proxy = forward({
      address: `127.0.0.1:${(backend.address() as AddressInfo).port}`,
      onError: () => {},
    });
    const server = createServer(proxy.node);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    try {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/held', agent: false });
      req.on('error', () => {});
      req.end();
      for (let i = 0; i < 100 && !seen.includes('stdinEnd'); i++) await tick(10);
      req.destroy();
      for (let i = 0; i < 100 && !seen.includes('abort'); i++) await tick(10);
      expect(seen).toEqual(['begin', 'params', 'stdinEnd', 'abort']);
      const next = await get(port, '/next');
      expect([next.status, next.body.toString()]).toEqual([200, 'second']);
      expect(seen.filter((t) => t === 'begin').length).toBe(2);
      expect((proxy.client as FastcgiClient).connections).toBe(1);
    } finally {
      await new Promise((r) => server.close(r));
      for (const socket of sockets) socket.destroy();
      await proxy.close();
      await new Promise((r) => backend.close(r));
    }
  });
});

describe("forward in a node:http server: the backend's hop-by-hop headers stay behind", () => {
  it('Connection, Keep-Alive, Transfer-Encoding, Trailer and TE are dropped; the rest kept in order', async () => {
    const backend = createNetServer((socket) => {
      const parser = codec.createFcgiParser();
      socket.on('data', (chunk) => {
        for (const ev of parser.push(chunk)) {
          if (ev.type !== 'stdinEnd') continue;
          socket.write(
            codec.fcgiResponse(
              ev.requestId,
              '200 OK',
              [
                'Content-Type',
                'text/plain',
                'Connection',
                'close, X-Kept',
                'Keep-Alive',
                'timeout=5',
                'X-Kept',
                '1',
                'Transfer-Encoding',
                'chunked',
                'Trailer',
                'X-T',
                'TE',
                'trailers',
                'X-Kept',
                '2',
              ],
              Buffer.from('ok'),
              true,
            ),
          );
        }
      });
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const proxy = forward({ address: `127.0.0.1:${(backend.address() as AddressInfo).port}` });
    const server = createServer(proxy.node);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const r = await get((server.address() as AddressInfo).port, '/x');
      const names = r.raw.filter((_, i) => i % 2 === 0);
      expect([r.status, r.body.toString(), names]).toEqual([
        200,
        'ok',
        ['Content-Type', 'X-Kept', 'X-Kept', 'Content-Length', 'Date', 'Connection'],
      ]);
      expect([values(r, 'x-kept'), values(r, 'content-length'), values(r, 'connection')]).toEqual([
        ['1', '2'],
        ['2'],
        ['close'],
      ]);
    } finally {
      await new Promise((r) => server.close(r));
      await proxy.close();
      await new Promise((r) => backend.close(r));
    }
  });
});

describe('forward in a node:http server: an answer node:http cannot send', () => {
  it('a header value with a control character is a 502, and the process goes on', async () => {
    const backend = createNetServer((socket) => {
      const parser = codec.createFcgiParser();
      socket.on('data', (chunk) => {
        for (const ev of parser.push(chunk)) {
          if (ev.type !== 'stdinEnd') continue;
          const head = Buffer.from(
            'Content-Type: text/plain\r\nX-Bad: a\x01b\r\n\r\nbody',
            'latin1',
          );
          socket.write(codec.fcgiStream(FCGI.STDOUT, ev.requestId, head, true));
          socket.write(codec.fcgiEndRequest(ev.requestId, 0, FCGI.REQUEST_COMPLETE));
        }
      });
    });
    await new Promise<void>((r) => backend.listen(0, '127.0.0.1', r));
    const errors: string[] = [];
    const proxy = forward({
      address: `127.0.0.1:${(backend.address() as AddressInfo).port}`,
      onError: (err) => errors.push((err as NodeJS.ErrnoException).code ?? err.message),
    });
    const server = createServer(proxy.node);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const port = (server.address() as AddressInfo).port;
      for (let i = 0; i < 2; i++) {
        const r = await get(port, '/x');
        expect([r.status, r.body.toString(), values(r, 'x-bad')]).toEqual([
          502,
          '502 Bad Gateway\n',
          [],
        ]);
      }
      expect(errors).toEqual(['ERR_INVALID_CHAR', 'ERR_INVALID_CHAR']);
    } finally {
      await new Promise((r) => server.close(r));
      await proxy.close();
      await new Promise((r) => backend.close(r));
    }
  });
});
