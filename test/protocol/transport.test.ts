/**
 * The connection transports of the SCGI and uwsgi servers (lib/protocol/transport.ts): every
 * test runs over the native transport and over node:net, with exact bytes: trickled requests,
 * backpressure both ways, a peer that resets, connections that never send a request, unix
 * sockets and inherited fds, drain(), one async resource per connection, and how
 * TSGI_TRANSPORT selects the transport. Under CI=true on Linux the native transport must be
 * the one in use.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { existsSync } from 'node:fs';
import { connect, type AddressInfo, type Server } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { codec, type Codec } from '../../lib/codec/index.js';
import type { Environ } from '../../lib/gateway/types.js';
import { createFastcgiServer } from '../../lib/protocol/fastcgi.js';
import { createScgiServer } from '../../lib/protocol/scgi.js';
import { createUwsgiServer } from '../../lib/protocol/uwsgi.js';
import type { StreamListener } from '../../lib/protocol/scgi-uwsgi-connection.js';
import {
  nativeTransport,
  selectedTransport,
  serverTransport,
  type TransportName,
} from '../../lib/protocol/transport.js';
import { guardServer, parseAllowList } from '../../lib/server/allow.js';
import { bindSocket, listen } from '../../lib/server/listen.js';
import { ensureBuilt, ROOT } from '../support/build.js';
import { RawClient } from '../support/raw-client.js';
import { FcgiClient, params as fcgiParams } from '../support/fcgi-client.js';
import { scgiRequest } from '../support/scgi-client.js';
import {
  eachTransport,
  readAll,
  sha256,
  streamServers,
  TEXT,
  tick,
  type StreamKind,
} from '../support/stream-suite.js';
import { SCGI, UWSGI } from '../support/stream-kinds.js';

const isCI = process.env.CI === 'true' || process.env.CI === '1';

const head = (kind: StreamKind, len: number | null): string =>
  `${kind.statusLine('200 OK')}\r\nContent-Type: text/plain\r\n` +
  (len === null ? '' : `Content-Length: ${len}\r\n`) +
  '\r\n';

/** Waits until `check()` is true (polling), failing after `ms`. */
async function until(check: () => boolean, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick(5);
  }
}

function connections(server: Server): Promise<number> {
  return new Promise((resolve, reject) =>
    server.getConnections((err, n) => (err ? reject(err) : resolve(n))),
  );
}

