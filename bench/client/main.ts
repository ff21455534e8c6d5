/**
 * `npm run bench:client`: serving a PHP hello world (bench/e2e/hello.php) from php-fpm, three
 * ways, all on 127.0.0.1, driven by wrk:
 *   nginx           nginx fastcgi_pass to php-fpm (a connection per request, as Debian's
 *                   snippets configure it: with fastcgi_keep_conn, nginx may open more
 *                   connections than php-fpm has workers, and they wait for a kept one to close)
 *   tsgi-proxy      a node:http server with tsgi's phpFpm proxy (a pool of kept connections,
 *                   FCGI_KEEP_CONN, as many as php-fpm has workers)
 *   node-floor      the least a Node.js front can do (bench/client/floor-app.mjs): node:http and
 *                   kept connections, records pre-encoded, the answer cut by hand; no script
 *                   lookup, timeouts or errors. What node:http and the sockets cost by themselves
 *   fastcgi-client  a node:http server with the npm package fastcgi-client
 * php-fpm runs one pool per row (kept connections hold workers while idle), each pm static
 * with --children workers (default 4). Each row runs
 * --rounds times (default 5), rows interleaved and rotated; medians are reported with the CPU
 * time per request of the front (nginx or node) and of php-fpm, from /proc. Targets: tsgi-proxy
 * ≥ 0.9× nginx and ≥ 3× fastcgi-client in requests/s. A Node.js front runs on one core: when it
 * is the bottleneck, requests/s follow its CPU per request, which the ratios show too. "machine
 * busy" is how busy all CPUs were during the row (every process, from /proc/stat): near 100 %,
 * the row was held by the machine (other work included), not by its front.
 *
 *   npm run bench:client -- [--duration S] [--rounds N] [--connections C] [--children N]
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { codec } from '../../dist/index.js';
import { findPhpFpm, startPhpFpm } from '../../test/support/backends.js';
import { nginxHttpConf, startNginx } from '../../test/support/frontends.js';
import { findBinary, freePort } from '../../test/support/peers.js';
import { startChild, type Child } from '../../test/support/spawn.js';
import { cpuSeconds, runWrk, type WrkResult } from '../measure.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const E2E = join(ROOT, 'bench', 'e2e');
const HERE = join(ROOT, 'bench', 'client');

const { values: o } = parseArgs({
  options: {
    duration: { type: 'string', default: '5' },
    rounds: { type: 'string', default: '5' },
    connections: { type: 'string', default: '16' },
    children: { type: 'string', default: '4' },
  },
});
const duration = Number(o.duration);
const rounds = Number(o.rounds);
const connections = Number(o.connections);
const children = Number(o.children);

const need = (name: string, bin: string | null, pkg: string): string => {
  if (bin !== null) return bin;
  console.error(`bench:client needs ${name} (Debian: apt-get install ${pkg})`);
  process.exit(1);
};
need('nginx', findBinary('nginx'), 'nginx-light');
const wrkBin = need('wrk', findBinary('wrk'), 'wrk');
const fpmBin = need('php-fpm', findPhpFpm(), 'php-fpm');

interface Row {
  name: string;
  port: number;
  front: Child;
}

interface Sample extends WrkResult {
  frontUs: number;
  fpmUs: number;
  /** How busy the whole machine was (all CPUs, every process), 0–1. */
  busy: number;
}

/** [busy, total] clock ticks of all CPUs so far, from /proc/stat (Linux). */
function machineTicks(): [number, number] {
  const f = readFileSync('/proc/stat', 'latin1')
    .split('\n')[0]!
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  /* idle and iowait are the 4th and 5th fields */
  return [total - f[3]! - (f[4] ?? 0), total];
}

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
};

