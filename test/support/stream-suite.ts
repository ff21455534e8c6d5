/**
 * The behaviour SCGI and uwsgi share (lib/protocol/scgi-uwsgi-connection.ts), registered once per protocol by
 * test/protocol/scgi.test.ts and test/protocol/uwsgi.test.ts: body framing and backpressure both
 * ways, abort, errors, streaming, drain, unix sockets, repeated headers, and the command's
 * graceful stop on SIGTERM.
 */
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Codec, Limits } from '../../lib/codec/index.js';
import { codecEntries, isCI, native } from './codecs.js';
import type { App, Environ } from '../../lib/gateway/types.js';
import { validate } from '../../lib/gateway/validate.js';
import type { StreamListener } from '../../lib/protocol/scgi-uwsgi-connection.js';
import type { ConnectionLimits } from '../../lib/protocol/socket.js';
import {
  nativeTransport,
  serverTransport,
  type TransportName,
} from '../../lib/protocol/transport.js';
import { listen } from '../../lib/server/listen.js';
import { ensureBuilt } from './build.js';
import { freePort } from './peers.js';
import { RawClient } from './raw-client.js';
import { startChild, type Child } from './spawn.js';

/** What the tests give a server. */
export interface ServerOptions {
  log: (line: string) => void;
  errors: Writable;
  limits?: Partial<Limits>;
  /** Deadlines and caps of connections (default: CONNECTION_LIMITS). */
  connectionLimits?: Partial<ConnectionLimits>;
  /** The connection transport (default: the process's choice). */
  transport?: TransportName;
  /** The codec (default: the process's choice). */
  codec?: Codec;
}

/** How a test talks one protocol. */
export interface StreamKind {
  /** tsgi.protocol and the CLI flag. */
  name: 'scgi' | 'uwsgi';
  /** The name in log lines. */
  title: string;
  create(app: App, options: ServerOptions): StreamListener;
  /** The bytes of a whole request (the body's length is set in its CONTENT_LENGTH). */
  request(pairs: readonly string[], body?: string | Buffer): Buffer;
  /** The params the stock nginx params file sends. */
  params(uri: string, method?: string, extra?: string[]): string[];
  /** The first line of a response head: `Status: 200 OK` or `HTTP/1.1 200 OK`. */
  statusLine(status: string): string;
}

export const TEXT: [string, string][] = [['Content-Type', 'text/plain']];
export const sha256 = (b: Uint8Array): string => createHash('sha256').update(b).digest('hex');
export const tick = (ms = 10): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * An app that streams 1000-byte chunks until the client goes away; the object records the
 * request's tsgi.signal and how many times the body's close() ran.
 */
export function endlessApp(): { app: App; signal: AbortSignal | null; closed: number } {
  const seen = {
    signal: null as AbortSignal | null,
    closed: 0,
    app: ((env, start) => {
      seen.signal = env['tsgi.signal'];
      start('200 OK', TEXT);
      return Object.assign(
        (async function* () {
          for (;;) {
            yield 'x'.repeat(1000);
            await tick(1);
          }
        })(),
        { close: () => void seen.closed++ },
      );
    }) as App,
  };
  return seen;
}

export async function readAll(env: Environ): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const c of env['tsgi.input']) parts.push(c as Buffer);
  return Buffer.concat(parts);
}