describe('transport selection', () => {
  const { name: transport, reason: transportReason } = selectedTransport();
  it(`reports the transport in use (${transport}: ${transportReason})`, () => {
    expect(['native', 'node']).toContain(transport);
    if (process.env.TSGI_TRANSPORT === 'node') expect(transport).toBe('node');
    else if (nativeTransport.available && codec.name === 'native') expect(transport).toBe('native');
    else expect(transport).toBe('node');
  });

  it.runIf(isCI && process.platform === 'linux')(
    'CI on Linux: the native transport is active (no silent fallback)',
    () => {
      expect(nativeTransport.reason).toBe('');
      expect(nativeTransport.available).toBe(true);
      expect(process.env.TSGI_TRANSPORT ?? '').not.toBe('node');
      expect(transport).toBe('native');
    },
  );

  it('TSGI_TRANSPORT=node|native forces one, anything else is an error; TSGI_CODEC=ts uses node:net', async () => {
    await ensureBuilt();
    const url = pathToFileURL(join(ROOT, 'dist', 'protocol', 'transport.js')).href;
    const run = (env: Record<string, string>) => {
      const r = spawnSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const t = await import(${JSON.stringify(url)}); const s = t.selectedTransport(); if (s.problem) { process.stderr.write(s.problem.message); process.exit(1); } process.stdout.write(s.name);`,
        ],
        { env: { ...process.env, TSGI_TRANSPORT: '', TSGI_CODEC: '', ...env }, encoding: 'utf8' },
      );
      return { status: r.status, out: r.stdout, err: r.stderr };
    };
    expect(run({ TSGI_TRANSPORT: 'node' })).toMatchObject({ status: 0, out: 'node' });
    const bad = run({ TSGI_TRANSPORT: 'uv' });
    expect(bad.status).not.toBe(0);
    expect(bad.err).toContain('TSGI_TRANSPORT must be "native" or "node", not "uv"');
    expect(run({ TSGI_CODEC: 'ts' })).toMatchObject({ status: 0, out: 'node' });
    if (nativeTransport.available) {
      expect(run({})).toMatchObject({ status: 0, out: 'native' });
      expect(run({ TSGI_TRANSPORT: 'native', TSGI_CODEC: 'ts' })).toMatchObject({
        status: 0,
        out: 'native',
      });
    } else {
      const forced = run({ TSGI_TRANSPORT: 'native' });
      expect(forced.status).not.toBe(0);
      expect(forced.err).toContain('TSGI_TRANSPORT=native but the native transport is unavailable');
    }
  });
});

eachTransport('transport', (t: TransportName, serverCodec: Codec) => {
  it('a worker thread serving with open connections can be terminated (the addon is context-aware)', async () => {
    await ensureBuilt();
    const index = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;
    const mod = pathToFileURL(join(ROOT, 'dist', 'protocol', 'transport.js')).href;
    const source = `
const { parentPort } = require('node:worker_threads');
(async () => {
  const m = await import(${JSON.stringify(index)});
  const t = await import(${JSON.stringify(mod)});
  const s = m.createScgiServer((env, start) => {
    start('200 OK', [['Content-Type', 'text/plain']]);
    return ['in a worker ' + env.PATH_INFO];
  }, { transport: ${JSON.stringify(t)}, connectionLimits: { deferAcceptMs: 0 } });
  s.listen(0, '127.0.0.1', () =>
    parentPort.postMessage({ port: s.address().port, transport: t.serverTransport(s) }));
})();`;
    for (let round = 0; round < 2; round++) {
      const worker = new Worker(source, { eval: true });
      const exited = new Promise<number>((resolve) => worker.on('exit', resolve));
      const { port, transport: used } = await new Promise<{ port: number; transport: string }>(
        (resolve, reject) => {
          worker.once('message', resolve);
          worker.once('error', reject);
        },
      );
      expect(used).toBe(t);
      const c = await RawClient.connect(port);
      c.write(SCGI.request(SCGI.params('/w')));
      await c.serverEnded();
      expect(c.text()).toBe(head(SCGI, 14) + 'in a worker /w');
      /* left open: a connection that sent nothing, and one in the middle of its header */
      const silent = await RawClient.connect(port);
      const partial = await RawClient.connect(port);
      partial.write('70:CONTENT_LENGTH');
      await tick(30);
      await worker.terminate();
      expect(await exited).toBe(1);
      /* the thread's sockets are closed with it */
      await silent.serverEnded();
      await partial.serverEnded();
      for (const x of [c, silent, partial]) x.close();
    }
  });

  it('bytes arriving while a worker thread is torn down reach no JavaScript (async_hooks on)', async () => {
    await ensureBuilt();
    const index = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;
    /* In a child process, because Node prints its fatal reports straight to fd 2. An init hook
       makes every new async context run JavaScript: while Node tears a worker down it forbids
       that, and the transport once made contexts then ("illegal access" report). Clients keep
       sending header bytes while each worker is terminated. */
    const worker = `
const { parentPort } = require('node:worker_threads');
require('node:async_hooks').createHook({ init() {} }).enable();
(async () => {
  const m = await import(${JSON.stringify(index)});
  const s = m.createScgiServer((env, start) => { start('200 OK', []); return []; },
    { transport: ${JSON.stringify(t)} });
  s.listen(0, '127.0.0.1', () => parentPort.postMessage(s.address().port));
})();`;
    const main = `
const { Worker } = require('node:worker_threads');
const net = require('node:net');
(async () => {
  const codes = [];
  for (let round = 0; round < 8; round++) {
    const w = new Worker(${JSON.stringify(worker)}, { eval: true });
    const port = await new Promise((resolve, reject) => { w.once('message', resolve); w.once('error', reject); });
    let stop = false;
    const socks = [];
    const spam = () => {
      if (stop) return;
      for (let i = 0; i < 4; i++) {
        const c = net.connect(port, '127.0.0.1');
        c.on('error', () => {});
        c.on('connect', () => {
          c.write('60000:');
          const t = setInterval(() => (stop || c.destroyed ? clearInterval(t) : c.write('a')), 1);
        });
        socks.push(c);
      }
      setTimeout(spam, 2);
    };
    spam();
    await new Promise((r) => setTimeout(r, 60));
    codes.push(await w.terminate());
    stop = true;
    for (const c of socks) c.destroy();
  }
  console.log(JSON.stringify(codes));
})();`;
    const r = spawnSync(process.execPath, ['-e', main], { encoding: 'utf8', timeout: 60_000 });
    expect(r.stderr).not.toContain('illegal access');
    expect(r.stderr).not.toContain('FATAL');
    expect([r.status, r.stdout.trim()]).toEqual([0, JSON.stringify(Array(8).fill(1))]);
  });

  it('peers that reset mid-request or mid-response are not logged as errors of ours', async () => {
    const lines: string[] = [];
    const server = createScgiServer(
      (env, startResponse) => {
        startResponse('200 OK', [['Content-Type', 'text/plain']]);
        return [Buffer.alloc(200_000, 97)];
      },
      { transport: t, codec: serverCodec, log: (l) => lines.push(l) },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const port = (server.address() as AddressInfo).port;
    const request = scgiRequest(['REQUEST_METHOD', 'GET', 'REQUEST_URI', '/', 'SCGI', '1']);
    const one = (i: number) =>
      new Promise<void>((resolve) => {
        const c = connect(port, '127.0.0.1');
        c.on('error', () => {});
        c.on('close', () => resolve());
        c.on('connect', () => {
          /* half of them: part of the header; the others: the whole request; then RST */
          c.write(i % 2 === 0 ? request.subarray(0, 10) : request);
          setTimeout(() => c.resetAndDestroy(), i % 5);
        });
      });
    for (let batch = 0; batch < 10; batch++) {
      await Promise.all(Array.from({ length: 40 }, (_, i) => one(i)));
    }
    await new Promise((r) => server.close(r));
    expect(lines.filter((l) => /ENOTCONN|EPIPE|ECONNRESET/.test(l))).toEqual([]);
  });

  const { start, dir } = streamServers(SCGI, t, serverCodec);
  const uwsgi = streamServers(UWSGI, t, serverCodec);

  /** The server runs on the transport under test. */
  const onTransport = (server: StreamListener): void => expect(serverTransport(server)).toBe(t);

  it('serves a request trickled one byte at a time, body included (SCGI and uwsgi)', async () => {
    for (const [kind, starter] of [
      [SCGI, start],
      [UWSGI, uwsgi.start],
    ] as const) {
      const { server, client } = await starter(async (env, begin) => {
        const body = await readAll(env);
        begin('200 OK', TEXT);
        return [`${env.REQUEST_METHOD} ${env.PATH_INFO} [${body.toString('latin1')}]`];
      });
      onTransport(server);
      const c = await client();
      await c.trickle(kind.request(kind.params('/drip', 'POST'), 'a\x00b\xffc'), 1);
      await c.serverEnded();
      const text = 'POST /drip [a\x00b\xffc]';
      expect(c.text()).toBe(head(kind, text.length) + text);
      expect(c.error).toBeNull();
    }
  });

  it('sends a 10 MiB response to a slow reader with backpressure, every byte in order', async () => {
    let pulled = 0;
    const chunks = 160;
    const size = 64 * 1024;
    const { server, client } = await start((_env, begin) => {
      begin('200 OK', TEXT);
      return (function* () {
        for (let i = 0; i < chunks; i++) {
          pulled++;
          const b = Buffer.alloc(size, i & 0xff);
          b.writeUInt32BE(i, 0);
          yield b;
        }
      })();
    });
    onTransport(server);
    const expected = Buffer.concat(
      Array.from({ length: chunks }, (_, i) => {
        const b = Buffer.alloc(size, i & 0xff);
        b.writeUInt32BE(i, 0);
        return b;
      }),
    );
    const c = await client();
    c.socket.pause();
    c.write(SCGI.request(SCGI.params('/big')));
    await tick(300);
    /* the kernel's buffers hold some; the server must not have pulled the whole body */
    expect(pulled).toBeLessThan(chunks / 2);
    /* read slowly: a pause after every chunk received */
    c.socket.on('data', () => {
      c.socket.pause();
      setTimeout(() => c.socket.resume(), 1);
    });
    c.socket.resume();
    await c.serverEnded();
    expect(pulled).toBe(chunks);
    const all = c.bytes();
    const prefix = head(SCGI, null);
    expect(all.subarray(0, prefix.length).toString('latin1')).toBe(prefix);
    expect(all.length).toBe(prefix.length + expected.length);
    expect(sha256(all.subarray(prefix.length))).toBe(sha256(expected));
  });

  it('pauses reading a 1 MiB body while the app reads slowly, and gets it whole', async () => {
    let input: Environ['tsgi.input'] | null = null;
    let go: () => void = () => {};
    const mayRead = new Promise<void>((r) => (go = r));
    const { server, client } = await start(async (env, begin) => {
      input = env['tsgi.input'];
      await mayRead;
      const parts: Buffer[] = [];
      for await (const part of env['tsgi.input']) {
        parts.push(part as Buffer);
        await tick(1);
      }
      const body = Buffer.concat(parts);
      begin('200 OK', TEXT);
      return [`${body.length} ${sha256(body)}`];
    });
    onTransport(server);
    const body = Buffer.alloc(1024 * 1024);
    for (let i = 0; i < body.length; i++) body[i] = (i * 31 + (i >> 10)) & 0xff;
    const c = await client();
    c.write(SCGI.request(SCGI.params('/up', 'POST'), body));
    await tick(300);
    /* nobody reads: the server stopped reading near its buffer limit, not at 1 MiB */
    expect(input).not.toBeNull();
    expect(input!.readableLength).toBeLessThan(256 * 1024);
    go();
    await c.serverEnded();
    const text = `${body.length} ${sha256(body)}`;
    expect(c.text()).toBe(head(SCGI, text.length) + text);
  });

  it('a client that resets mid-response aborts tsgi.signal; the server keeps serving', async () => {
    let signal: AbortSignal | null = null;
    let closed = 0;
    const { server, client, logs, exchange } = await start((env, begin) => {
      if (env.PATH_INFO === '/next') {
        begin('200 OK', TEXT);
        return ['next'];
      }
      signal = env['tsgi.signal'];
      begin('200 OK', TEXT);
      return Object.assign(
        (async function* () {
          for (;;) {
            yield 'y'.repeat(4096);
            await tick(1);
          }
        })(),
        { close: () => void closed++ },
      );
    });
    onTransport(server);
    const c = await client();
    c.write(SCGI.request(SCGI.params('/stream')));
    await c.until(() => (c.bytes().length > 20_000 ? true : undefined));
    c.socket.resetAndDestroy();
    await until(() => closed === 1, 'close() of the response');
    expect(signal!.aborted).toBe(true);
    expect((await exchange(SCGI.request(SCGI.params('/next')))).text).toBe(head(SCGI, 4) + 'next');
    expect(logs).toEqual([]);
    await until(() => server.gateway.connections.size === 0, 'the connections to close');
  });

  it('many connections opened and closed without a request cost nothing and leave nothing', async () => {
    let calls = 0;
    const { server, logs, exchange, target } = await start((_env, begin) => {
      calls++;
      begin('200 OK', TEXT);
      return ['ok'];
    });
    onTransport(server);
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        Array.from(
          { length: 40 },
          (_, i) =>
            new Promise<void>((resolve, reject) => {
              const s = connect({ port: target as number, host: '127.0.0.1' });
              s.on('error', reject);
              s.on('connect', () => {
                if (i % 2 === 0) s.end();
                else s.resetAndDestroy();
              });
              s.on('close', () => resolve());
            }),
        ),
      );
    }
    expect(calls).toBe(0);
    expect(logs).toEqual([]);
    await until(() => server.gateway.connections.size === 0, 'the gateway to forget them');
    expect((await exchange(SCGI.request(SCGI.params('/')))).text).toBe(head(SCGI, 2) + 'ok');
    expect(calls).toBe(1);
    let n = -1;
    await until(() => {
      void connections(server).then((v) => (n = v));
      return n === 0;
    }, 'getConnections() to be 0');
  });

  it('gives the peer and local addresses of a TCP connection (for --allow and SERVER_PORT)', async () => {
    const { server, client } = await start((env, begin) => {
      begin('200 OK', TEXT);
      return [`${env.SERVER_NAME}:${env.SERVER_PORT}`];
    });
    onTransport(server);
    const seen: [string | undefined, number | undefined, number | undefined][] = [];
    server.on(
      'connection',
      (s: { remoteAddress?: string; remotePort?: number; localPort?: number }) =>
        seen.push([s.remoteAddress, s.remotePort, s.localPort]),
    );
    const c = await client();
    /* without SERVER_NAME / SERVER_PORT: the local address fills them in */
    c.write(scgiRequest(['REQUEST_METHOD', 'GET', 'REQUEST_URI', '/', 'SCGI', '1']));
    await c.serverEnded();
    const port = (server.address() as AddressInfo).port;
    expect(seen).toEqual([['127.0.0.1', c.socket.localPort, port]]);
    const text = `127.0.0.1:${port}`;
    expect(c.text()).toBe(head(SCGI, text.length) + text);
  });

  it('--allow: a peer not in the list is refused before the protocol sees it, once logged', async () => {
    let calls = 0;
    const { server, client, logs } = await start((_env, begin) => {
      calls++;
      begin('200 OK', TEXT);
      return ['ok'];
    });
    onTransport(server);
    const refusedLog: string[] = [];
    const counters = { refused: 0 };
    guardServer(
      server,
      parseAllowList(['10.1.2.3', '192.168.0.0/16']),
      (l) => refusedLog.push(l),
      counters,
    );
    for (let i = 0; i < 2; i++) {
      const c = await client();
      c.write(SCGI.request(SCGI.params('/')));
      await c.serverEnded();
      expect(c.bytes().length).toBe(0);
    }
    /* refused as it is accepted, before it sends anything */
    const silent = await client();
    await silent.serverEnded();
    expect(silent.bytes().length).toBe(0);
    expect(calls).toBe(0);
    expect(counters.refused).toBe(3);
    expect(refusedLog).toEqual([
      'refused a connection from 127.0.0.1: not in the allowed addresses (10.1.2.3, ' +
        '192.168.0.0/16); further ones from it are not logged',
    ]);
    expect(logs).toEqual([]);
    await until(() => server.gateway.connections.size === 0, 'no connection left');
  });

  it('serves on a unix socket, and removes the socket file when the server closes', async () => {
    const { server, exchange, target } = await start(
      (env, begin) => {
        begin('200 OK', TEXT);
        return [`unix ${env.PATH_INFO}`];
      },
      { where: 'unix' },
    );
    onTransport(server);
    expect((await exchange(SCGI.request(SCGI.params('/u')))).text).toBe(head(SCGI, 7) + 'unix /u');
    expect(existsSync(target as string)).toBe(true);
    await new Promise((r) => server.close(r));
    expect(existsSync(target as string)).toBe(false);
  });

  it('a busy TCP port is reported as before (the bind error libuv reports late)', async () => {
    const { target } = await start(() => []);
    const second = createScgiServer(() => [], { transport: t, codec: serverCodec, log: () => {} });
    await expect(
      listen(second, { type: 'tcp', host: '127.0.0.1', port: target as number }),
    ).rejects.toThrow(`cannot listen on 127.0.0.1:${target as number}: address already in use`);
    expect(second.listening).toBe(false);
    expect(serverTransport(second)).toBe('node');
  });

  for (const where of ['tcp', 'unix'] as const) {
    it(`serves on an inherited ${where} fd (a socket bound by a master)`, async () => {
      const bound = await bindSocket(
        where === 'tcp'
          ? { type: 'tcp', host: '127.0.0.1', port: 0 }
          : { type: 'unix', path: join(dir, 'inherited.sock') },
      );
      const server = createScgiServer(
        (env, begin) => {
          begin('200 OK', TEXT);
          return [`fd ${env.PATH_INFO}`];
        },
        { transport: t, codec: serverCodec, log: () => {} },
      );
      try {
        await listen(server, { type: 'fd', fd: bound.fd });
        onTransport(server);
        const target =
          where === 'tcp'
            ? Number(/:([0-9]+)$/.exec(bound.shown)![1])
            : join(dir, 'inherited.sock');
        for (const path of ['/one', '/two']) {
          const c = await RawClient.connect(target);
          c.write(SCGI.request(SCGI.params(path)));
          await c.serverEnded();
          expect(c.text()).toBe(head(SCGI, 3 + path.length) + `fd ${path}`);
          c.close();
        }
      } finally {
        server.gateway.destroy();
        await new Promise((r) => server.close(r));
        bound.close();
      }
    });
  }

  it('drain() with a request in flight: silent connections close, the request finishes, accepting stops', async () => {
    let release: () => void = () => {};
    /* accepted at once: the silent connection is the server's before it sends a byte */
    const { server, client, target } = await start(
      async (_env, begin) => {
        await new Promise<void>((r) => (release = r));
        begin('200 OK', TEXT);
        return ['finished'];
      },
      { connectionLimits: { deferAcceptMs: 0 } },
    );
    onTransport(server);
    const busy = await client();
    busy.write(SCGI.request(SCGI.params('/')));
    const silent = await client();
    await tick(30);
    let drained = false;
    const draining = server.drain().then(() => (drained = true));
    await silent.serverEnded();
    expect(silent.bytes().length).toBe(0);
    /* no longer accepting */
    const refused = await new Promise<string>((resolve) => {
      const s = connect({ port: target as number, host: '127.0.0.1' });
      s.on('connect', () => {
        s.destroy();
        resolve('connected');
      });
      s.on('error', (e: NodeJS.ErrnoException) => resolve(e.code ?? 'error'));
    });
    expect(refused).toBe('ECONNREFUSED');
    await tick(20);
    expect(drained).toBe(false);
    release();
    await busy.serverEnded();
    expect(busy.text()).toBe(head(SCGI, 8) + 'finished');
    /* node:net waits for the peer's side of a half-closed connection; the native transport
       closed the silent one outright */
    silent.end();
    busy.end();
    await draining;
    expect(drained).toBe(true);
  });

  it('runs each connection in its own async context (AsyncLocalStorage does not leak between them)', async () => {
    const als = new AsyncLocalStorage<string>();
    const { server, exchange } = await start(async (env, begin) => {
      const before = als.getStore() ?? 'none';
      als.enterWith(env.PATH_INFO);
      await tick(1);
      begin('200 OK', TEXT);
      return [`${before} ${als.getStore()}`];
    });
    onTransport(server);
    for (const path of ['/a', '/b', '/c']) {
      const text = `none ${path}`;
      expect((await exchange(SCGI.request(SCGI.params(path)))).text).toBe(
        head(SCGI, text.length) + text,
      );
    }
    /* a store entered around the server's creation is not what a request sees either */
    expect(als.getStore()).toBeUndefined();
  });
});

describe('options.codec', () => {
  /** `base` with the name of every method called on it recorded in `used`. */
  const recording = (base: Codec, used: Set<string>): Codec =>
    new Proxy({} as Codec, {
      get(_target, p) {
        const v: unknown = Reflect.get(base, p);
        if (typeof v !== 'function') return v;
        used.add(String(p));
        return (v as (...a: unknown[]) => unknown).bind(base);
      },
    });
  const app = (_e: Environ, start: (s: string, h: [string, string][]) => unknown) => {
    start('200 OK', [['Content-Type', 'text/plain']]);
    return ['hi'];
  };

  it('FastCGI, SCGI and uwsgi servers parse and frame with the codec they are given', async () => {
    const cases = [
      {
        create: (c: Codec) => createFastcgiServer(app, { codec: c, log: () => {} }),
        request: (c: FcgiClient) => c.request(1, fcgiParams('/')),
        expected: ['createFcgiParser', 'fcgiResponseText'],
      },
      {
        create: (c: Codec) => createScgiServer(app, { codec: c, log: () => {} }),
        request: (c: FcgiClient) => c.write(SCGI.request(SCGI.params('/'))),
        expected: ['createScgiParser', 'encodeHeadText'],
      },
      {
        create: (c: Codec) => createUwsgiServer(app, { codec: c, log: () => {} }),
        request: (c: FcgiClient) => c.write(UWSGI.request(UWSGI.params('/'))),
        expected: ['createUwsgiParser', 'encodeHeadText'],
      },
    ];
    for (const { create, request, expected } of cases) {
      const used = new Set<string>();
      const server = create(recording(codec, used));
      await listen(server, { type: 'tcp', host: '127.0.0.1', port: 0 });
      const c = await FcgiClient.connect((server.address() as AddressInfo).port);
      request(c);
      await c.whenClosed();
      await new Promise((r) => server.close(r));
      expect(c.text()).toContain('hi');
      expect(expected.filter((m) => used.has(m))).toEqual(expected);
    }
  });
});
