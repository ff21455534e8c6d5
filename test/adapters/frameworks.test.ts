/**
 * Real frameworks, unchanged, under tsgi: the Express, Koa, Fastify and Hono apps of
 * test/adapters/frameworks-apps/ served by `tsgi serve APP --interface node|fetch` (one process per
 * framework with FastCGI, SCGI, uwsgi and HTTP listeners) behind nginx (fastcgi_pass,
 * scgi_pass, uwsgi_pass) and directly over tsgi's HTTP, and by `tsgi cgi` behind lighttpd's
 * mod_cgi — and the same requests answered by the same app directly on node:http (Fastify's
 * own listen(), Hono's @hono/node-server). Status, the headers that matter and the body bytes
 * must be equal.
 *
 * Headers left out of the comparison: Date, Server (nginx's), the framing of each hop
 * (Connection, Keep-Alive, Transfer-Encoding), and what a front server adds on its own
 * (lighttpd's Accept-Ranges). Header order is not compared (nginx writes Content-Type first);
 * the order of repeated headers (Set-Cookie) is. Content-Length must be right wherever it is
 * sent, and present through tsgi whenever the direct answer had it.
 *
 * Skipped loudly without nginx or lighttpd; failing under CI=true.
 */
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type RequestListener, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../support/build.js';
import {
  NGINX_SCGI_PARAMS,
  NGINX_UWSGI_PARAMS,
  nginxHttpConf,
  nginxParams,
  startLighttpd,
  startNginx,
  startOnFreePorts,
  waitUntilAccepting,
} from '../support/frontends.js';
import { unsupportedOnThisNode, warnUnsupported } from '../support/engines.js';
import { findPeer, isCI, missingPeerMessage } from '../support/peers.js';
import { startChild, type Child } from '../support/spawn.js';

const nginx = findPeer('nginx', 'nginx-light');
const lighttpd = findPeer('lighttpd', 'lighttpd');

const APPS = join(ROOT, 'test', 'adapters', 'frameworks-apps');

type Framework = 'express' | 'koa' | 'fastify' | 'hono';
type Route =
  | 'nginx fastcgi_pass'
  | 'nginx scgi_pass'
  | 'nginx uwsgi_pass'
  | 'tsgi --http'
  | 'lighttpd mod_cgi (tsgi cgi)';

const ALL_FRAMEWORKS: { name: Framework; iface: 'node' | 'fetch'; packages: string[] }[] = [
  { name: 'express', iface: 'node', packages: ['express'] },
  { name: 'koa', iface: 'node', packages: ['koa', '@koa/router', '@koa/bodyparser'] },
  { name: 'fastify', iface: 'node', packages: ['fastify'] },
  { name: 'hono', iface: 'fetch', packages: ['hono', '@hono/node-server'] },
];
/* the Node version matrix: a framework whose packages do not support this Node is skipped */
const UNSUPPORTED = new Map(
  ALL_FRAMEWORKS.map((f) => [f.name, unsupportedOnThisNode(f.packages)] as const).filter(
    (e): e is [Framework, string] => e[1] !== null,
  ),
);
for (const [name, reason] of UNSUPPORTED) warnUnsupported(`the ${name} framework suite`, reason);
const FRAMEWORKS = ALL_FRAMEWORKS.filter((f) => !UNSUPPORTED.has(f.name));

const ROUTES: { name: Route; needs: string | null }[] = [
  { name: 'nginx fastcgi_pass', needs: nginx },
  { name: 'nginx scgi_pass', needs: nginx },
  { name: 'nginx uwsgi_pass', needs: nginx },
  { name: 'tsgi --http', needs: 'node' },
  { name: 'lighttpd mod_cgi (tsgi cgi)', needs: lighttpd },
];

/** Deterministic bytes: a 512 KiB download and a 300 KiB upload. */
function bytes(size: number, seed: number): Buffer {
  const b = Buffer.alloc(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    b[i] = x >>> 24;
  }
  return b;
}
const DOWNLOAD = bytes(512 * 1024, 7);
const UPLOAD = bytes(300 * 1024, 11);
const HELLO_TXT = Array.from(
  { length: 200 },
  (_, i) => `line ${i}: static file served by express.static\n`,
).join('');

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));

