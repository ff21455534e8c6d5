/**
 * Request bodies of unknown length (a chunked upload) sent by the SCGI and uwsgi clients and
 * through the proxy: held in memory up to bodyBufferSize, in a temporary file beyond (removed
 * from its directory at once, its descriptor closed on every path), refused past
 * maxBufferedBody with EBODYTOOLARGE / 413. Against tsgi's own SCGI and uwsgi servers.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { request as httpRequest, type Server as HttpServer } from 'node:http';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bytes, echoParams } from '../support/client-request.js';
import {
  ClientError,
  createClient,
  createHttpServer,
  createScgiServer,
  createUwsgiServer,
  forward,
  type App,
  type Client,
} from '../../lib/index.js';
import { listen } from '../../lib/server/listen.js';

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const MiB = 1024 * 1024;

/** Descriptors of this process open on a file in `dir` (Linux; [] elsewhere). */
function openIn(dir: string): string[] {
  if (process.platform !== 'linux') return [];
  const out: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const target = readlinkSync(`/proc/self/fd/${fd}`);
      if (target.startsWith(dir + '/')) out.push(target);
    } catch {
      /* closed meanwhile */
    }
  }
  return out;
}

/** 5 MiB in 80 chunks of 64 KiB, each byte depending on its offset. */
function upload(): Buffer[] {
  const all = Buffer.alloc(5 * MiB);
  for (let i = 0; i < all.length; i++) all[i] = (i * 7 + (i >> 16)) & 0xff;
  const parts: Buffer[] = [];
  for (let o = 0; o < all.length; o += 64 * 1024) parts.push(all.subarray(o, o + 64 * 1024));
  return parts;
}

let gate: Promise<void> = Promise.resolve();
let openGate = (): void => {};
let entered = (): void => {};
/** Waits for `gate`, then reports the body's CONTENT_LENGTH, length and sha256. */
const echo: App = async (env, start) => {
  entered();
  await gate;
  const chunks: Buffer[] = [];
  for await (const c of env['tsgi.input']) chunks.push(c as Buffer);
  const body = Buffer.concat(chunks);
  start('200 OK', [['Content-Type', 'text/plain']]);
  return [`${env.CONTENT_LENGTH ?? '-'} ${body.length} ${sha(body)}`];
};

let dir: string;
const servers: (Server | HttpServer)[] = [];
const clients: { close(): Promise<void> }[] = [];
beforeEach(() => {
  gate = Promise.resolve();
  dir = mkdtempSync(join(tmpdir(), 'tsgi-spool-'));
});
afterEach(async () => {
  openGate();
  entered = () => {};
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const s of servers.splice(0)) {
    (s as HttpServer).closeAllConnections?.();
    await new Promise((r) => s.close(r));
  }
  rmSync(dir, { recursive: true, force: true });
});

