/**
 * Instructions per request in the serving process, counted by callgrind.
 *
 *   node bench/request-instructions.mjs scgi|uwsgi|fastcgi|http|node-http|http-close|
 *                                       node-http-close|own [N] [PORT] [CONNS]
 *                                       [APP [INTERFACE] | FRAMEWORK]
 *
 * Starts the server under `valgrind --tool=callgrind --instr-atstart=no`, sends 30000 warm-up
 * requests (WARM), turns instrumentation on (callgrind_control -i on), sends 2000 more
 * (REWARM), zeroes the counts (callgrind_control -z), sends N requests (default 2000), turns
 * instrumentation off and prints the instructions counted divided by N. Both warm-ups keep
 * V8's optimizing compiler out of the count:
 *   - V8 keeps optimizing functions that run once every many requests (Buffer's pool, a
 *     framework's rarer getters) for tens of thousands of them: after 6000 Koa requests,
 *     TurboFan still added 11,000 instructions to each of the next 2000;
 *   - the server sits idle while callgrind_control runs, and after that pause V8 optimized
 *     some functions again: about 29 million instructions, spread over the first requests
 *     counted (14,700 more on each of 2000 Fastify requests over 50 connections).
 * Without instrumentation the warm-up runs at a few thousand requests a second.
 *
 *   scgi, uwsgi  `tsgi serve --scgi|--uwsgi 127.0.0.1:PORT examples/hello.mjs`; each request is
 *                the nginx-typical request of bench/fixtures.mjs on a connection of its own,
 *                written whole at once, read until the server closes;
 *   fastcgi      `tsgi serve --fastcgi …` with the same request as FastCGI records with
 *                KEEP_CONN, on kept connections (as nginx's fastcgi_keep_conn), read until its
 *                END_REQUEST;
 *   http         `tsgi serve --http …` running bench/e2e/hello.mjs, the TSGI hello world of
 *                bench:e2e's tsgi-http row, on kept connections, each request as nginx's
 *                proxy_pass with HTTP/1.1 writes it (Host, no Connection header);
 *   node-http    the same requests to plain node:http (bench/e2e/node-http.mjs, the node-http
 *                row): the floor the http mode is compared with;
 *   http-close, node-http-close
 *                the same two servers, each request as nginx's proxy_pass without an upstream
 *                keepalive writes it (HTTP/1.0, Connection: close) on a connection of its own.
 *
 *   own          a framework's hello world on its own server (bench/e2e/own-server.mjs, the
 *                bench:e2e <framework>-own row's backend), FRAMEWORK given in place of APP
 *                (express, koa, fastify, hono), on kept connections.
 *
 * The kept-connection modes spread the requests over CONNS connections at once (default 1;
 * bench:e2e's wrk runs 50), each sending its next request when the answer to the one before
 * arrived. Over FastCGI each connection stands for a client connection of its own: its
 * requests have a REMOTE_PORT of their own (the fixture's, plus the connection's index). APP (a path from the repository root) replaces the tsgi modes' app, served with
 * `--interface INTERFACE` when given: `fastcgi 2000 27100 1 bench/e2e/koa-hello.mjs node` is
 * the bench:e2e koa-tsgi-fastcgi row's backend.
 *
 * With an APP or FRAMEWORK, the fastcgi, http and own modes send one and the same request to
 * it: the browser request of bench/fixtures.mjs (its headers, cookie and query string) for the
 * path "/" the hello worlds answer. Over FastCGI its params are the fixture's with that
 * REQUEST_URI and DOCUMENT_URI, SCRIPT_NAME "" (as bench:e2e's nginx sets it), and no
 * SCRIPT_FILENAME; over HTTP it is written as nginx's proxy_pass with HTTP/1.1 writes it (the
 * headers in the browser's order, no Connection, which the FastCGI params then leave out too).
 * A framework through tsgi and on its own server then do the same work:
 *
 *   fastcgi 2000 27100 1 bench/e2e/koa-hello.mjs node   against   own 2000 27101 1 koa
 *
 * Needs valgrind; prints the machine line, codec and transport.
 */
import { spawn, execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  FCGI_KEEP_CONN,
  REQUEST_PAIRS,
  SCGI_REQUEST,
  UWSGI_REQUEST,
  buildFcgiRequest,
} from './fixtures.mjs';
/* the adapters' rule for the header name of an HTTP_* variable (HTTP_ACCEPT_LANGUAGE →
   Accept-Language): the HTTP request is the one the FastCGI params stand for */
