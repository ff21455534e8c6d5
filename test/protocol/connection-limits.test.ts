/**
 * Connection hardening of the FastCGI, SCGI and uwsgi servers over both transports: requests
 * are released when their connection ends in any state, the per-connection and server-wide
 * caps refuse one request or one connection (never the listener), and the deadlines close
 * silent, trickling and idle connections. Counts (the server's connections, held head bytes,
 * unfinished requests, /proc/self/fd), not timings, are asserted; the deadlines are short
 * (a few hundred ms) so the tests run quickly.
 */
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { codec, FCGI, type Codec } from '../../lib/codec/index.js';
import type { App } from '../../lib/gateway/types.js';
import { validate } from '../../lib/gateway/validate.js';
import { createFastcgiServer, type FastcgiListener } from '../../lib/protocol/fastcgi.js';
import { createScgiServer } from '../../lib/protocol/scgi.js';
import type { ConnectionLimits, DrainableServer } from '../../lib/protocol/socket.js';
import type { StreamListener } from '../../lib/protocol/scgi-uwsgi-connection.js';
import type { TransportName } from '../../lib/protocol/transport.js';
import { createUwsgiServer } from '../../lib/protocol/uwsgi.js';
import { listen } from '../../lib/server/listen.js';
import { ensureBuilt } from '../support/build.js';
import { FcgiClient, params } from '../support/fcgi-client.js';
import { freePort } from '../support/peers.js';
import { startTsgi } from '../support/process-manager.js';
import type { Child } from '../support/spawn.js';
import { RawClient } from '../support/raw-client.js';
import { netstring, scgiRequest } from '../support/scgi-client.js';
import { eachTransport } from '../support/stream-suite.js';
import { uwsgiHead, uwsgiRequest } from '../support/uwsgi-client.js';

let transport: TransportName = 'node';
let serverCodec: Codec = codec;
const servers: DrainableServer[] = [];
const clients: RawClient[] = [];

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) {
    gatewayOf(s).destroy();
    await new Promise((r) => s.close(r));
  }
});

const TEXT: [string, string][] = [['Content-Type', 'text/plain']];
const hello: App = (env, start) => {
  start('200 OK', TEXT);
  return [`hello ${env.PATH_INFO}`];
};

/** What the tests read of any of the three servers. */
interface GatewayView {
  readonly connections: { readonly size: number };
  headBytes: number;
  unfinished: number;
  destroy(): void;
}
function gatewayOf(s: DrainableServer): GatewayView {
  const o = s as Partial<FastcgiListener & StreamListener>;
  return (o.fastcgi ?? o.gateway)!;
}

/** One protocol as these tests use it. */
interface Proto {
  name: string;
  create(app: App, limits: Partial<ConnectionLimits>, log: (l: string) => void): DrainableServer;
  /** A whole request for `path` that the server answers and then closes. */
  whole(path: string): Buffer;
  /** What a whole answer to whole(path) contains. */
  answer(path: string): string;
  /** The start of a request head of about `size` bytes that never completes. */
  partial(size: number): Buffer;
}

const scgiParams = (path: string) => ['REQUEST_METHOD', 'GET', 'PATH_INFO', path];

const PROTOS: Proto[] = [
  {
    name: 'FastCGI',
    create: (app, limits, log) =>
      createFastcgiServer(validate(app), {
        transport,
        codec: serverCodec,
        log,
        connectionLimits: limits,
      }),
    whole: (path) =>
      Buffer.concat([
        codec.fcgiBeginRequest(1, FCGI.RESPONDER, 0),
        codec.fcgiParams(1, params(path)),
        codec.fcgiStream(FCGI.STDIN, 1, new Uint8Array(0), true),
      ]),
    answer: (path) => `hello ${path}`,
    partial: (size) => {
      const p = codec.fcgiParams(1, ['X_PAD', 'a'.repeat(size)]);
      /* without the empty PARAMS record that would end the stream */
      return Buffer.concat([
        codec.fcgiBeginRequest(1, FCGI.RESPONDER, FCGI.KEEP_CONN),
        p.subarray(0, p.length - 8),
      ]);
    },
  },
  {
    name: 'SCGI',
    create: (app, limits, log) =>
      createScgiServer(validate(app), {
        transport,
        codec: serverCodec,
        log,
        connectionLimits: limits,
      }),
    whole: (path) => scgiRequest(scgiParams(path)),
    answer: (path) => `hello ${path}`,
    partial: (size) => {
      const n = netstring(['CONTENT_LENGTH', '0', 'SCGI', '1', 'X_PAD', 'a'.repeat(size)]);
      return n.subarray(0, n.length - 20);
    },
  },
  {
    name: 'uwsgi',
    create: (app, limits, log) =>
      createUwsgiServer(validate(app), {
        transport,
        codec: serverCodec,
        log,
        connectionLimits: limits,
      }),
    whole: (path) => uwsgiRequest(scgiParams(path)),
    answer: (path) => `hello ${path}`,
    partial: (size) => {
      const h = uwsgiHead(['X_PAD', 'a'.repeat(Math.min(size, 60000))]);
      return h.subarray(0, h.length - 20);
    },
  },
];

