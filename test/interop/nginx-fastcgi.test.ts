/**
 * Interop with real peers: nginx (started here, under a temp prefix, stopped by pid) in front of
 * tsgi's FastCGI responder running in this process, and libfcgi's cgi-fcgi as a second,
 * independent FastCGI client. Skipped with a loud message when the binaries are missing;
 * failing under CI=true.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App, Body, Environ } from '../../lib/gateway/types.js';
import { validate } from '../../lib/gateway/validate.js';
import { createFastcgiServer, type FastcgiListener } from '../../lib/protocol/fastcgi.js';
import { listen } from '../../lib/server/listen.js';
import { ROOT } from '../support/build.js';
import { nginxHttpConf, nginxUser, startNginx } from '../support/frontends.js';
import { findPeer, freePort, isCI, missingPeerMessage } from '../support/peers.js';
import { type Child } from '../support/spawn.js';

const nginx = findPeer('nginx', 'nginx-light');
const cgiFcgi = findPeer('cgi-fcgi', 'libfcgi-bin');

const TEXT: [string, string][] = [['Content-Type', 'text/plain']];
const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const hex = (s: string) => Buffer.from(s, 'latin1').toString('hex');
const tick = (ms = 10) => new Promise((r) => setTimeout(r, ms));

/** 20 MiB of deterministic bytes, produced in 64 KiB chunks. */
const DOWNLOAD_CHUNK = 64 * 1024;
const DOWNLOAD_CHUNKS = 320;
function downloadChunk(i: number): Buffer {
  const b = Buffer.alloc(DOWNLOAD_CHUNK, i & 0xff);
  b.writeUInt32BE(i, 0);
  return b;
}
const downloadSha = (() => {
  const h = createHash('sha256');
  for (let i = 0; i < DOWNLOAD_CHUNKS; i++) h.update(downloadChunk(i));
  return h.digest('hex');
})();

/** What the apps saw, for assertions. */
const state = { closed: 0, closedStreams: [] as string[], aborted: 0 };

const readAll = async (env: Environ) => {
  const h = createHash('sha256');
  let n = 0;
  for await (const c of env['tsgi.input']) {
    h.update(c as Buffer);
    n += (c as Buffer).length;
  }
  return `${n} ${h.digest('hex')}`;
};

const routes: App = async (env, start) => {
  const path = env.PATH_INFO;
  if (path === '/hello') {
    start('200 OK', TEXT);
    return [`hello ${env.SCRIPT_NAME}|${path}`];
  }
  if (path === '/upload') {
    const got = await readAll(env);
    start('200 OK', TEXT);
    return [`${JSON.stringify(env.CONTENT_LENGTH ?? null)} ${got}`];
  }
  if (path.startsWith('/bytes')) {
    start('200 OK', TEXT);
    return [[hex(path), hex(env.QUERY_STRING), hex(String(env.HTTP_X_HIGH))].join(' ')];
  }
  if (path === '/download') {
    start('200 OK', [
      ['Content-Type', 'application/octet-stream'],
      ['Content-Length', String(DOWNLOAD_CHUNK * DOWNLOAD_CHUNKS)],
    ]);
    const gen = (async function* () {
      for (let i = 0; i < DOWNLOAD_CHUNKS; i++) yield downloadChunk(i);
    })();
    return Object.assign(gen, { close: () => void state.closedStreams.push('download') });
  }
  if (path === '/endless') {
    const signal = env['tsgi.signal'];
    signal.addEventListener('abort', () => state.aborted++);
    start('200 OK', [['Content-Type', 'application/octet-stream']]);
    const gen = (async function* () {
      for (let i = 0; ; i++) {
        yield downloadChunk(i);
        if (i % 16 === 0) await tick(1);
      }
    })();
    return Object.assign(gen, { close: () => void state.closedStreams.push('endless') }) as Body;
  }
  if (path === '/redirect') {
    start('302 Found', [['Location', 'http://elsewhere.example/target']]);
    return [];
  }
  if (path === '/error') throw new Error('deliberate failure for nginx');
  if (path === '/late-error') {
    start('200 OK', TEXT);
    return (async function* () {
      yield 'partial body;';
      await tick(5);
      throw new Error('deliberate failure after the headers');
    })();
  }
  start('404 Not Found', TEXT);
  return [`no route ${path}`];
};

