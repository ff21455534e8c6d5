/**
 * Instructions per SCGI / uwsgi request in the serving process, counted by callgrind.
 *
 *   node bench/request-instructions.mjs scgi|uwsgi [N] [PORT]
 *
 * Starts `tsgi serve --scgi|--uwsgi 127.0.0.1:PORT examples/hello.mjs` under
 * `valgrind --tool=callgrind --instr-atstart=no`, sends 6000 warm-up requests (WARM), turns
 * instrumentation on (callgrind_control -i on), sends N requests (default 2000), turns it off
 * and prints the instructions counted divided by N. Each request is the nginx-typical request of
 * bench/fixtures.mjs on a connection of its own, written whole at once, read until the server
 * closes. Needs valgrind; prints the machine line, codec and transport.
 */
import { spawn, execFileSync } from 'node:child_process';
import { connect } from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SCGI_REQUEST, UWSGI_REQUEST } from './fixtures.mjs';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const protocol = process.argv[2] ?? 'scgi';
const n = Number(process.argv[3] ?? 2000);
const port = Number(process.argv[4] ?? 27100);
const warm = Number(process.env.WARM ?? 6000);
const request = protocol === 'uwsgi' ? UWSGI_REQUEST : SCGI_REQUEST;

function once() {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    let got = 0;
    s.on('connect', () => s.write(request));
    s.on('data', (d) => (got += d.length));
    s.on('error', reject);
    s.on('close', () => (got > 0 ? resolve() : reject(new Error('empty response'))));
  });
}

async function send(count) {
  for (let i = 0; i < count; i++) await once();
}

async function waitUp() {
  for (let i = 0; i < 600; i++) {
    try {
      await once();
      return;
    } catch {
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
    join(root, 'dist/cli.js'),
    'serve',
    `--${protocol}`,
    `127.0.0.1:${port}`,
    join(root, 'examples/hello.mjs'),
  ],
  { stdio: ['ignore', 'ignore', 'pipe'], env: process.env },
);
let err = '';
server.stderr.on('data', (d) => (err += d));
try {
  await waitUp();
  await send(warm);
  execFileSync('callgrind_control', ['-i', 'on', String(server.pid)], { stdio: 'ignore' });
  await send(n);
  execFileSync('callgrind_control', ['-i', 'off', String(server.pid)], { stdio: 'ignore' });
} finally {
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
}
const m = /Collected : (\d+)/.exec(err);
const total = m ? Number(m[1]) : 0;
if (total === 0) throw new Error(`no callgrind summary\n${err}`);
console.log(
  `machine: ${cpus().length} cores, ${cpus()[0]?.model ?? '?'}, Node ${process.version}; ` +
    `codec ${process.env.TSGI_CODEC ?? 'default'}, transport ${process.env.TSGI_TRANSPORT ?? 'default'}`,
);
console.log(`${protocol}: ${Math.round(total / n)} instructions per request (N=${n})`);