async function start(proto: Proto, limits: Partial<ConnectionLimits> = {}, app: App = hello) {
  const logs: string[] = [];
  const server = proto.create(app, limits, (l) => logs.push(l));
  servers.push(server);
  await listen(server, { type: 'tcp', host: '127.0.0.1', port: 0 });
  const port = (server.address() as AddressInfo).port;
  const raw = async (): Promise<RawClient> => {
    const c = await RawClient.connect(port);
    clients.push(c);
    return c;
  };
  const fcgi = async (): Promise<FcgiClient> => {
    const c = await FcgiClient.connect(port);
    clients.push(c);
    return c;
  };
  /** Sends a whole request on a new connection; resolves with everything answered. */
  const ask = async (path: string): Promise<string> => {
    const c = await raw();
    c.write(proto.whole(path));
    await c.until(() => (gone(c) ? true : undefined), 'the answer');
    c.close();
    return c.text();
  };
  return { server, gateway: gatewayOf(server), port, logs, raw, fcgi, ask };
}

const onLinux = process.platform === 'linux';
/** Open descriptors of this process (Linux; -1 elsewhere). */
const fds = (): number => (onLinux ? readdirSync('/proc/self/fd').length : -1);
const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));
/** Waits until `check` holds, for at most `ms` (then the caller's expect fails). */
async function settle(check: () => boolean, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!check() && Date.now() < until) await tick(20);
}
const gone = (c: RawClient) => c.closed || c.ended;

