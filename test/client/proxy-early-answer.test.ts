/**
 * A backend that answers before it has read the request body (a PHP script that prints "too
 * large" without reading a 5 MiB POST and ends the request with fastcgi_finish_request(); a
 * chunked upload over maxBufferedBody, refused 413; tsgi's FastCGI, SCGI and uwsgi servers
 * answering 413 at once): the client receives the whole answer, the proxy stops sending the
 * body, the rest of the upload is read and thrown away within the linger bounds (then the
 * connection serves the next request), or the connection is ended once they are passed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { connect as netConnect, createServer as createNetServer, type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { text } from 'node:stream/consumers';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
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
  UwsgiClient,
  type App,
  type Proxy,
} from '../../lib/index.js';
import { listen } from '../../lib/server/listen.js';
import { findPhpFpm, findUwsgi, startPhpFpm, startUwsgi } from '../support/backends.js';
import { freePort, isCI, missingPeerMessage } from '../support/peers.js';
import { RawClient } from '../support/raw-client.js';
import type { Child } from '../support/spawn.js';

const ROOT = join(import.meta.dirname, 'php');
const bin = findPhpFpm();
const uwsgiBin = findUwsgi();
if (uwsgiBin === null) {
  console.warn(
    `\n!!!!! uwsgi not found (Debian packages uwsgi-core uwsgi-plugin-python3): the uWSGI` +
      ` early-answer tests are SKIPPED${isCI ? ' — and FAIL, because CI=true' : ''} !!!!!\n`,
  );
}

describe.runIf(bin === null && isCI)('php-fpm', () => {
  it('is installed', () => {
    throw new Error(missingPeerMessage('php-fpm', 'php-fpm'));
  });
});

describe.runIf(uwsgiBin === null && isCI)('uWSGI', () => {
  it('is installed', () => {
    throw new Error(missingPeerMessage('uwsgi', 'uwsgi-core uwsgi-plugin-python3'));
  });
});

/** One HTTP/1.1 response parsed from raw bytes: the status line, the headers, the body. */
interface Parsed {
  statusLine: string;
  headers: [string, string][];
  body: Buffer;
  /** Bytes after this response (the next one's). */
  rest: Buffer;
}

/** The first complete response in `b` (Content-Length or chunked), or undefined. */
function parseResponse(b: Buffer): Parsed | undefined {
  const end = b.indexOf('\r\n\r\n');
  if (end === -1) return undefined;
  const lines = b.toString('latin1', 0, end).split('\r\n');
  const headers = lines.slice(1).map((l): [string, string] => {
    const c = l.indexOf(':');
    return [l.slice(0, c), l.slice(c + 1).trim()];
  });
  const get = (n: string) => headers.find(([k]) => k.toLowerCase() === n)?.[1];
  let at = end + 4;
  const length = get('content-length');
  if (length !== undefined) {
    const n = Number(length);
    if (b.length < at + n) return undefined;
    return {
      statusLine: lines[0]!,
      headers,
      body: b.subarray(at, at + n),
      rest: b.subarray(at + n),
    };
  }
  const chunks: Buffer[] = [];
  for (;;) {
    const eol = b.indexOf('\r\n', at);
    if (eol === -1) return undefined;
    const size = parseInt(b.toString('latin1', at, eol), 16);
    if (b.length < eol + 2 + size + 2) return undefined;
    if (size === 0) {
      return {
        statusLine: lines[0]!,
        headers,
        body: Buffer.concat(chunks),
        rest: b.subarray(eol + 4),
      };
    }
    chunks.push(b.subarray(eol + 2, eol + 2 + size));
    at = eol + 2 + size + 2;
  }
}

/** The headers without the ones that vary (Date) or that only frame the body. */
const stable = (h: [string, string][]) =>
  h
    .map(([n, v]): [string, string] => [n.toLowerCase(), v])
    .filter(
      ([n]) =>
        !['date', 'content-length', 'transfer-encoding', 'connection', 'keep-alive'].includes(n),
    );

const MiB = 1024 * 1024;
const UPLOAD = 5 * MiB;

const head = (path: string, length: number) =>
  `POST ${path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/octet-stream\r\n` +
  `Content-Length: ${length}\r\n\r\n`;

type Close = () => Promise<void>;