const PARAMS = `
            fastcgi_param REQUEST_METHOD    $request_method;
            fastcgi_param REQUEST_URI       $request_uri;
            fastcgi_param DOCUMENT_URI      $document_uri;
            fastcgi_param QUERY_STRING      $query_string;
            fastcgi_param CONTENT_TYPE      $content_type;
            fastcgi_param CONTENT_LENGTH    $content_length;
            fastcgi_param SERVER_PROTOCOL   $server_protocol;
            fastcgi_param REQUEST_SCHEME    $scheme;
            fastcgi_param REMOTE_ADDR       $remote_addr;
            fastcgi_param REMOTE_PORT       $remote_port;
            fastcgi_param SERVER_PORT       $server_port;
            fastcgi_param SERVER_NAME       $server_name;`;

function nginxConf(opts: { port: number; tcp: number; unix: string; k200: number }) {
  return nginxHttpConf(
    `
    server {
        listen 127.0.0.1:${opts.port};
        server_name localhost;
        location /keep/ {${PARAMS}
            fastcgi_param SCRIPT_NAME /keep;
            fastcgi_pass keep;
            fastcgi_keep_conn on;
        }
        location /close/ {${PARAMS}
            fastcgi_param SCRIPT_NAME /close;
            fastcgi_pass unix:${opts.unix};
        }
        location /stream/ {${PARAMS}
            fastcgi_param SCRIPT_NAME /stream;
            fastcgi_pass keep;
            fastcgi_keep_conn on;
            fastcgi_request_buffering off;
            fastcgi_buffering off;
        }
        location /k200/ {${PARAMS}
            fastcgi_param SCRIPT_NAME /k200;
            fastcgi_pass k200;
            fastcgi_keep_conn on;
        }
    }`,
    `    upstream keep { server 127.0.0.1:${opts.tcp}; keepalive 4; }
    upstream k200 { server 127.0.0.1:${opts.k200}; keepalive 4; }`,
  );
}

/** A raw HTTP/1.1 exchange with Connection: close; the whole answer as latin-1. */
function rawHttp(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    s.on('data', (d) => parts.push(d));
    s.on('error', reject);
    s.on('close', () => resolve(Buffer.concat(parts).toString('latin1')));
    s.write(Buffer.from(request, 'latin1'));
  });
}

function bodyOf(response: string): string {
  return response.slice(response.indexOf('\r\n\r\n') + 4);
}

