/**
 * The one-step path of the native transport (lib/protocol/transport.ts, native/transport): a
 * connection whose whole SCGI or uwsgi request is there when it is accepted is read at once and
 * answered with one write and a close; everything else falls back to the streaming path. The
 * requests here are written while the server is not accepting yet (the socket listens, the
 * server starts on it afterwards), so that they wait whole in the kernel as behind nginx;
 * transportCounts() tells which path each connection took. Every test runs on node:net too,
 * where the same bytes must come back.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import type { Codec } from '../../lib/codec/index.js';
import type { App } from '../../lib/gateway/types.js';
import { bindFdNow, socketCalls } from '../../lib/protocol/listener.js';
import type { StreamListener } from '../../lib/protocol/scgi-uwsgi-connection.js';
import { transportCounts, type TransportName } from '../../lib/protocol/transport.js';
import { RawClient } from '../support/raw-client.js';
import { eachTransport, readAll, TEXT, tick, type StreamKind } from '../support/stream-suite.js';
import { SCGI, UWSGI } from '../support/stream-kinds.js';

const head = (kind: StreamKind, len: number | null): string =>
  `${kind.statusLine('200 OK')}\r\nContent-Type: text/plain\r\n` +
  (len === null ? '' : `Content-Length: ${len}\r\n`) +
  '\r\n';

const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');

/** A listening socket nobody accepts on yet, and the clients queued on it. */
interface Queue {
  port: number;
  fd: number;
  /** Connects and writes `bytes` (resolves once the kernel took them). */
  send(bytes: Buffer): Promise<RawClient>;
}