/** Servers started by one test file (on `transport`, by default the process's), stopped after each test. */
export function streamServers(kind: StreamKind, transport?: TransportName, codec?: Codec) {
  const servers: StreamListener[] = [];
  const clients: RawClient[] = [];
  const dir = mkdtempSync(join(tmpdir(), `tsgi-${kind.name}-`));

  afterEach(async () => {
    for (const c of clients.splice(0)) c.close();
    for (const s of servers.splice(0)) {
      s.gateway.destroy();
      await new Promise((r) => s.close(r));
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function start(
    app: App,
    opts: {
      where?: 'tcp' | 'unix';
      limits?: Partial<Limits>;
      connectionLimits?: Partial<ConnectionLimits>;
      raw?: boolean;
    } = {},
    create: (app: App, o: ServerOptions) => StreamListener = kind.create,
  ) {
    const logs: string[] = [];
    const errors: string[] = [];
    const server = create(opts.raw ? app : validate(app), {
      log: (l) => logs.push(l),
      errors: new Writable({
        write(chunk: Buffer, _enc, cb) {
          errors.push(chunk.toString('latin1'));
          cb();
        },
      }),
      ...(opts.limits ? { limits: opts.limits } : {}),
      ...(opts.connectionLimits ? { connectionLimits: opts.connectionLimits } : {}),
      ...(transport ? { transport } : {}),
      ...(codec ? { codec } : {}),
    });
    servers.push(server);
    let target: number | string;
    if ((opts.where ?? 'tcp') === 'tcp') {
      await listen(server, { type: 'tcp', host: '127.0.0.1', port: 0 });
      target = (server.address() as AddressInfo).port;
    } else {
      target = join(dir, `s${servers.length}.sock`);
      await listen(server, { type: 'unix', path: target });
    }
    if (transport !== undefined) expect(serverTransport(server)).toBe(transport);
    const client = async (): Promise<RawClient> => {
      const c = await RawClient.connect(target);
      clients.push(c);
      return c;
    };
    /** One request on a new connection; resolves with what came back once the server ended. */
    const exchange = async (bytes: Buffer): Promise<{ c: RawClient; text: string }> => {
      const c = await client();
      c.write(bytes);
      await c.serverEnded();
      return { c, text: c.text() };
    };
    return { server, target, logs, errors, client, exchange };
  }

  return { start, dir };
}

/** A malformed request: what it is, its bytes, and the reason logged (message and code). */
export type Refusal = [what: string, bytes: Buffer, reason: string];

/**
 * Registers one test per refusal: the connection is closed without a byte of reply, the reason
 * is logged once, the app never runs, and the server goes on serving.
 */
export function refusalTests(kind: StreamKind, refusals: readonly Refusal[]): void {
  const { start } = streamServers(kind);
  const ok = `${kind.statusLine('200 OK')}\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok`;
  for (const [what, bytes, reason] of refusals) {
    it(`closes a connection with ${what}, logs why, and keeps serving`, async () => {
      let calls = 0;
      const { client, logs, exchange } = await start((_env, start) => {
        calls++;
        start('200 OK', TEXT);
        return ['ok'];
      });
      const c = await client();
      const port = c.socket.localPort;
      c.write(bytes);
      await c.serverEnded();
      expect(c.bytes().length).toBe(0);
      expect(logs).toEqual([`closing ${kind.title} connection from 127.0.0.1:${port}: ${reason}`]);
      expect(calls).toBe(0);
      expect((await exchange(kind.request(kind.params('/')))).text).toBe(ok);
    });
  }
}

/**
 * Declares `body` once per transport and codec: the native and the node transport, each with
 * the TypeScript and the native codec (`options.codec` of the servers it starts). A native part
 * that is unavailable: skipped with a loud message on a developer's machine, a failing test on
 * CI (Linux for the transport).
 */
export function eachTransport(
  title: string,
  body: (transport: TransportName, codec: Codec) => void,
): void {
  for (const t of ['native', 'node'] as const) {
    if (t === 'node' || nativeTransport.available) {
      for (const entry of codecEntries) {
        const name = `${title} [${t} transport, ${entry.name} codec]`;
        const c = entry.codec;
        if (c !== null) describe(name, () => body(t, c));
        else unavailable(name, `native codec: ${native.reason}`, isCI);
      }
    } else {
      unavailable(
        `${title} [${t} transport]`,
        `native transport: ${nativeTransport.reason}`,
        isCI && process.platform === 'linux',
      );
    }
  }
}

/** A block that cannot run here: failing when `required`, else skipped with a warning. */
function unavailable(name: string, why: string, required: boolean): void {
  if (required) {
    describe(name, () => {
      it('is available on CI', () => {
        throw new Error(`unavailable on CI: ${why}`);
      });
    });
    return;
  }
  console.warn(`*** tsgi tests: ${why} unavailable; skipped`);
  describe.skip(`${name} (unavailable: ${why})`, () => {
    it('skipped', () => {});
  });
}

/** Registers the shared tests for `kind`, once per transport. */
export function streamServerSuite(kind: StreamKind): void {
  eachTransport(`${kind.title} server`, (t, codec) => transportSuite(kind, t, codec));
}

function transportSuite(kind: StreamKind, transport: TransportName, codec: Codec): void {
  const { start, dir } = streamServers(kind, transport, codec);
  const ok = kind.statusLine('200 OK');
  const head = (len: number) =>
    `${ok}\r\nContent-Type: text/plain\r\nContent-Length: ${len}\r\n\r\n`;

  describe(`${kind.title} server: shared behaviour`, () => {
    it('reads a body split across many writes, exactly CONTENT_LENGTH bytes', async () => {
      const { exchange, client } = await start(async (env, start) => {
        const body = await readAll(env);
        start('200 OK', TEXT);
        return [`${env.CONTENT_LENGTH} ${body.length} ${sha256(body)}`];
      });
      const body = Buffer.alloc(300_000);
      for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
      const expected = `300000 300000 ${sha256(body)}`;
      expect((await exchange(kind.request(kind.params('/up', 'POST'), body))).text).toBe(
        head(expected.length) + expected,
      );
      /* one byte per write for the head and the first body bytes, then 7000-byte writes */
      const c = await client();
      const bytes = kind.request(kind.params('/up', 'POST'), body);
      const headLen = bytes.length - body.length;
      await c.trickle(bytes.subarray(0, headLen + 50), 1);
      await c.trickle(bytes.subarray(headLen + 50), 7000);
      await c.serverEnded();
      expect(c.text()).toBe(head(expected.length) + expected);
    });

    it('a request without a body: tsgi.input is an own key whose stream ends when read', async () => {
      const { exchange } = await start(async (env, start) => {
        const keys = Object.keys(env).filter((k) => k.startsWith('tsgi.'));
        const input = env['tsgi.input'];
        const read = input.read() as Buffer | null;
        const body = await readAll(env);
        const ended = input.readableEnded;
        start('200 OK', TEXT);
        return [`${keys.join(' ')}|${String(read)}|${body.length}|${String(ended)}`];
      });
      const expected =
        'tsgi.version tsgi.url_scheme tsgi.input tsgi.errors tsgi.multithread ' +
        'tsgi.multiprocess tsgi.run_once tsgi.protocol tsgi.signal|null|0|true';
      expect((await exchange(kind.request(kind.params('/')))).text).toBe(
        head(expected.length) + expected,
      );
    });

    it('ignores bytes after the body', async () => {
      const { exchange } = await start(async (env, start) => {
        const body = await readAll(env);
        start('200 OK', TEXT);
        return [`[${body.toString('latin1')}]`];
      });
      const bytes = Buffer.concat([
        kind.request(kind.params('/', 'POST'), 'abc'),
        Buffer.from('EXTRA BYTES\0\x01', 'latin1'),
      ]);
      expect((await exchange(bytes)).text).toBe(head(5) + '[abc]');
    });

    it('closes the connection after the response, not waiting for the peer to close its side', async () => {
      /* a GET answered at once (while its request is being parsed), a POST after its body */
      const { server, client } = await start((env, start) => {
        if (env.REQUEST_METHOD === 'GET') {
          start('200 OK', TEXT);
          return ['got'];
        }
        return readAll(env).then((body) => {
          start('200 OK', TEXT);
          return [`[${body.toString('latin1')}]`];
        });
      });
      for (const [method, body, reply] of [
        ['GET', '', 'got'],
        ['POST', 'abc', '[abc]'],
      ] as const) {
        const c = await client();
        c.write(kind.request(kind.params('/', method), body));
        await c.serverEnded();
        await tick(20);
        expect(c.text()).toBe(head(reply.length) + reply);
        expect(c.ended).toBe(true);
        expect(c.error).toBeNull();
        /* the client never ended its side, yet the server holds no connection any more */
        expect(server.gateway.connections.size).toBe(0);
        c.end();
        await c.whenClosed();
        expect(c.error).toBeNull();
      }
    });

    it('streams a response of unknown length, then ends the connection', async () => {
      const { exchange } = await start((_env, start) => {
        start('200 OK', TEXT);
        return (async function* () {
          yield 'one,';
          await tick(5);
          yield Buffer.from('two,');
          yield '';
          yield 'three';
        })();
      });
      const { c, text } = await exchange(kind.request(kind.params('/stream')));
      expect(text).toBe(`${ok}\r\nContent-Type: text/plain\r\n\r\none,two,three`);
      expect(c.error).toBeNull();
    });

    it('answers 500 when the app throws, with the error on tsgi.errors', async () => {
      const { exchange, errors } = await start(() => {
        throw new Error('kaput');
      });
      expect((await exchange(kind.request(kind.params('/')))).text).toBe(
        `${kind.statusLine('500 Internal Server Error')}\r\n` +
          'Content-Type: text/plain; charset=us-ascii\r\nContent-Length: 22\r\n\r\n' +
          'Internal Server Error\n',
      );
      expect(errors.join('')).toMatch(/^tsgi: error in application: Error: kaput\n/);
    });

    it('answers 500 for a one-string body with a character above U+00FF, nothing of it sent', async () => {
      const { exchange, errors } = await start(
        (_env, start) => {
          start('200 OK', [['Content-Type', 'text/plain']]);
          return ['caf\u0101'];
        },
        { raw: true },
      );
      expect((await exchange(kind.request(kind.params('/')))).text).toBe(
        `${kind.statusLine('500 Internal Server Error')}\r\n` +
          'Content-Type: text/plain; charset=us-ascii\r\nContent-Length: 22\r\n\r\n' +
          'Internal Server Error\n',
      );
      expect(errors.join('')).toMatch(
        /^tsgi: error in application: TypeError: body chunk is not a latin-1 string \(a character is above U\+00FF\)\n/,
      );
    });

    it('resets the connection on an error after the head left (the response is incomplete)', async () => {
      const { client, errors } = await start((_env, start) => {
        start('200 OK', TEXT);
        return (async function* () {
          yield 'partial';
          await tick(20);
          throw new Error('mid-body');
        })();
      });
      const c = await client();
      c.write(kind.request(kind.params('/')));
      await c.whenClosed();
      expect(c.text()).toBe(`${ok}\r\nContent-Type: text/plain\r\n\r\npartial`);
      expect(c.error?.code).toBe('ECONNRESET');
      expect(c.ended).toBe(false);
      expect(errors.join('')).toMatch(/^tsgi: error in application: Error: mid-body\n/);
    });

    it('aborts tsgi.signal and runs close() when the client goes away mid-response', async () => {
      const endless = endlessApp();
      const { client } = await start(endless.app);
      const c = await client();
      c.write(kind.request(kind.params('/')));
      await c.until(() => (c.bytes().length > 3000 ? true : undefined));
      c.close();
      while (endless.closed === 0) await tick(5);
      expect(endless.signal!.aborted).toBe(true);
      expect(endless.closed).toBe(1);
    });

    it('backpressure out: a slow client does not make the server buffer a 20 MiB response', async () => {
      let pulled = 0;
      const chunk = Buffer.alloc(1024 * 1024, 0x43);
      const { client } = await start((_env, start) => {
        start('200 OK', TEXT);
        return (function* () {
          for (let i = 0; i < 20; i++) {
            pulled++;
            yield chunk;
          }
        })();
      });
      const c = await client();
      c.socket.pause();
      c.write(kind.request(kind.params('/big')));
      await tick(300);
      expect(pulled).toBeLessThan(8);
      c.socket.resume();
      await c.serverEnded();
      expect(pulled).toBe(20);
      const all = c.bytes();
      const prefix = `${ok}\r\nContent-Type: text/plain\r\n\r\n`;
      expect(all.length).toBe(prefix.length + 20 * chunk.length);
      expect(all.subarray(prefix.length).every((b) => b === 0x43)).toBe(true);
    });

    for (const touched of [true, false]) {
      it(`backpressure in: a slow app (${touched ? 'reading late' : 'not touching tsgi.input yet'}) does not make the server buffer the upload`, async () => {
        let go: () => void = () => {};
        const mayRead = new Promise<void>((r) => (go = r));
        let input: Environ['tsgi.input'] | null = null;
        const { client } = await start(async (env, start) => {
          if (touched) input = env['tsgi.input'];
          await mayRead;
          input = env['tsgi.input'];
          const body = await readAll(env);
          start('200 OK', TEXT);
          return [`${body.length} ${sha256(body)}`];
        });
        const size = 16 * 1024 * 1024;
        const body = Buffer.alloc(size);
        for (let i = 0; i < size; i += 4096) body[i] = i & 0xff;
        const c = await client();
        c.write(kind.request(kind.params('/', 'POST'), body));
        await tick(300);
        if (touched) expect(input!.readableLength).toBeLessThan(1024 * 1024);
        else expect(input).toBeNull();
        expect(c.socket.writableLength).toBeGreaterThan(4 * 1024 * 1024);
        go();
        await c.serverEnded();
        const text = `${size} ${sha256(body)}`;
        expect(c.text()).toBe(head(text.length) + text);
      });
    }

    it('an app that ignores a large body answers, and the rest of the body is read (no reset)', async () => {
      const { client } = await start((_env, start) => {
        start('200 OK', TEXT);
        return ['early'];
      });
      const c = await client();
      const body = Buffer.alloc(3 * 1024 * 1024, 0x41);
      c.write(kind.request(kind.params('/', 'POST'), body));
      await c.serverEnded();
      expect(c.text()).toBe(head(5) + 'early');
      await tick(50);
      c.end();
      await c.whenClosed();
      expect(c.error).toBeNull();
    });

    it('closes a connection that sends nothing quietly', async () => {
      const { client, logs, exchange } = await start((_env, start) => {
        start('200 OK', TEXT);
        return ['ok'];
      });
      const c = await client();
      c.end();
      await c.whenClosed();
      expect(c.bytes().length).toBe(0);
      expect(logs).toEqual([]);
      expect((await exchange(kind.request(kind.params('/')))).text).toBe(head(2) + 'ok');
    });

    it('logs a connection closed in the middle of a request header', async () => {
      const { client, logs } = await start((_env, start) => {
        start('200 OK', TEXT);
        return ['ok'];
      });
      const c = await client();
      const port = c.socket.localPort;
      c.write(kind.request(kind.params('/')).subarray(0, 10));
      await tick(20);
      c.end();
      await c.whenClosed();
      expect(logs).toEqual([
        `closing ${kind.title} connection from 127.0.0.1:${port}: the peer closed it in the middle of a request header`,
      ]);
    });

    it('serves over a unix socket', async () => {
      const { exchange } = await start(
        (env, start) => {
          start('200 OK', TEXT);
          return [`unix ${env.PATH_INFO} ${env.SERVER_NAME}:${env.SERVER_PORT}`];
        },
        { where: 'unix' },
      );
      const text = 'unix /u localhost:8080';
      expect((await exchange(kind.request(kind.params('/u')))).text).toBe(head(text.length) + text);
    });

    it('drain(): a running request finishes, idle connections close, then it resolves', async () => {
      let release: () => void = () => {};
      /* accepted at once: the idle connection is the server's before it sends a byte */
      const { server, client } = await start(
        async (_env, start) => {
          await new Promise<void>((r) => (release = r));
          start('200 OK', TEXT);
          return ['finished'];
        },
        { connectionLimits: { deferAcceptMs: 0 } },
      );
      const busy = await client();
      busy.write(kind.request(kind.params('/')));
      const idle = await client();
      await tick(20);
      let drained = false;
      const draining = server.drain().then(() => (drained = true));
      await idle.serverEnded();
      expect(idle.bytes().length).toBe(0);
      await tick(20);
      expect(drained).toBe(false);
      release();
      await busy.serverEnded();
      expect(busy.text()).toBe(head(8) + 'finished');
      busy.end();
      idle.end();
      await draining;
      expect(drained).toBe(true);
    });
  });

  describe(`tsgi serve --${kind.name}`, () => {
    const children: Child[] = [];
    let cli = '';
    beforeAll(async () => {
      cli = await ensureBuilt();
      writeFileSync(
        join(dir, 'slow.mjs'),
        `export default async (env, start) => {
  await new Promise((r) => setTimeout(r, 400));
  start('200 OK', [['Content-Type', 'text/plain']]);
  return ['slow ' + env['tsgi.protocol'] + ' ' + env.PATH_INFO];
};`,
      );
    });
    afterEach(async () => {
      for (const c of children.splice(0)) await c.stop();
    });

    it('serves, and on SIGTERM finishes the running request before exiting 0', async () => {
      const port = await freePort();
      const child = startChild(
        process.execPath,
        [cli, 'serve', 'slow.mjs', `--${kind.name}`, `127.0.0.1:${port}`],
        {
          cwd: dir,
          stdio: ['ignore', 'pipe', 'pipe'],
          env: { ...process.env, TSGI_TRANSPORT: transport },
        },
      );
      children.push(child);
      await child.waitForStderr(new RegExp(`over ${kind.title} on 127\\.0\\.0\\.1:${port} \\(`));
      const c = await RawClient.connect(port);
      c.write(kind.request(kind.params('/during')));
      await tick(100);
      child.proc.kill('SIGTERM');
      await child.waitForStderr(/SIGTERM: finishing running requests/);
      await c.serverEnded();
      c.end();
      const text = `slow ${kind.name} /during`;
      expect(c.text()).toBe(head(text.length) + text);
      expect(await child.exited).toBe(0);
      expect(child.stderr()).toMatch(/tsgi: stopped\n$/);
    });
  });
}