eachTransport('connection hardening', (t, c) => {
  beforeAll(() => {
    transport = t;
    serverCodec = c;
  });

  it('FastCGI: 10,000 BEGIN_REQUEST without PARAMS on one connection, then FIN: the connection closes, other connections are served', async () => {
    const { gateway, fcgi, ask } = await start(PROTOS[0]!, { maxConnRequests: 128 });
    const before = fds();
    const c = await fcgi();
    const flood: Uint8Array[] = [];
    for (let id = 1; id <= 10000; id++) {
      flood.push(codec.fcgiBeginRequest(id, FCGI.RESPONDER, FCGI.KEEP_CONN));
    }
    c.write(Buffer.concat(flood));
    c.socket.end();
    await c.until(() => (c.closed ? true : undefined), 'the server closing the connection');
    /* requests 1..128 were taken (FCGI_MAX_REQS), every later one refused on its own */
    const ends = c.events.filter((e) => e.type === 'end');
    expect(ends.length).toBe(10000 - 128);
    expect(
      ends.every(
        (e, i) =>
          e.type === 'end' && e.requestId === 129 + i && e.protocolStatus === FCGI.OVERLOADED,
      ),
    ).toBe(true);
    await settle(() => gateway.connections.size === 0);
    expect([gateway.connections.size, gateway.unfinished, gateway.headBytes]).toEqual([0, 0, 0]);
    expect((gateway as unknown as { live: number }).live).toBe(0);
    for (const path of ['/next1', '/next2']) expect(await ask(path)).toContain(`hello ${path}`);
    if (onLinux) {
      await settle(() => fds() <= before);
      expect(fds()).toBe(before);
    }
  });

  it('FastCGI: a BEGIN_REQUEST over FCGI_MAX_REQS on one connection gets END_REQUEST(OVERLOADED); the others run', async () => {
    const held: (() => void)[] = [];
    const slow: App = async (env, start) => {
      await new Promise<void>((r) => held.push(r));
      start('200 OK', TEXT);
      return [`done ${env.PATH_INFO}`];
    };
    const { fcgi, ask } = await start(PROTOS[0]!, { maxConnRequests: 2 }, slow);
    const c = await fcgi();
    c.write(codec.fcgiGetValues(['FCGI_MAX_REQS']));
    await c.until(() => c.events.find((e) => e.type === 'getValuesResult'));
    expect(c.events[0]).toEqual({ type: 'getValuesResult', pairs: ['FCGI_MAX_REQS', '2'] });
    for (const id of [1, 2, 3]) c.request(id, params(`/r${id}`), '', { keepConn: true });
    const refused = await c.reply(3);
    expect([refused.stdout.length, refused.protocolStatus]).toEqual([0, FCGI.OVERLOADED]);
    await settle(() => held.length === 2);
    /* another connection is not refused: the cap is per connection */
    const other = ask('/other');
    await settle(() => held.length === 3);
    for (const r of held) r();
    expect((await c.reply(1)).stdout.toString('latin1')).toContain('done /r1');
    expect((await c.reply(2)).stdout.toString('latin1')).toContain('done /r2');
    expect(await other).toContain('done /other');
    /* the connection takes requests again */
    c.request(4, params('/r4'), '', { keepConn: true });
    await settle(() => held.length === 4);
    held[3]!();
    expect((await c.reply(4)).protocolStatus).toBe(FCGI.REQUEST_COMPLETE);
  });

  it('FastCGI: a BEGIN_REQUEST while maxUnfinished requests lack their PARAMS gets OVERLOADED; served once they go', async () => {
    const { fcgi, gateway, ask } = await start(PROTOS[0]!, { maxUnfinished: 2 });
    const a = await fcgi();
    const b = await fcgi();
    a.write(codec.fcgiBeginRequest(1, FCGI.RESPONDER, FCGI.KEEP_CONN));
    b.write(codec.fcgiBeginRequest(1, FCGI.RESPONDER, FCGI.KEEP_CONN));
    await settle(() => gateway.unfinished === 2);
    const c = await fcgi();
    c.request(7, params('/c'));
    const refused = await c.reply(7);
    expect(refused.protocolStatus).toBe(FCGI.OVERLOADED);
    a.close();
    b.close();
    await settle(() => gateway.unfinished === 0);
    expect(gateway.unfinished).toBe(0);
    expect(await ask('/after')).toContain('hello /after');
  });

  it('FastCGI: a kept connection idle for less than the idle timeout stays open and serves again', async () => {
    /* the shorter first-byte and header deadlines do not apply to a kept connection */
    const { fcgi, gateway } = await start(PROTOS[0]!, {
      idleTimeoutMs: 1500,
      firstByteTimeoutMs: 300,
      headerTimeoutMs: 300,
    });
    const c = await fcgi();
    c.request(1, params('/one'), '', { keepConn: true });
    expect((await c.reply(1)).stdout.toString('latin1')).toContain('hello /one');
    await tick(600);
    expect(gone(c)).toBe(false);
    c.request(2, params('/two'), '', { keepConn: true });
    expect((await c.reply(2)).stdout.toString('latin1')).toContain('hello /two');
    /* idle past the timeout: closed by the server */
    await settle(() => gone(c));
    expect(gone(c)).toBe(true);
    await settle(() => gateway.connections.size === 0);
    expect(gateway.connections.size).toBe(0);
  });

  for (const proto of PROTOS) {
    it(`${proto.name}: clients that vanish mid-head (FIN or reset) leave no connection, fd or held byte`, async () => {
      const { gateway, raw, ask } = await start(proto);
      const before = fds();
      const cs: RawClient[] = [];
      for (let i = 0; i < 40; i++) {
        const c = await raw();
        c.write(proto.partial(50_000));
        cs.push(c);
      }
      await settle(() => gateway.connections.size === 40 && gateway.headBytes >= 40 * 45_000);
      expect(gateway.connections.size).toBe(40);
      expect(gateway.headBytes).toBeGreaterThanOrEqual(40 * 45_000);
      cs.forEach((c, i) => (i % 2 === 0 ? c.socket.end() : c.socket.resetAndDestroy()));
      await settle(() => gateway.connections.size === 0 && cs.every((c) => c.closed));
      expect([gateway.connections.size, gateway.headBytes, gateway.unfinished]).toEqual([0, 0, 0]);
      if (onLinux) {
        await settle(() => fds() <= before);
        expect(fds()).toBe(before);
      }
      expect(await ask('/after')).toContain(proto.answer('/after'));
    });

    it(`${proto.name}: silent and trickling connections are closed by their deadlines`, async () => {
      const { gateway, raw, logs, ask } = await start(proto, {
        firstByteTimeoutMs: 300,
        headerTimeoutMs: 400,
      });
      const silent = await raw();
      const trickled = await raw();
      const head = proto.partial(1000);
      let sent = 0;
      const trickle = setInterval(() => {
        if (sent < head.length && !gone(trickled)) trickled.write(head.subarray(sent, ++sent));
      }, 25);
      try {
        await settle(() => gone(silent) && gone(trickled));
      } finally {
        clearInterval(trickle);
      }
      expect([gone(silent), gone(trickled)]).toEqual([true, true]);
      expect(sent).toBeLessThan(head.length);
      expect(logs.some((l) => l.includes('(header timeout)'))).toBe(true);
      await settle(() => gateway.connections.size === 0);
      expect([gateway.connections.size, gateway.unfinished, gateway.headBytes]).toEqual([0, 0, 0]);
      /* a whole request is not affected */
      expect(await ask('/fine')).toContain(proto.answer('/fine'));
    });

    it(`${proto.name}: unfinished heads over maxHeadBytes close the connection that adds them; whole heads still pass`, async () => {
      const { gateway, raw, logs, ask } = await start(proto, { maxHeadBytes: 80_000 });
      const a = await raw();
      a.write(proto.partial(50_000));
      await settle(() => gateway.headBytes >= 45_000);
      const b = await raw();
      b.write(proto.partial(50_000));
      await b.until(() => (gone(b) ? true : undefined), 'the server closing b');
      expect(logs.some((l) => l.includes('unfinished request heads hold more than 80000'))).toBe(
        true,
      );
      expect(gone(a)).toBe(false);
      expect(await ask('/whole')).toContain(proto.answer('/whole'));
      a.close();
      await settle(() => gateway.connections.size === 0);
      expect([gateway.headBytes, gateway.unfinished]).toEqual([0, 0]);
    });
  }

  for (const proto of PROTOS.slice(1)) {
    it(`${proto.name}: a connection that would start one more unfinished head over maxUnfinished is closed`, async () => {
      const { gateway, raw, logs, ask } = await start(proto, { maxUnfinished: 2 });
      const a = await raw();
      const b = await raw();
      a.write(proto.partial(100));
      b.write(proto.partial(100));
      await settle(() => gateway.unfinished === 2);
      const c = await raw();
      c.write(proto.partial(100));
      await c.until(() => (gone(c) ? true : undefined), 'the server closing c');
      expect(logs.some((l) => l.includes('2 request heads are unfinished'))).toBe(true);
      /* more of the same: one line a second sums them up instead of a line each */
      for (let i = 0; i < 2; i++) {
        const more = await raw();
        more.write(proto.partial(100));
        await more.until(() => (gone(more) ? true : undefined), 'the server closing it');
      }
      const summary = '2 more connections closed the same way (unfinished heads cap)';
      await settle(() => logs.includes(summary));
      expect(logs.filter((l) => l.includes('request heads are unfinished'))).toHaveLength(1);
      expect(logs).toContain(summary);
      a.close();
      b.close();
      await settle(() => gateway.unfinished === 0);
      expect(await ask('/after')).toContain(proto.answer('/after'));
    });
  }

  it.runIf(onLinux)('TCP keepalive is on for accepted connections (and off with 0)', async () => {
    for (const ms of [30_000, 0]) {
      const { port, raw, gateway } = await start(PROTOS[1]!, { tcpKeepAliveMs: ms });
      const c = await raw();
      c.write('1');
      await settle(() => gateway.connections.size === 1);
      /* /proc/net/tcp: the server's side has local port `port`; timer 02 is keepalive */
      const hex = `:${port.toString(16).toUpperCase().padStart(4, '0')} `;
      const row = readFileSync('/proc/net/tcp', 'utf8')
        .split('\n')
        .map((l) => l.trim().split(/\s+/))
        .find((f) => f[1]?.endsWith(hex.trimEnd()) && f[3] === '01');
      expect(row?.[5]?.slice(0, 2)).toBe(ms > 0 ? '02' : '00');
    }
  });
});