describe.skipIf(nginx === null)('nginx in front of the FastCGI responder', () => {
  let dir = '';
  let port = 0;
  let proc: Child | null = null;
  let main: FastcgiListener;
  let k200: FastcgiListener;
  let mainConnections = 0;
  let k200Connections = 0;
  const logs: string[] = [];

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsgi-nginx-'));
    const unix = join(dir, 'tsgi.sock');
    main = createFastcgiServer(validate(routes), { log: (l) => logs.push(l) });
    main.on('connection', () => mainConnections++);
    await listen(main, { type: 'tcp', host: '127.0.0.1', port: 0 });
    k200 = createFastcgiServer(validate(routes));
    k200.on('connection', () => k200Connections++);
    await listen(k200, { type: 'tcp', host: '127.0.0.1', port: 0 });
    port = await freePort();
    /* one net.Server cannot listen twice: a second one serves the unix socket */
    const unixServer = createFastcgiServer(validate(routes));
    unixServer.on('connection', () => mainConnections++);
    await listen(unixServer, { type: 'unix', path: unix });
    servers.push(unixServer);
    const conf = nginxConf({
      port,
      tcp: (main.address() as AddressInfo).port,
      unix,
      k200: (k200.address() as AddressInfo).port,
    });
    proc = await startNginx(dir, conf, port);
  });

  const servers: FastcgiListener[] = [];
  afterAll(async () => {
    await proc?.stop();
    for (const s of [main, k200, ...servers]) {
      s?.fastcgi.destroy();
      await new Promise((r) => (s ? s.close(r) : r(undefined)));
    }
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const get = async (path: string, init?: RequestInit) => {
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { redirect: 'manual', ...init });
    return { status: res.status, headers: res.headers, body: Buffer.from(await res.arrayBuffer()) };
  };

  it('serves with fastcgi_keep_conn on (TCP) and off (unix socket)', async () => {
    const before = mainConnections;
    for (let i = 0; i < 3; i++) {
      const keep = await get('/keep/hello');
      expect([keep.status, keep.body.toString()]).toEqual([200, 'hello /keep|/hello']);
      expect(keep.headers.get('content-type')).toBe('text/plain');
      expect(keep.headers.get('content-length')).toBe('18');
    }
    const kept = mainConnections - before;
    expect(kept).toBeLessThanOrEqual(1);
    for (let i = 0; i < 3; i++) {
      const close = await get('/close/hello');
      expect([close.status, close.body.toString()]).toEqual([200, 'hello /close|/hello']);
    }
    expect(mainConnections - before - kept).toBe(3);
  });

  it('takes a 5 MiB upload and a chunked upload, with request buffering on and off', async () => {
    const body = Buffer.alloc(5 * 1024 * 1024);
    for (let i = 0; i < body.length; i += 997) body[i] = i & 0xff;
    for (const prefix of ['/keep', '/close', '/stream']) {
      const r = await get(`${prefix}/upload`, { method: 'POST', body });
      expect([r.status, r.body.toString()]).toEqual([200, `"5242880" 5242880 ${sha256(body)}`]);
    }
    const parts = ['first part,', 'x'.repeat(100_000), ',last'];
    for (const prefix of ['/keep', '/stream']) {
      const text = await new Promise<string>((resolve, reject) => {
        const req = httpRequest(
          {
            host: '127.0.0.1',
            port,
            method: 'POST',
            path: `${prefix}/upload`,
            headers: { 'Transfer-Encoding': 'chunked' },
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (d) => chunks.push(d));
            res.on('end', () => resolve(`${res.statusCode} ${Buffer.concat(chunks).toString()}`));
          },
        );
        req.on('error', reject);
        (async () => {
          for (const p of parts) {
            req.write(p);
            await tick(5);
          }
          req.end();
        })();
      });
      const all = parts.join('');
      /* buffered: nginx counts the body and sends its length; streamed: CONTENT_LENGTH is "" */
      const length = prefix === '/stream' ? '""' : `"${all.length}"`;
      expect(text).toBe(`200 ${length} ${all.length} ${sha256(all)}`);
    }
  });

  it('streams a 20 MiB download', async () => {
    for (const prefix of ['/keep', '/stream']) {
      const r = await get(`${prefix}/download`);
      expect(r.status).toBe(200);
      expect(r.body.length).toBe(DOWNLOAD_CHUNK * DOWNLOAD_CHUNKS);
      expect(sha256(r.body)).toBe(downloadSha);
    }
    expect(state.closedStreams.filter((s) => s === 'download').length).toBe(2);
  });

  it('round-trips bytes 0x80-0xFF in the path, the query and a header value', async () => {
    const high = Array.from({ length: 128 }, (_, i) => String.fromCharCode(0x80 + i)).join('');
    const out = await rawHttp(
      port,
      `GET /keep/bytes/${high}%41%ff?q=${high}%ff HTTP/1.1\r\nHost: localhost\r\n` +
        `X-High: ${high}\r\nConnection: close\r\n\r\n`,
    );
    expect(out.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    expect(bodyOf(out)).toBe(
      [hex(`/bytes/${high}A\xff`), hex(`q=${high}%ff`), hex(high)].join(' '),
    );
  });

  it('passes a redirect, and the 500 of an app error with the error in nginx’s log', async () => {
    const r = await get('/keep/redirect');
    expect([r.status, r.headers.get('location')]).toEqual([302, 'http://elsewhere.example/target']);
    const e = await get('/keep/error');
    expect([e.status, e.body.toString()]).toEqual([500, 'Internal Server Error\n']);
    await tick(50);
    const log = readFileSync(join(dir, 'error.log'), 'latin1');
    expect(log).toContain(
      'FastCGI sent in stderr: "tsgi: error in application: Error: deliberate failure for nginx',
    );
  });

  it('cuts the client response when the app fails after the headers', async () => {
    const out = await rawHttp(
      port,
      'GET /keep/late-error HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n',
    );
    expect(out.startsWith('HTTP/1.1 200 OK\r\n')).toBe(true);
    expect(out).toContain('partial body;');
    /* chunked, and the last chunk never comes */
    expect(out).toContain('Transfer-Encoding: chunked');
    expect(out.endsWith('0\r\n\r\n')).toBe(false);
    const after = await get('/keep/hello');
    expect(after.status).toBe(200);
  });

  it('runs the app’s close() when the client disconnects mid-download', async () => {
    const before = state.closedStreams.filter((s) => s === 'endless').length;
    const abortedBefore = state.aborted;
    await new Promise<void>((resolve) => {
      const req = httpRequest({ host: '127.0.0.1', port, path: '/stream/endless' }, (res) => {
        let got = 0;
        res.on('data', (d: Buffer) => {
          got += d.length;
          if (got > 1024 * 1024) {
            req.destroy();
            resolve();
          }
        });
      });
      req.on('error', () => {});
      req.end();
    });
    while (state.closedStreams.filter((s) => s === 'endless').length === before) await tick(10);
    expect(state.closedStreams.filter((s) => s === 'endless').length).toBe(before + 1);
    expect(state.aborted).toBe(abortedBefore + 1);
  });

  it('serves 200 keep-alive requests over one upstream connection', async () => {
    for (let i = 0; i < 200; i++) {
      const r = await get(`/k200/hello`);
      expect(r.body.toString()).toBe('hello /k200|/hello');
    }
    expect(k200Connections).toBe(1);
    expect(k200.fastcgi.connections.size).toBe(1);
  });

  it('works with examples/nginx/nginx.conf as written (ports changed)', async () => {
    const exampleDir = mkdtempSync(join(tmpdir(), 'tsgi-example-'));
    const examplePort = await freePort();
    const conf = readFileSync(join(ROOT, 'examples/nginx/nginx.conf'), 'utf8')
      .replaceAll('127.0.0.1:8080', `127.0.0.1:${examplePort}`)
      .replaceAll('127.0.0.1:9000', `127.0.0.1:${(main.address() as AddressInfo).port}`)
      .replace('error_log stderr notice;', `error_log stderr notice;\n${nginxUser}`);
    const child = await startNginx(exampleDir, conf, examplePort);
    try {
      const res = await fetch(`http://127.0.0.1:${examplePort}/hello`);
      expect([res.status, await res.text()]).toEqual([200, 'hello |/hello']);
    } finally {
      await child.stop();
      rmSync(exampleDir, { recursive: true, force: true });
    }
  });
});

