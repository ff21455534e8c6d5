/**
 * Where the CPU time of a request goes, in time rather than instructions: the serving
 * processes of bench/request-modes.mjs sampled by `perf record -e cpu-clock` (the kernel's
 * timer, so it works where hardware counters do not), kernel and user space alike.
 *
 *   node bench/request-profile.mjs MODE[,MODE...] [ROUNDS] [N] [PORT] [CONNS] [APP [INTERFACE]]
 *
 * The arguments are request-cpu.mjs's (servers pinned to the last CPU, WARM requests first,
 * rounds interleaved), and so is the load. A Node.js server runs with --perf-basic-prof, so
 * that its JIT code has names. Once every server is warm, one `perf record` per server
 * samples it (PERF_HZ a second, default 4999) while the rounds run. The report gives each
 * server's sampled CPU time per request, split into:
 *
 *   kernel        system calls, TCP over loopback, scheduling
 *   libc          the C library (the system call wrappers are sampled as the calls return)
 *   Node glue     N-API, callbacks into JavaScript, async contexts, handles (node's binary)
 *   V8 builtins   V8's built-in code (inline caches, object literals, string operations)
 *   V8 runtime    the rest of V8 in C++ (runtime calls, the garbage collector)
 *   libuv         the event loop
 *   JIT code      JavaScript compiled by V8
 *   tsgi addon    tsgi's native codec and transport
 *   other         anything else (for uwsgi-python: uWSGI and CPython)
 *
 * and then the TOP (default 25) symbols of each server. callgrind (request-instructions.mjs)
 * counts instructions, which on this kind of machine can disagree with time: V8 code runs
 * fewer instructions per cycle than C, and under valgrind V8 tiers functions up later. Needs
 * perf (Debian's linux-perf) and the right to profile (root, or perf_event_paranoid <= 1).
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { interleave, startServers } from './request-modes.mjs';

const modes = (process.argv[2] ?? 'scgi,uwsgi-python').split(',');
const rounds = Number(process.argv[3] ?? 7);
const n = Number(process.argv[4] ?? 10000);
const basePort = Number(process.argv[5] ?? 27600);
const conns = Number(process.argv[6] ?? 20);
const [appPath, iface] = process.argv.slice(7);
const warm = Number(process.env.WARM ?? 20000);
const parallel = Number(process.env.PARALLEL ?? 20);
const hz = Number(process.env.PERF_HZ ?? 4999);
const top = Number(process.env.TOP ?? 25);

if (spawnSync('perf', ['--version']).status !== 0) {
  console.error('request-profile: needs perf (Debian package linux-perf)');
  process.exit(2);
}

const PARTS = [
  'kernel',
  'libc',
  'Node glue',
  'V8 builtins',
  'V8 runtime',
  'libuv',
  'JIT code',
  'tsgi addon',
  'other',
];
/* symbols of node's binary that belong to calls between native code and JavaScript */
const GLUE =
  /napi|v8impl|node::|v8::Context::|v8::Function::|v8::Value::|v8::Object::New|v8::Integer::|HandleScope|TryCatch|GlobalHandles|Execution::|\(anonymous namespace\)::Invoke|EnsureHasInitialMap/;

/** The part of a request's time a sample in `dso` at `symbol` belongs to. */
function partOf(dso, symbol) {
  if (dso.startsWith('[kernel')) return 'kernel';
  if (dso.startsWith('[JIT]')) return 'JIT code';
  if (dso.startsWith('libc.so')) return 'libc';
  if (dso === 'tsgi.node') return 'tsgi addon';
  if (dso === 'node') {
    if (symbol.startsWith('uv_') || symbol.startsWith('uv__')) return 'libuv';
    if (symbol.startsWith('Builtins_')) return 'V8 builtins';
    if (GLUE.test(symbol)) return 'Node glue';
    return 'V8 runtime';
  }
  return 'other';
}

/** `perf report` of one recording: its sampled time in ns and the time of each dso/symbol. */
function report(file) {
  const r = spawnSync(
    'perf',
    ['report', '-i', file, '--no-children', '--sort', 'dso,sym', '--stdio'],
    { encoding: 'utf8', maxBuffer: 256 << 20 },
  );
  if (r.status !== 0) throw new Error(`perf report failed: ${r.stderr}`);
  const total = Number(/Event count \(approx\.\): (\d+)/.exec(r.stdout)?.[1] ?? 0);
  const rows = [];
  for (const line of r.stdout.split('\n')) {
    /* "    18.37%  [kernel.kallsyms]  [k] pvm_irq_enable"; a dso name may hold spaces ("[JIT] tid 7") */
    const m = /^\s+([\d.]+)%\s+(.+?)\s+\[[.k]\]\s+(.*)$/.exec(line);
    if (m) rows.push({ share: Number(m[1]) / 100, dso: m[2], symbol: m[3].trim() });
  }
  return { total, rows };
}

const dir = mkdtempSync(join(tmpdir(), 'tsgi-profile-'));
const { servers, stop } = startServers(modes, basePort, {
  appPath,
  iface,
  nodeFlags: ['--perf-basic-prof'],
});
let perfs = [];
try {
  for (const s of servers) {
    await s.driver.start(conns);
    await s.driver.send(warm, parallel);
  }
  perfs = servers.map((s, i) => {
    s.file = join(dir, `${i}.data`);
    const p = spawn(
      'perf',
      ['record', '-e', 'cpu-clock', '-F', String(hz), '-o', s.file, '-p', String(s.proc.pid)],
      { stdio: 'ignore' },
    );
    p.exited = new Promise((resolve) => p.on('exit', resolve));
    return p;
  });
  /* perf attaches before the first round */
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await interleave(servers, rounds, (s) => s.driver.send(n, parallel));
  for (const p of perfs) p.kill('SIGINT');
  await Promise.all(perfs.map((p) => p.exited));
  perfs = [];

  const requests = rounds * n;
  console.log(
    `\n${n} requests a round, ${rounds} rounds, ` +
      `${servers.some((s) => s.spec.kept) ? `${conns} kept connections, ` : ''}` +
      `${parallel} connections at a time for a connection per request; ` +
      `perf cpu-clock at ${hz} Hz; sampled CPU time per request:\n`,
  );
  const reports = servers.map((s) => report(s.file));
  console.log(`| part | ${servers.map((s) => s.mode).join(' | ')} |`);
  console.log(`|---|${servers.map(() => '---:').join('|')}|`);
  const us = (r, share) => ((r.total * share) / requests / 1000).toFixed(2);
  for (const part of [...PARTS, 'total']) {
    const cells = reports.map((r) =>
      us(
        r,
        part === 'total'
          ? 1
          : r.rows.filter((x) => partOf(x.dso, x.symbol) === part).reduce((a, x) => a + x.share, 0),
      ),
    );
    console.log(`| ${part} | ${cells.map((c) => `${c} µs`).join(' | ')} |`);
  }
  servers.forEach((s, i) => {
    console.log(`\n${s.mode}: the ${top} symbols with the most time (µs per request, part)`);
    for (const x of reports[i].rows.slice(0, top)) {
      console.log(
        `  ${us(reports[i], x.share).padStart(6)}  ${partOf(x.dso, x.symbol).padEnd(11)}  ${x.symbol}`,
      );
    }
  });
} finally {
  for (const p of perfs) p.kill('SIGINT');
  stop();
  rmSync(dir, { recursive: true, force: true });
}
