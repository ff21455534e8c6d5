/**
 * The FastCGI, SCGI and uwsgi clients against tsgi's own servers: exact environ, status,
 * repeated headers and bytes both ways, chunked request bodies, backpressure on the response,
 * ABORT_REQUEST, multiplexing after GET_VALUES, and OVERLOADED.
 */
import { createHash } from 'node:crypto';
import type { AddressInfo, Server } from 'node:net';
import { Readable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { bytes, echoParams } from '../support/client-request.js';
import {
  ClientError,
  createClient,
  createFastcgiServer,
  createScgiServer,
  createUwsgiServer,
  FastcgiClient,
  type App,
  type Client,
  type ClientProtocol,
} from '../../lib/index.js';
import { listen } from '../../lib/server/listen.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Answers 201 with three cookies and a JSON report of what it received. */
const echo: App = async (env, start) => {
  const chunks: Buffer[] = [];
  for await (const c of env['tsgi.input']) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks);
  start('201 Created', [
    ['Content-Type', 'application/json'],
    ['Set-Cookie', 'a=1'],
    ['Set-Cookie', 'b=2'],
    ['Set-Cookie', 'c=3'],
  ]);
  return [
    JSON.stringify({
      method: env.REQUEST_METHOD,
      path: env.PATH_INFO,
      query: env.QUERY_STRING,
      contentLength: env.CONTENT_LENGTH ?? null,
      test: env.HTTP_X_TEST ?? null,
      length: body.length,
      sha: sha(body),
    }),
  ];
};

const servers: Server[] = [];
const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const s of servers.splice(0)) {
    (s as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
    await new Promise((r) => s.close(r));
  }
});