import { headerName } from '../dist/adapters/common.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const mode = process.argv[2] ?? 'scgi';
const n = Number(process.argv[3] ?? 2000);
const port = Number(process.argv[4] ?? 27100);
const conns = Number(process.argv[5] ?? 1);
const [appPath, iface] = process.argv.slice(6);
const warm = Number(process.env.WARM ?? 30000);
const rewarm = Number(process.env.REWARM ?? 2000);
const HOST = `127.0.0.1:${port}`;

/** How each mode's server starts, what it is sent, and when an answer is complete. */
const PROXY_PASS_REQUEST = 'GET / HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n';
/**
 * The browser request of bench/fixtures.mjs for "/" (the path every hello world answers), as
 * FastCGI params and as nginx's proxy_pass writes it (see the comment at the top).
 */
const APP_QUERY = pairValue('QUERY_STRING');
const APP_URI = `/?${APP_QUERY}`;
const APP_VALUES = { REQUEST_URI: APP_URI, DOCUMENT_URI: '/', SCRIPT_NAME: '' };
const APP_PAIRS = [];
for (let i = 0; i < REQUEST_PAIRS.length; i += 2) {
  const name = REQUEST_PAIRS[i];
  if (name === 'SCRIPT_FILENAME' || name === 'HTTP_CONNECTION') continue;
  APP_PAIRS.push(name, APP_VALUES[name] ?? REQUEST_PAIRS[i + 1]);
}
/**
 * The FastCGI request of kept connection `i`: each connection has a REMOTE_PORT of its own, as
 * each of nginx's client connections does (bench:e2e's wrk opens 50).
 */
function fcgiRequest(pairs, i) {
  const at = pairs.indexOf('REMOTE_PORT') + 1;
  const own = pairs.slice();
  own[at] = String(Number(pairs[at]) + i);
  return buildFcgiRequest(own, 1, FCGI_KEEP_CONN);
}
const APP_HTTP_REQUEST = Buffer.from(
  `GET ${APP_URI} HTTP/1.1\r\n` +
    APP_PAIRS.flatMap((name, i) =>
      i % 2 === 0 && name.startsWith('HTTP_')
        ? [`${headerName(name)}: ${APP_PAIRS[i + 1]}\r\n`]
        : [],
    ).join('') +
    '\r\n',
  'latin1',
);

function pairValue(name) {
  return REQUEST_PAIRS[REQUEST_PAIRS.indexOf(name) + 1];
}

const HELLO_REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');
const appRequest = appPath !== undefined && mode !== 'own';
const MODES = {
  scgi: { args: tsgi('--scgi', 'examples/hello.mjs'), request: SCGI_REQUEST, kept: false },
  uwsgi: { args: tsgi('--uwsgi', 'examples/hello.mjs'), request: UWSGI_REQUEST, kept: false },
  fastcgi: {
    args: tsgi('--fastcgi', 'examples/hello.mjs'),
    requestOn: (i) => fcgiRequest(appRequest ? APP_PAIRS : REQUEST_PAIRS, i),
    kept: true,
    complete: fcgiEnded,
  },
  http: {
    args: tsgi('--http', 'bench/e2e/hello.mjs'),
    request: appRequest ? APP_HTTP_REQUEST : HELLO_REQUEST,
    kept: true,
    complete: httpEnded,
  },
  'node-http': {
    args: [join(root, 'bench/e2e/node-http.mjs'), HOST],
    request: HELLO_REQUEST,
    kept: true,
    complete: httpEnded,
  },
  own: {
    args: [join(root, 'bench/e2e/own-server.mjs'), appPath ?? 'express', HOST],
    request: APP_HTTP_REQUEST,
    kept: true,
    complete: httpEnded,
  },
  /* nginx's proxy_pass without an upstream keepalive: HTTP/1.0, a connection per request */
  'http-close': {
    args: tsgi('--http', 'bench/e2e/hello.mjs'),
    request: Buffer.from(PROXY_PASS_REQUEST),
    kept: false,
  },
  'node-http-close': {
    args: [join(root, 'bench/e2e/node-http.mjs'), HOST],
    request: Buffer.from(PROXY_PASS_REQUEST),
    kept: false,
  },
};

function tsgi(flag, app) {
  const args = [join(root, 'dist/cli.js'), 'serve', flag, HOST, join(root, appPath ?? app)];
  return iface === undefined ? args : [...args, '--interface', iface];
}

/** Bytes up to the end of the first FastCGI END_REQUEST record in `b`, else -1. */
function fcgiEnded(b) {
  for (let at = 0; at + 8 <= b.length;) {
    const size = 8 + b.readUInt16BE(at + 4) + b[at + 6];
    if (at + size > b.length) return -1;
    if (b[at + 1] === 3) return at + size;
    at += size;
  }
  return -1;
}

