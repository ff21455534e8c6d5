/**
 * Helpers for the process-manager tests (test/server/master*.test.ts, test/server/master-faults.test.ts,
 * test/server/stats.test.ts): starting `tsgi serve` and waiting until it serves, reading its stats
 * endpoint, and driving load through keep-alive connections while counting every outcome.
 */
import { Agent, request, type IncomingHttpHeaders } from 'node:http';
import { startChild, type Child } from './spawn.js';

export const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Starts the CLI with `args`; resolves once it printed `lines` "serving ..." lines. */
export async function startTsgi(
  cli: string,
  args: string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; lines?: number; stdio?: unknown[] },
): Promise<Child> {
  const child = startChild(process.execPath, [cli, 'serve', ...args], {
    cwd: options.cwd,
    env: options.env ?? process.env,
    stdio: (options.stdio ?? ['ignore', 'pipe', 'pipe']) as never,
  });
  const want = options.lines ?? 1;
  const re = new RegExp(`(?:tsgi: serving .*\\n(?:.*\\n)*?){${want}}`);
  await child.waitForStderr(re);
  return child;
}

/** One HTTP exchange: status and body, or the error's code. */
export interface Reply {
  status: number;
  body: string;
  headers: IncomingHttpHeaders;
}

/** One request to 127.0.0.1:port (or a unix socket path), with an optional agent. */
export function httpGet(
  target: number | string,
  path: string,
  options: { agent?: Agent; method?: string; body?: string; timeoutMs?: number } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...(typeof target === 'number'
          ? { host: '127.0.0.1', port: target }
          : { socketPath: target }),
        path,
        method: options.method ?? 'GET',
        agent: options.agent ?? false,
        headers:
          options.body !== undefined ? { 'Content-Length': Buffer.byteLength(options.body) } : {},
      },
      (res) => {
        let body = '';
        res.setEncoding('latin1');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.timeoutMs !== undefined) {
      req.setTimeout(options.timeoutMs, () => req.destroy(new Error('client timeout')));
    }
    req.end(options.body);
  });
}

/** The JSON of a stats endpoint. */
export interface StatsDoc {
  pid: number;
  mode: string;
  generation: number;
  reloads: number;
  workers: {
    id: number;
    pid: number;
    generation: number;
    state: string;
    requests: number;
    in_flight: number;
    avg_ms: number;
    max_ms: number;
    rss_bytes: number;
    restarts: number;
  }[];
  listeners: {
    protocol: string;
    address: string;
    connections: number;
    requests: number;
    refused: number;
  }[];
  totals: { workers: number; requests: number; in_flight: number; restarts: number };
}

export async function getStats(port: number): Promise<StatsDoc> {
  const r = await httpGet(port, '/');
  if (r.status !== 200) throw new Error(`stats answered ${r.status}`);
  return JSON.parse(r.body) as StatsDoc;
}

/** Polls `check` every 50 ms until it returns a value other than undefined (or throws after `ms`). */
export async function waitFor<T>(
  what: string,
  check: () => Promise<T | undefined> | T | undefined,
  ms = 10_000,
): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await tick(50);
  }
}

/** What a load run saw. */
export interface LoadResult {
  total: number;
  /** Responses by status code. */
  statuses: Record<number, number>;
  /** Requests that got no response (connection errors, client timeouts), by message. */
  errors: Record<string, number>;
  /** Bodies of the 200 responses, counted. */
  bodies: Record<string, number>;
  /** Every request: when it was sent (performance.now()) and its status or error message. */
  samples: { start: number; outcome: number | string }[];
}

/**
 * Runs `concurrency` loops of sequential GETs (or `method` with `body`) over keep-alive
 * connections until `stop()` is called; every outcome is counted.
 */
export function startLoad(
  port: number,
  path: string | ((i: number) => string),
  concurrency: number,
  options: { method?: string; body?: string } = {},
): { stop: () => Promise<LoadResult>; result: LoadResult } {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const result: LoadResult = { total: 0, statuses: {}, errors: {}, bodies: {}, samples: [] };
  let running = true;
  let n = 0;
  const loop = async (): Promise<void> => {
    while (running) {
      const p = typeof path === 'string' ? path : path(n++);
      const start = performance.now();
      try {
        const r = await httpGet(port, p, { ...options, agent, timeoutMs: 20_000 });
        result.statuses[r.status] = (result.statuses[r.status] ?? 0) + 1;
        if (r.status === 200) result.bodies[r.body] = (result.bodies[r.body] ?? 0) + 1;
        result.samples.push({ start, outcome: r.status });
      } catch (err) {
        const m = (err as Error).message;
        result.errors[m] = (result.errors[m] ?? 0) + 1;
        result.samples.push({ start, outcome: m });
      }
      result.total++;
    }
  };
  const loops = Array.from({ length: concurrency }, loop);
  return {
    result,
    stop: async () => {
      running = false;
      await Promise.all(loops);
      agent.destroy();
      return result;
    },
  };
}