/** The requests every framework answers (the targets are below the app's mount). */
const REQUESTS: { name: string; x: Exchange; only?: Framework[] }[] = [
  { name: 'GET /', x: { target: '/' } },
  { name: 'HEAD /', x: { method: 'HEAD', target: '/' } },
  { name: 'GET /users/1 (routing, JSON)', x: { target: '/users/1' } },
  { name: 'GET /users/99 (404 from the app)', x: { target: '/users/99' } },
  {
    name: 'POST /users (JSON body)',
    x: {
      method: 'POST',
      target: '/users',
      headers: [['Content-Type', 'application/json']],
      body: json({ name: 'Linus', langs: ['c', 'perl'], note: 'caf\u00e9' }),
    },
  },
  {
    name: 'POST /users with broken JSON (error handler, 400)',
    x: {
      method: 'POST',
      target: '/users',
      headers: [['Content-Type', 'application/json']],
      body: Buffer.from('{"name":'),
    },
  },
  { name: 'GET /query?… (query string)', x: { target: '/query?x=1&y=caf%C3%A9&z=a+b' } },
  { name: 'GET /login (two Set-Cookie, redirect)', x: { target: '/login' } },
  {
    name: 'GET /welcome (cookies sent back)',
    x: { target: '/welcome', headers: [['Cookie', 'session=abc123; theme=dark']] },
  },
  { name: 'GET /boom (error handler, 500)', x: { target: '/boom' } },
  { name: 'GET /missing (the framework 404)', x: { target: '/missing' } },
  {
    name: 'POST /upload, 300 KiB with Content-Length',
    x: {
      method: 'POST',
      target: '/upload',
      headers: [['Content-Type', 'application/octet-stream']],
      body: UPLOAD,
    },
  },
  {
    name: 'POST /upload, chunked',
    x: {
      method: 'POST',
      target: '/upload',
      headers: [['Content-Type', 'application/octet-stream']],
      chunks: [UPLOAD.subarray(0, 1000), UPLOAD.subarray(1000, 70000), UPLOAD.subarray(70000)],
    },
  },
  { name: 'GET /download (streamed file)', x: { target: '/download' } },
  { name: 'GET /static/hello.txt', x: { target: '/static/hello.txt' }, only: ['express'] },
  {
    name: 'GET /static/hello.txt, Range: bytes=10-99 (206)',
    x: { target: '/static/hello.txt', headers: [['Range', 'bytes=10-99']] },
    only: ['express'],
  },
  {
    name: 'GET /static/hello.txt, Range past the end (416)',
    x: { target: '/static/hello.txt', headers: [['Range', 'bytes=999999-']] },
    only: ['express'],
  },
  {
    name: 'HEAD /static/hello.txt',
    x: { method: 'HEAD', target: '/static/hello.txt' },
    only: ['express'],
  },
];

/** What to send. */
interface Exchange {
  method?: string;
  target: string;
  headers?: [string, string][];
  /** A body sent with Content-Length. */
  body?: Buffer;
  /** A body sent with Transfer-Encoding: chunked, one chunk per part, a pause between. */
  chunks?: Buffer[];
}

/** An answer: the status, header lines in order (names as sent), the body (unframed). */
interface Reply {
  status: number;
  headers: [string, string][];
  body: Buffer;
}

/** One request on a fresh connection, Host: app.test, Connection: close. */
function exchange(port: number, x: Exchange): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: [string, string][] = [
      ['Host', 'app.test'],
      ['Connection', 'close'],
      ...(x.headers ?? []),
    ];
    if (x.body) headers.push(['Content-Length', String(x.body.length)]);
    if (x.chunks) headers.push(['Transfer-Encoding', 'chunked']);
    const req = request({
      host: '127.0.0.1',
      port,
      method: x.method ?? 'GET',
      path: x.target,
      headers: headers.flat(),
      agent: false,
    });
    req.on('error', reject);
    req.on('response', (res) => {
      const parts: Buffer[] = [];
      res.on('data', (d: Buffer) => parts.push(d));
      res.on('error', reject);
      res.on('end', () => {
        const raw = res.rawHeaders;
        const list: [string, string][] = [];
        for (let i = 0; i < raw.length; i += 2) list.push([raw[i]!, raw[i + 1]!]);
        resolve({ status: res.statusCode!, headers: list, body: Buffer.concat(parts) });
      });
    });
    if (x.body) req.end(x.body);
    else if (x.chunks) {
      const chunks = x.chunks;
      void (async () => {
        for (const c of chunks) {
          req.write(c);
          await new Promise((r) => setTimeout(r, 5));
        }
        req.end();
      })();
    } else req.end();
  });
}

const IGNORED = new Set(['date', 'server', 'connection', 'keep-alive', 'transfer-encoding']);

