/**
 * The serving processes that bench/request-instructions.mjs and bench/request-cpu.mjs measure,
 * and the client that drives them: how each mode's server starts, what it is sent, and when an
 * answer is complete.
 *
 *   scgi, uwsgi  `tsgi serve --scgi|--uwsgi 127.0.0.1:PORT examples/hello.mjs`; each request is
 *                the nginx-typical request of bench/fixtures.mjs on a connection of its own,
 *                written whole at once, read until the server closes;
 *   uwsgi-python uWSGI's WSGI hello world (bench:e2e's uwsgi-python row: Debian uwsgi-core and
 *                its python3 plugin, one process), sent the uwsgi mode's requests;
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
 *                keepalive writes it (HTTP/1.0, Connection: close) on a connection of its own;
 *   own          a framework's hello world on its own server (bench/e2e/own-server.mjs, the
 *                bench:e2e <framework>-own row's backend), FRAMEWORK given in place of APP
 *                (express, koa, fastify, hono), on kept connections.
 *
 * The kept-connection modes spread the requests over the connections opened, each sending its
 * next request when the answer to the one before arrived. Over FastCGI each connection stands
 * for a client connection of its own: its requests have a REMOTE_PORT of their own (the
 * fixture's, plus the connection's index). APP (a path from the repository root) replaces the
 * tsgi modes' app, served with `--interface INTERFACE` when given.
 *
 * With an APP or FRAMEWORK, the fastcgi, http and own modes send one and the same request to
 * it: the browser request of bench/fixtures.mjs (its headers, cookie and query string) for the
 * path "/" the hello worlds answer. Over FastCGI its params are the fixture's with that
 * REQUEST_URI and DOCUMENT_URI, SCRIPT_NAME "" (as bench:e2e's nginx sets it), and no
 * SCRIPT_FILENAME; over HTTP it is written as nginx's proxy_pass with HTTP/1.1 writes it (the
 * headers in the browser's order, no Connection, which the FastCGI params then leave out too).
 */
import { spawn, spawnSync } from 'node:child_process';
import { connect } from 'node:net';
import { cpus, loadavg } from 'node:os';
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

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), '..');

const PROXY_PASS_REQUEST = 'GET / HTTP/1.0\r\nHost: localhost\r\nConnection: close\r\n\r\n';
const HELLO_REQUEST = Buffer.from('GET / HTTP/1.1\r\nHost: localhost\r\n\r\n');

function pairValue(name) {
  return REQUEST_PAIRS[REQUEST_PAIRS.indexOf(name) + 1];
}

/** The path and query of the browser request the APP and FRAMEWORK modes send. */
export const APP_URI = `/?${pairValue('QUERY_STRING')}`;
const APP_VALUES = { REQUEST_URI: APP_URI, DOCUMENT_URI: '/', SCRIPT_NAME: '' };
const APP_PAIRS = [];
for (let i = 0; i < REQUEST_PAIRS.length; i += 2) {
  const name = REQUEST_PAIRS[i];
  if (name === 'SCRIPT_FILENAME' || name === 'HTTP_CONNECTION') continue;
  APP_PAIRS.push(name, APP_VALUES[name] ?? REQUEST_PAIRS[i + 1]);
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

/**
 * Every mode for a server on 127.0.0.1:`port`: `command` (default: this Node.js) and `args`,
 * the `request` (or `requestOn(i)` for kept connection i), `kept`, and for kept connections
 * `complete(bytes)`, the length of the first whole answer or -1.
 */
export function requestModes(mode, port, appPath, iface) {
  const host = `127.0.0.1:${port}`;
  const appRequest = appPath !== undefined && mode !== 'own';
  const tsgi = (flag, app) => {
    const args = [join(ROOT, 'dist/cli.js'), 'serve', flag, host, join(ROOT, appPath ?? app)];
    return iface === undefined ? args : [...args, '--interface', iface];
  };
  return {
    scgi: { args: tsgi('--scgi', 'examples/hello.mjs'), request: SCGI_REQUEST, kept: false },
    uwsgi: { args: tsgi('--uwsgi', 'examples/hello.mjs'), request: UWSGI_REQUEST, kept: false },
    'uwsgi-python': {
      command: 'uwsgi',
      /* as bench:e2e starts it: one process, the python3 plugin, no request log */
      args: [
        '--plugin',
        'python3',
        '--uwsgi-socket',
        host,
        '--wsgi-file',
        join(ROOT, 'bench/e2e/hello.py'),
        '--processes',
        '1',
        '--need-app',
        '--disable-logging',
        '--die-on-term',
      ],
      request: UWSGI_REQUEST,
      kept: false,
    },
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
      args: [join(ROOT, 'bench/e2e/node-http.mjs'), host],
      request: HELLO_REQUEST,
      kept: true,
      complete: httpEnded,
    },
    own: {
      args: [join(ROOT, 'bench/e2e/own-server.mjs'), appPath ?? 'express', host],
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
      args: [join(ROOT, 'bench/e2e/node-http.mjs'), host],
      request: Buffer.from(PROXY_PASS_REQUEST),
      kept: false,
    },
  };
}

/** The spec of `mode` (see {@link requestModes}); throws for an unknown mode. */
export function requestMode(mode, port, appPath, iface) {
  const modes = requestModes(mode, port, appPath, iface);
  const spec = modes[mode];
  if (spec === undefined) throw new Error(`mode must be one of ${Object.keys(modes).join(', ')}`);
  return spec;
}

/** Sends a mode's requests to its server on `port`. */
export class Driver {
  constructor(spec, port) {
    this.spec = spec;
    this.port = port;
    /** The kept connections. */
    this.sockets = [];
  }