async function waitReady(child: Child, name: string): Promise<void> {
  for (;;) {
    if (child.stdout().includes('ready')) return;
    const exited = await Promise.race([
      child.exited.then(() => true),
      new Promise((r) => setTimeout(() => r(false), 50)),
    ]);
    if (exited) throw new Error(`${name} exited: ${child.stderr()}`);
  }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tsgi-bench-client-'));
  const started: Child[] = [];
  try {
    /* one pool per row: kept connections hold php-fpm workers (one each) while idle, so a
     * row sharing a pool with the tsgi-proxy row would wait for its idle connections */
    const fpmPorts = {
      nginx: await freePort(),
      proxy: await freePort(),
      floor: await freePort(),
      fc: await freePort(),
    };
    const fpm = await startPhpFpm(
      fpmBin,
      dir,
      Object.entries(fpmPorts).map(([name, port]) => ({
        name,
        listen: `127.0.0.1:${port}`,
        children,
      })),
    );
    started.push(fpm);

    const rows: Row[] = [];
    /* nginx */
    const nginxPort = await freePort();
    const ngxDir = join(dir, 'nginx');
    mkdirSync(ngxDir);
    const nginx = await startNginx(
      ngxDir,
      nginxHttpConf(`
    server {
        listen 127.0.0.1:${nginxPort} backlog=4096;
        keepalive_requests 1000000;
        location / {
            fastcgi_param REQUEST_METHOD  $request_method;
            fastcgi_param REQUEST_URI     $request_uri;
            fastcgi_param DOCUMENT_URI    $document_uri;
            fastcgi_param DOCUMENT_ROOT   ${E2E};
            fastcgi_param QUERY_STRING    $query_string;
            fastcgi_param CONTENT_TYPE    $content_type;
            fastcgi_param CONTENT_LENGTH  $content_length;
            fastcgi_param SCRIPT_NAME     $fastcgi_script_name;
            fastcgi_param SCRIPT_FILENAME ${E2E}$fastcgi_script_name;
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param GATEWAY_INTERFACE CGI/1.1;
            fastcgi_param REMOTE_ADDR     $remote_addr;
            fastcgi_param REMOTE_PORT     $remote_port;
            fastcgi_param SERVER_ADDR     $server_addr;
            fastcgi_param SERVER_PORT     $server_port;
            fastcgi_param SERVER_NAME     $server_name;
            fastcgi_param REDIRECT_STATUS 200;
            fastcgi_pass 127.0.0.1:${fpmPorts.nginx};
        }
    }`),
      nginxPort,
    );
    started.push(nginx);
    rows.push({ name: 'nginx', port: nginxPort, front: nginx });

    /* tsgi-proxy */
    const proxyPort = await freePort();
    const proxy = startChild(process.execPath, [
      join(HERE, 'proxy-app.mjs'),
      String(proxyPort),
      `127.0.0.1:${fpmPorts.proxy}`,
      E2E,
      String(children),
    ]);
    started.push(proxy);
    await waitReady(proxy, 'tsgi-proxy');
    rows.push({ name: 'tsgi-proxy', port: proxyPort, front: proxy });

    /* node-floor */
    const floorPort = await freePort();
    const floor = startChild(process.execPath, [
      join(HERE, 'floor-app.mjs'),
      String(floorPort),
      `127.0.0.1:${fpmPorts.floor}`,
      E2E,
      String(children),
    ]);
    started.push(floor);
    await waitReady(floor, 'node-floor');
    rows.push({ name: 'node-floor', port: floorPort, front: floor });

    /* fastcgi-client */
    const fcPort = await freePort();
    const fc = startChild(process.execPath, [
      join(HERE, 'fastcgi-client-app.mjs'),
      String(fcPort),
      String(fpmPorts.fc),
      join(E2E, 'hello.php'),
    ]);
    started.push(fc);
    await waitReady(fc, 'fastcgi-client');
    rows.push({ name: 'fastcgi-client', port: fcPort, front: fc });

    /* every row answers the same bytes before anything is measured */
    for (const r of rows) {
      const text = await (await fetch(`http://127.0.0.1:${r.port}/hello.php`)).text();
      if (text !== 'Hello, world!\n') throw new Error(`${r.name} answered ${JSON.stringify(text)}`);
    }

    const samples = new Map<string, Sample[]>(rows.map((r) => [r.name, []]));
    for (const r of rows) runWrk(wrkBin, `http://127.0.0.1:${r.port}/hello.php`, 1, connections, 1);
    for (let round = 0; round < rounds; round++) {
      const order = rows.map((_, i) => rows[(i + round) % rows.length]!);
      for (const r of order) {
        const before = cpuSeconds([r.front.proc.pid!, fpm.proc.pid!])!;
        const machineBefore = machineTicks();
        const s = runWrk(wrkBin, `http://127.0.0.1:${r.port}/hello.php`, 1, connections, duration);
        if (!(s.requests > 0))
          throw new Error(`${r.name} answered no request in round ${round + 1}`);
        const after = cpuSeconds([r.front.proc.pid!, fpm.proc.pid!])!;
        const machineAfter = machineTicks();
        samples.get(r.name)!.push({
          ...s,
          frontUs: ((after[0]! - before[0]!) * 1e6) / s.requests,
          fpmUs: ((after[1]! - before[1]!) * 1e6) / s.requests,
          busy: (machineAfter[0] - machineBefore[0]) / (machineAfter[1] - machineBefore[1]),
        });
        process.stderr.write(`round ${round + 1} ${r.name}: ${s.rps.toFixed(0)} req/s\n`);
      }
    }

    const [l1, l5] = loadavg();
    console.log(
      `\nbench:client — PHP hello world through php-fpm (a pool per row, pm static, ${children} workers), ` +
        `wrk -t1 -c${connections}, ${rounds} rounds of ${duration}s, medians\n` +
        `node ${process.version}, ${cpus().length} CPUs, load ${l1!.toFixed(2)} / ${l5!.toFixed(2)}, ` +
        `tsgi codec ${codec.name}, transport TCP 127.0.0.1 (front and php-fpm)\n`,
    );
    const med: Record<string, number> = {};
    const cpu: Record<string, number> = {};
    console.log(
      'row              req/s    p99 ms  errors  front CPU/req  php-fpm CPU/req  machine busy',
    );
    for (const r of rows) {
      const ss = samples.get(r.name)!;
      const rps = median(ss.map((s) => s.rps));
      med[r.name] = rps;
      cpu[r.name] = median(ss.map((s) => s.frontUs));
      console.log(
        `${r.name.padEnd(15)} ${rps.toFixed(0).padStart(6)}  ${median(ss.map((s) => s.p99ms))
          .toFixed(2)
          .padStart(8)}  ${String(ss.reduce((a, s) => a + s.errors, 0)).padStart(6)}  ${median(
          ss.map((s) => s.frontUs),
        )
          .toFixed(0)
          .padStart(10)} µs  ${median(ss.map((s) => s.fpmUs))
          .toFixed(0)
          .padStart(12)} µs  ${(median(ss.map((s) => s.busy)) * 100).toFixed(0).padStart(10)} %`,
      );
    }
    const ratio = (a: string, b: string, target: number) =>
      console.log(
        `${a} / ${b}: ${(med[a]! / med[b]!).toFixed(2)}× in req/s (target ≥ ${target}×), ` +
          `${(cpu[b]! / cpu[a]!).toFixed(2)}× less front CPU per request`,
      );
    console.log('');
    ratio('tsgi-proxy', 'nginx', 0.9);
    ratio('tsgi-proxy', 'fastcgi-client', 3);
    console.log(
      `tsgi-proxy front CPU per request: ${(cpu['tsgi-proxy']! / cpu['node-floor']!).toFixed(2)}× node-floor's`,
    );
  } finally {
    for (const c of started.reverse()) await c.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
