import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { App, Environ } from '../../lib/gateway/types.js';
import { errorStream } from '../../lib/gateway/errors.js';
import { validate } from '../../lib/gateway/validate.js';
import { fromNodeHandler } from '../../lib/adapters/node.js';
import { createHttpServer, httpVariables, type HttpServer } from '../../lib/protocol/http.js';
import { VERSION } from '../../lib/version.js';
import { NAMES } from '../../lib/codec/boundary.js';
import { cgiVariables } from '../../lib/codec/environ.js';

const servers: HttpServer[] = [];
afterEach(async () => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections();
    await new Promise((r) => s.close(r));
  }
});

async function start(app: App, options: { keepAliveTimeout?: number } = {}) {
  const errors: string[] = [];
  const server = createHttpServer(validate(app), {
    errors: errorStream((b) => errors.push(Buffer.from(b).toString('latin1'))),
    ...options,
  });
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as AddressInfo).port, errors };
}

/** Sends raw request bytes and returns everything the server sent until it closed. */
function raw(port: number, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    s.on('data', (d) => parts.push(d));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(parts).toString('latin1')));
    s.write(Buffer.from(bytes, 'latin1'));
  });
}

const withoutDate = (s: string) => s.replace(/Date: [^\r]*\r\n/, '');
const TEXT: [string, string][] = [['Content-Type', 'text/plain']];
const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));
const readAll = async (env: Environ) => {
  const parts: Buffer[] = [];
  for await (const c of env['tsgi.input']) parts.push(c as Buffer);
  return Buffer.concat(parts);
};