  /** One request on a connection of its own, read until the server closes. */
  once() {
    return new Promise((resolve, reject) => {
      const s = connect(this.port, '127.0.0.1');
      let got = 0;
      s.on('connect', () => s.write(this.spec.request));
      s.on('data', (d) => (got += d.length));
      s.on('error', reject);
      s.on('close', () => (got > 0 ? resolve() : reject(new Error('empty response'))));
    });
  }

  /** `count` requests one after another on the kept connection `s`, the `i`th one. */
  sendOn(s, count, i) {
    const spec = this.spec;
    const request = spec.requestOn?.(i) ?? spec.request;
    return new Promise((resolve, reject) => {
      if (count === 0) return resolve();
      let left = count;
      let buf = Buffer.alloc(0);
      const onClose = () => reject(new Error('the server closed a kept connection'));
      const onData = (d) => {
        buf = Buffer.concat([buf, d]);
        const end = spec.complete(buf);
        if (end === -1) return;
        buf = buf.subarray(end);
        if (--left > 0) s.write(request);
        else {
          s.off('data', onData);
          s.off('error', reject);
          s.off('close', onClose);
          resolve();
        }
      };
      s.on('data', onData);
      s.on('error', reject);
      s.on('close', onClose);
      s.write(request);
    });
  }

  /**
   * `count` requests: over the kept connections, or on connections of their own, `parallel`
   * at a time.
   */
  async send(count, parallel = 1) {
    if (!this.spec.kept) {
      let left = count;
      const loop = async () => {
        while (left > 0) {
          left--;
          await this.once();
        }
      };
      await Promise.all(Array.from({ length: parallel }, loop));
      return;
    }
    /* a server may close a connection that sat idle (node:http after 5 s) */
    const sockets = this.sockets;
    for (let i = 0; i < sockets.length; i++) {
      if (sockets[i].destroyed) sockets[i] = await this.connect();
    }
    const each = Math.floor(count / sockets.length);
    await Promise.all(
      sockets.map((s, i) =>
        this.sendOn(s, i === 0 ? count - each * (sockets.length - 1) : each, i),
      ),
    );
  }

  /** A new kept connection. */
  async open() {
    const s = await this.connect();
    this.sockets.push(s);
    return s;
  }

  /** A connection to the server. */
  connect() {
    return new Promise((resolve, reject) => {
      const s = connect(this.port, '127.0.0.1');
      s.once('connect', () => {
        s.off('error', reject);
        resolve(s);
      });
      s.once('error', reject);
    });
  }

  /** Waits until the server answers, then opens `conns` kept connections (kept modes). */
  async start(conns) {
    for (let i = 0; ; i++) {
      try {
        if (!this.spec.kept) await this.once();
        else await this.sendOn(await this.open(), 1, 0);
        break;
      } catch {
        for (const s of this.sockets.splice(0)) s.destroy();
        if (i === 600) throw new Error('server did not come up');
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    while (this.spec.kept && this.sockets.length < conns) await this.open();
  }

  close() {
    for (const s of this.sockets.splice(0)) s.destroy();
  }
}

/**
 * Where request-cpu and request-profile run: the servers on the last CPU, the client (this
 * process) on the others, when taskset is there and the machine has two CPUs or more.
 */
export function placement() {
  const count = cpus().length;
  const pinned = count >= 2 && spawnSync('taskset', ['--version']).status === 0;
  return { count, pinned, serverCpu: String(count - 1), clientCpus: `0-${count - 2}` };
}

/**
 * Starts the server of each `MODE[:APP[:INTERFACE]]` token on PORT, PORT+1, ... (pinned as
 * {@link placement} says; Node.js servers get `nodeFlags` first), moves this process to the
 * client CPUs, and prints the machine line. Returns the servers with their drivers and a
 * stop() that ends them all, also on SIGINT and SIGTERM.
 */
export function startServers(tokens, basePort, { appPath, iface, nodeFlags = [] } = {}) {
  const where = placement();
  const servers = tokens.map((token, i) => {
    const port = basePort + i;
    const [mode, app = appPath, face = iface] = token.split(':');
    const spec = requestMode(mode, port, app, face);
    const command = spec.command ?? process.execPath;
    const args = command === process.execPath ? [...nodeFlags, ...spec.args] : spec.args;
    const proc = where.pinned
      ? spawn('taskset', ['-c', where.serverCpu, command, ...args], { stdio: 'ignore' })
      : spawn(command, args, { stdio: 'ignore' });
    return { mode: token, spec, proc, driver: new Driver(spec, port) };
  });
  const stop = () => {
    for (const s of servers) {
      s.driver.close();
      if (s.proc.exitCode === null) s.proc.kill('SIGTERM');
    }
  };
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      stop();
      process.exit(130);
    });
  }
  if (where.pinned) spawnSync('taskset', ['-p', '-c', where.clientCpus, String(process.pid)]);
  console.log(
    `machine: ${where.count} cores, ${cpus()[0]?.model ?? '?'}, Node ${process.version}; ` +
      `codec ${process.env.TSGI_CODEC ?? 'default'}, transport ${process.env.TSGI_TRANSPORT ?? 'default'}; ` +
      (where.pinned
        ? `servers on CPU ${where.serverCpu}, client on CPU ${where.clientCpus}`
        : 'not pinned') +
      `; load average ${loadavg()
        .map((l) => l.toFixed(2))
        .join(' ')}`,
  );
  return { servers, stop };
}

/**
 * Calls `each(server, round)` for every server in each of `rounds` rounds, the order rotated
 * from round to round (so that no server always runs first after another).
 */
export async function interleave(servers, rounds, each) {
  for (let r = 0; r < rounds; r++) {
    for (let k = 0; k < servers.length; k++) await each(servers[(k + r) % servers.length], r);
  }
}
