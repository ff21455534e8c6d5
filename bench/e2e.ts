/**
 * `npm run bench:e2e`: end to end through a real nginx, driven by wrk, all on 127.0.0.1.
 *
 * Rows (one nginx server block each, the same hello world body everywhere):
 *   tsgi-fastcgi   tsgi over FastCGI, fastcgi_keep_conn on, upstream keepalive
 *   tsgi-http      the same tsgi process over HTTP, nginx proxy_pass (HTTP/1.1 keepalive)
 *   node-http      plain node:http, nginx proxy_pass (HTTP/1.1 keepalive)
 *   node-fastcgi   the npm package node-fastcgi, fastcgi_keep_conn on
 *   canned         a responder that only reads record headers and writes a fixed answer
 *                  (the ceiling for any Node FastCGI backend)
 * One tsgi process serves both tsgi rows. Every row runs --rounds times (default 3), the rows
 * interleaved and rotated each round, and the medians are reported: this machine is shared and
 * noisy. Prints requests/s, p99 latency, errors and the ratios against the targets of issue 3.
 *
 *   npm run bench:e2e -- [--duration S] [--rounds N] [--connections C] [--threads T] [--json FILE]
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HERE = join(ROOT, 'bench', 'e2e');
const BODY = 'Hello, world!\n';

const { values: opts } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '3' },
    connections: { type: 'string', default: '50' },
    threads: { type: 'string', default: '1' },
    warmup: { type: 'string', default: '1' },
    json: { type: 'string' },
  },
});
const duration = Number(opts.duration);
const rounds = Number(opts.rounds);
const connections = Number(opts.connections);
const threads = Number(opts.threads);
const warmup = Number(opts.warmup);

function findBinary(name: string): string {
  const dirs = [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin'];
  for (const d of dirs) {
    if (!d) continue;
    try {
      accessSync(join(d, name), constants.X_OK);
      return join(d, name);
    } catch {
      /* next */
    }
  }
  console.error(`bench:e2e needs ${name} (Debian: apt-get install nginx-light wrk)`);
  process.exit(1);
}

const nginxBin = findBinary('nginx');
const wrkBin = findBinary('wrk');

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
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

