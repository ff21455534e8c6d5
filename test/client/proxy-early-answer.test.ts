/**
 * A backend that answers before it has read the request body (a script that prints "too large"
 * without reading a 5 MiB POST): the proxy stops sending the body, the client receives the
 * whole answer, and the rest of the upload is read and thrown away within the linger bounds
 * (then the connection is kept), or the connection is closed once the bounds are passed.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createHttpServer, phpFpm, type Proxy } from '../../lib/index.js';
import { findPhpFpm, startPhpFpm } from '../support/backends.js';
import { freePort, isCI, missingPeerMessage } from '../support/peers.js';
import { RawClient } from '../support/raw-client.js';
import type { Child } from '../support/spawn.js';

const ROOT = join(import.meta.dirname, 'php');
const bin = findPhpFpm();

describe.runIf(bin === null && isCI)('php-fpm', () => {
  it('is installed', () => {
    throw new Error(missingPeerMessage('php-fpm', 'php-fpm'));
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
          /* PHP reads a POST body before the script runs, unless told not to */
          params: { PHP_VALUE: 'enable_post_data_reading=Off' },
          onError: (e) => errors.push(e.message),
        });
        [port, close] = await front(php);
      });
      afterAll(async () => {
        await close?.();
        await php?.close();
      });

      it('a 5 MiB POST: the whole answer arrives, then the next request on the connection', async () => {
        const c = await RawClient.connect(port);
        try {
          c.write(head('/early.php', UPLOAD));
          const uploaded = new Promise((r) => c.socket.write(Buffer.alloc(UPLOAD, 0x61), r));
          const first = await c.until(() => parseResponse(c.bytes()), 'the answer');
          expect(c.error).toBe(null);
          expect(first.statusLine).toBe('HTTP/1.1 413 Payload Too Large');
          expect(stable(first.headers)).toEqual([
            ['content-type', 'text/plain'],
            ['x-early', 'yes'],
          ]);
          expect(first.body.toString('latin1')).toBe(`too large: ${UPLOAD}\n`);
          await uploaded;
          c.write('GET /hello.php HTTP/1.1\r\nHost: localhost\r\n\r\n');
          const second = await c.until(
            () => parseResponse(parseResponse(c.bytes())!.rest),
            'the second answer',
          );
          expect([second.statusLine, second.body.toString()]).toEqual([
            'HTTP/1.1 200 OK',
            'Hello, world!\n',
          ]);
          expect(c.error).toBe(null);
        } finally {
          c.close();
        }
      }, 30000);
    });
  }
});