/** Bytes up to the end of the first HTTP response in `b` (with a Content-Length), else -1. */
function httpEnded(b) {
  const head = b.indexOf('\r\n\r\n');
  if (head === -1) return -1;
  const m = /\r\ncontent-length: *(\d+)/i.exec(b.subarray(0, head).toString('latin1'));
  if (m === null) throw new Error('a response without Content-Length');
  const end = head + 4 + Number(m[1]);
  return end <= b.length ? end : -1;
}

const spec = MODES[mode];
if (spec === undefined) throw new Error(`mode must be one of ${Object.keys(MODES).join(', ')}`);

/** One request on a connection of its own, read until the server closes. */
function once() {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = 0;
    s.on('connect', () => s.write(spec.request));
    s.on('data', (d) => (got += d.length));
    s.on('error', reject);
    s.on('close', () => (got > 0 ? resolve() : reject(new Error('empty response'))));
  });
}

/** `count` requests one after another on the kept connection `s`, the `i`th one. */
function sendOn(s, count, i) {
  const request = spec.requestOn?.(i) ?? spec.request;
  return new Promise((resolve, reject) => {
    if (count === 0) return resolve();
    let left = count;
    let buf = Buffer.alloc(0);
    const onData = (d) => {
      buf = Buffer.concat([buf, d]);
      const end = spec.complete(buf);
      if (end === -1) return;
      buf = buf.subarray(end);
      if (--left > 0) s.write(request);
      else {
        s.off('data', onData);
        s.off('error', reject);
        resolve();
      }
    };
    s.on('data', onData);
    s.on('error', reject);
    s.write(request);
  });
}

let sockets = [];
async function send(count) {
  if (!spec.kept) {
    for (let i = 0; i < count; i++) await once();
    return;
  }
  const each = Math.floor(count / sockets.length);
  await Promise.all(
    sockets.map((s, i) => sendOn(s, i === 0 ? count - each * (sockets.length - 1) : each, i)),
  );
}

function open() {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => {
      s.off('error', reject);
      resolve(s);
    });
    s.once('error', reject);
  });
}

async function waitUp() {
  for (let i = 0; i < 600; i++) {
    try {
      if (!spec.kept) await once();
      else await sendOn(await open().then((s) => (sockets.push(s), s)), 1, 0);
      return;
    } catch {
      sockets = [];
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  throw new Error('server did not come up');
}

const dir = mkdtempSync(join(tmpdir(), 'tsgi-cg-'));
const server = spawn(
  'valgrind',
  [
    '--tool=callgrind',
    '--instr-atstart=no',
    `--callgrind-out-file=${process.env.KEEP_CG ?? join(dir, 'cg.out')}`,
    process.execPath,
    ...spec.args,
  ],
  { stdio: ['ignore', 'ignore', 'pipe'], env: process.env },
);
let err = '';
server.stderr.on('data', (d) => (err += d));
try {
  await waitUp();
  while (spec.kept && sockets.length < conns) sockets.push(await open());
  await send(warm);
  execFileSync('callgrind_control', ['-i', 'on', String(server.pid)], { stdio: 'ignore' });
  /* the server sat idle while callgrind_control ran: let what V8 redoes after an idle spell
     run before the count starts */
  await send(rewarm);
  execFileSync('callgrind_control', ['-z', String(server.pid)], { stdio: 'ignore' });
  await send(n);
  execFileSync('callgrind_control', ['-i', 'off', String(server.pid)], { stdio: 'ignore' });
} finally {
  for (const s of sockets) s.destroy();
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
}
const m = /Collected : (\d+)/.exec(err);
const total = m ? Number(m[1]) : 0;
if (total === 0) throw new Error(`no callgrind summary\n${err}`);
console.log(
  `machine: ${cpus().length} cores, ${cpus()[0]?.model ?? '?'}, Node ${process.version}; ` +
    `codec ${process.env.TSGI_CODEC ?? 'default'}, transport ${process.env.TSGI_TRANSPORT ?? 'default'}` +
    (spec.kept ? `; ${sockets.length} kept connection(s)` : '; a connection per request') +
    (mode === 'own'
      ? `; ${appPath ?? 'express'} on its own server`
      : appPath === undefined
        ? ''
        : `; app ${appPath}${iface ? ` (--interface ${iface})` : ''}`) +
    (appRequest || mode === 'own' ? `; the browser request for ${APP_URI}` : ''),
);
console.log(`${mode}: ${Math.round(total / n)} instructions per request (N=${n})`);