async function serve(protocol: ClientProtocol, app: App, maxRequests?: number): Promise<string> {
  const server =
    protocol === 'fastcgi'
      ? createFastcgiServer(app, { log: () => {}, ...(maxRequests ? { maxRequests } : {}) })
      : protocol === 'scgi'
        ? createScgiServer(app, { log: () => {} })
        : createUwsgiServer(app, { log: () => {} });
  await listen(server, { type: 'tcp', host: '127.0.0.1', port: 0 });
  servers.push(server);
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

function client(protocol: ClientProtocol, address: string, o: object = {}): Client {
  const c = createClient({ protocol, address, ...o });
  clients.push(c);
  return c;
}

for (const protocol of ['fastcgi', 'scgi', 'uwsgi'] as const) {
  describe(`${protocol} client against tsgi's ${protocol} server`, () => {
    it('sends params and a 1 MiB body; gets status, repeated headers and the body exactly', async () => {
      const c = client(protocol, await serve(protocol, echo));
      const body = Buffer.alloc(1024 * 1024);
      for (let i = 0; i < body.length; i++) body[i] = (i * 31) & 0xff;
      const res = await c.request({
        params: echoParams({ CONTENT_LENGTH: String(body.length) }),
        body,
      });
      const text = await bytes(res.body);
      expect([res.status, res.statusText, res.headers]).toEqual([
        201,
        'Created',
        [
          ['Content-Type', 'application/json'],
          ['Set-Cookie', 'a=1'],
          ['Set-Cookie', 'b=2'],
          ['Set-Cookie', 'c=3'],
          ['Content-Length', String(text.length)],
        ],
      ]);
      expect(JSON.parse(text.toString())).toEqual({
        method: 'POST',
        path: '/echo',
        query: 'x=1',
        contentLength: String(body.length),
        test: 'yes',
        length: body.length,
        sha: sha(body),
      });
    });

    it('sends a body of unknown length (a stream) whole', async () => {
      const c = client(protocol, await serve(protocol, echo));
      const parts = Array.from({ length: 20 }, (_, i) => Buffer.alloc(70000, i));
      const all = Buffer.concat(parts);
      const res = await c.request({ params: echoParams(), body: Readable.from(parts) });
      const got = JSON.parse((await bytes(res.body)).toString());
      expect([got.length, got.sha]).toEqual([all.length, sha(all)]);
      /* FastCGI streams STDIN as it comes; SCGI and uwsgi buffer it to send CONTENT_LENGTH */
      expect(got.contentLength).toBe(protocol === 'fastcgi' ? null : String(all.length));
    });

    it('the response body streams with backpressure: the app waits while nobody reads', async () => {
      let produced = 0;
      const chunk = Buffer.alloc(64 * 1024, 120);
      const big: App = (_env, start) => {
        start('200 OK', [['Content-Type', 'application/octet-stream']]);
        return (async function* () {
          for (let i = 0; i < 512; i++) {
            produced++;
            yield chunk;
          }
        })();
      };
      const c = client(protocol, await serve(protocol, big));
      const res = await c.request({ params: echoParams({ REQUEST_METHOD: 'GET' }) });
      await tick(300);
      const early = produced;
      const got = await bytes(res.body);
      /* 32 MiB in all; unread, no more than the socket buffers and one stream buffer hold */
      expect(early).toBeLessThan(256);
      expect([produced, got.length]).toEqual([512, 512 * chunk.length]);
    });

    it('a refused connection is ECONNREFUSED', async () => {
      const address = await serve(protocol, echo);
      const s = servers.pop()!;
      await new Promise((r) => s.close(r));
      const c = client(protocol, address);
      const err = await c.request({ params: echoParams() }).catch((e: unknown) => e);
      expect((err as ClientError).code).toBe('ECONNREFUSED');
    });
  });
}

describe('FastCGI client: aborts, multiplexing, overload', () => {
  it('an aborted request sends ABORT_REQUEST: the app sees tsgi.signal abort', async () => {
    let aborted = false;
    const slow: App = (env, start) => {
      start('200 OK', [['Content-Type', 'text/plain']]);
      return (async function* () {
        yield 'first';
        await new Promise<void>((resolve) =>
          env['tsgi.signal'].addEventListener('abort', () => {
            aborted = true;
            resolve();
          }),
        );
      })();
    };
    const address = await serve('fastcgi', slow);
    const c = client('fastcgi', address) as FastcgiClient;
    const controller = new AbortController();
    const res = await c.request({ params: echoParams(), signal: controller.signal });
    const it = res.body[Symbol.asyncIterator]();
    expect(String((await it.next()).value)).toBe('first');
    controller.abort();
    for (let i = 0; i < 100 && !aborted; i++) await tick(10);
    expect(aborted).toBe(true);
    /* the server ended the aborted request: the connection is kept for the next one */
    await tick(50);
    expect(c.connections).toBe(1);
  });

  it('multiplex: after GET_VALUES says FCGI_MPXS_CONNS=1, concurrent requests share one connection', async () => {
    const c = client('fastcgi', await serve('fastcgi', echo), { multiplex: true }) as FastcgiClient;
    const all = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        c
          .request({ params: echoParams({ PATH_INFO: `/${i}` }) })
          .then(async (r) => JSON.parse((await bytes(r.body)).toString()).path),
      ),
    );
    expect([all, c.connections]).toEqual([Array.from({ length: 8 }, (_, i) => `/${i}`), 1]);
  });

  it('without multiplex, concurrent requests use one connection each (request id 1)', async () => {
    const c = client('fastcgi', await serve('fastcgi', echo)) as FastcgiClient;
    await Promise.all(
      Array.from({ length: 3 }, () =>
        c.request({ params: echoParams() }).then((r) => bytes(r.body)),
      ),
    );
    expect(c.connections).toBe(3);
  });

  it('OVERLOADED in END_REQUEST is ClientError OVERLOADED', async () => {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const held: App = async (_env, start) => {
      await gate;
      start('200 OK', [['Content-Type', 'text/plain']]);
      return ['done'];
    };
    const c = client('fastcgi', await serve('fastcgi', held, 1));
    const first = c.request({ params: echoParams() });
    await tick(50);
    const err = await c.request({ params: echoParams() }).catch((e: unknown) => e);
    expect((err as ClientError).code).toBe('OVERLOADED');
    release();
    expect((await bytes((await first).body)).toString()).toBe('done');
  });
});
