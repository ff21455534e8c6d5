/**
 * `npm run bench:adapter`: what the node adapter (`--interface node`, lib/adapters/node.ts)
 * costs, without nginx and wrk in the measurement. One process holds both servers and a small
 * client: node:http serving a handler, and tsgi's FastCGI server serving the same handler
 * through fromNodeHandler(); the client keeps `--connections` connections busy with one request
 * at a time each (an nginx-like HTTP/1.1 request, or the same request as FastCGI records with
 * FCGI_KEEP_CONN). The handlers: a bare `(req, res)` hello world, and an Express hello world
 * (bench/e2e/express-hello.mjs, the app of the bench:e2e Express rows); plus tsgi's own TSGI hello
 * world as the floor of the FastCGI side, Koa, Fastify and Hono (each against its own server: node:http,
 * @hono/node-server), tsgi's HTTP listener with the TSGI hello, and that hello world under --timeout's request tracker
 * without and with the request watchdog (what a registration per request costs). Reports the process's CPU time per request (user +
 * system, client included: the same few µs on every row) over interleaved rounds, min and
 * median: on a shared machine the minimum is the steadier figure. A report, not an assertion.
 *
 * With --isolate each row runs in a process of its own (forked, told over IPC when to run a
 * round, the rounds still interleaved): the frameworks then see only the request and response
 * objects of their own row, as in production, where one server runs them. Without it, node:http
 * and tsgi rows share one process and its inline caches.
 *
 *   npm run bench:adapter -- [--requests N] [--rounds R] [--connections C] [--rows word,word]
 *                            [--isolate]
 */
import { fork } from 'node:child_process';
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { buildFcgiRequest, FCGI_KEEP_CONN, REQUEST_PAIRS } from './fixtures.mjs';

const { values: opts } = parseArgs({
  options: {
    requests: { type: 'string', default: '20000' },
    rounds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '8' },
    rows: { type: 'string' },
    isolate: { type: 'boolean', default: false },
    /* internal: the row a process forked by --isolate serves */
    child: { type: 'string' },
  },
});
const requests = Number(opts.requests);
const rounds = Number(opts.rounds);
const connections = Number(opts.connections);

const dist = (file) => import(new URL(`../dist/${file}`, import.meta.url).href);
const { codec } = await dist('codec/index.js');
const { createFastcgiServer } = await dist('protocol/fastcgi.js');
const { fromNodeHandler } = await dist('adapters/node.js');
const { headerName } = await dist('adapters/common.js');
const { default: expressApp } = await import('./e2e/express-hello.mjs');
const { fromFetch } = await dist('adapters/fetch.js');
const { createHttpServer } = await dist('protocol/http.js');
const { default: koaApp } = await import('./e2e/koa-hello.mjs');
const { default: honoApp } = await import('./e2e/hono-hello.mjs');
const { default: fastifyApp } = await import('./e2e/fastify-hello.mjs');
const { getRequestListener } = await import('@hono/node-server');
const { RequestTracker } = await dist('server/request-tracker.js');
const { startWatchdog } = await dist('server/watchdog.js');

const BODY = Buffer.from('Hello, world!\n');
const bare = (_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': String(BODY.length) });
  res.end(BODY);
};
const tsgiHello = (_env, startResponse) => {
  startResponse('200 OK', [
    ['Content-Type', 'text/plain'],
    ['Content-Length', String(BODY.length)],
  ]);
  return [BODY];
};

/* nginx's fastcgi_params for `GET /` with a browser's headers (bench/fixtures.mjs), and the
 * same request as HTTP/1.1 as nginx's proxy_pass would send it */
const pairs = [...REQUEST_PAIRS];
const set = (k, v) => (pairs[pairs.indexOf(k) + 1] = v);
set('REQUEST_URI', '/');
set('DOCUMENT_URI', '/');
set('SCRIPT_NAME', '');
set('QUERY_STRING', '');
const fcgiRequest = buildFcgiRequest(pairs, 1, FCGI_KEEP_CONN);
let head = 'GET / HTTP/1.1\r\n';
for (let i = 0; i < pairs.length; i += 2) {
  if (!pairs[i].startsWith('HTTP_') || pairs[i] === 'HTTP_CONNECTION') continue;
  head += `${headerName(pairs[i])}: ${pairs[i + 1]}\r\n`;
}
const httpRequest = Buffer.from(`${head}Connection: keep-alive\r\n\r\n`, 'latin1');

const listen = (server) =>
  new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(server.address().port)));