describe.skipIf(cgiFcgi === null)('cgi-fcgi (libfcgi) as a FastCGI client', () => {
  let server: FastcgiListener;
  let port = 0;
  beforeAll(async () => {
    server = createFastcgiServer(validate(routes));
    await listen(server, { type: 'tcp', host: '127.0.0.1', port: 0 });
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.fastcgi.destroy();
    await new Promise((r) => server.close(r));
  });

  const run = (env: Record<string, string>, input = ''): Promise<string> =>
    new Promise((resolve, reject) => {
      const child = execFile(
        cgiFcgi!,
        ['-bind', '-connect', `127.0.0.1:${port}`],
        { env, encoding: 'latin1' },
        (err, stdout) => (err ? reject(err) : resolve(stdout)),
      );
      child.stdin!.end(Buffer.from(input, 'latin1'));
    });

  it('answers a GET with the exact CGI response', async () => {
    const out = await run({
      REQUEST_METHOD: 'GET',
      SCRIPT_NAME: '',
      PATH_INFO: '/hello',
      SERVER_NAME: 'cli',
      SERVER_PORT: '80',
      SERVER_PROTOCOL: 'HTTP/1.0',
    });
    expect(out).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nhello |/hello',
    );
  });

  it('sends a body that the app reads to CONTENT_LENGTH', async () => {
    const body = 'posted \xff bytes';
    const out = await run(
      {
        REQUEST_METHOD: 'POST',
        REQUEST_URI: '/upload',
        CONTENT_LENGTH: String(body.length),
        SERVER_NAME: 'cli',
        SERVER_PORT: '80',
        SERVER_PROTOCOL: 'HTTP/1.0',
      },
      body,
    );
    expect(bodyOf(out)).toBe(
      `"${body.length}" ${body.length} ${sha256(Buffer.from(body, 'latin1'))}`,
    );
  });
});

if (isCI && nginx === null) {
  it('nginx is installed', () => {
    throw new Error(missingPeerMessage('nginx', 'nginx-light'));
  });
}
if (isCI && cgiFcgi === null) {
  it('cgi-fcgi is installed', () => {
    throw new Error(missingPeerMessage('cgi-fcgi', 'libfcgi-bin'));
  });
}
