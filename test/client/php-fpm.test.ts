/**
 * The FastCGI client against a real php-fpm (Debian php-fpm) started by this file with its own
 * configuration: one pool on 127.0.0.1, one on a unix socket, one recycling its worker every
 * 5 requests (pm.max_requests=5).
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ClientError, FastcgiClient, type ClientResponse } from '../../lib/index.js';
import { findPhpFpm, startPhpFpm } from '../support/backends.js';
import { freePort, isCI, missingPeerMessage } from '../support/peers.js';
import type { Child } from '../support/spawn.js';
import { bytes } from '../support/client-request.js';

const ROOT = join(import.meta.dirname, 'php');
const bin = findPhpFpm();
if (bin === null) {
  console.warn(
    `\n!!!!! php-fpm not found (Debian package php-fpm): the php-fpm client tests are SKIPPED` +
      `${isCI ? ' — and FAIL, because CI=true' : ''} !!!!!\n`,
  );
}

function params(script: string, extra: Record<string, string> = {}): Record<string, string> {
  const q = script.indexOf('?');
  const name = q === -1 ? script : script.slice(0, q);
  return {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: 'localhost',
    SERVER_PORT: '80',
    REQUEST_METHOD: 'GET',
    SCRIPT_NAME: name,
    SCRIPT_FILENAME: join(ROOT, name),
    DOCUMENT_ROOT: ROOT,
    REQUEST_URI: script,
    QUERY_STRING: q === -1 ? '' : script.slice(q + 1),
    ...extra,
  };
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe.runIf(bin === null && isCI)('php-fpm', () => {
  it('is installed', () => {
    throw new Error(missingPeerMessage('php-fpm', 'php-fpm'));
  });
});

describe.runIf(bin !== null)('FastCGI client against php-fpm', () => {
  let dir: string;
  let fpm: Child;
  let tcp: string;
  let unix: string;
  let recycling: string;
  const clients: FastcgiClient[] = [];
  const client = (
    address: string,
    o: Partial<ConstructorParameters<typeof FastcgiClient>[0]> = {},
  ) => {
    const c = new FastcgiClient({ address, stderr: () => {}, ...o });
    clients.push(c);
    return c;
  };

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsgi-client-fpm-'));
    tcp = `127.0.0.1:${await freePort()}`;
    unix = join(dir, 'fpm.sock');
    recycling = `127.0.0.1:${await freePort()}`;
    fpm = await startPhpFpm(bin!, dir, [
      { name: 'tcp', listen: tcp, children: 2 },
      { name: 'unix', listen: unix, children: 2 },
      { name: 'recycling', listen: recycling, children: 1, maxRequests: 5 },
    ]);
  }, 30000);

  /* a kept connection holds a php-fpm worker: every test closes the clients it made */
  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => c.close()));
  });

  afterAll(async () => {
    await fpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const where of ['tcp', 'unix'] as const) {
    describe(`over ${where}`, () => {
      const addr = () => (where === 'tcp' ? tcp : `unix:${unix}`);

      it('binary output arrives byte for byte', async () => {
        const res = await client(addr()).request({ params: params('/binary.php') });
        const body = await bytes(res.body);
        const all = Buffer.alloc(256);
        for (let i = 0; i < 256; i++) all[i] = i;
        expect([res.status, res.headers]).toEqual([
          200,
          [['Content-Type', 'application/octet-stream']],
        ]);
        expect(body.equals(Buffer.concat(Array(1024).fill(all)))).toBe(true);
      });

      it('three Set-Cookie headers stay three, a colon in a value stays', async () => {
        const res = await client(addr()).request({ params: params('/cookies.php') });
        expect(res.headers.filter(([n]) => n.toLowerCase() !== 'content-type')).toEqual([
          ['Set-Cookie', 'a=1'],
          ['Set-Cookie', 'b=2'],
          ['Set-Cookie', 'c=3'],
          ['X-Colon', 'a:b: c'],
        ]);
        expect((await bytes(res.body)).toString()).toBe('three cookies\n');
      });

      it('a 5 MiB POST is read whole by PHP (STDIN in records of at most 65535 bytes)', async () => {
        const body = Buffer.alloc(5 * 1024 * 1024);
        for (let i = 0; i < body.length; i++) body[i] = (i * 7 + (i >> 11)) & 0xff;
        const res = await client(addr()).request({
          params: params('/upload.php', {
            REQUEST_METHOD: 'POST',
            CONTENT_TYPE: 'application/octet-stream',
            CONTENT_LENGTH: String(body.length),
          }),
          body,
        });
        expect((await bytes(res.body)).toString()).toBe(
          `${body.length} ${sha(body)} ${body.length}\n`,
        );
      });
    });
  }

  it('stderr goes to the logger and the response is still answered', async () => {
    const logged: string[] = [];
    const c = client(tcp, { stderr: (b) => logged.push(b.toString()) });
    const res = await c.request({ params: params('/stderr.php') });
    expect([res.status, (await bytes(res.body)).toString()]).toEqual([200, 'still answered\n']);
    expect(logged.join('')).toContain('a message for the log');
  });

  it('a script sleeping past the read timeout fails with ETIMEDOUT', async () => {
    const c = client(tcp, { readTimeout: 300 });
    const err = await c.request({ params: params('/sleep.php?s=2') }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ClientError);
    expect((err as ClientError).code).toBe('ETIMEDOUT');
  });

  it('a script sleeping past the total timeout fails with ETIMEDOUT', async () => {
    const c = client(tcp, { timeout: 300 });
    const err = await c.request({ params: params('/sleep.php?s=2') }).catch((e: unknown) => e);
    expect((err as ClientError).code).toBe('ETIMEDOUT');
  });

  it('a worker dying mid-response ends the body with ECONNRESET', async () => {
    const res = await client(tcp).request({ params: params('/die.php') });
    expect([res.status, res.headers]).toEqual([
      200,
      [
        ['Content-Length', '1000000'],
        ['Content-type', 'text/html'],
      ],
    ]);
    let got = 0;
    const err = await (async () => {
      for await (const c of res.body) got += (c as Buffer).length;
    })().catch((e: unknown) => e);
    expect((err as ClientError).code).toBe('ECONNRESET');
    /* Part of what PHP flushed before it died: the kernel drops what the killed worker's
       socket had not sent yet (under load, often the second 64 KiB record), and PHP's FastCGI
       buffer may keep the last few KiB. */
    expect(got).toBeGreaterThan(0);
    expect(got).toBeLessThanOrEqual(100000);
  });

  it('an unknown script: php-fpm says "Primary script unknown" on stderr and 404', async () => {
    const logged: string[] = [];
    const c = client(tcp, { stderr: (b) => logged.push(b.toString()) });
    const res = await c.request({ params: params('/no-such.php') });
    expect(res.status).toBe(404);
    expect(logged.join('')).toContain('Primary script unknown');
    await bytes(res.body);
  });

  it('keeps one connection for sequential requests', async () => {
    const c = client(tcp);
    const pids = new Set<number>();
    for (let i = 0; i < 10; i++) {
      const res = await c.request({ params: params('/info.php') });
      pids.add(JSON.parse((await bytes(res.body)).toString()).pid);
    }
    expect([c.connections, pids.size]).toEqual([1, 1]);
  });

  it('pm.max_requests=5: 200 sequential requests succeed while workers are recycled', async () => {
    const c = client(recycling);
    const pids = new Set<number>();
    for (let i = 0; i < 200; i++) {
      const res = await c.request({ params: params('/info.php') });
      expect(res.status).toBe(200);
      pids.add(JSON.parse((await bytes(res.body)).toString()).pid);
    }
    /* every 5 requests a new worker: 40 of them */
    expect(pids.size).toBe(40);
  }, 60000);

  it('a refused connection fails with ECONNREFUSED', async () => {
    const c = client(`127.0.0.1:${await freePort()}`);
    const err = await c.request({ params: params('/hello.php') }).catch((e: unknown) => e);
    expect((err as ClientError).code).toBe('ECONNREFUSED');
  });

  it('two concurrent requests with maxConcurrent 1 and maxQueue 0: the second is refused', async () => {
    const c = client(tcp, { maxConcurrent: 1, maxQueue: 0 });
    const first = c.request({ params: params('/sleep.php?s=1') });
    const err = await c.request({ params: params('/hello.php') }).catch((e: unknown) => e);
    expect((err as ClientError).code).toBe('EQUEUEFULL');
    const res: ClientResponse = await first;
    expect((await bytes(res.body)).toString()).toBe('woke\n');
  });

  it('queued requests run in turn with maxConcurrent 1', async () => {
    const c = client(tcp, { maxConcurrent: 1 });
    const all = await Promise.all(
      Array.from({ length: 5 }, () =>
        c.request({ params: params('/hello.php') }).then((r) => bytes(r.body)),
      ),
    );
    expect(all.map(String)).toEqual(Array(5).fill('Hello, world!\n'));
    expect(c.connections).toBe(1);
  });
});