/** Bytes of one response (all responses of a row are the same length: Date's is fixed). */
function responseLength(port, request) {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let n = 0;
    s.on('data', (d) => (n += d.length));
    s.on('error', reject);
    s.write(request);
    setTimeout(() => {
      s.destroy();
      resolve(n);
    }, 300);
  });
}

/** `total` requests over `connections` connections; CPU µs per request. */
async function run(row, total) {
  setGlobals(row.globals ?? nativeGlobals);
  const per = Math.ceil(total / connections);
  let done = 0;
  const cpu0 = process.cpuUsage();
  await Promise.all(
    Array.from(
      { length: connections },
      () =>
        new Promise((resolve, reject) => {
          const s = connect(row.port, '127.0.0.1');
          s.setNoDelay(true);
          let got = 0;
          let sent = 1;
          s.on('connect', () => s.write(row.request));
          s.on('error', reject);
          s.on('data', (d) => {
            got += d.length;
            while (got >= row.length) {
              got -= row.length;
              done++;
              if (sent === per) {
                s.destroy();
                resolve();
                return;
              }
              sent++;
              s.write(row.request);
            }
          });
        }),
    ),
  );
  const cpu = process.cpuUsage(cpu0);
  return (cpu.user + cpu.system) / done;
}

await fastifyApp.ready();
/* Hono's two rows run as two processes would: @hono/node-server replaces the global Request
 * and Response with its own classes, fromFetch() the global Response with tsgi's light one;
 * each row runs with the globals its server installed (row.globals, set before each run) */
const globalsNow = () => ({ Request: globalThis.Request, Response: globalThis.Response });
const setGlobals = (g) => {
  for (const [k, v] of Object.entries(g)) {
    Object.defineProperty(globalThis, k, { configurable: true, writable: true, value: v });
  }
};
const nativeGlobals = globalsNow();
const tsgiHono = fromFetch(honoApp.fetch);
const tsgiHonoGlobals = globalsNow();
setGlobals(nativeGlobals);
const honoListener = getRequestListener(honoApp.fetch);
const honoGlobals = globalsNow();
setGlobals(nativeGlobals);
const fastifyHandler = (req, res) => fastifyApp.routing(req, res);
const koaHandler = koaApp.callback();

const allRows = [
  { name: 'node:http, bare handler', server: createServer(bare), request: httpRequest },
  {
    name: 'tsgi HTTP, TSGI hello',
    server: createHttpServer(tsgiHello),
    request: httpRequest,
  },
  {
    name: 'tsgi FastCGI + fromNodeHandler, bare handler',
    server: createFastcgiServer(fromNodeHandler(bare)),
    request: fcgiRequest,
  },
  { name: 'node:http, Express', server: createServer(expressApp), request: httpRequest },
  {
    name: 'tsgi FastCGI + fromNodeHandler, Express',
    server: createFastcgiServer(fromNodeHandler(expressApp)),
    request: fcgiRequest,
  },
  { name: 'node:http, Koa', server: createServer(koaHandler), request: httpRequest },
  {
    name: 'tsgi FastCGI + fromNodeHandler, Koa',
    server: createFastcgiServer(fromNodeHandler(koaHandler)),
    request: fcgiRequest,
  },
  { name: 'node:http, Fastify', server: createServer(fastifyHandler), request: httpRequest },
  {
    name: 'tsgi FastCGI + fromNodeHandler, Fastify',
    server: createFastcgiServer(fromNodeHandler(fastifyHandler)),
    request: fcgiRequest,
  },
  {
    name: '@hono/node-server, Hono',
    server: createServer(honoListener),
    request: httpRequest,
    globals: honoGlobals,
  },
  {
    name: 'tsgi FastCGI + fromFetch, Hono',
    server: createFastcgiServer(tsgiHono),
    request: fcgiRequest,
    globals: tsgiHonoGlobals,
  },
  {
    name: 'tsgi FastCGI, TSGI hello (floor)',
    server: createFastcgiServer(tsgiHello),
    request: fcgiRequest,
  },
  /* what --timeout adds per request: the request tracker, then the tracker registering each
     request with the native watchdog (lib/server/watchdog.ts) */
  {
    name: 'tsgi FastCGI, TSGI hello, --timeout without the watchdog',
    server: createFastcgiServer(new RequestTracker({ timeoutMs: 30_000 }).wrap(tsgiHello)),
    request: fcgiRequest,
  },
  {
    name: 'tsgi FastCGI, TSGI hello, --timeout with the watchdog',
    server: createFastcgiServer(
      new RequestTracker({
        timeoutMs: 30_000,
        watchdog: startWatchdog({ timeoutMs: 30_000, maxRssBytes: 0 }, 'text', null),
      }).wrap(tsgiHello),
    ),
    request: fcgiRequest,
  },
];
/* --rows: the rows whose name contains one of these words (comma-separated, any case) */
const wanted = opts.rows?.toLowerCase().split(',');
const rows =
  opts.child !== undefined
    ? allRows.filter((r) => r.name === opts.child)
    : wanted
      ? allRows.filter((r) => wanted.some((w) => r.name.toLowerCase().includes(w)))
      : allRows;