describe('HTTP server (node:http)', () => {
  it('builds the exact environ, percent-decoded path, raw 0x80-0xFF in a header', async () => {
    let seen: Record<string, unknown> = {};
    const { port } = await start((env, startResponse) => {
      seen = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('tsgi.')));
      seen['tsgi.url_scheme'] = env['tsgi.url_scheme'];
      seen['tsgi.protocol'] = env['tsgi.protocol'];
      startResponse('200 OK', TEXT);
      return ['ok'];
    });
    const out = await raw(
      port,
      'POST /p%C3%A9/%e9%2F?q=%ff&r=%FF HTTP/1.1\r\nHost: example.org:8080\r\n' +
        'X-High: \x80\xff\r\nX_Under: dropped\r\nProxy: http://evil/\r\nCookie: a=1\r\n' +
        'Cookie: b=2\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n' +
        'Connection: close\r\n\r\nabc',
    );
    expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(seen).toEqual({
      REQUEST_METHOD: 'POST',
      SCRIPT_NAME: '',
      PATH_INFO: '/p\xc3\xa9/\xe9/',
      QUERY_STRING: 'q=%ff&r=%FF',
      REQUEST_URI: '/p%C3%A9/%e9%2F?q=%ff&r=%FF',
      SERVER_PROTOCOL: 'HTTP/1.1',
      GATEWAY_INTERFACE: 'CGI/1.1',
      SERVER_SOFTWARE: `tsgi/${VERSION}`,
      REMOTE_ADDR: '127.0.0.1',
      REMOTE_PORT: seen.REMOTE_PORT,
      SERVER_ADDR: '127.0.0.1',
      SERVER_PORT: String(port),
      SERVER_NAME: 'example.org',
      HTTP_HOST: 'example.org:8080',
      HTTP_X_HIGH: '\x80\xff',
      HTTP_COOKIE: 'a=1; b=2',
      HTTP_CONNECTION: 'close',
      CONTENT_TYPE: 'text/plain',
      CONTENT_LENGTH: '3',
      'tsgi.url_scheme': 'http',
      'tsgi.protocol': 'http',
    });
    expect(seen.REMOTE_PORT).toMatch(/^[0-9]+$/);
  });

  it('names each header by its own name when the one at its place changes between requests', async () => {
    const seen: Record<string, unknown>[] = [];
    const { port } = await start((env, startResponse) => {
      seen.push(
        Object.fromEntries(Object.entries(env).filter(([k]) => /^(HTTP|CONTENT)_/.test(k))),
      );
      startResponse('200 OK', TEXT);
      return ['x'];
    });
    const heads = [
      'Host: h\r\nX-A: 1\r\nX-B: 2',
      'Host: h\r\nX-B: 3\r\nX-A: 4',
      'Host: h\r\nX_B: 5\r\nX-A: 6',
      'Host: h\r\nX-B: 7\r\nX-A: 8\r\nContent-Type: t',
      'host: h\r\nx-b: 9',
    ];
    const s = connect(port, '127.0.0.1');
    for (const head of heads) {
      await new Promise<void>((resolve) => {
        s.once('data', () => resolve());
        s.write(`GET / HTTP/1.1\r\n${head}\r\n\r\n`);
      });
    }
    s.destroy();
    expect(seen).toEqual([
      { HTTP_HOST: 'h', HTTP_X_A: '1', HTTP_X_B: '2' },
      { HTTP_HOST: 'h', HTTP_X_B: '3', HTTP_X_A: '4' },
      { HTTP_HOST: 'h', HTTP_X_A: '6' },
      { HTTP_HOST: 'h', HTTP_X_B: '7', HTTP_X_A: '8', CONTENT_TYPE: 't' },
      { HTTP_HOST: 'h', HTTP_X_B: '9' },
    ]);
  });

  it('sends an exact response with Content-Length for an array body', async () => {
    const { port } = await start((_env, startResponse) => {
      startResponse('201 Made It', [...TEXT, ['X-Bytes', '\xe9\xff']]);
      return ['he', 'llo\xff'];
    });
    const out = await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
    expect(withoutDate(out)).toBe(
      'HTTP/1.1 201 Made It\r\nContent-Type: text/plain\r\nX-Bytes: \xe9\xff\r\n' +
        'Content-Length: 6\r\nConnection: close\r\n\r\nhello\xff',
    );
  });

  it("sends each response's own status line, whatever the one before it", async () => {
    const statuses = ['200 OK', '404 Not Found', '404 Not Found', '201', '200 OK', '299 Fine Too'];
    let i = 0;
    const { port } = await start((_env, startResponse) => {
      startResponse(statuses[i++]!, TEXT);
      return ['x'];
    });
    const lines: string[] = [];
    for (let n = 0; n < statuses.length; n++) {
      const out = await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
      lines.push(out.slice(0, out.indexOf('\r\n')));
    }
    expect(lines).toEqual([
      'HTTP/1.1 200 OK',
      'HTTP/1.1 404 Not Found',
      'HTTP/1.1 404 Not Found',
      'HTTP/1.1 201 Created',
      'HTTP/1.1 200 OK',
      'HTTP/1.1 299 Fine Too',
    ]);
  });

  it('gives each request the addresses of its own connection, over keep-alive too', async () => {
    const seen: string[] = [];
    const { port } = await start((env, startResponse) => {
      seen.push(`${env.REMOTE_ADDR}:${env.REMOTE_PORT} ${env.SERVER_ADDR}:${env.SERVER_PORT}`);
      startResponse('200 OK', TEXT);
      return ['x'];
    });
    const open = () =>
      new Promise<Socket>((resolve) => {
        const s = connect(port, '127.0.0.1', () => resolve(s));
      });
    const ask = (s: Socket) =>
      new Promise<void>((resolve) => {
        s.once('data', () => resolve());
        s.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
      });
    const a = await open();
    const b = await open();
    await ask(a);
    await ask(b);
    await ask(a);
    await ask(b);
    const me = (s: Socket) => `127.0.0.1:${s.localPort} 127.0.0.1:${port}`;
    expect(seen).toEqual([me(a), me(b), me(a), me(b)]);
    a.destroy();
    b.destroy();
  });

  it('takes the local end from the socket on a wildcard listener, from the server on another', () => {
    /* httpVariables() reads only these of node's objects */
    const req = (listening: string, local: string) =>
      ({
        url: '/',
        method: 'GET',
        httpVersion: '1.1',
        rawHeaders: [],
        socket: {
          remoteAddress: '127.0.0.9',
          remotePort: 4321,
          localAddress: local,
          localPort: 8080,
          server: new (class extends EventEmitter {
            address = () => ({ address: listening, port: 8080, family: 'IPv4' });
          })(),
        },
      }) as unknown as IncomingMessage;
    const ends = (v: Record<string, string>) =>
      [v.REMOTE_ADDR, v.REMOTE_PORT, v.SERVER_ADDR, v.SERVER_PORT].join(' ');
    expect(ends(httpVariables(req('0.0.0.0', '127.0.0.5')))).toBe('127.0.0.9 4321 127.0.0.5 8080');
    expect(ends(httpVariables(req('::', '::ffff:127.0.0.5')))).toBe(
      '127.0.0.9 4321 ::ffff:127.0.0.5 8080',
    );
    expect(ends(httpVariables(req('127.0.0.7', '127.0.0.7')))).toBe(
      '127.0.0.9 4321 127.0.0.7 8080',
    );
  });

  it('stores every well-known header variable as cgiVariables() does, repeats included', () => {
    const req = (rawHeaders: string[]) =>
      ({
        url: '/',
        method: 'GET',
        httpVersion: '1.1',
        rawHeaders,
        socket: { remoteAddress: undefined, localPort: undefined },
      }) as unknown as IncomingMessage;
    const headerVars = (v: Record<string, unknown>) =>
      Object.fromEntries(Object.entries(v).filter(([k]) => /^(HTTP|CONTENT)_/.test(k)));
    const named = NAMES.filter((n) => /^(HTTP_|CONTENT_(TYPE|LENGTH)$)/.test(n));
    expect(named.length).toBeGreaterThan(20);
    for (const cgi of named) {
      const header = (cgi.startsWith('HTTP_') ? cgi.slice(5) : cgi).replace(/_/g, '-');
      /* the header's own variable (Content-Type makes CONTENT_TYPE, never HTTP_CONTENT_TYPE) */
      const own = /^CONTENT-(TYPE|LENGTH)$/.test(header)
        ? header.replace('-', '_')
        : 'HTTP_' + header.replace(/-/g, '_');
      /* twice in a row: the second time its CGI name is the one kept from the first */
      for (let round = 0; round < 2; round++) {
        const got = headerVars(httpVariables(req([header, 'a', 'X-Other', 'o', header, 'b'])));
        const want = headerVars(cgiVariables([own, 'a', 'HTTP_X_OTHER', 'o', own, 'b']));
        expect([cgi, got]).toEqual([cgi, want]);
      }
    }
  });

  it('gives SERVER_PORT of the port the server listens on now, after a close and a new listen()', async () => {
    const seen: string[] = [];
    const { server, port } = await start((env, startResponse) => {
      seen.push(env.SERVER_PORT);
      startResponse('200 OK', TEXT);
      return ['x'];
    });
    const ask = (p: number) => raw(p, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
    await ask(port);
    await new Promise((r) => server.close(r));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const again = (server.address() as AddressInfo).port;
    await ask(again);
    expect(seen).toEqual([String(port), String(again)]);
  });

  it('streams a generator body with chunked encoding', async () => {
    const { port } = await start((_env, startResponse) => {
      startResponse('200 OK', TEXT);
      return (async function* () {
        yield 'one,';
        await tick(1);
        yield 'two';
      })();
    });
    const out = await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n');
    expect(withoutDate(out)).toBe(
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n' +
        'Transfer-Encoding: chunked\r\n\r\n4\r\none,\r\n3\r\ntwo\r\n0\r\n\r\n',
    );
  });

  it('reads a Content-Length body and a chunked upload (no CONTENT_LENGTH)', async () => {
    const { port } = await start(async (env, startResponse) => {
      const body = await readAll(env);
      startResponse('200 OK', TEXT);
      return [`${env.CONTENT_LENGTH ?? '-'} ${createHash('sha256').update(body).digest('hex')}`];
    });
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    const a = await raw(
      port,
      'PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello',
    );
    expect(a.endsWith(`\r\n\r\n5 ${sha('hello')}`)).toBe(true);
    const b = await raw(
      port,
      'PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n' +
        '3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n',
    );
    expect(b.endsWith(`\r\n\r\n- ${sha('abcde')}`)).toBe(true);
  });

  it('sends the whole response of an app that destroys tsgi.input mid-body, then ends the connection', async () => {
    let input: unknown = null;
    const { port } = await start((env, startResponse) => {
      input = env['tsgi.input'];
      startResponse('413 Payload Too Large', TEXT);
      return (async function* () {
        yield 'part one\n';
        /* as a proxy does past its linger bounds: the rest of the upload is not wanted */
        env['tsgi.input'].destroy();
        await tick(50);
        yield 'part two\n';
      })();
    });
    /* a 5 MiB upload of which 100 kB are sent: the rest never comes, nor does the GET after it */
    const out = await raw(
      port,
      `POST /up HTTP/1.1\r\nHost: a\r\nContent-Type: application/octet-stream\r\n` +
        `Content-Length: ${5 * 1024 * 1024}\r\n\r\n${'a'.repeat(100_000)}`,
    );
    expect(withoutDate(out)).toBe(
      'HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain\r\nConnection: keep-alive\r\n' +
        'Keep-Alive: timeout=5\r\nTransfer-Encoding: chunked\r\n\r\n' +
        '9\r\npart one\n\r\n9\r\npart two\n\r\n0\r\n\r\n',
    );
    expect((input as { destroyed: boolean }).destroyed).toBe(true);
  });

  it('keeps a connection whose request body was read whole, tsgi.input destroyed or not', async () => {
    const { port } = await start(async (env, startResponse) => {
      const body = await readAll(env);
      env['tsgi.input'].destroy();
      startResponse('200 OK', TEXT);
      return [`got ${body.length}`];
    });
    const post = 'POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc';
    const out = await raw(
      port,
      post +
        post.replace('HTTP/1.1', 'HTTP/1.1') +
        'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n',
    );
    expect(out.match(/HTTP\/1\.1 200 OK/g)).toHaveLength(3);
    expect(out.match(/got 3/g)).toHaveLength(2);
    expect(out).toContain('got 0');
  });

  it('answers 500 for an app error and for a header node refuses', async () => {
    const { port, errors } = await start((env, startResponse) => {
      if (env.PATH_INFO === '/throw') throw new Error('http boom');
      startResponse('200 OK', [...TEXT, ['X-Bad', 'a\u0100']]);
      return ['x'];
    });
    for (const path of ['/throw', '/badheader']) {
      const out = await raw(port, `GET ${path} HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n`);
      expect(withoutDate(out)).toBe(
        'HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain; charset=us-ascii\r\n' +
          'Content-Length: 22\r\nConnection: close\r\n\r\nInternal Server Error\n',
      );
    }
    expect(errors.join('')).toContain('Error: http boom');
    expect(errors.join('')).toContain('ValidationError: tsgi.validate: header "X-Bad"');
  });

  it('cuts a chunked response when the app fails after the headers', async () => {
    const { port } = await start((_env, startResponse) => {
      startResponse('200 OK', TEXT);
      return (async function* () {
        yield 'partial';
        await tick(1);
        throw new Error('late');
      })();
    });
    const out = await raw(port, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n');
    expect(out.endsWith('7\r\npartial\r\n')).toBe(true);
  });

  it('aborts tsgi.signal and runs close() when the client goes away', async () => {
    let closed = 0;
    let signal: AbortSignal | null = null;
    const { port } = await start((env, startResponse) => {
      signal = env['tsgi.signal'];
      startResponse('200 OK', TEXT);
      return Object.assign(
        (async function* () {
          for (;;) {
            yield 'data '.repeat(100);
            await tick(1);
          }
        })(),
        { close: () => void closed++ },
      );
    });
    await new Promise<void>((resolve) => {
      const req = httpRequest({ port, host: '127.0.0.1', path: '/' }, (res) => {
        res.once('data', () => {
          req.destroy();
          resolve();
        });
      });
      req.on('error', () => {});
      req.end();
    });
    while (closed === 0) await tick(5);
    expect(signal!.aborted).toBe(true);
    expect(closed).toBe(1);
  });

  it('drain() lets a running request finish and closes kept-alive connections', async () => {
    let release: () => void = () => {};
    const { server, port } = await start(async (_env, startResponse) => {
      await new Promise<void>((r) => (release = r));
      startResponse('200 OK', TEXT);
      return ['finished'];
    });
    const response = raw(port, 'GET / HTTP/1.1\r\nHost: h\r\n\r\n');
    await tick(20);
    let drained = false;
    const draining = server.drain().then(() => (drained = true));
    await tick(20);
    expect(drained).toBe(false);
    release();
    const out = await response;
    await draining;
    expect(withoutDate(out)).toBe(
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n' +
        'Connection: close\r\n\r\nfinished',
    );
  });

  describe.each([
    ['a TSGI app', false],
    ['a node handler', true],
  ])('drain and the connections that hold no request (%s)', (_, node) => {
    /** A server answering "answered", and a client connected to it. */
    async function connected() {
      const app: App = node
        ? fromNodeHandler((_req, res) => res.end('answered'))
        : (_env, startResponse) => {
            startResponse('200 OK', TEXT);
            return ['answered'];
          };
      const server = createHttpServer(app, { errors: errorStream(() => {}) });
      servers.push(server);
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      const serverSide = new Promise<void>((r) => server.once('connection', () => r()));
      const client = connect((server.address() as AddressInfo).port, '127.0.0.1');
      let received = '';
      client.setEncoding('latin1');
      client.on('data', (d: string) => (received += d));
      const closed = new Promise<void>((r) => client.on('close', () => r()));
      await serverSide;
      /** Everything received so far, then cleared. */
      const take = (): string => {
        const out = received;
        received = '';
        return withoutDate(out);
      };
      /** Sends a request and waits for its whole response. */
      const ask = async (): Promise<string> => {
        client.write('GET / HTTP/1.1\r\nHost: h\r\n\r\n');
        while (!received.endsWith('answered')) await tick(5);
        return take();
      };
      return { server, client, closed, take, ask };
    }
    const isClosed = (p: Promise<void>) =>
      Promise.race([p.then(() => true), tick(50).then(() => false)]);

    it('with keepIdle: a connection accepted before the drain, its request sent after, is answered; then it closes', async () => {
      const { server, closed, ask } = await connected();
      let drained = false;
      const draining = server.drain({ keepIdle: true }).then(() => (drained = true));
      await tick(50);
      expect(drained).toBe(false);
      expect(await isClosed(closed)).toBe(false);
      const out = await ask();
      expect(out).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
      expect(out).toContain('\r\nConnection: close\r\n');
      await closed;
      await draining;
    });

    it('with keepIdle: a kept-alive connection stays open, its next request is answered, then it closes', async () => {
      const { server, closed, ask } = await connected();
      expect(await ask()).toContain('\r\nConnection: keep-alive\r\n');
      let drained = false;
      const draining = server.drain({ keepIdle: true }).then(() => (drained = true));
      expect(await isClosed(closed)).toBe(false);
      expect(drained).toBe(false);
      expect(await ask()).toContain('\r\nConnection: close\r\n');
      await closed;
      await draining;
    });

    it('with keepIdle: closeIdle() closes a kept-alive connection and ends the drain', async () => {
      const { server, closed, ask } = await connected();
      await ask();
      let drained = false;
      const draining = server.drain({ keepIdle: true }).then(() => (drained = true));
      await tick(50);
      expect(drained).toBe(false);
      server.closeIdle();
      await closed;
      await draining;
    });

    it('without keepIdle: a kept-alive connection is closed at once, and the drain ends', async () => {
      const { server, closed, ask, take } = await connected();
      await ask();
      await server.drain();
      await closed;
      expect(take()).toBe('');
    });
  });

  it('closes an idle keep-alive connection after keepAliveTimeout (--keep-alive)', async () => {
    const { port } = await start(
      (_env, startResponse) => {
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return ['kept'];
      },
      { keepAliveTimeout: 150 },
    );
    /* HTTP/1.1 without Connection: close: the server keeps the connection, then closes it
       (raw() resolves on close; with node's default 5 s this would outlast the test) */
    const answer = await raw(port, 'GET / HTTP/1.1\r\nHost: t\r\n\r\n');
    expect(answer).toMatch(/^HTTP\/1\.1 200 OK\r\n/);
    expect(answer.endsWith('\r\n\r\nkept')).toBe(true);
  });
});
