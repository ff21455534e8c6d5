/**
 * The process-manager rows of `npm run bench:e2e` (docs/benchmarks.md), added to bench/e2e.ts's
 * tables:
 *
 *   cpu-workers-1        `tsgi serve --workers 1` on an app that spends about 2 ms of CPU per
 *                        request (bench/e2e/workers-cpu.mjs), FastCGI with keepalive
 *   cpu-workers-2        the same with `--workers 2`: target ≥ 1.7× cpu-workers-1 on 2 cores
 *   cpu-single           the same app in one process without a master (for reference)
 *   tsgi-workers-stats   the hello world under a master with one worker and --stats (the
 *                        request counting middleware and the workers' heartbeats run):
 *                        target ≥ 0.97× tsgi-fastcgi, the single process serving alone
 *
 * The CPU work is calibrated here once (xorshift iterations timed in this process) and passed
 * to every tsgi process in TSGI_BENCH_CPU_WORK, so each row does the same work per request.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { work } from './workers-cpu.mjs';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const CLI = join(HERE, '..', '..', 'dist', 'cli.js');
/** CPU time per request of the CPU rows. */
const CPU_MS = 2;

/** Iterations of `work` that take about CPU_MS here (median of 9 timings). */
function calibrate(): number {
  const n = 1_000_000;
  work(n);
  const times: number[] = [];
  for (let i = 0; i < 9; i++) {
    const t0 = process.hrtime.bigint();
    work(n);
    times.push(Number(process.hrtime.bigint() - t0) / 1e6);
  }
  times.sort((a, b) => a - b);
  return Math.round((n * CPU_MS) / times[4]!);
}

type Start = (what: string, cmd: string, args: string[]) => ChildProcess;

/** The backends of the workers rows, for bench/e2e.ts's BACKENDS table. */
export function workerBackends(start: Start) {
  const cpuApp = join(HERE, 'workers-cpu.mjs');
  const hello = join(HERE, 'hello.mjs');
  let iterations = 0;
  const cpu = (row: string, extra: string[]) => ({
    missing: () => null,
    start: (p: Record<string, number>) => {
      if (iterations === 0) {
        iterations = calibrate();
        process.env.TSGI_BENCH_CPU_WORK = String(iterations);
        console.log(
          `bench:e2e: CPU rows do ${iterations} xorshift rounds (~${CPU_MS} ms) per request`,
        );
      }
      return start(`tsgi ${row}`, process.execPath, [
        CLI,
        'serve',
        cpuApp,
        '--fastcgi',
        `127.0.0.1:${p[row]}`,
        ...extra,
      ]);
    },
  });
  return {
    'cpu-single': cpu('cpu-single', []),
    'cpu-workers-1': cpu('cpu-workers-1', ['--workers', '1']),
    'cpu-workers-2': cpu('cpu-workers-2', ['--workers', '2']),
    'tsgi-workers-stats': {
      missing: () => null,
      start: (p: Record<string, number>) =>
        start('tsgi --workers 1 --stats', process.execPath, [
          CLI,
          'serve',
          hello,
          '--fastcgi',
          `127.0.0.1:${p['tsgi-workers-stats']}`,
          '--workers',
          '1',
          '--stats',
          '127.0.0.1:0',
        ]),
    },
  };
}

/** The names of the workers rows (each row's backend has its name). */
export const WORKER_ROW_NAMES = [
  'cpu-single',
  'cpu-workers-1',
  'cpu-workers-2',
  'tsgi-workers-stats',
] as const;

/** The rows, for bench/e2e.ts's ROWS table (`fastcgi` is its FastCGI location). */
export function workerRows(fastcgi: (upstream: string) => string) {
  return WORKER_ROW_NAMES.map((name) => ({
    name,
    backend: name,
    location: fastcgi,
    keepalive: true,
  }));
}

/** Target ratios [a, b, minimum of a/b] for bench/e2e.ts's RATIOS table. */
export const WORKER_RATIOS: [string, string, number | null][] = [
  ['cpu-workers-2', 'cpu-workers-1', 1.7],
  ['cpu-workers-2', 'cpu-single', null],
  ['tsgi-workers-stats', 'tsgi-fastcgi', 0.97],
];