describe('tsgi serve: the connection options reach the servers', () => {
  const dir = mkdtempSync(join(tmpdir(), 'tsgi-hardening-'));
  const children: Child[] = [];
  let cli = '';
  beforeAll(async () => {
    cli = await ensureBuilt();
    writeFileSync(
      join(dir, 'app.mjs'),
      "export default (env, start) => { start('200 OK', []); return ['ok']; };\n",
    );
  }, 120_000);
  afterEach(async () => {
    for (const c of children.splice(0)) await c.stop();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const workers of [[], ['--workers', '1']]) {
    it(`--fastcgi-max-reqs and --first-byte-timeout ${workers.length ? 'with a master' : 'in one process'}`, async () => {
      const port = await freePort();
      const child = await startTsgi(
        cli,
        [
          'app.mjs',
          '--fastcgi',
          `127.0.0.1:${port}`,
          '--fastcgi-max-reqs',
          '3',
          '--first-byte-timeout',
          '0.3',
          ...workers,
        ],
        { cwd: dir },
      );
      children.push(child);
      const c = await FcgiClient.connect(port);
      clients.push(c);
      c.write(codec.fcgiGetValues(['FCGI_MAX_REQS']));
      await c.until(() => c.events.find((e) => e.type === 'getValuesResult'));
      expect(c.events[0]).toEqual({ type: 'getValuesResult', pairs: ['FCGI_MAX_REQS', '3'] });
      const silent = await RawClient.connect(port);
      clients.push(silent);
      await settle(() => gone(silent));
      expect(gone(silent)).toBe(true);
    }, 30_000);
  }
});