/** Checks the answer of early.php, the first on `c`: complete, exact, nothing failed before. */
async function earlyAnswer(c: RawClient): Promise<Parsed> {
  const r = await c.until(() => parseResponse(c.bytes()), 'the answer');
  expect(c.error).toBe(null);
  expect(r.statusLine).toBe('HTTP/1.1 413 Payload Too Large');
  expect(stable(r.headers)).toEqual([
    ['content-type', 'text/plain'],
    ['x-early', 'yes'],
  ]);
  expect(r.body.toString('latin1')).toBe(`too large: ${UPLOAD}\n`);
  return r;
}

const HELLO = 'GET /hello.php HTTP/1.1\r\nHost: localhost\r\n\r\n';

/** Sends hello.php on `c` after its first answer and checks the second answer is exact. */
async function secondAnswer(c: RawClient): Promise<void> {
  c.write(HELLO);
  const second = await c.until(
    () => parseResponse(parseResponse(c.bytes())!.rest),
    'the second answer',
  );
  expect([second.statusLine, second.body.toString()]).toEqual([
    'HTTP/1.1 200 OK',
    'Hello, world!\n',
  ]);
  expect(c.error).toBe(null);
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((r) => server.close(() => r()));
}

const FRONTS: Record<string, (php: Proxy) => Promise<[number, Close]>> = {
  'node handler': async (php) => {
    const server = createServer(php.node);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return [(server.address() as AddressInfo).port, () => closeServer(server)];
  },
  'fetch handler (Hono)': async (php) => {
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

describe.runIf(bin !== null)('an answer before the request body was read', () => {
  let dir: string;
  let fpm: Child;
  let address: string;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsgi-client-early-'));
    address = `127.0.0.1:${await freePort()}`;
    fpm = await startPhpFpm(bin!, dir, [{ name: 'early', listen: address, children: 4 }]);
  }, 30000);

  afterAll(async () => {
    await fpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('FastcgiClient: php-fpm ends the request early (fastcgi_finish_request), the kept connection serves the next ones', async () => {
    /* a relay in front of php-fpm counts the connections the client opens */
    let accepted = 0;
    const [host, fpmPort] = [address.split(':')[0]!, Number(address.split(':')[1])];
    const relay = createNetServer((s) => {
      accepted++;
      const b = netConnect(fpmPort, host);
      s.pipe(b).pipe(s);
      const gone = () => {
        s.destroy();
        b.destroy();
      };
      for (const x of [s, b]) x.on('error', gone).on('close', gone);
    });
    await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
    const client = new FastcgiClient({
      address: `127.0.0.1:${(relay.address() as AddressInfo).port}`,
    });
    /* a body that never ends by itself */
    const body = new Readable({
      read() {
        setTimeout(() => this.push(Buffer.alloc(16 * 1024, 0x61)), 5);
      },
    });
    try {
      const res = await client.request({
        params: {
          SCRIPT_FILENAME: join(ROOT, 'early.php'),
          REQUEST_METHOD: 'POST',
          CONTENT_TYPE: 'application/octet-stream',
          CONTENT_LENGTH: String(UPLOAD),
          PHP_VALUE: 'enable_post_data_reading=Off',
        },
        body,
      });
      expect([res.status, await text(res.body)]).toEqual([413, `too large: ${UPLOAD}\n`]);
      for (let i = 0; i < 3; i++) {
        const r = await client.request({
          params: { SCRIPT_FILENAME: join(ROOT, 'hello.php'), REQUEST_METHOD: 'GET' },
        });
        expect([r.status, await text(r.body)]).toEqual([200, 'Hello, world!\n']);
      }
      expect(accepted).toBe(1);
    } finally {
      body.destroy();
      await client.close();
      await new Promise((r) => relay.close(r));
    }
  });

  for (const [name, front] of Object.entries(FRONTS)) {
    describe(`in ${name}`, () => {
      let php: Proxy;
      let port: number;
      let close: Close;
      /* a proxy with tight linger bounds */
      let tight: Proxy;
      let tightPort: number;
      let closeTight: Close;
      const errors: string[] = [];
      beforeAll(async () => {
        const options = {
          address,
          root: ROOT,
          maxConcurrent: 4,
          /* PHP reads a POST body before the script runs, unless told not to */
          params: { PHP_VALUE: 'enable_post_data_reading=Off' },
          onError: (e: Error) => errors.push(e.message),
        };
        php = phpFpm({ ...options, maxBufferedBody: MiB });
        [port, close] = await front(php);
        tight = phpFpm({ ...options, lingerBytes: MiB, lingerTime: 1500, lingerTimeout: 1000 });
        [tightPort, closeTight] = await front(tight);
      });
      afterAll(async () => {
        await close?.();
        await closeTight?.();
        await php?.close();
        await tight?.close();
        /* the chunked upload over maxBufferedBody, answered 413 */
        expect(errors).toEqual([`a request body of unknown length is over ${MiB} bytes`]);
      });

      it('a client that trickles its body past the bounds: the whole answer, then the connection ends; others are served meanwhile', async () => {
        const c = await RawClient.connect(tightPort);
        let other: RawClient | null = null;
        const trickle = setInterval(() => {
          if (!c.ended && !c.closed) c.write(Buffer.alloc(256, 0x62));
        }, 20);
        try {
          c.write(head('/early.php', UPLOAD));
          c.write(Buffer.alloc(64 * 1024, 0x61));
          const first = await earlyAnswer(c);
          other = await RawClient.connect(tightPort);
          other.write(HELLO);
          const hello = await other.until(() => parseResponse(other!.bytes()), 'hello');
          expect([hello.statusLine, hello.body.toString()]).toEqual([
            'HTTP/1.1 200 OK',
            'Hello, world!\n',
          ]);
          await c.serverEnded();
          /* node:http: the answer, then FIN (the connection is closed later) */
          if (name === 'node handler') expect([c.ended, c.error]).toEqual([true, null]);
          /* the answer, and nothing after it */
          expect(parseResponse(c.bytes())).toEqual(first);
        } finally {
          clearInterval(trickle);
          c.close();
          other?.close();
        }
      }, 30000);

      /* the fetch handler never sees the connection: past the bounds it stops reading, and
       * @hono/node-server drains on its own (500 ms, 64 MiB) and may serve the next request */
      it.skipIf(name === 'fetch handler (Hono)')(
        'a 5 MiB POST past lingerBytes: the whole answer, then the connection ends (a request after it is not served)',
        async () => {
          const c = await RawClient.connect(tightPort);
          try {
            /* the whole upload, then a request that is not served: the connection ends first */
            c.write(head('/early.php', UPLOAD));
            c.write(Buffer.alloc(UPLOAD, 0x61));
            c.write(HELLO);
            const first = await earlyAnswer(c);
            await c.serverEnded();
            expect(parseResponse(c.bytes())).toEqual(first);
          } finally {
            c.close();
          }
        },
        30000,
      );

      it('a 5 MiB chunked POST over maxBufferedBody: the whole 413, then the next request on the connection', async () => {
        const c = await RawClient.connect(port);
        try {
          c.write(
            'POST /upload.php HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n',
          );
          const chunk = Buffer.concat([
            Buffer.from('10000\r\n'),
            Buffer.alloc(0x10000, 0x61),
            Buffer.from('\r\n'),
          ]);
          let uploaded: Promise<unknown> = Promise.resolve();
          for (let n = 0; n < UPLOAD; n += 0x10000) {
            uploaded = new Promise((r) => c.socket.write(chunk, r));
          }
          uploaded = new Promise((r) => c.socket.write('0\r\n\r\n', r));
          const r = await c.until(() => parseResponse(c.bytes()), 'the 413');
          expect(c.error).toBe(null);
          expect(r.statusLine.slice(0, 13)).toBe('HTTP/1.1 413 ');
          expect(stable(r.headers)).toEqual([['content-type', 'text/plain; charset=utf-8']]);
          expect(r.body.toString()).toBe('413 Content Too Large\n');
          await uploaded;
          await secondAnswer(c);
        } finally {
          c.close();
        }
      }, 30000);

      it('a 5 MiB POST: the whole answer arrives, then the next request on the connection', async () => {
        const c = await RawClient.connect(port);
        try {
          c.write(head('/early.php', UPLOAD));
          const uploaded = new Promise((r) => c.socket.write(Buffer.alloc(UPLOAD, 0x61), r));
          await earlyAnswer(c);
          await uploaded;
          await secondAnswer(c);
        } finally {
          c.close();
        }
      }, 30000);
    });
  }
});

/** Answers 413 at once, without reading tsgi.input; anything else: its method and path. */
const refuse: App = (env, start) => {
  if (env.REQUEST_METHOD === 'POST') {
    start('413 Payload Too Large', [
      ['Content-Type', 'text/plain'],
      ['X-Early', 'yes'],
    ]);
    return [`too large: ${env.CONTENT_LENGTH}\n`];
  }
  start('200 OK', [['Content-Type', 'text/plain']]);
  return [`${env.REQUEST_METHOD} ${env.PATH_INFO}\n`];
};

/**
 * The 5 MiB POST through `forward` in a node handler to a backend (`open` starts it and gives
 * its address, `close` stops it) that answers 413 before reading the body.
 */
function forwardSuite(
  protocol: 'fastcgi' | 'scgi' | 'uwsgi',
  open: () => Promise<string>,
  close: () => Promise<void>,
): void {
  let proxy: Proxy;
  let server: Server;
  let port: number;
  const errors: string[] = [];
  beforeAll(async () => {
    proxy = forward({ protocol, address: await open(), onError: (e) => errors.push(e.message) });
    server = createServer(proxy.node);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  }, 30000);
  afterAll(async () => {
    await closeServer(server);
    await proxy.close();
    await close();
    expect(errors).toEqual([]);
  });

  it('a 5 MiB POST: the whole answer arrives, then the next requests on the connection', async () => {
    const c = await RawClient.connect(port);
    try {
      c.write(head('/upload', UPLOAD));
      const uploaded = new Promise((r) => c.socket.write(Buffer.alloc(UPLOAD, 0x61), r));
      await earlyAnswer(c);
      await uploaded;
      let seen = parseResponse(c.bytes())!.rest.length;
      for (const path of ['/a', '/b']) {
        c.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\n\r\n`);
        const at = c.bytes().length - seen;
        const r = await c.until(() => parseResponse(c.bytes().subarray(at)), path);
        expect([r.statusLine, r.body.toString()]).toEqual(['HTTP/1.1 200 OK', `GET ${path}\n`]);
        seen = r.rest.length;
      }
      expect(c.error).toBe(null);
    } finally {
      c.close();
    }
  }, 30000);
}

for (const protocol of ['fastcgi', 'scgi', 'uwsgi'] as const) {
  describe(`forward to tsgi's ${protocol} server, which answers before reading the body`, () => {
    let backend: import('node:net').Server;
    forwardSuite(
      protocol,
      async () => {
        backend =
          protocol === 'fastcgi'
            ? createFastcgiServer(refuse, { log: () => {} })
            : protocol === 'scgi'
              ? createScgiServer(refuse, { log: () => {} })
              : createUwsgiServer(refuse, { log: () => {} });
        await listen(backend, { type: 'tcp', host: '127.0.0.1', port: 0 });
        return `127.0.0.1:${(backend.address() as AddressInfo).port}`;
      },
      () => new Promise((r) => backend.close(() => r())),
    );
  });
}

describe.runIf(uwsgiBin !== null)('forward to uWSGI, which answers before reading the body', () => {
  let uwsgi: Child;
  const ports: Record<string, number> = {};
  beforeAll(async () => {
    ports.uwsgi = await freePort();
    ports.fastcgi = await freePort();
    uwsgi = await startUwsgi(
      uwsgiBin!,
      join(import.meta.dirname, 'wsgi', 'early.py'),
      ports.uwsgi,
      ports.fastcgi,
    );
  }, 30000);
  afterAll(async () => {
    await uwsgi?.stop();
  });
  /* over uwsgi, uWSGI closes the connection with the body unread: its kernel resets it, and a
   * body write can meet the reset before the answer is read */
  it('UwsgiClient: a streamed 5 MiB body uWSGI does not read, ten times: the whole answer each time', async () => {
    const client = new UwsgiClient({ address: `127.0.0.1:${ports.uwsgi}` });
    async function* body(): AsyncGenerator<Uint8Array> {
      for (let n = 0; n < UPLOAD; n += 64 * 1024) yield Buffer.alloc(64 * 1024, 0x61);
    }
    try {
      for (let i = 0; i < 10; i++) {
        const res = await client.request({
          params: {
            REQUEST_METHOD: 'POST',
            PATH_INFO: '/upload',
            CONTENT_LENGTH: String(UPLOAD),
            SERVER_PROTOCOL: 'HTTP/1.1',
          },
          body: body(),
        });
        expect([res.status, res.headers, await text(res.body)]).toEqual([
          413,
          [
            ['Content-Type', 'text/plain'],
            ['X-Early', 'yes'],
          ],
          `too large: ${UPLOAD}\n`,
        ]);
      }
    } finally {
      await client.close();
    }
  }, 30000);
  for (const protocol of ['fastcgi', 'uwsgi'] as const) {
    describe(`over ${protocol}`, () => {
      forwardSuite(
        protocol,
        async () => `127.0.0.1:${ports[protocol]}`,
        async () => {},
      );
    });
  }
});