/**
 * The headers compared: lower-cased names sorted (front servers write some headers in their own
 * order; repeated headers, such as Set-Cookie, keep theirs), without the ignored ones.
 */
function compared(r: Reply): [string, string][] {
  return r.headers
    .map(([n, v]): [string, string] => {
      const name = n.toLowerCase();
      /* "text/plain;charset=UTF-8" (undici's Response) = "text/plain; charset=UTF-8"
       * (@hono/node-server's own Response class, which it installs as the global one) */
      return [name, name === 'content-type' ? v.replace(/\s*;\s*/g, '; ') : v];
    })
    .filter(([n]) => !IGNORED.has(n) && n !== 'content-length')
    .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

function lengthOf(r: Reply): string | undefined {
  return r.headers.find(([n]) => n.toLowerCase() === 'content-length')?.[1];
}

/** Headers a front server adds on its own (lighttpd: Accept-Ranges on CGI answers). */
const ADDED_BY: Partial<Record<Route, string[]>> = {
  'lighttpd mod_cgi (tsgi cgi)': ['accept-ranges'],
};

/** Asserts that `got` (through tsgi) equals `want` (direct) as the module comment says. */
function expectSame(got: Reply, want: Reply, method: string, route: Route): void {
  expect(got.status).toBe(want.status);
  const added = (ADDED_BY[route] ?? []).filter(
    (n) => !want.headers.some(([w]) => w.toLowerCase() === n),
  );
  expect(compared(got).filter(([n]) => !added.includes(n))).toEqual(compared(want));
  expect(got.body.length).toBe(want.body.length);
  expect(got.body.equals(want.body)).toBe(true);
  const wantLength = lengthOf(want);
  const gotLength = lengthOf(got);
  if (wantLength !== undefined) expect(gotLength).toBe(wantLength);
  if (gotLength !== undefined && method !== 'HEAD' && got.status !== 304) {
    expect(Number(gotLength)).toBe(got.body.length);
  }
}

/** The same app module, served directly on node:http in this process. */
async function serveDirect(name: Framework): Promise<{ port: number; close: () => Promise<void> }> {
  const mod = (await import(join(APPS, `${name}.mjs`))) as { default: unknown };
  const app = mod.default as Record<string, unknown>;
  const listenOn = (listener: RequestListener) =>
    new Promise<{ port: number; close: () => Promise<void> }>((resolve) => {
      const server: Server = createServer(listener);
      server.listen(0, '127.0.0.1', () =>
        resolve({
          port: (server.address() as AddressInfo).port,
          close: () =>
            new Promise<void>((r) => {
              server.closeAllConnections();
              server.close(() => r());
            }),
        }),
      );
    });
  switch (name) {
    case 'express':
      return listenOn(app as unknown as RequestListener);
    case 'koa':
      return listenOn((app.callback as () => RequestListener).call(app));
    case 'fastify': {
      const f = app as unknown as {
        listen(o: { port: number; host: string }): Promise<string>;
        server: Server;
        close(): Promise<void>;
      };
      await f.listen({ port: 0, host: '127.0.0.1' });
      return { port: (f.server.address() as AddressInfo).port, close: () => f.close() };
    }
    case 'hono': {
      const { serve } = await import('@hono/node-server');
      const h = app as unknown as { fetch: (r: Request) => Response | Promise<Response> };
      return new Promise((resolve) => {
        const server = serve({ fetch: h.fetch, port: 0, hostname: '127.0.0.1' }, (info) =>
          resolve({
            port: info.port,
            close: () =>
              new Promise<void>((r) => {
                (server as Server).closeAllConnections();
                server.close(() => r());
              }),
          }),
        );
      });
    }
  }
}

const FASTCGI_PARAMS = [
  'REQUEST_METHOD $request_method',
  'REQUEST_URI $request_uri',
  'DOCUMENT_URI $document_uri',
  'QUERY_STRING $query_string',
  'CONTENT_TYPE $content_type',
  'CONTENT_LENGTH $content_length',
  'SCRIPT_NAME ""',
  'SERVER_PROTOCOL $server_protocol',
  'REQUEST_SCHEME $scheme',
  'REMOTE_ADDR $remote_addr',
  'REMOTE_PORT $remote_port',
  'SERVER_ADDR $server_addr',
  'SERVER_PORT $server_port',
  'SERVER_NAME $server_name',
];

/** One framework's tsgi process and where each route reaches it. */
interface Served {
  tsgi: Child;
  direct: { port: number; close: () => Promise<void> };
  /** Port per route (nginx server blocks, tsgi's own HTTP, lighttpd). */
  ports: Partial<Record<Route, number>>;
  /** Target prefix per route (the CGI script's mount). */
  prefix: Partial<Record<Route, string>>;
  /** The direct answers, by request name. */
  answers: Map<string, Reply>;
}

describe('frameworks under tsgi answer as they do on node:http', () => {
  let dir = '';
  let nginxProc: Child | null = null;
  let lighttpdProc: Child | null = null;
  const served = new Map<Framework, Served>();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsgi-frameworks-'));
    const files = join(dir, 'files');
    mkdirSync(join(files, 'public'), { recursive: true });
    writeFileSync(join(files, 'download.bin'), DOWNLOAD);
    writeFileSync(join(files, 'public', 'hello.txt'), HELLO_TXT);
    process.env.FRAMEWORK_FILES = files;
    const cli = await ensureBuilt();

    /* nginx's server blocks and lighttpd's port get their ports when the server starts
     * (startOnFreePorts): a port picked now could be taken before then */
    const servers: { s: Served; route: Route; body: string }[] = [];
    const upstreams: string[] = [];
    const cgiAliases: string[] = [];
    const lighttpdUsers: Served[] = [];
    for (const { name, iface } of FRAMEWORKS) {
      const { started: tsgi, ports } = await startOnFreePorts(
        4,
        async ([fastcgi, scgi, uwsgi, http]) => {
          const child = startChild(
            process.execPath,
            [
              cli,
              'serve',
              join(APPS, `${name}.mjs`),
              '--interface',
              iface,
              '--fastcgi',
              `127.0.0.1:${fastcgi}`,
              '--scgi',
              `127.0.0.1:${scgi}`,
              '--uwsgi',
              `127.0.0.1:${uwsgi}`,
              '--http',
              `127.0.0.1:${http}`,
            ],
            { env: { ...process.env, FRAMEWORK_FILES: files } },
          );
          try {
            for (const p of [fastcgi!, scgi!, uwsgi!, http!]) {
              await waitUntilAccepting(child, `tsgi serve ${name}`, p);
            }
          } catch (err) {
            await child.stop();
            throw err;
          }
          return child;
        },
      );
      const up = { fastcgi: ports[0]!, scgi: ports[1]!, uwsgi: ports[2]!, http: ports[3]! };
      const s: Served = {
        tsgi,
        direct: await serveDirect(name),
        ports: { 'tsgi --http': up.http },
        prefix: {},
        answers: new Map(),
      };
      served.set(name, s);
      if (nginx !== null) {
        const blocks: [Route, string][] = [
          [
            'nginx fastcgi_pass',
            `${nginxParams('fastcgi', FASTCGI_PARAMS)}
            fastcgi_pass ${name}_fastcgi;
            fastcgi_keep_conn on;`,
          ],
          [
            'nginx scgi_pass',
            `${nginxParams('scgi', NGINX_SCGI_PARAMS)}\n            scgi_pass 127.0.0.1:${up.scgi};`,
          ],
          [
            'nginx uwsgi_pass',
            `${nginxParams('uwsgi', NGINX_UWSGI_PARAMS)}\n            uwsgi_pass 127.0.0.1:${up.uwsgi};`,
          ],
        ];
        upstreams.push(
          `    upstream ${name}_fastcgi { server 127.0.0.1:${up.fastcgi}; keepalive 4; }`,
        );
        for (const [route, body] of blocks) servers.push({ s, route, body });
      }
      if (lighttpd !== null) {
        const script = join(dir, 'cgi-bin', `${name}.mjs`);
        mkdirSync(join(dir, 'cgi-bin'), { recursive: true });
        writeFileSync(
          script,
          `#!/usr/bin/env -S ${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} cgi --interface ${iface}\n` +
            `process.env.FRAMEWORK_FILES = ${JSON.stringify(files)};\n` +
            `const mod = await import(${JSON.stringify(join(APPS, `${name}.mjs`))});\n` +
            `export default mod.default;\n`,
        );
        chmodSync(script, 0o755);
        cgiAliases.push(`"/${name}" => "${script}"`);
        lighttpdUsers.push(s);
        s.prefix['lighttpd mod_cgi (tsgi cgi)'] = `/${name}`;
      }
      for (const r of REQUESTS) {
        if (r.only && !r.only.includes(name)) continue;
        s.answers.set(r.name, await exchange(s.direct.port, r.x));
      }
    }
    if (nginx !== null) {
      const ndir = join(dir, 'nginx');
      mkdirSync(ndir);
      const blocks = (ports: number[]) =>
        servers
          .map(
            ({ body }, i) =>
              `    server {\n        listen 127.0.0.1:${ports[i]};\n        server_name localhost;\n` +
              `        location / {\n${body}\n        }\n    }`,
          )
          .join('\n');
      const { started, ports } = await startOnFreePorts(servers.length, (p) =>
        startNginx(ndir, nginxHttpConf(blocks(p), upstreams.join('\n')), p[p.length - 1]!),
      );
      nginxProc = started;
      servers.forEach(({ s, route }, i) => (s.ports[route] = ports[i]));
    }
    if (lighttpd !== null) {
      const ldir = join(dir, 'lighttpd');
      mkdirSync(join(ldir, 'htdocs'), { recursive: true });
      const { started, ports } = await startOnFreePorts(1, ([lighttpdPort]) =>
        startLighttpd(
          ldir,
          `server.document-root = "${join(ldir, 'htdocs')}"
server.bind = "127.0.0.1"
server.port = ${lighttpdPort}
server.errorlog = "${join(ldir, 'error.log')}"
server.modules += ( "mod_alias", "mod_cgi" )
alias.url = ( ${cgiAliases.join(', ')} )
cgi.assign = ( "" => "" )
`,
          lighttpdPort!,
        ),
      );
      lighttpdProc = started;
      for (const s of lighttpdUsers) s.ports['lighttpd mod_cgi (tsgi cgi)'] = ports[0];
    }
  }, 120_000);

  afterAll(async () => {
    await nginxProc?.stop();
    await lighttpdProc?.stop();
    for (const s of served.values()) {
      await s.tsgi.stop();
      await s.direct.close();
    }
    delete process.env.FRAMEWORK_FILES;
    if (dir) rmSync(dir, { recursive: true, force: true });
  }, 60_000);

  it('the direct answers are what the apps are written to give', () => {
    for (const { name } of FRAMEWORKS) {
      const a = served.get(name)!.answers;
      expect(a.get('GET /users/1 (routing, JSON)')!.body.toString()).toBe('{"id":1,"name":"Ada"}');
      expect(a.get('POST /users (JSON body)')!.status).toBe(201);
      expect(a.get('POST /users with broken JSON (error handler, 400)')!.status).toBe(400);
      const login = a.get('GET /login (two Set-Cookie, redirect)')!;
      expect(login.status).toBe(302);
      expect(login.headers.filter(([n]) => n.toLowerCase() === 'set-cookie')).toHaveLength(2);
      expect(a.get('GET /boom (error handler, 500)')!.status).toBe(500);
      expect(JSON.parse(a.get('GET /boom (error handler, 500)')!.body.toString()).error).toBe(
        'boom',
      );
      expect(a.get('GET /download (streamed file)')!.body.equals(DOWNLOAD)).toBe(true);
      const sha = createHash('sha256').update(UPLOAD).digest('hex');
      for (const r of ['POST /upload, 300 KiB with Content-Length', 'POST /upload, chunked']) {
        expect(JSON.parse(a.get(r)!.body.toString())).toEqual({ size: UPLOAD.length, sha256: sha });
      }
    }
    const range = served
      .get('express')!
      .answers.get('GET /static/hello.txt, Range: bytes=10-99 (206)')!;
    expect(range.status).toBe(206);
    expect(range.body.toString()).toBe(HELLO_TXT.slice(10, 100));
  });

  for (const [name, reason] of UNSUPPORTED) describe.skip(`${name} (${reason})`, () => {});

  for (const { name } of FRAMEWORKS) {
    describe(name, () => {
      for (const route of ROUTES) {
        describe.skipIf(route.needs === null)(route.name, () => {
          for (const r of REQUESTS) {
            if (r.only && !r.only.includes(name)) continue;
            it(
              r.name,
              async () => {
                const s = served.get(name)!;
                const x = { ...r.x, target: (s.prefix[route.name] ?? '') + r.x.target };
                const got = await exchange(s.ports[route.name]!, x);
                expectSame(got, s.answers.get(r.name)!, r.x.method ?? 'GET', route.name);
              },
              20_000,
            );
          }
        });
      }
    });
  }
});

if (isCI && (nginx === null || lighttpd === null)) {
  describe('frameworks under tsgi: required peers', () => {
    it('nginx and lighttpd are installed', () => {
      if (nginx === null) throw new Error(missingPeerMessage('nginx', 'nginx-light'));
      throw new Error(missingPeerMessage('lighttpd', 'lighttpd'));
    });
  });
}
