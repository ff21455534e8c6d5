/**
 * `npm run bench:e2e`: end to end through a real nginx, driven by wrk, all on 127.0.0.1.
 *
 * Rows (one nginx server block each, the same hello world body everywhere) — see ROWS below:
 *   tsgi-fastcgi   tsgi over FastCGI, fastcgi_keep_conn on, upstream keepalive
 *   tsgi-scgi      the same tsgi process over SCGI, scgi_pass (a connection per request)
 *   tsgi-uwsgi     the same tsgi process over uwsgi, uwsgi_pass (a connection per request)
 *   tsgi-http      the same tsgi process over HTTP, nginx proxy_pass (HTTP/1.1 keepalive)
 *   node-http      plain node:http, nginx proxy_pass (HTTP/1.1 keepalive)
 *   node-fastcgi   the npm package node-fastcgi, fastcgi_keep_conn on
 *   canned         a responder that only reads record headers and writes a fixed answer
 *                  (the ceiling for any Node FastCGI backend)
 *   scgi-canned    a node:net responder that only waits for the SCGI request head, writes a
 *                  fixed answer and closes (the ceiling for any Node SCGI backend), scgi_pass
 *   uwsgi-canned   the same for uwsgi, uwsgi_pass
 *   scgi-floor     a C responder (bench/e2e/floor.c, built here with cc): blocking accept, read
 *                  the request head, write a fixed answer, close — the least any SCGI backend
 *                  can cost behind nginx, which opens a connection per request
 *   uwsgi-floor    the same for uwsgi
 *   fastcgi-floor  the same program for FastCGI with fastcgi_keep_conn: kept connections, record
 *                  headers read, each request's empty STDIN answered with a fixed response, no
 *                  params decoded — the limit behind one nginx worker
 *   uwsgi-python   uWSGI (Debian uwsgi-core + python3 plugin) running a WSGI hello world in
 *                  one process, uwsgi_pass
 *   php-fpm        php-fpm (Debian php8.2-fpm, pm static with one child) running hello.php,
 *                  fastcgi_pass, a connection per request (nginx's default: with keep_conn the
 *                  one child waits on an idle kept connection while new ones queue, and wrk
 *                  times out)
 * nginx keeps upstream connections only for FastCGI and HTTP: its scgi and uwsgi modules read
 * the response to the end of the connection, so `keepalive` in an upstream has no effect there.
 * One tsgi process serves all tsgi rows. Every row runs --rounds times (default 3), the rows
 * interleaved and rotated each round, and the medians are reported: this machine is shared and
 * noisy. Prints requests/s, p99 latency, errors, the load average, and the ratios against the
 * project's targets (a ratio is printed when both of its rows ran; docs/benchmarks.md).
 *
 *   npm run bench:e2e -- [--rows a,b,c] [--duration S] [--rounds N] [--connections C]
 *                        [--threads T] [--json FILE] [--port-base P] [--pin CPUS|none]
 *                        [--warmup S]
 *
 * --warmup: seconds of wrk against each row before the rounds (default 10). V8 goes on
 * optimizing a framework's code for tens of thousands of requests: after a 1 s warm-up, Koa
 * through tsgi spent 69, 75, 47, 41 and 34 µs of CPU a request in five rounds (Koa on its own
 * server 51, 35, 41, 29, 31); after 20 s, 41, 27, 48, 29, 26 (31, 25, 44, 33, 25).
 *
 * --pin: the CPUs every backend runs on (taskset); nginx and wrk run on the others. The
 * default, with two CPUs or more and taskset there, is the last CPU, and no pinning when a
 * row needs several CPUs (the workers rows). On a machine whose virtual CPUs are not equally
 * fast (here one ran a tight loop up to 40% slower than the other, and a Koa backend spent 29–31
 * µs of CPU a request on one and 56–68 µs on the other), a backend the scheduler left on the
 * slower one lost to a backend on the faster one; pinned, every row has the same CPU.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  accessSync,
  constants,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { WORKER_RATIOS, WORKER_ROW_NAMES, workerBackends, workerRows } from './e2e/workers.js';
import { FRAMEWORK_RATIOS, frameworkBackends, frameworkRows } from './e2e/frameworks.js';
import { cpuSeconds, runWrk } from './measure.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HERE = join(ROOT, 'bench', 'e2e');
const BODY = 'Hello, world!\n';
const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

const { values: opts } = parseArgs({
  options: {
    rows: { type: 'string' },
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    threads: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '10' },
    json: { type: 'string' },
    'port-base': { type: 'string' },
    pin: { type: 'string', default: 'auto' },
  },
});
const duration = Number(opts.duration);
const rounds = Number(opts.rounds);
const connections = Number(opts.connections);
const threads = Number(opts.threads);
const warmup = Number(opts.warmup);

const SBIN = ['/usr/sbin', '/usr/local/sbin'];

/** The first of `names` on PATH or in the sbin directories, or null. */
function findBinary(...names: string[]): string | null {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), ...SBIN];
  for (const name of names) {
    for (const d of dirs) {
      if (!d) continue;
      try {
        accessSync(join(d, name), constants.X_OK);
        return join(d, name);
      } catch {
        /* next */
      }
    }
  }
  return null;
}