for (const row of allRows) if (!rows.includes(row) || opts.isolate) row.server.close();

/** Listens, finds the response length and warms the row up. */
async function prepare(row) {
  row.port = await listen(row.server);
  setGlobals(row.globals ?? nativeGlobals);
  row.length = await responseLength(row.port, row.request);
  await run(row, Math.min(2000, requests)); /* warm-up */
}

if (opts.child !== undefined) {
  /* a process forked by --isolate: one row, a round each time the parent asks */
  const [row] = rows;
  await prepare(row);
  process.on('disconnect', () => process.exit(0));
  process.on('message', (m) => {
    if (m === 'stop') process.exit(0);
    run(row, m).then((us) => process.send(us));
  });
  process.send('ready');
} else {
  await main();
}

async function main() {
  for (const row of rows) {
    row.samples = [];
    if (!opts.isolate) {
      await prepare(row);
      row.round = (n) => run(row, n);
      continue;
    }
    const child = fork(
      new URL(import.meta.url).pathname,
      [...process.argv.slice(2), '--child', row.name],
      {
        stdio: 'inherit',
      },
    );
    const replies = [];
    child.on('message', (m) => replies.shift()?.(m));
    const ask = (m) =>
      new Promise((resolve) => (replies.push(resolve), m !== null && child.send(m)));
    await ask(null); /* 'ready' */
    row.round = (n) => ask(n);
    row.stop = () => child.send('stop');
  }
  console.log(
    `bench:adapter: ${rounds} rounds × ${requests} requests per row over ${connections} connections` +
      `${opts.isolate ? ', each row in a process of its own' : ''}, ` +
      `node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model.trim()}), ${codec.name} codec`,
  );
  for (let r = 0; r < rounds; r++) {
    for (let i = 0; i < rows.length; i++) {
      const row = rows[(i + r) % rows.length];
      row.samples.push(await row.round(requests));
    }
  }
  console.log('\n| row | CPU µs/request (min) | (median) |');
  console.log('|---|---:|---:|');
  const stat = {};
  const med = {};
  for (const row of rows) {
    const s = [...row.samples].sort((a, b) => a - b);
    stat[row.name] = s[0];
    med[row.name] = s[s.length >> 1];
    console.log(`| ${row.name} | ${s[0].toFixed(1)} | ${s[s.length >> 1].toFixed(1)} |`);
  }
  /* requests per CPU second of tsgi + adapter against node:http: above 1, tsgi costs less */
  const ratio = (own, tsgi) =>
    stat[own] === undefined || stat[tsgi] === undefined
      ? null
      : `${(stat[own] / stat[tsgi]).toFixed(2)}× (medians ${(med[own] / med[tsgi]).toFixed(2)}×)`;
  const ratios = [
    ['bare handler', 'node:http, bare handler', 'tsgi FastCGI + fromNodeHandler, bare handler'],
    ['Express', 'node:http, Express', 'tsgi FastCGI + fromNodeHandler, Express'],
    ['Koa', 'node:http, Koa', 'tsgi FastCGI + fromNodeHandler, Koa'],
    ['Fastify', 'node:http, Fastify', 'tsgi FastCGI + fromNodeHandler, Fastify'],
    ['Hono', '@hono/node-server, Hono', 'tsgi FastCGI + fromFetch, Hono'],
    ['TSGI hello over tsgi HTTP', 'node:http, bare handler', 'tsgi HTTP, TSGI hello'],
  ]
    .map(([what, own, tsgi]) => [what, ratio(own, tsgi)])
    .filter(([, r]) => r !== null);
  console.log(
    '\ntsgi against the same app on its own server, requests per CPU second (from the minimums): ' +
      ratios.map(([what, r]) => `${what} ${r}`).join(', '),
  );
  for (const row of rows) {
    row.stop?.();
    if (!opts.isolate) row.server.close();
  }
  process.exit(0);
}