async function backend(protocol: 'scgi' | 'uwsgi'): Promise<string> {
  const server =
    protocol === 'scgi'
      ? createScgiServer(echo, { log: () => {} })
      : createUwsgiServer(echo, { log: () => {} });
  await listen(server, { type: 'tcp', host: '127.0.0.1', port: 0 });
  servers.push(server);
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

for (const protocol of ['scgi', 'uwsgi'] as const) {
  describe(`${protocol} client: a body of unknown length`, () => {
    const client = (address: string, o: object = {}): Client => {
      const c = createClient({ protocol, address, tempDir: dir, ...o });
      clients.push(c);
      return c;
    };

    it('5 MiB arrives byte-exact with its CONTENT_LENGTH, through a temporary file that leaves nothing behind', async () => {
      const parts = upload();
      const all = Buffer.concat(parts);
      gate = new Promise((r) => (openGate = r));
      const c = client(await backend(protocol));
      const arrived = new Promise<void>((r) => (entered = r));
      const pending = c.request({ params: echoParams(), body: Readable.from(parts) });
      /* while the backend holds the request (its head and CONTENT_LENGTH were sent once the
       * body was read whole), the body sits in a file already removed from the directory */
      await arrived;
      const held = openIn(dir);
      if (process.platform === 'linux') {
        expect(held).toHaveLength(1);
        expect(held[0]).toMatch(/\/tsgi-body-[0-9a-f]{16} \(deleted\)$/);
      }
      expect(readdirSync(dir)).toEqual([]);
      openGate();
      const res = await pending;
      expect([res.status, (await bytes(res.body)).toString()]).toEqual([
        200,
        `${all.length} ${all.length} ${sha(all)}`,
      ]);
      expect([readdirSync(dir), openIn(dir)]).toEqual([[], []]);
    });

    it('a body under bodyBufferSize stays in memory', async () => {
      const body = Buffer.alloc(100 * 1024, 7);
      const c = client(await backend(protocol));
      const pending = c.request({
        params: echoParams(),
        body: Readable.from([body.subarray(0, 50000), body.subarray(50000)]),
      });
      const res = await pending;
      expect((await bytes(res.body)).toString()).toBe(`${body.length} ${body.length} ${sha(body)}`);
      expect([readdirSync(dir), openIn(dir)]).toEqual([[], []]);
    });

    it('over maxBufferedBody: EBODYTOOLARGE, the temporary file gone', async () => {
      const c = client(await backend(protocol), { maxBufferedBody: 3 * MiB });
      const err = await c
        .request({ params: echoParams(), body: Readable.from(upload()) })
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(ClientError);
      expect([(err as ClientError).code, (err as ClientError).message]).toEqual([
        'EBODYTOOLARGE',
        `a request body of unknown length is over ${3 * MiB} bytes`,
      ]);
      expect([readdirSync(dir), openIn(dir)]).toEqual([[], []]);
    });

    it('aborted while the body is read, or the body failing: the temporary file gone', async () => {
      const c = client(await backend(protocol));
      const controller = new AbortController();
      const parts = upload();
      const slow = async function* () {
        for (const [i, p] of parts.entries()) {
          if (i === 40) controller.abort();
          yield p;
        }
      };
      const aborted = await c
        .request({ params: echoParams(), body: slow(), signal: controller.signal })
        .catch((e: unknown) => e);
      expect((aborted as ClientError).code).toBe('ABORT_ERR');
      expect([readdirSync(dir), openIn(dir)]).toEqual([[], []]);
      const failing = async function* () {
        yield* parts.slice(0, 40);
        throw new Error('the upload broke');
      };
      const broken = await c
        .request({ params: echoParams(), body: failing() })
        .catch((e: unknown) => e);
      expect((broken as Error).message).toBe('the upload broke');
      expect([readdirSync(dir), openIn(dir)]).toEqual([[], []]);
    });

    it('the backend gone before the body is sent: the temporary file gone', async () => {
      const address = await backend(protocol);
      const s = servers.pop()!;
      await new Promise((r) => s.close(r));
      const err = await client(address)
        .request({ params: echoParams(), body: Readable.from(upload()) })
        .catch((e: unknown) => e);
      expect((err as ClientError).code).toBe('ECONNREFUSED');
      expect([readdirSync(dir), openIn(dir)]).toEqual([[], []]);
    });
  });
}

/** A chunked POST (no Content-Length) to the proxy. */
function post(port: number, parts: Buffer[]): Promise<[number, string]> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path: '/up', method: 'POST', agent: false },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve([res.statusCode!, Buffer.concat(chunks).toString()]));
      },
    );
    req.on('error', reject);
    for (const p of parts) req.write(p);
    req.end();
  });
}

describe('forward over SCGI and uwsgi: a chunked upload', () => {
  for (const protocol of ['scgi', 'uwsgi'] as const) {
    it(`over ${protocol}: 5 MiB arrives whole; over maxBufferedBody is 413; no file left`, async () => {
      const address = await backend(protocol);
      for (const [max, expected] of [
        [16 * MiB, 200],
        [4 * MiB, 413],
      ] as const) {
        const errors: string[] = [];
        const proxy = forward({
          protocol,
          address,
          tempDir: dir,
          maxBufferedBody: max,
          onError: (e) => errors.push(e.message),
        });
        clients.push(proxy);
        const front = createHttpServer(proxy.app);
        await new Promise<void>((r) => front.listen(0, '127.0.0.1', r));
        servers.push(front);
        const parts = upload();
        const all = Buffer.concat(parts);
        const [status, text] = await post((front.address() as AddressInfo).port, parts);
        if (expected === 200) {
          expect([status, text, errors]).toEqual([
            200,
            `${all.length} ${all.length} ${sha(all)}`,
            [],
          ]);
        } else {
          expect([status, text, errors]).toEqual([
            413,
            '413 Content Too Large\n',
            [`a request body of unknown length is over ${max} bytes`],
          ]);
        }
        expect([readdirSync(dir), openIn(dir)]).toEqual([[], []]);
      }
    });
  }
});