function required(name: string): string {
  const bin = findBinary(name);
  if (bin !== null) return bin;
  console.error(`bench:e2e needs ${name} (Debian: apt-get install nginx-light wrk)`);
  process.exit(1);
}

/** php-fpm's binary: `php-fpm`, or Debian's versioned `php-fpm8.2` (the newest found). */
function findPhpFpm(): string | null {
  const plain = findBinary('php-fpm');
  if (plain !== null) return plain;
  const versioned = new Set<string>();
  for (const d of [...(process.env.PATH ?? '').split(delimiter), ...SBIN]) {
    try {
      for (const f of readdirSync(d)) if (/^php-fpm[0-9.]+$/.test(f)) versioned.add(f);
    } catch {
      /* no such directory */
    }
  }
  const newest = [...versioned].sort((a, b) => b.localeCompare(a, 'en', { numeric: true }))[0];
  return newest === undefined ? null : findBinary(newest);
}

const nginxBin = required('nginx');
const wrkBin = required('wrk');

/** The next port to try with --port-base (0: any free port the kernel gives). */
let nextPort = Number(opts['port-base'] ?? 0);

/** A free port on 127.0.0.1: the next free one from --port-base up, else one the kernel picks. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    const want = nextPort === 0 ? 0 : nextPort++;
    s.on('error', (err: NodeJS.ErrnoException) => {
      if (want !== 0 && err.code === 'EADDRINUSE') freePort().then(resolve, reject);
      else reject(err);
    });
    s.listen(want, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

async function waitForPort(port: number, proc: ChildProcess, what: string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (proc.exitCode !== null) throw new Error(`${what} exited (${proc.exitCode})`);
    const up = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
    if (up) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not listen on ${port}`);
}

/** Where the backends and the rest (nginx, wrk) run: CPU lists for taskset, and its path. */
interface Pinning {
  backends: string;
  others: string;
  taskset: string;
}
/** The run's pinning, or null (anywhere). */
let pinning: Pinning | null = null;
/** What the run's first line says of the pinning. */
let pinMessage = '';

/** The pinning --pin asks for, given the rows that run; the reason when there is none. */
function choosePinning(rows: readonly RowSpec[]): Pinning | string {
  const n = cpus().length;
  if (opts.pin === 'none') return 'not pinned (--pin none)';
  const taskset = findBinary('taskset');
  if (taskset === null) return 'not pinned: no taskset';
  if (opts.pin !== 'auto') {
    if (!/^[0-9]+(?:[-,][0-9]+)*$/.test(opts.pin!)) throw new Error('--pin takes CPUs or none');
    const own = new Set(cpuList(opts.pin!));
    const others = [...Array(n).keys()].filter((c) => !own.has(c));
    if (others.length === 0) return `not pinned: --pin ${opts.pin} leaves no CPU for nginx`;
    return { backends: opts.pin!, others: others.join(','), taskset };
  }
  if (n < 2) return 'not pinned: one CPU';
  const multi = rows.filter((r) => (WORKER_ROW_NAMES as readonly string[]).includes(r.name));
  if (multi.length > 0) {
    return `not pinned: the workers rows (${multi.map((r) => r.name).join(', ')}) use every CPU`;
  }
  return { backends: String(n - 1), others: n === 2 ? '0' : `0-${n - 2}`, taskset };
}