eachTransport('one step', (t: TransportName, codec: Codec) => {
  const servers: StreamListener[] = [];
  const clients: RawClient[] = [];
  const logs: string[] = [];

  function queue(): Queue {
    const calls = socketCalls();
    if (calls === null) throw new Error('the addon cannot bind sockets');
    const bound = bindFdNow(calls, { host: '127.0.0.1', port: 0 });
    const port = calls.localAddress(bound.fd)![1];
    return {
      port,
      fd: bound.fd,
      async send(bytes: Buffer): Promise<RawClient> {
        const c = await RawClient.connect(port);
        clients.push(c);
        await new Promise<void>((resolve, reject) =>
          c.socket.write(bytes, (err) => (err ? reject(err) : resolve())),
        );
        return c;
      },
    };
  }

  /** Starts `kind`'s server for `app` on the queue's socket (which it owns from then on). */
  async function serve(kind: StreamKind, app: App, q: Queue): Promise<StreamListener> {
    const server = kind.create(app, {
      log: (l) => logs.push(l),
      errors: process.stderr,
      transport: t,
      codec,
    });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen({ fd: q.fd }, resolve));
    return server;
  }

  /** transportCounts() on the native transport; null (nothing counted) on node:net. */
  const counts = (oneStep: number, streamed: number) =>
    t === 'native' ? { oneStep, streamed } : null;

  const hello: App = (env, start) => {
    start('200 OK', TEXT);
    return [`hello ${env.PATH_INFO}`];
  };

  async function stopAll(): Promise<void> {
    for (const c of clients.splice(0)) c.close();
    for (const s of servers.splice(0)) {
      s.gateway.destroy();
      await new Promise((r) => s.close(r));
    }
    logs.length = 0;
  }

  describe.each([SCGI, UWSGI])('$title', (kind) => {
    it('answers whole requests queued before accept in one step, exact bytes', async () => {
      try {
        const q = queue();
        const sent = await Promise.all(
          ['/a', '/b', '/c'].map((p) => q.send(kind.request(kind.params(p)))),
        );
        const echo = await q.send(kind.request(kind.params('/echo', 'POST'), 'a\x00b\xffc'));
        const server = await serve(
          kind,
          async (env, start) => {
            if (env.PATH_INFO !== '/echo') return hello(env, start);
            const body = await readAll(env);
            start('200 OK', TEXT);
            return [Buffer.concat([Buffer.from('echo '), body])];
          },
          q,
        );
        for (const [i, c] of sent.entries()) {
          await c.serverEnded();
          const text = `hello /${'abc'[i]}`;
          expect(c.text()).toBe(head(kind, text.length) + text);
        }
        await echo.serverEnded();
        expect(echo.text()).toBe(head(kind, 10) + 'echo a\x00b\xffc');
        expect(transportCounts(server)).toEqual(counts(4, 0));
        expect(logs).toEqual([]);
      } finally {
        await stopAll();
      }
    });

    it('a body read after later connections were read is intact, and so are chunks kept by a data listener', async () => {
      try {
        const q = queue();
        /* a body the app reads only after the server read the connections queued behind it */
        const body = Buffer.from(Array.from({ length: 600 }, (_, i) => (i * 31 + 7) & 0xff));
        const first = kind.request(kind.params('/late-read', 'POST'), body);
        const late = await q.send(first);
        const later = kind.request(kind.params(`/${'z'.repeat(700)}`, 'POST'), 'Z'.repeat(900));
        const others = await Promise.all([1, 2, 3].map(() => q.send(later)));
        const seen: Buffer[] = [];
        const server = kind.create(
          async (env, start) => {
            if (env.PATH_INFO === '/late-read') {
              while (seen.length < 3) await tick(5);
              const got = await readAll(env);
              start('200 OK', TEXT);
              return [sha256(got)];
            }
            seen.push(await readAll(env));
            start('200 OK', TEXT);
            return ['ok'];
          },
          { log: (l) => logs.push(l), errors: process.stderr, transport: t, codec },
        );
        servers.push(server);
        /* every connection's chunks, kept past the read that brought them */
        const kept: Buffer[][] = [];
        server.on('connection', (socket: { on(e: 'data', f: (c: Buffer) => void): void }) => {
          const mine: Buffer[] = [];
          kept.push(mine);
          socket.on('data', (chunk) => mine.push(chunk));
        });
        await new Promise<void>((resolve) => server.listen({ fd: q.fd }, resolve));
        await late.serverEnded();
        for (const c of others) await c.serverEnded();
        expect(late.text()).toBe(head(kind, 64) + sha256(body));
        for (const c of others) expect(c.text()).toBe(head(kind, 2) + 'ok');
        expect(seen.map((b) => b.toString('latin1'))).toEqual(Array(3).fill('Z'.repeat(900)));
        expect(kept.map((chunks) => Buffer.concat(chunks).toString('latin1'))).toEqual(
          [first, later, later, later].map((b) => b.toString('latin1')),
        );
        expect(logs).toEqual([]);
      } finally {
        await stopAll();
      }
    });

    it('deferred accept: a request sent a moment after the connect is still answered in one step', async () => {
      try {
        for (const deferAcceptMs of [1000, 0]) {
          const server = kind.create(hello, {
            log: (l) => logs.push(l),
            errors: process.stderr,
            transport: t,
            codec,
            connectionLimits: { deferAcceptMs },
          });
          servers.push(server);
          await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
          const c = await RawClient.connect((server.address() as { port: number }).port);
          clients.push(c);
          /* the request comes a moment after the connect: deferred, the kernel hands the
             connection over with it; accepted at once, the first read finds nothing */
          await tick(50);
          c.write(kind.request(kind.params('/later')));
          await c.serverEnded();
          expect(c.text()).toBe(head(kind, 12) + 'hello /later');
          expect(transportCounts(server)).toEqual(deferAcceptMs > 0 ? counts(1, 0) : counts(0, 1));
        }
        expect(logs).toEqual([]);
      } finally {
        await stopAll();
      }
    });

    it('falls back for a request trickled in pieces', async () => {
      try {
        const q = queue();
        const req = kind.request(kind.params('/drip', 'POST'), 'xyz');
        const c = await q.send(req.subarray(0, 5));
        const server = await serve(
          kind,
          async (env, start) => {
            const body = await readAll(env);
            start('200 OK', TEXT);
            return [`${env.PATH_INFO} ${body.toString('latin1')}`];
          },
          q,
        );
        await tick(30);
        await c.trickle(req.subarray(5), 7);
        await c.serverEnded();
        expect(c.text()).toBe(head(kind, 9) + '/drip xyz');
        expect(transportCounts(server)).toEqual(counts(0, 1));
        expect(logs).toEqual([]);
      } finally {
        await stopAll();
      }
    });

    it('falls back for a body larger than one read, every byte in order', async () => {
      try {
        const q = queue();
        const body = Buffer.alloc(300 * 1024);
        for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
        const c = await q.send(kind.request(kind.params('/big', 'POST'), body));
        const server = await serve(
          kind,
          async (env, start) => {
            const got = await readAll(env);
            start('200 OK', TEXT);
            return [`${got.length} ${sha256(got)}`];
          },
          q,
        );
        await c.serverEnded();
        const text = `${body.length} ${sha256(body)}`;
        expect(c.text()).toBe(head(kind, text.length) + text);
        expect(transportCounts(server)).toEqual(counts(0, 1));
      } finally {
        await stopAll();
      }
    });

    it('falls back for a streamed response', async () => {
      try {
        const q = queue();
        const c = await q.send(kind.request(kind.params('/stream')));
        const server = await serve(
          kind,
          (_env, start) => {
            start('200 OK', TEXT);
            return (async function* () {
              yield 'one ';
              await tick(5);
              yield 'two';
            })();
          },
          q,
        );
        await c.serverEnded();
        expect(c.text()).toBe(head(kind, null) + 'one two');
        expect(transportCounts(server)).toEqual(counts(0, 1));
      } finally {
        await stopAll();
      }
    });

    it('queues what a slow reader does not take of a whole answer, every byte in order', async () => {
      try {
        const q = queue();
        const big = Buffer.alloc(16 * 1024 * 1024);
        for (let i = 0; i < big.length; i += 4096) big.writeUInt32BE(i, i);
        const c = await q.send(kind.request(kind.params('/slow')));
        c.socket.pause();
        const server = await serve(
          kind,
          (_env, start) => {
            start('200 OK', TEXT);
            return [big];
          },
          q,
        );
        await tick(100);
        c.socket.resume();
        await c.serverEnded();
        const all = c.bytes();
        const prefix = head(kind, big.length);
        expect(all.subarray(0, prefix.length).toString('latin1')).toBe(prefix);
        expect(all.length).toBe(prefix.length + big.length);
        expect(sha256(all.subarray(prefix.length))).toBe(sha256(big));
        expect(transportCounts(server)).toEqual(counts(0, 1));
        expect(logs).toEqual([]);
      } finally {
        await stopAll();
      }
    });

    it('a peer that resets before or while being answered is not logged; the next is served', async () => {
      try {
        const q = queue();
        /* reset with the whole request queued: the server's first read may find it gone */
        const early = await q.send(kind.request(kind.params('/early')));
        early.socket.resetAndDestroy();
        /* reset while its answer is being written (the app answers a little later) */
        const late = await q.send(kind.request(kind.params('/late')));
        const next = await q.send(kind.request(kind.params('/next')));
        let answered = 0;
        const server = await serve(
          kind,
          async (env, start) => {
            if (env.PATH_INFO === '/late') {
              late.socket.resetAndDestroy();
              await tick(20);
              answered++;
            }
            start('200 OK', TEXT);
            return [env.PATH_INFO === '/late' ? Buffer.alloc(1024 * 1024, 0x61) : 'ok'];
          },
          q,
        );
        await next.serverEnded();
        await tick(60);
        expect(answered).toBe(1);
        expect(next.text()).toBe(head(kind, 2) + 'ok');
        expect(logs).toEqual([]);
        const n = transportCounts(server);
        /* /late streamed (no answer within its first read); /next in one step; /early too if
           its bytes were still there when accepted (else it counts in neither) */
        if (n !== null) {
          expect(n.streamed).toBe(1);
          expect([1, 2]).toContain(n.oneStep);
        }
      } finally {
        await stopAll();
      }
    });
  });
});
