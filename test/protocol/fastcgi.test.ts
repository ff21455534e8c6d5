import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { Socket, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { codec, FCGI, type Codec } from '../../lib/codec/index.js';
import type { App, Environ } from '../../lib/gateway/types.js';
import { validate } from '../../lib/gateway/validate.js';
import { createFastcgiServer, type FastcgiListener } from '../../lib/protocol/fastcgi.js';
import {
  detachHandle,
  NativeConnection,
  serverTransport,
  type TransportName,
} from '../../lib/protocol/transport.js';
import { eachTransport, endlessApp } from '../support/stream-suite.js';
import { listen } from '../../lib/server/listen.js';
import { FcgiClient, params, parseCgi } from '../support/fcgi-client.js';

/** The transport of the servers start() makes (set by each eachTransport block). */
let transport: TransportName = 'node';
/** The codec of the servers start() makes (set by each eachTransport block). */
let serverCodec: Codec = codec;
const servers: FastcgiListener[] = [];
const clients: FcgiClient[] = [];
const dir = mkdtempSync(join(tmpdir(), 'tsgi-fcgi-'));

afterEach(async () => {
  for (const c of clients.splice(0)) c.close();
  for (const s of servers.splice(0)) {
    s.fastcgi.destroy();
    await new Promise((r) => s.close(r));
  }
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A server for `app` (checked by validate() unless `raw`) and a way to connect clients. */
async function start(app: App, where: 'tcp' | 'unix' = 'tcp', raw = false) {
  const logs: string[] = [];
  const server = createFastcgiServer(raw ? app : validate(app), {
    log: (l) => logs.push(l),
    transport,
    codec: serverCodec,
  });
  servers.push(server);
  let target: number | string;
  if (where === 'tcp') {
    await listen(server, { type: 'tcp', host: '127.0.0.1', port: 0 });
    target = (server.address() as AddressInfo).port;
  } else {
    target = join(dir, `s${servers.length}.sock`);
    await listen(server, { type: 'unix', path: target });
  }
  expect(serverTransport(server)).toBe(transport);
  const client = async () => {
    const c = await FcgiClient.connect(target);
    clients.push(c);
    return c;
  };
  return { server, target, logs, client };
}

const TEXT: [string, string][] = [['Content-Type', 'text/plain']];
const hello: App = (env, start) => {
  start('200 OK', TEXT);
  return [`hello ${env.PATH_INFO}`];
};
const helloBytes = (id: number, path: string) => {
  const body = Buffer.from(`hello ${path}`, 'latin1');
  return Buffer.from(
    codec.fcgiResponse(
      id,
      '200 OK',
      ['Content-Type', 'text/plain', 'Content-Length', String(body.length)],
      body,
      true,
    ),
  );
};

const readAll = async (env: Environ, key: 'tsgi.input' | 'tsgi.data' = 'tsgi.input') => {
  const parts: Buffer[] = [];
  for await (const c of env[key]!) parts.push(c as Buffer);
  return Buffer.concat(parts);
};
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));

eachTransport('FastCGI responder', (t, c) => {
  beforeAll(() => {
    transport = t;
    serverCodec = c;
  });

  it('answers a request over TCP with exact bytes and closes when KEEP_CONN is off', async () => {
    const { client } = await start(hello);
    const c = await client();
    c.request(1, params('/a'));
    await c.whenClosed();
    expect(c.bytes()).toEqual(helloBytes(1, '/a'));
    /* the same bytes written out by hand */
    expect(c.bytes().subarray(0, 8)).toEqual(Buffer.from([1, 6, 0, 1, 0, 71, 1, 0]));
    expect(c.bytes().toString('latin1', 8, 80)).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 8\r\n\r\nhello /a\0',
    );
    expect(c.bytes().subarray(80)).toEqual(
      Buffer.from([1, 6, 0, 1, 0, 0, 0, 0, 1, 3, 0, 1, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]),
    );
    expect(c.error).toBeNull();
  });

  it('serves over a unix socket', async () => {
    const { client } = await start(hello, 'unix');
    const c = await client();
    c.request(1, params('/unix'));
    await c.whenClosed();
    expect(c.bytes()).toEqual(helloBytes(1, '/unix'));
  });

  it('serves many requests in sequence on a KEEP_CONN connection', async () => {
    const { client } = await start(hello);
    const c = await client();
    for (let i = 0; i < 5; i++) {
      c.chunks.length = 0;
      c.events.length = 0;
      c.request(1, params(`/r${i}`), '', { keepConn: true });
      await c.reply(1);
      expect(c.bytes()).toEqual(helloBytes(1, `/r${i}`));
    }
    expect(c.ended).toBe(false);
  });

  it('builds the exact environ from the params, bytes 0x80-0xFF included', async () => {
    let seen: Record<string, unknown> = {};
    const { client } = await start((env, start) => {
      seen = Object.fromEntries(Object.entries(env).filter(([k]) => !k.startsWith('tsgi.')));
      seen.scheme = env['tsgi.url_scheme'];
      seen.protocol = env['tsgi.protocol'];
      start('200 OK', TEXT);
      return [];
    });
    const c = await client();
    const high = Array.from({ length: 128 }, (_, i) => String.fromCharCode(0x80 + i)).join('');
    c.request(1, [
      'REQUEST_METHOD',
      'GET',
      'SCRIPT_NAME',
      '/app',
      'REQUEST_URI',
      '/app/x%FF?q=' + high,
      'DOCUMENT_URI',
      '/app/x\xff',
      'QUERY_STRING',
      'q=' + high,
      'SERVER_NAME',
      'example.org',
      'SERVER_PORT',
      '443',
      'SERVER_PROTOCOL',
      'HTTP/1.1',
      'HTTPS',
      'on',
      'HTTP_X_HIGH',
      high,
      'HTTP_CONTENT_TYPE',
      'x/y',
      'HTTP_PROXY',
      'http://evil',
      'HTTP_ACCEPT',
      'a',
      'HTTP_ACCEPT',
      'b',
    ]);
    await c.reply(1);
    expect(seen).toEqual({
      REQUEST_METHOD: 'GET',
      SCRIPT_NAME: '/app',
      PATH_INFO: '/x\xff',
      REQUEST_URI: '/app/x%FF?q=' + high,
      DOCUMENT_URI: '/app/x\xff',
      QUERY_STRING: 'q=' + high,
      SERVER_NAME: 'example.org',
      SERVER_PORT: '443',
      SERVER_PROTOCOL: 'HTTP/1.1',
      HTTPS: 'on',
      HTTP_X_HIGH: high,
      HTTP_ACCEPT: 'a, b',
      FCGI_ROLE: 'RESPONDER',
      scheme: 'https',
      protocol: 'fastcgi',
    });
  });

  it('streams STDIN into tsgi.input up to CONTENT_LENGTH, or to the empty record', async () => {
    const { client } = await start(async (env, start) => {
      const body = await readAll(env);
      start('200 OK', TEXT);
      return [`${env.CONTENT_LENGTH ?? '-'} ${body.length} ${sha256(body)}`];
    });
    const body = Buffer.alloc(300_000);
    for (let i = 0; i < body.length; i++) body[i] = (i * 7) & 0xff;
    const c = await client();
    c.begin(1, params('/', ['CONTENT_LENGTH', '300000'], 'POST'), { keepConn: true });
    for (let o = 0; o < body.length; o += 20_000) c.stream(1, body.subarray(o, o + 20_000), false);
    c.stream(1, '', true);
    expect(parseCgi((await c.reply(1)).stdout).body).toBe(`300000 300000 ${sha256(body)}`);
    /* chunked upload through nginx: CONTENT_LENGTH is empty; Apache: absent */
    for (const [i, extra] of [
      [2, ['CONTENT_LENGTH', '']],
      [3, []],
    ] as const) {
      c.begin(i, params('/', [...extra], 'POST'), { keepConn: true });
      c.stream(i, 'part1,', false);
      c.stream(i, 'part2', true);
      const expected = `${extra.length ? '' : '-'} 11 ${sha256(Buffer.from('part1,part2'))}`;
      expect(parseCgi((await c.reply(i)).stdout).body).toBe(expected);
    }
    /* bytes past CONTENT_LENGTH are not part of the body */
    c.begin(4, params('/', ['CONTENT_LENGTH', '3'], 'POST'), { keepConn: true });
    c.stream(4, 'abcdef', true);
    expect(parseCgi((await c.reply(4)).stdout).body).toBe(`3 3 ${sha256(Buffer.from('abc'))}`);
  });

  it('multiplexes requests on one connection, records whole', async () => {
    let releaseFirst: () => void = () => {};
    const firstMayEnd = new Promise<void>((r) => (releaseFirst = r));
    const { client } = await start((env, start) => {
      start('200 OK', TEXT);
      const path = env.PATH_INFO;
      return (async function* () {
        yield `${path}:start;`;
        if (path === '/first') await firstMayEnd;
        yield 'x'.repeat(70_000);
        yield `${path}:end`;
        if (path === '/second') releaseFirst();
      })();
    });
    const c = await client();
    c.begin(1, params('/first'), { keepConn: true });
    c.begin(2, params('/second'), { keepConn: true });
    c.stream(1, '', true);
    c.stream(2, '', true);
    const second = await c.reply(2);
    const first = await c.reply(1);
    expect(parseCgi(second.stdout).body).toBe(`/second:start;${'x'.repeat(70_000)}/second:end`);
    expect(parseCgi(first.stdout).body).toBe(`/first:start;${'x'.repeat(70_000)}/first:end`);
    const ends = c.events.filter((e) => e.type === 'end').map((e) => e.requestId);
    expect(ends).toEqual([2, 1]);
    expect(c.events.some((e) => e.type === 'error')).toBe(false);
  });

  it('runs 50 multiplexed requests at once', async () => {
    const { client } = await start(async (env, start) => {
      const body = await readAll(env);
      start('200 OK', TEXT);
      return [`${env.PATH_INFO}=${body.toString('latin1')}`];
    });
    const c = await client();
    for (let id = 1; id <= 50; id++) c.begin(id, params(`/${id}`, [], 'POST'), { keepConn: true });
    for (let id = 50; id >= 1; id--) c.stream(id, `body${id}`, true);
    for (let id = 1; id <= 50; id++) {
      expect(parseCgi((await c.reply(id)).stdout).body).toBe(`/${id}=body${id}`);
    }
  });

  it('answers GET_VALUES at any time, also in the middle of a request', async () => {
    let release: () => void = () => {};
    const { client } = await start(async (_env, start) => {
      await new Promise<void>((r) => (release = r));
      start('200 OK', TEXT);
      return ['done'];
    });
    const c = await client();
    const expected = Buffer.from(
      codec.fcgiGetValuesResult([
        'FCGI_MPXS_CONNS',
        '1',
        'FCGI_MAX_CONNS',
        '10000',
        'FCGI_MAX_REQS',
        '128',
      ]),
    );
    c.write(
      codec.fcgiGetValues(['FCGI_MPXS_CONNS', 'FCGI_UNKNOWN', 'FCGI_MAX_CONNS', 'FCGI_MAX_REQS']),
    );
    await c.until(() => (c.bytes().length >= expected.length ? true : undefined));
    expect(c.bytes()).toEqual(expected);
    c.chunks.length = 0;
    c.begin(1, params('/'), { keepConn: true });
    c.stream(1, '', true);
    await tick();
    c.write(codec.fcgiGetValues(['FCGI_MPXS_CONNS']));
    await c.until(() =>
      c.events.find((e) => e.type === 'getValuesResult' && c.events.indexOf(e) > 0),
    );
    expect(c.bytes()).toEqual(Buffer.from(codec.fcgiGetValuesResult(['FCGI_MPXS_CONNS', '1'])));
    release();
    expect(parseCgi((await c.reply(1)).stdout).body).toBe('done');
  });

  it('answers UNKNOWN_TYPE and UNKNOWN_ROLE, and ignores records for unknown ids', async () => {
    const { client } = await start(hello);
    const c = await client();
    c.write(codec.fcgiStream(42, 0, Buffer.alloc(5, 7), false));
    c.write(codec.fcgiBeginRequest(3, 9, 1));
    c.write(codec.fcgiParams(7, params('/ghost')));
    c.stream(7, 'ghost body', true);
    c.write(codec.fcgiAbortRequest(8));
    const expected = Buffer.concat([
      codec.fcgiUnknownType(42),
      codec.fcgiEndRequest(3, 0, FCGI.UNKNOWN_ROLE),
    ]);
    await c.until(() => (c.bytes().length >= expected.length ? true : undefined));
    expect(c.bytes()).toEqual(expected);
    c.chunks.length = 0;
    c.request(1, params('/after'), '', { keepConn: true });
    await c.reply(1);
    expect(c.bytes()).toEqual(helloBytes(1, '/after'));
  });

  it('serves the AUTHORIZER role: 200 with Variable-* headers allows, 403 denies', async () => {
    const { client } = await start((env, start) => {
      if (env.HTTP_AUTHORIZATION === 'Bearer good') {
        start('200 OK', [
          ['Variable-REMOTE_USER', 'alice'],
          ['Variable-ROLE', env.FCGI_ROLE as string],
        ]);
        return [];
      }
      start('403 Forbidden', TEXT);
      return ['no'];
    });
    const c = await client();
    c.begin(1, params('/secret', ['HTTP_AUTHORIZATION', 'Bearer good']), {
      role: FCGI.AUTHORIZER,
      keepConn: true,
    });
    const allow = await c.reply(1);
    expect(parseCgi(allow.stdout).head).toEqual([
      'Status: 200 OK',
      'Variable-REMOTE_USER: alice',
      'Variable-ROLE: AUTHORIZER',
      'Content-Length: 0',
    ]);
    c.begin(2, params('/secret'), { role: FCGI.AUTHORIZER, keepConn: true });
    const deny = await c.reply(2);
    expect(deny.stdout.toString('latin1')).toBe(
      'Status: 403 Forbidden\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nno',
    );
  });

  it('serves the FILTER role with the DATA stream on tsgi.data', async () => {
    const { client } = await start(async (env, start) => {
      const stdin = await readAll(env);
      const data = await readAll(env, 'tsgi.data');
      start('200 OK', TEXT);
      return [
        `${env.FCGI_ROLE} ${env.FCGI_DATA_LENGTH} stdin=${stdin} data=${data.toString('latin1').toUpperCase()}`,
      ];
    });
    const c = await client();
    c.begin(
      1,
      params(
        '/f.txt',
        ['CONTENT_LENGTH', '2', 'FCGI_DATA_LENGTH', '11', 'FCGI_DATA_LAST_MOD', '0'],
        'POST',
      ),
      {
        role: FCGI.FILTER,
      },
    );
    c.stream(1, 'in', true);
    c.stream(1, 'hello ', false, FCGI.DATA);
    c.stream(1, 'world', true, FCGI.DATA);
    expect(parseCgi((await c.reply(1)).stdout).body).toBe('FILTER 11 stdin=in data=HELLO WORLD');
    await c.whenClosed();
  });

  it('sends tsgi.errors as STDERR records, ended by an empty one before END_REQUEST', async () => {
    const { client } = await start((env, start) => {
      env['tsgi.errors'].write('warning: \xff\n');
      start('200 OK', TEXT);
      return ['ok'];
    });
    const c = await client();
    c.request(1, params('/'));
    await c.whenClosed();
    expect(c.events.map((e) => e.type)).toEqual([
      'stderr',
      'stdout',
      'stderrEnd',
      'stdoutEnd',
      'end',
    ]);
    expect((await c.reply(1)).stderr.toString('utf8')).toBe('warning: \xff\n');
  });

  it.each([
    {
      what: 'when the app throws, with the error on STDERR',
      app: (() => {
        throw new Error('kaput');
      }) as App,
      raw: false,
      stderr: /^tsgi: error in application: Error: kaput\n/,
    },
    {
      what: 'for a one-string body with a character above U+00FF, nothing of it sent',
      app: ((_env, start) => {
        start('200 OK', TEXT);
        return ['caf\u0101'];
      }) as App,
      raw: true,
      stderr:
        /^tsgi: error in application: TypeError: body chunk is not a latin-1 string \(a character is above U\+00FF\)\n/,
    },
  ])('answers 500 $what', async ({ app, raw, stderr }) => {
    const { client } = await start(app, 'tcp', raw);
    const c = await client();
    c.request(1, params('/'));
    const r = await c.reply(1);
    expect(r.stdout.toString('latin1')).toBe(
      'Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=us-ascii\r\n' +
        'Content-Length: 22\r\n\r\nInternal Server Error\n',
    );
    expect(r.stderr.toString()).toMatch(stderr);
    expect([r.appStatus, r.protocolStatus]).toEqual([0, 0]);
  });

  it('cuts the response (closes without END_REQUEST) on an error after the headers', async () => {
    const { client } = await start((_env, start) => {
      start('200 OK', TEXT);
      return (function* () {
        yield 'partial';
        throw new Error('mid-body');
      })();
    });
    const c = await client();
    c.request(1, params('/'), '', { keepConn: true });
    await c.whenClosed();
    expect(c.events.some((e) => e.type === 'end')).toBe(false);
    const out = Buffer.concat(
      c.events.filter((e) => e.type === 'stdout').map((e) => (e as { data: Uint8Array }).data),
    );
    expect(parseCgi(out).body).toBe('partial');
    expect(
      Buffer.concat(
        c.events.filter((e) => e.type === 'stderr').map((e) => (e as { data: Uint8Array }).data),
      ).toString(),
    ).toContain('Error: mid-body');
  });

  it('ABORT_REQUEST aborts tsgi.signal, runs close() and sends END_REQUEST', async () => {
    let signal: AbortSignal | null = null;
    let closed = 0;
    const { client } = await start((env, start) => {
      start('200 OK', TEXT);
      if (env.PATH_INFO === '/next') return ['next'];
      signal = env['tsgi.signal'];
      const body = (async function* () {
        for (;;) {
          yield 'tick;';
          await tick(2);
        }
      })();
      return Object.assign(body, { close: () => void closed++ });
    });
    const c = await client();
    c.request(1, params('/'), '', { keepConn: true });
    await c.until(() => c.events.find((e) => e.type === 'stdout'));
    c.write(codec.fcgiAbortRequest(1));
    const r = await c.reply(1);
    expect([r.appStatus, r.protocolStatus]).toEqual([0, FCGI.REQUEST_COMPLETE]);
    await tick(20);
    expect(signal!.aborted).toBe(true);
    expect(closed).toBe(1);
    /* nothing more for id 1 after END_REQUEST, and the connection still serves */
    const count = c.events.length;
    c.request(2, params('/next'), '', { keepConn: true });
    await c.reply(2);
    const after = c.events.slice(count);
    expect(after.every((e) => !('requestId' in e) || e.requestId === 2)).toBe(true);
  });

  it('aborts tsgi.signal and runs close() when the web server closes the connection', async () => {
    const endless = endlessApp();
    const { client } = await start(endless.app);
    const c = await client();
    c.request(1, params('/'), '', { keepConn: true });
    await c.until(() => c.events.find((e) => e.type === 'stdout'));
    c.close();
    while (endless.closed === 0) await tick(5);
    expect(endless.signal!.aborted).toBe(true);
    expect(endless.closed).toBe(1);
  });

  it('closes a connection with a malformed stream, logs why, and keeps serving others', async () => {
    const { client, logs } = await start(hello);
    const bad = await client();
    const port = bad.socket.localPort;
    bad.write(Buffer.from([2, 1, 0, 1, 0, 8, 0, 0]));
    await bad.whenClosed();
    expect(logs).toEqual([
      `closing FastCGI connection from 127.0.0.1:${port}: unsupported FastCGI version 2 (FCGI_BAD_VERSION)`,
    ]);
    const good = await client();
    good.request(1, params('/ok'));
    await good.whenClosed();
    expect(good.bytes()).toEqual(helloBytes(1, '/ok'));
  });

  it('KEEP_CONN off: reads and drops unread STDIN before closing (no reset)', async () => {
    const { client } = await start(hello);
    const c = await client();
    c.begin(1, params('/early', ['CONTENT_LENGTH', '2000000'], 'POST'));
    await c.reply(1);
    expect(c.ended).toBe(false);
    const chunk = Buffer.alloc(50_000, 0x41);
    for (let i = 0; i < 40; i++) c.stream(1, chunk, false);
    c.stream(1, '', true);
    await c.whenClosed();
    expect(c.error).toBeNull();
    expect(c.bytes()).toEqual(helloBytes(1, '/early'));
  });

  it('KEEP_CONN on: an app that ignores its body does not stall the next request', async () => {
    const { client } = await start(hello);
    const c = await client();
    c.begin(1, params('/ignore', ['CONTENT_LENGTH', '4000000'], 'POST'), { keepConn: true });
    const chunk = Buffer.alloc(65_528, 0x42);
    for (let o = 0; o < 4_000_000; o += chunk.length)
      c.stream(1, chunk.subarray(0, Math.min(chunk.length, 4_000_000 - o)), false);
    c.stream(1, '', true);
    await c.reply(1);
    c.chunks.length = 0;
    c.events.length = 0;
    c.request(1, params('/next'), '', { keepConn: true });
    await c.reply(1);
    expect(c.bytes()).toEqual(helloBytes(1, '/next'));
  });

  it('backpressure in: a slow app does not make the server buffer the whole upload', async () => {
    let go: () => void = () => {};
    const mayRead = new Promise<void>((r) => (go = r));
    let input: Environ['tsgi.input'] | null = null;
    const { client } = await start(async (env, start) => {
      input = env['tsgi.input'];
      await mayRead;
      const body = await readAll(env);
      start('200 OK', TEXT);
      return [`${body.length} ${sha256(body)}`];
    });
    const c = await client();
    const size = 16 * 1024 * 1024;
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) body[i] = i & 0xff;
    c.begin(1, params('/', ['CONTENT_LENGTH', String(size)], 'POST'), { keepConn: true });
    for (let o = 0; o < size; o += 65_528) c.stream(1, body.subarray(o, o + 65_528), false);
    c.stream(1, '', true);
    await tick(300);
    expect(input!.readableLength).toBeLessThan(1024 * 1024);
    expect(c.socket.writableLength).toBeGreaterThan(4 * 1024 * 1024);
    go();
    expect(parseCgi((await c.reply(1)).stdout).body).toBe(`${size} ${sha256(body)}`);
  });

  it('backpressure in: an app that has not touched tsgi.input yet does not make the server buffer the upload', async () => {
    let go: () => void = () => {};
    const mayRead = new Promise<void>((r) => (go = r));
    let input: Environ['tsgi.input'] | null = null;
    const { client } = await start(async (env, start) => {
      await mayRead;
      input = env['tsgi.input'];
      const body = await readAll(env);
      start('200 OK', TEXT);
      return [`${body.length} ${sha256(body)}`];
    });
    const c = await client();
    const size = 16 * 1024 * 1024;
    const body = Buffer.alloc(size);
    for (let i = 0; i < size; i += 4096) body[i] = i & 0xff;
    c.begin(1, params('/', ['CONTENT_LENGTH', String(size)], 'POST'), { keepConn: true });
    for (let o = 0; o < size; o += 65_528) c.stream(1, body.subarray(o, o + 65_528), false);
    c.stream(1, '', true);
    await tick(300);
    expect(input).toBeNull();
    expect(c.socket.writableLength).toBeGreaterThan(4 * 1024 * 1024);
    go();
    expect(parseCgi((await c.reply(1)).stdout).body).toBe(`${size} ${sha256(body)}`);
  });

  it('backpressure out: a slow web server does not make the app produce the whole response', async () => {
    let pulled = 0;
    const { client } = await start((_env, start) => {
      start('200 OK', TEXT);
      return (function* () {
        for (let i = 0; i < 64; i++) {
          pulled++;
          yield Buffer.alloc(1024 * 1024, 0x43);
        }
      })();
    });
    const c = await client();
    c.socket.pause();
    c.request(1, params('/big'), '', { keepConn: true });
    await tick(300);
    expect(pulled).toBeLessThan(16);
    c.socket.resume();
    const r = await c.reply(1);
    expect(pulled).toBe(64);
    expect(parseCgi(r.stdout).body.length).toBe(64 * 1024 * 1024);
  });

  it('drain(): serves what arrives on open connections, closes each after its last response', async () => {
    let release: () => void = () => {};
    const { server, client } = await start(async (env, start) => {
      if (env.PATH_INFO === '/') await new Promise<void>((r) => (release = r));
      start('200 OK', TEXT);
      return [`finished ${env.PATH_INFO}`];
    });
    const c = await client();
    c.request(1, params('/'), '', { keepConn: true });
    await tick();
    let drained = false;
    const draining = server.drain().then(() => (drained = true));
    c.request(2, params('/late'), '', { keepConn: true });
    const late = await c.reply(2);
    expect([parseCgi(late.stdout).body, late.protocolStatus]).toEqual([
      'finished /late',
      FCGI.REQUEST_COMPLETE,
    ]);
    await tick(50);
    expect([drained, c.ended]).toEqual([false, false]);
    release();
    expect(parseCgi((await c.reply(1)).stdout).body).toBe('finished /');
    await c.whenClosed();
    await draining;
    expect(drained).toBe(true);
  });

  it('drain({ keepIdle, handover }): a kept connection goes to another server between requests, never closed', async () => {
    const old = await start((_env, start) => {
      start('200 OK', TEXT);
      return ['old'];
    });
    const next = await start((_env, start) => {
      start('200 OK', TEXT);
      return ['next'];
    });
    const c = await old.client();
    c.request(1, params('/a'), '', { keepConn: true });
    expect(parseCgi((await c.reply(1)).stdout).body).toBe('old');
    const handed: string[] = [];
    const drained = old.server.drain({
      keepIdle: true,
      handover: (socket) => {
        const handle = detachHandle(socket);
        if (handle === null) return false;
        handed.push(socket instanceof NativeConnection ? 'native' : 'node');
        next.server.adopt(new Socket({ handle, readable: true, writable: true } as never));
        return true;
      },
    });
    await drained;
    expect(handed).toEqual([transport]);
    /* the same client connection, never ended: its next requests reach the other server */
    c.request(2, params('/b'), 'x'.repeat(5000), { keepConn: true });
    expect(parseCgi((await c.reply(2)).stdout).body).toBe('next');
    c.request(3, params('/c'), '', { keepConn: true });
    expect(parseCgi((await c.reply(3)).stdout).body).toBe('next');
    expect([c.ended, c.closed, c.error]).toEqual([false, false, null]);
  });

  it('drain({ keepIdle }): a kept idle connection stays open, is served, and ends with its response', async () => {
    const { server, client } = await start(hello);
    const used = await client();
    const unused = await client();
    used.request(1, params('/a'), '', { keepConn: true });
    await used.reply(1);
    unused.request(1, params('/b'), '', { keepConn: true });
    await unused.reply(1);
    let drained = false;
    const draining = server.drain({ keepIdle: true }).then(() => (drained = true));
    await tick(100);
    /* a front server may send a request on either at any moment: both stay open */
    expect([used.ended, unused.ended, drained, server.idle]).toEqual([false, false, false, true]);
    used.chunks.length = 0;
    used.request(2, params('/late'), 'x'.repeat(1000), { keepConn: true });
    const late = await used.reply(2);
    expect(Buffer.concat(used.chunks)).toEqual(helloBytes(2, '/late'));
    expect(late.protocolStatus).toBe(FCGI.REQUEST_COMPLETE);
    await used.whenClosed();
    expect([unused.ended, drained]).toEqual([false, false]);
    server.closeIdle();
    await unused.whenClosed();
    await draining;
    expect(drained).toBe(true);
  });
});