/** The CPU numbers of a taskset list ("1", "0-2,5"). */
function cpuList(list: string): number[] {
  return list.split(',').flatMap((part) => {
    const [a, b] = part.split('-').map(Number);
    return b === undefined ? [a!] : [...Array(b - a! + 1).keys()].map((i) => a! + i);
  });
}

/** `cmd args` run on the backends' or the others' CPUs of the run's pinning, or as it is. */
function pinned(side: 'backends' | 'others', cmd: string, args: string[]): [string, string[]] {
  return pinning === null ? [cmd, args] : [pinning.taskset, ['-c', pinning[side], cmd, ...args]];
}

const children: ChildProcess[] = [];
const stderrOf = new Map<ChildProcess, () => string>();
function start(what: string, cmd: string, args: string[]): ChildProcess {
  const [c, a] = pinned(what === 'nginx' ? 'others' : 'backends', cmd, args);
  const child = spawn(c, a, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.on('exit', (code, signal) => {
    if (!stopping) console.error(`${what} exited (${code ?? signal}): ${err}`);
  });
  children.push(child);
  stderrOf.set(child, () => err);
  return child;
}

let stopping = false;
async function stopAll(): Promise<void> {
  stopping = true;
  await Promise.all(
    children.map(
      (c) =>
        new Promise<void>((resolve) => {
          if (c.exitCode !== null || c.signalCode !== null) return resolve();
          const t = setTimeout(() => c.kill('SIGKILL'), 5000);
          c.once('exit', () => {
            clearTimeout(t);
            resolve();
          });
          c.kill('SIGTERM');
        }),
    ),
  );
}

/** A process behind nginx, started once for all the rows that use it. */
interface Backend {
  /** Why it cannot run here (a missing binary), or null. */
  missing(): string | null;
  /** Starts it on the given upstream ports (named after the rows' `port`). */
  start(ports: Record<string, number>, dir: string): ChildProcess;
}

const node = (script: string, ...args: string[]) => [join(HERE, script), ...args];

/** bench/e2e/floor.c built once into the bench's temporary directory. */
function floorBinary(dir: string): string {
  const out = join(dir, 'floor');
  if (!existsSync(out)) {
    const r = spawnSync(findBinary('cc')!, ['-O2', '-o', out, join(HERE, 'floor.c')], {
      encoding: 'utf8',
    });
    if (r.status !== 0) throw new Error(`cc floor.c failed: ${r.stderr}`);
  }
  return out;
}

/** The C responder of bench/e2e/floor.c for `proto` (rows scgi-floor, uwsgi-floor, fastcgi-floor). */
function floorBackend(proto: 'scgi' | 'uwsgi' | 'fastcgi'): Backend {
  return {
    missing: () =>
      findBinary('cc') === null || process.platform === 'win32' ? 'a C compiler (cc)' : null,
    start: (p, dir) =>
      start(`${proto} floor`, floorBinary(dir), [proto, String(p[`${proto}-floor`])]),
  };
}

const BACKENDS: Record<string, Backend> = {
  tsgi: {
    missing: () => null,
    start: (p) => {
      const args = [join(ROOT, 'dist', 'cli.js'), 'serve', join(HERE, 'hello.mjs')];
      for (const proto of ['fastcgi', 'scgi', 'uwsgi', 'http']) {
        if (p[`tsgi-${proto}`] !== undefined)
          args.push(`--${proto}`, `127.0.0.1:${p[`tsgi-${proto}`]}`);
      }
      return start('tsgi', process.execPath, args);
    },
  },
  'node-http': {
    missing: () => null,
    start: (p) =>
      start('node:http', process.execPath, node('node-http.mjs', `127.0.0.1:${p['node-http']}`)),
  },
  'node-fastcgi': {
    missing: () => null,
    start: (p) =>
      start('node-fastcgi', process.execPath, [
        '--no-deprecation',
        ...node('node-fastcgi.mjs', `127.0.0.1:${p['node-fastcgi']}`),
      ]),
  },
  canned: {
    missing: () => null,
    start: (p) => start('canned', process.execPath, node('canned.mjs', `127.0.0.1:${p.canned}`)),
  },
  'canned-stream': {
    missing: () => null,
    start: (p) =>
      start(
        'canned-stream',
        process.execPath,
        node(
          'canned-stream.mjs',
          ...['scgi', 'uwsgi']
            .filter((k) => p[`${k}-canned`] !== undefined)
            .map((k) => `${k}=127.0.0.1:${p[`${k}-canned`]}`),
        ),
      ),
  },
  uwsgi: {
    missing: () =>
      findBinary('uwsgi', 'uwsgi-core') === null
        ? 'uwsgi (Debian: apt-get install uwsgi-core uwsgi-plugin-python3)'
        : null,
    /* one process (no master, no threads), the python3 plugin, no request log */
    start: (p) =>
      start('uWSGI', findBinary('uwsgi', 'uwsgi-core')!, [
        '--plugin',
        'python3',
        '--uwsgi-socket',
        `127.0.0.1:${p['uwsgi-python']}`,
        '--wsgi-file',
        join(HERE, 'hello.py'),
        '--processes',
        '1',
        '--need-app',
        '--disable-logging',
        '--die-on-term',
      ]),
  },
  'php-fpm': {
    missing: () => (findPhpFpm() === null ? 'php-fpm (Debian: apt-get install php-fpm)' : null),
    /* its own configuration: pm static with one child, no daemon, logs in the temp dir */
    start: (p, dir) => {
      const conf = join(dir, 'php-fpm.conf');
      writeFileSync(
        conf,
        [
          '[global]',
          `pid = ${join(dir, 'php-fpm.pid')}`,
          `error_log = ${join(dir, 'php-fpm.log')}`,
          'daemonize = no',
          '[bench]',
          `listen = 127.0.0.1:${p['php-fpm']}`,
          ...(asRoot ? ['user = root', 'group = root'] : []),
          'pm = static',
          'pm.max_children = 1',
          'php_admin_value[default_charset] = ""',
          'php_admin_flag[expose_php] = off',
          '',
        ].join('\n'),
      );
      return start('php-fpm', findPhpFpm()!, [
        '--nodaemonize',
        '--fpm-config',
        conf,
        ...(asRoot ? ['--allow-to-run-as-root'] : []),
      ]);
    },
  },
  'scgi-floor': floorBackend('scgi'),
  'uwsgi-floor': floorBackend('uwsgi'),
  'fastcgi-floor': floorBackend('fastcgi'),
  ...workerBackends(start),
  ...frameworkBackends(start),
};

/** One row: a backend, the upstream port it answers this row on, and nginx's location. */
interface RowSpec {
  name: string;
  backend: keyof typeof BACKENDS;
  /** nginx's location body for an upstream named `upstream`. */
  location: (upstream: string) => string;
  /** Keep idle upstream connections (FastCGI with keep_conn, HTTP/1.1). */
  keepalive: boolean;
}

const fastcgi =
  (extra: string, keepConn = true) =>
  (upstream: string) => `
            fastcgi_param REQUEST_METHOD  $request_method;
            fastcgi_param REQUEST_URI     $request_uri;
            fastcgi_param DOCUMENT_URI    $document_uri;
            fastcgi_param QUERY_STRING    $query_string;
            fastcgi_param CONTENT_TYPE    $content_type;
            fastcgi_param CONTENT_LENGTH  $content_length;
            fastcgi_param SCRIPT_NAME     "";
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param REQUEST_SCHEME  $scheme;
            fastcgi_param REMOTE_ADDR     $remote_addr;
            fastcgi_param REMOTE_PORT     $remote_port;
            fastcgi_param SERVER_ADDR     $server_addr;
            fastcgi_param SERVER_PORT     $server_port;
            fastcgi_param SERVER_NAME     $server_name;${extra}
            fastcgi_pass ${upstream};${keepConn ? '\n            fastcgi_keep_conn on;' : ''}`;
/* the variables of Debian's scgi_params and uwsgi_params that matter here */
const scgi = (upstream: string) => `
            scgi_param REQUEST_METHOD  $request_method;
            scgi_param REQUEST_URI     $request_uri;
            scgi_param QUERY_STRING    $query_string;
            scgi_param CONTENT_TYPE    $content_type;
            scgi_param DOCUMENT_URI    $document_uri;
            scgi_param SCGI            1;
            scgi_param SERVER_PROTOCOL $server_protocol;
            scgi_param REQUEST_SCHEME  $scheme;
            scgi_param REMOTE_ADDR     $remote_addr;
            scgi_param REMOTE_PORT     $remote_port;
            scgi_param SERVER_PORT     $server_port;
            scgi_param SERVER_NAME     $server_name;
            scgi_pass ${upstream};`;
const uwsgi = (upstream: string) => `
            uwsgi_param QUERY_STRING    $query_string;
            uwsgi_param REQUEST_METHOD  $request_method;
            uwsgi_param CONTENT_TYPE    $content_type;
            uwsgi_param CONTENT_LENGTH  $content_length;
            uwsgi_param REQUEST_URI     $request_uri;
            uwsgi_param PATH_INFO       $document_uri;
            uwsgi_param SERVER_PROTOCOL $server_protocol;
            uwsgi_param REQUEST_SCHEME  $scheme;
            uwsgi_param REMOTE_ADDR     $remote_addr;
            uwsgi_param REMOTE_PORT     $remote_port;
            uwsgi_param SERVER_PORT     $server_port;
            uwsgi_param SERVER_NAME     $server_name;
            uwsgi_pass ${upstream};`;
const proxy = (upstream: string) => `
            proxy_pass http://${upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;`;

/** Every row, in the order of the table; `--rows` picks a subset. */
const ROWS: RowSpec[] = [
  { name: 'tsgi-fastcgi', backend: 'tsgi', location: fastcgi(''), keepalive: true },
  { name: 'tsgi-scgi', backend: 'tsgi', location: scgi, keepalive: false },
  { name: 'tsgi-uwsgi', backend: 'tsgi', location: uwsgi, keepalive: false },
  { name: 'tsgi-http', backend: 'tsgi', location: proxy, keepalive: true },
  { name: 'node-http', backend: 'node-http', location: proxy, keepalive: true },
  { name: 'node-fastcgi', backend: 'node-fastcgi', location: fastcgi(''), keepalive: true },
  { name: 'canned', backend: 'canned', location: fastcgi(''), keepalive: true },
  { name: 'scgi-canned', backend: 'canned-stream', location: scgi, keepalive: false },
  { name: 'uwsgi-canned', backend: 'canned-stream', location: uwsgi, keepalive: false },
  { name: 'scgi-floor', backend: 'scgi-floor', location: scgi, keepalive: false },
  { name: 'uwsgi-floor', backend: 'uwsgi-floor', location: uwsgi, keepalive: false },
  { name: 'fastcgi-floor', backend: 'fastcgi-floor', location: fastcgi(''), keepalive: true },
  { name: 'uwsgi-python', backend: 'uwsgi', location: uwsgi, keepalive: false },
  {
    name: 'php-fpm',
    backend: 'php-fpm',
    /* one child blocks on a kept connection while nginx queues new ones: no keep_conn */
    location: fastcgi(
      `
            fastcgi_param SCRIPT_FILENAME ${join(HERE, 'hello.php')};`,
      false,
    ),
    keepalive: false,
  },
  ...workerRows(fastcgi('')),
  ...frameworkRows(fastcgi(''), proxy),
];

interface Row extends RowSpec {
  /** nginx's port for this row (wrk's target). */
  port: number;
  /** The backend's port for this row. */
  upstreamPort: number;
}

function nginxConf(dir: string, rows: Row[]): string {
  const upstreams = rows
    .map(
      (r) =>
        `    upstream ${r.name.replaceAll('-', '_')} { server 127.0.0.1:${r.upstreamPort};` +
        `${r.keepalive ? ' keepalive 64;' : ''} }\n`,
    )
    .join('');
  const servers = rows
    .map(
      (r) => `
    server {
        listen 127.0.0.1:${r.port} backlog=4096;
        location / {${r.location(r.name.replaceAll('-', '_'))}
        }
    }`,
    )
    .join('');
  return `daemon off;
${asRoot ? 'user root;' : ''}
worker_processes 1;
pid ${join(dir, 'nginx.pid')};
error_log ${join(dir, 'error.log')} warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path ${join(dir, 'tmp')};
    fastcgi_temp_path ${join(dir, 'tmp')};
    proxy_temp_path ${join(dir, 'tmp')};
    uwsgi_temp_path ${join(dir, 'tmp')};
    scgi_temp_path ${join(dir, 'tmp')};
    keepalive_requests 1000000;
${upstreams}${servers}
}
`;
}

interface Sample {
  rps: number;
  p99ms: number;
  errors: number;
  /** Requests wrk completed. */
  requests: number;
  /** CPU time per request of nginx and of the row's backend (all their processes), in µs. */
  nginxUs?: number;
  backendUs?: number;
}

function wrk(port: number, seconds: number): Sample {
  const [cmd, args] = pinned('others', wrkBin, []);
  return runWrk(cmd, `http://127.0.0.1:${port}/`, threads, connections, seconds, args);
}

/** wrk against `port`, with the CPU time nginx and the backend `pid` spent per request. */
function measure(port: number, seconds: number, nginxPid: number, pid: number): Sample {
  const before = cpuSeconds([nginxPid, pid]);
  const s = wrk(port, seconds);
  const after = cpuSeconds([nginxPid, pid]);
  if (before !== null && after !== null) {
    s.nginxUs = ((after[0]! - before[0]!) * 1e6) / s.requests;
    s.backendUs = ((after[1]! - before[1]!) * 1e6) / s.requests;
  }
  return s;
}

const us = (x: number | undefined) => (x === undefined ? 'n/a' : `${x.toFixed(0)} µs`);

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

/** The rows asked with --rows (all by default), minus those whose backend cannot run here. */
function pickRows(): RowSpec[] {
  const asked = opts.rows?.split(',').map((s) => s.trim()) ?? ROWS.map((r) => r.name);
  const unknown = asked.filter((n) => !ROWS.some((r) => r.name === n));
  if (unknown.length > 0) {
    console.error(
      `bench:e2e: unknown row(s) ${unknown.join(', ')}; rows: ${ROWS.map((r) => r.name).join(', ')}`,
    );
    process.exit(2);
  }
  return ROWS.filter((r) => asked.includes(r.name)).filter((r) => {
    const missing = BACKENDS[r.backend]!.missing();
    if (missing !== null) console.error(`bench:e2e: row ${r.name} skipped: needs ${missing}`);
    return missing === null;
  });
}

const load = () =>
  loadavg()
    .map((x) => x.toFixed(2))
    .join(' ');

async function main(): Promise<void> {
  const specs = pickRows();
  if (specs.length === 0) throw new Error('no row to run');
  const pin = choosePinning(specs);
  if (typeof pin === 'string') pinMessage = pin;
  else {
    pinning = pin;
    pinMessage = `backends on CPU ${pin.backends}, nginx and wrk on CPU ${pin.others}`;
  }
  const dir = mkdtempSync(join(tmpdir(), 'tsgi-bench-e2e-'));
  mkdirSync(join(dir, 'tmp'));
  try {
    /* ports are taken just before each process binds them: the machine is shared */
    const rows: Row[] = specs.map((s) => ({ ...s, port: 0, upstreamPort: 0 }));
    const started: ChildProcess[] = [];
    const backendOf = new Map<string, ChildProcess>();
    for (const name of new Set(rows.map((r) => r.backend))) {
      const mine = rows.filter((r) => r.backend === name);
      for (const r of mine) r.upstreamPort = await freePort();
      const child = BACKENDS[name]!.start(
        Object.fromEntries(mine.map((r) => [r.name, r.upstreamPort])),
        dir,
      );
      started.push(child);
      backendOf.set(name, child);
      for (const r of mine) await waitForPort(r.upstreamPort, child, name);
    }
    for (const r of rows) r.port = await freePort();
    const confPath = join(dir, 'nginx.conf');
    writeFileSync(confPath, nginxConf(dir, rows));
    const nginx = start('nginx', nginxBin, [
      '-p',
      dir,
      '-c',
      confPath,
      '-e',
      join(dir, 'startup.log'),
    ]);
    for (const r of rows) await waitForPort(r.port, nginx, 'nginx');

    for (const row of rows) {
      const res = await fetch(`http://127.0.0.1:${row.port}/`);
      const text = await res.text();
      if (res.status !== 200 || text !== BODY || res.headers.get('content-type') !== 'text/plain') {
        throw new Error(
          `${row.name} answered ${res.status} ${res.headers.get('content-type')} ${JSON.stringify(text)}`,
        );
      }
      wrk(row.port, warmup);
    }
    /* the startup lines of the tsgi processes: "(native codec, native transport)"; the HTTP
     listener's names no transport (it runs on node:net) */
    const starts = started.map((c) => stderrOf.get(c)!());
    const first = (re: RegExp) => starts.map((e) => re.exec(e)?.[1]).find((m) => m !== undefined);
    const codec = first(/\(([a-z]+) codec[,)]/) ?? 'n/a';
    const via = first(/, ([a-z]+) transport\)/) ?? 'node:net';
    const loadBefore = load();
    console.log(
      `bench:e2e: ${rounds} rounds × ${rows.length} rows, wrk -t${threads} -c${connections} -d${duration}s, ` +
        `nginx 1 worker, node ${process.version}, ${cpus().length} CPUs, tsgi ${codec} codec and ${via} transport, ` +
        `load average ${loadBefore}; ${pinMessage}`,
    );
    const samples: Record<string, Sample[]> = Object.fromEntries(rows.map((r) => [r.name, []]));
    for (let round = 0; round < rounds; round++) {
      const order = rows.map((_, i) => rows[(i + round) % rows.length]!);
      for (const row of order) {
        const s = measure(row.port, duration, nginx.pid!, backendOf.get(row.backend)!.pid!);
        samples[row.name]!.push(s);
        console.log(
          `  round ${round + 1} ${row.name.padEnd(13)} ${s.rps.toFixed(0).padStart(7)} req/s  ` +
            `p99 ${s.p99ms.toFixed(2)} ms  errors ${s.errors}  ` +
            `CPU/request nginx ${us(s.nginxUs)}, backend ${us(s.backendUs)}`,
        );
      }
    }
    const loadAfter = load();
    const result = Object.fromEntries(
      rows.map((r) => {
        const xs = samples[r.name]!;
        return [
          r.name,
          {
            rps: median(xs.map((x) => x.rps)),
            p99ms: median(xs.map((x) => x.p99ms)),
            errors: xs.reduce((a, x) => a + x.errors, 0),
            nginxUs: xs.every((x) => x.nginxUs !== undefined)
              ? median(xs.map((x) => x.nginxUs!))
              : undefined,
            backendUs: xs.every((x) => x.backendUs !== undefined)
              ? median(xs.map((x) => x.backendUs!))
              : undefined,
            samples: xs,
          },
        ];
      }),
    );
    console.log(
      '\n| row | requests/s (median) | p99 latency (median) | errors | nginx CPU/request | backend CPU/request |',
    );
    console.log('|---|---:|---:|---:|---:|---:|');
    for (const r of rows) {
      const x = result[r.name]!;
      console.log(
        `| ${r.name} | ${x.rps.toFixed(0)} | ${x.p99ms.toFixed(2)} ms | ${x.errors} | ` +
          `${us(x.nginxUs)} | ${us(x.backendUs)} |`,
      );
    }
    console.log(`\nload average before ${loadBefore}, after ${loadAfter}`);
    const rps = (n: string) => result[n]?.rps;
    /** [a, b, minimum of a/b in requests/s (null: informative)] */
    const RATIOS: [string, string, number | null][] = [
      ['tsgi-fastcgi', 'fastcgi-floor', 0.9],
      ['tsgi-fastcgi', 'node-http', 1.2],
      ['tsgi-uwsgi', 'uwsgi-python', 1.0],
      ['tsgi-scgi', 'uwsgi-python', 1.0],
      ['tsgi-fastcgi', 'canned', null],
      ['tsgi-fastcgi', 'node-fastcgi', null],
      ['tsgi-fastcgi', 'tsgi-http', null],
      ['tsgi-uwsgi', 'php-fpm', null],
      ['tsgi-scgi', 'php-fpm', null],
      ['tsgi-scgi', 'tsgi-fastcgi', null],
      ['tsgi-scgi', 'scgi-canned', null],
      ['scgi-floor', 'uwsgi-python', null],
      ['uwsgi-floor', 'uwsgi-python', null],
      ['scgi-floor', 'tsgi-fastcgi', null],
      ['tsgi-scgi', 'scgi-floor', null],
      ['tsgi-uwsgi', 'uwsgi-floor', null],
      ['tsgi-uwsgi', 'uwsgi-canned', null],
      ...WORKER_RATIOS,
      ...FRAMEWORK_RATIOS,
      ['tsgi-http', 'node-http', 0.95],
    ];
    const checks: [string, boolean][] = [];
    for (const [a, b, min] of RATIOS) {
      const ra = rps(a);
      const rb = rps(b);
      if (ra === undefined || rb === undefined) continue;
      const target = min === null ? '' : ` (target ≥ ${min.toFixed(2)})`;
      checks.push([
        `${a} / ${b} = ${(ra / rb).toFixed(2)}${target}`,
        min === null || ra >= min * rb,
      ]);
    }
    const cpu = (n: string) => result[n]?.backendUs;
    /** [a, b, maximum of a's backend CPU per request over b's (null: informative)] */
    const CPU_RATIOS: [string, string, number | null][] = [
      ['tsgi-scgi', 'uwsgi-python', 1.0],
      ['tsgi-uwsgi', 'uwsgi-python', 1.0],
      /* the stretch: within 1.5× of the C floor */
      ['tsgi-scgi', 'scgi-floor', 1.5],
      ['tsgi-uwsgi', 'uwsgi-floor', 1.5],
      ['tsgi-fastcgi', 'fastcgi-floor', null],
    ];
    for (const [a, b, max] of CPU_RATIOS) {
      const ca = cpu(a);
      const cb = cpu(b);
      if (ca === undefined || cb === undefined) continue;
      const target = max === null ? '' : ` (target ≤ ${max.toFixed(2)})`;
      checks.push([
        `backend CPU/request ${a} / ${b} = ${us(ca)} / ${us(cb)} = ${(ca / cb).toFixed(2)}${target}`,
        max === null || ca <= max * cb,
      ]);
    }
    const fastcgiUs = cpu('tsgi-fastcgi');
    if (fastcgiUs !== undefined) {
      checks.push([
        `tsgi-fastcgi backend CPU/request ${us(fastcgiUs)} (target < 13 µs)`,
        fastcgiUs < 13,
      ]);
    }
    const t = result['tsgi-fastcgi'];
    const h = result['node-http'];
    if (t !== undefined)
      checks.push([`tsgi-fastcgi errors = ${t.errors} (target 0)`, t.errors === 0]);
    if (t !== undefined && h !== undefined) {
      checks.push([
        `tsgi-fastcgi p99 ${t.p99ms.toFixed(2)} ms vs node-http ${h.p99ms.toFixed(2)} ms (target ≤)`,
        t.p99ms <= h.p99ms,
      ]);
    }
    console.log('');
    for (const [text, ok] of checks) console.log(`${ok ? 'ok  ' : 'MISS'} ${text}`);
    if (opts.json) {
      writeFileSync(
        opts.json,
        JSON.stringify(
          {
            date: new Date().toISOString(),
            node: process.version,
            cpus: cpus().length,
            codec,
            pinning: pinMessage,
            load: { before: loadBefore, after: loadAfter },
            duration,
            rounds,
            connections,
            threads,
            result,
          },
          null,
          2,
        ) + '\n',
      );
    }
  } finally {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  }
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.on(sig, () => {
    stopAll().then(() => process.exit(130));
  });
}

main().catch(async (err: unknown) => {
  console.error(err);
  await stopAll();
  process.exit(1);
});
