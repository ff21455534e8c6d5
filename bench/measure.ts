/**
 * What the end-to-end benchmarks (bench:e2e, bench:client) measure with: wrk's requests/s,
 * p99 latency and errors, and the CPU time of process trees from /proc (Linux).
 */
import { spawnSync } from 'node:child_process';
import { cpuTimes } from './proc-cpu.mjs';

/** One wrk run. */
export interface WrkResult {
  rps: number;
  p99ms: number;
  errors: number;
  /** Requests wrk completed. */
  requests: number;
}

/**
 * CPU seconds (user + system) used so far by each of `pids` and every process below it, from
 * one read of /proc (Linux); null where /proc is not there.
 */
export function cpuSeconds(pids: readonly number[]): number[] | null {
  return cpuTimes(pids)?.map((t) => t.user + t.system) ?? null;
}

function toMs(v: string, unit: string): number {
  const n = Number(v);
  if (unit === 'us') return n / 1000;
  if (unit === 's') return n * 1000;
  if (unit === 'm') return n * 60_000;
  return n;
}

/**
 * Runs wrk against `url` (with --latency) and parses its report. `before` goes between `wrkBin`
 * and wrk's own arguments (`wrkBin` taskset, `before` its arguments and wrk's path).
 */
export function runWrk(
  wrkBin: string,
  url: string,
  threads: number,
  connections: number,
  seconds: number,
  before: string[] = [],
): WrkResult {
  const r = spawnSync(
    wrkBin,
    [
      ...before,
      '-t',
      String(threads),
      '-c',
      String(connections),
      '-d',
      `${seconds}s`,
      '--latency',
      url,
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
  const requests = Number(/([0-9]+) requests in/.exec(out)?.[1] ?? NaN);
  return { rps, p99ms: p99 ? toMs(p99[1]!, p99[2]!) : NaN, errors, requests };
}