const children: ChildProcess[] = [];
function start(what: string, cmd: string, args: string[]): ChildProcess {
  const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.on('exit', (code, signal) => {
    if (!stopping) console.error(`${what} exited (${code ?? signal}): ${err}`);
  });
  children.push(child);
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

interface Row {
  name: string;
  port: number;
}

function nginxConf(dir: string, rows: Record<string, number>, up: Record<string, number>): string {
  const fastcgi = (upstream: string) => `
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
            fastcgi_param SERVER_NAME     $server_name;
            fastcgi_pass ${upstream};
            fastcgi_keep_conn on;`;
  const proxy = (upstream: string) => `
            proxy_pass http://${upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;`;
  const server = (port: number, body: string) => `
    server {
        listen 127.0.0.1:${port} backlog=4096;
        location / {${body}
        }
    }`;
  const upstream = (name: string, port: number) =>
    `    upstream ${name} { server 127.0.0.1:${port}; keepalive 64; }\n`;
  const root = typeof process.getuid === 'function' && process.getuid() === 0 ? 'user root;' : '';
  return `daemon off;
${root}
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
${Object.entries(up)
  .map(([n, p]) => upstream(n.replace('-', '_'), p))
  .join('')}
${server(rows['tsgi-fastcgi']!, fastcgi('tsgi_fastcgi'))}
${server(rows['tsgi-http']!, proxy('tsgi_http'))}
${server(rows['node-http']!, proxy('node_http'))}
${server(rows['node-fastcgi']!, fastcgi('node_fastcgi'))}
${server(rows.canned!, fastcgi('canned'))}
}
`;
}

interface Sample {
  rps: number;
  p99ms: number;
  errors: number;
}

function toMs(v: string, unit: string): number {
  const n = Number(v);
  if (unit === 'us') return n / 1000;
  if (unit === 's') return n * 1000;
  if (unit === 'm') return n * 60_000;
  return n;
}

function wrk(port: number, seconds: number): Sample {
  const r = spawnSync(
    wrkBin,
    [
      '-t',
      String(threads),
      '-c',
      String(connections),
      '-d',
      `${seconds}s`,
      '--latency',
      `http://127.0.0.1:${port}/`,
    ],
    { encoding: 'utf8' },
  );
  if (r.status !== 0) throw new Error(`wrk failed: ${r.stderr}`);
  const out = r.stdout;
  const rps = Number(/Requests\/sec:\s+([0-9.]+)/.exec(out)?.[1] ?? NaN);
  const p99 = /\s99%\s+([0-9.]+)(us|ms|s|m)\b/.exec(out);
  let errors = 0;
  const non2xx = /Non-2xx or 3xx responses: ([0-9]+)/.exec(out);
  if (non2xx) errors += Number(non2xx[1]);
  const sock =
    /Socket errors: connect ([0-9]+), read ([0-9]+), write ([0-9]+), timeout ([0-9]+)/.exec(out);
  if (sock) errors += Number(sock[1]) + Number(sock[2]) + Number(sock[3]) + Number(sock[4]);
  return { rps, p99ms: p99 ? toMs(p99[1]!, p99[2]!) : NaN, errors };
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tsgi-bench-e2e-'));
  mkdirSync(join(dir, 'tmp'));
  const names = ['tsgi-fastcgi', 'tsgi-http', 'node-http', 'node-fastcgi', 'canned'];
  const rowsPorts: Record<string, number> = {};
  for (const n of names) rowsPorts[n] = await freePort();
  const up = {
    'tsgi-fastcgi': await freePort(),
    'tsgi-http': await freePort(),
    'node-http': await freePort(),
    'node-fastcgi': await freePort(),
    canned: await freePort(),
  };
  try {
    const tsgi = start('tsgi', process.execPath, [
      join(ROOT, 'dist', 'cli.js'),
      'serve',
      join(HERE, 'hello.mjs'),
      '--fastcgi',
      `127.0.0.1:${up['tsgi-fastcgi']}`,
      '--http',
      `127.0.0.1:${up['tsgi-http']}`,
    ]);
    const nodeHttp = start('node:http', process.execPath, [
      join(HERE, 'node-http.mjs'),
      `127.0.0.1:${up['node-http']}`,
    ]);
    const nodeFcgi = start('node-fastcgi', process.execPath, [
      '--no-deprecation',
      join(HERE, 'node-fastcgi.mjs'),
      `127.0.0.1:${up['node-fastcgi']}`,
    ]);
    const canned = start('canned', process.execPath, [
      join(HERE, 'canned.mjs'),
      `127.0.0.1:${up.canned}`,
    ]);
    await waitForPort(up['tsgi-fastcgi'], tsgi, 'tsgi');
    await waitForPort(up['tsgi-http'], tsgi, 'tsgi');
    await waitForPort(up['node-http'], nodeHttp, 'node:http');
    await waitForPort(up['node-fastcgi'], nodeFcgi, 'node-fastcgi');
    await waitForPort(up.canned, canned, 'canned');
    const confPath = join(dir, 'nginx.conf');
    writeFileSync(confPath, nginxConf(dir, rowsPorts, up));
    const nginx = start('nginx', nginxBin, [
      '-p',
      dir,
      '-c',
      confPath,
      '-e',
      join(dir, 'startup.log'),
    ]);
    for (const n of names) await waitForPort(rowsPorts[n]!, nginx, 'nginx');

    const rows: Row[] = names.map((name) => ({ name, port: rowsPorts[name]! }));
    for (const row of rows) {
      const res = await fetch(`http://127.0.0.1:${row.port}/`);
      const text = await res.text();
      if (res.status !== 200 || text !== BODY || res.headers.get('content-type') !== 'text/plain') {
        throw new Error(`${row.name} answered ${res.status} ${JSON.stringify(text)}`);
      }
      wrk(row.port, warmup);
    }
    const samples: Record<string, Sample[]> = Object.fromEntries(names.map((n) => [n, []]));
    console.log(
      `bench:e2e: ${rounds} rounds × ${rows.length} rows, wrk -t${threads} -c${connections} -d${duration}s, ` +
        `nginx 1 worker, node ${process.version}, ${cpus().length} CPUs`,
    );
    for (let r = 0; r < rounds; r++) {
      const order = rows.map((_, i) => rows[(i + r) % rows.length]!);
      for (const row of order) {
        const s = wrk(row.port, duration);
        samples[row.name]!.push(s);
        console.log(
          `  round ${r + 1} ${row.name.padEnd(13)} ${s.rps.toFixed(0).padStart(7)} req/s  ` +
            `p99 ${s.p99ms.toFixed(2)} ms  errors ${s.errors}`,
        );
      }
    }
    const result = Object.fromEntries(
      names.map((n) => {
        const xs = samples[n]!;
        return [
          n,
          {
            rps: median(xs.map((x) => x.rps)),
            p99ms: median(xs.map((x) => x.p99ms)),
            errors: xs.reduce((a, x) => a + x.errors, 0),
            samples: xs,
          },
        ];
      }),
    );
    const t = result['tsgi-fastcgi']!;
    console.log('\n| row | requests/s (median) | p99 latency (median) | errors |');
    console.log('|---|---:|---:|---:|');
    for (const n of names) {
      const x = result[n]!;
      console.log(`| ${n} | ${x.rps.toFixed(0)} | ${x.p99ms.toFixed(2)} ms | ${x.errors} |`);
    }
    const ratio = (a: number, b: number) => (a / b).toFixed(2);
    const checks: [string, boolean][] = [
      [
        `tsgi-fastcgi / node-http = ${ratio(t.rps, result['node-http']!.rps)} (target ≥ 1.10)`,
        t.rps >= 1.1 * result['node-http']!.rps,
      ],
      [
        `tsgi-fastcgi / canned = ${ratio(t.rps, result.canned!.rps)} (target ≥ 0.85)`,
        t.rps >= 0.85 * result.canned!.rps,
      ],
      [
        `tsgi-fastcgi / node-fastcgi = ${ratio(t.rps, result['node-fastcgi']!.rps)} (target ≥ 5)`,
        t.rps >= 5 * result['node-fastcgi']!.rps,
      ],
      [`tsgi-fastcgi / tsgi-http = ${ratio(t.rps, result['tsgi-http']!.rps)}`, true],
      [`tsgi-fastcgi errors = ${t.errors} (target 0)`, t.errors === 0],
      [
        `tsgi-fastcgi p99 ${t.p99ms.toFixed(2)} ms vs node-http ${result['node-http']!.p99ms.toFixed(2)} ms (target ≤)`,
        t.p99ms <= result['node-http']!.p99ms,
      ],
    ];
    console.log('');
    for (const [text, ok] of checks) console.log(`${ok ? 'ok  ' : 'MISS'} ${text}`);
    if (opts.json) {
      writeFileSync(
        opts.json,
        JSON.stringify(
          {
            date: new Date().toISOString(),
            node: process.version,
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
