/**
 * The uwsgi and FastCGI clients against a real uWSGI (Debian uwsgi-core + python3 plugin)
 * running a WSGI echo app, started by this file on 127.0.0.1 ports it picked.
 */
import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClient, type Client, type ClientProtocol } from '../../lib/index.js';
import { findUwsgi, startUwsgi } from '../support/backends.js';
import { freePort, isCI, missingPeerMessage } from '../support/peers.js';
import type { Child } from '../support/spawn.js';
import { bytes, echoParams } from '../support/client-request.js';

const bin = findUwsgi();
if (bin === null) {
  console.warn(
    `\n!!!!! uwsgi not found (Debian packages uwsgi-core uwsgi-plugin-python3): the uWSGI client` +
      ` tests are SKIPPED${isCI ? ' — and FAIL, because CI=true' : ''} !!!!!\n`,
  );
}
const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

describe.runIf(bin === null && isCI)('uWSGI', () => {
  it('is installed', () => {
    throw new Error(missingPeerMessage('uwsgi', 'uwsgi-core uwsgi-plugin-python3'));
  });
});

describe.runIf(bin !== null)('clients against uWSGI', () => {
  let uwsgi: Child;
  const ports: Record<string, number> = {};
  const clients: Client[] = [];

  beforeAll(async () => {
    ports.uwsgi = await freePort();
    ports.fastcgi = await freePort();
    uwsgi = await startUwsgi(
      bin!,
      join(import.meta.dirname, 'wsgi', 'echo.py'),
      ports.uwsgi,
      ports.fastcgi,
    );
  }, 30000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await uwsgi?.stop();
  });

  for (const protocol of ['uwsgi', 'fastcgi'] as const satisfies readonly ClientProtocol[]) {
    describe(`over ${protocol}`, () => {
      const client = () => {
        const c = createClient({
          protocol,
          address: `127.0.0.1:${ports[protocol]}`,
          stderr: () => {},
        });
        clients.push(c);
        return c;
      };

      it('status, three Set-Cookie headers and a 1 MiB body both ways', async () => {
        const body = Buffer.alloc(1024 * 1024);
        for (let i = 0; i < body.length; i++) body[i] = (i * 13) & 0xff;
        const res = await client().request({
          params: echoParams({ CONTENT_LENGTH: String(body.length) }),
          body,
        });
        expect([res.status, res.statusText]).toEqual([201, 'Created']);
        expect(res.headers).toEqual([
          ['Content-Type', 'application/json'],
          ['Set-Cookie', 'a=1'],
          ['Set-Cookie', 'b=2'],
          ['Set-Cookie', 'c=3'],
        ]);
        expect(JSON.parse((await bytes(res.body)).toString())).toEqual({
          method: 'POST',
          path: '/echo',
          query: 'x=1',
          contentLength: String(body.length),
          test: 'yes',
          length: body.length,
          sha: sha(body),
        });
      });

      it('sequential requests on one client', async () => {
        const c = client();
        for (let i = 0; i < 20; i++) {
          const res = await c.request({ params: echoParams({ PATH_INFO: `/${i}` }) });
          expect(JSON.parse((await bytes(res.body)).toString()).path).toBe(`/${i}`);
        }
      });
    });
  }

  it('uwsgi: a 5 MiB body of unknown length goes through a temporary file, sent with its CONTENT_LENGTH', async () => {
    const c = createClient({ protocol: 'uwsgi', address: `127.0.0.1:${ports.uwsgi}` });
    clients.push(c);
    const parts = Array.from({ length: 80 }, (_, i) => Buffer.alloc(65536, i));
    const all = Buffer.concat(parts);
    const res = await c.request({ params: echoParams(), body: Readable.from(parts) });
    const got = JSON.parse((await bytes(res.body)).toString());
    expect([got.contentLength, got.length, got.sha]).toEqual([
      String(all.length),
      all.length,
      sha(all),
    ]);
  });

  it('uwsgi: over maxBufferedBody is EBODYTOOLARGE', async () => {
    const c = createClient({
      protocol: 'uwsgi',
      address: `127.0.0.1:${ports.uwsgi}`,
      maxBufferedBody: 1000,
    });
    clients.push(c);
    const err = await c
      .request({
        params: echoParams(),
        body: Readable.from([Buffer.alloc(600), Buffer.alloc(600)]),
      })
      .catch((e: unknown) => e);
    expect((err as { code: string }).code).toBe('EBODYTOOLARGE');
  });
});
