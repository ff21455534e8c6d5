/**
 * `--stats ADDR`: the JSON document and the Prometheus text (lib/server/stats.ts) for a fixed
 * snapshot, byte for byte; then the endpoint of a single process and of a master with two
 * workers, with counts checked against the requests this test sent.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { prometheusText, statsJson, type StatsSnapshot } from '../../lib/server/stats.js';
import { VERSION } from '../../lib/version.js';
import { ensureBuilt } from '../support/build.js';
import { freePort } from '../support/peers.js';
import { getStats, httpGet, startTsgi, waitFor } from '../support/process-manager.js';
import type { Child } from '../support/spawn.js';

const SNAPSHOT: StatsSnapshot = {
  mode: 'master',
  pid: 100,
  startedAt: Date.UTC(2024, 0, 1, 0, 0, 0),
  generation: 2,
  reloads: 1,
  workers: [
    {
      id: 1,
      pid: 101,
      generation: 2,
      state: 'ready',
      startedAt: Date.UTC(2024, 0, 1, 0, 0, 10),
      requests: 4,
      inFlight: 1,
      totalMs: 10,
      maxMs: 5.5,
      rssBytes: 50_000_000,
      restarts: 1,
    },
    {
      id: 2,
      pid: 102,
      generation: 1,
      state: 'stopping',
      startedAt: Date.UTC(2024, 0, 1, 0, 0, 0, 500),
      requests: 0,
      inFlight: 0,
      totalMs: 0,
      maxMs: 0,
      rssBytes: 40_000_000,
      restarts: 0,
    },
  ],
  listeners: [
    {
      protocol: 'fastcgi',
      address: 'unix:/run/a "b".sock',
      connections: 3,
      requests: 9,
      refused: 2,
    },
  ],
};
const NOW = Date.UTC(2024, 0, 1, 0, 1, 0);

describe('stats documents', () => {
  it('JSON: every field, snake_case, averages and totals computed', () => {
    expect(statsJson(SNAPSHOT, NOW)).toEqual({
      version: VERSION,
      mode: 'master',
      pid: 100,
      started: '2024-01-01T00:00:00.000Z',
      uptime_s: 60,
      generation: 2,
      reloads: 1,
      workers: [
        {
          id: 1,
          pid: 101,
          generation: 2,
          state: 'ready',
          started: '2024-01-01T00:00:10.000Z',
          requests: 4,
          in_flight: 1,
          avg_ms: 2.5,
          max_ms: 5.5,
          rss_bytes: 50_000_000,
          restarts: 1,
        },
        {
          id: 2,
          pid: 102,
          generation: 1,
          state: 'stopping',
          started: '2024-01-01T00:00:00.500Z',
          requests: 0,
          in_flight: 0,
          avg_ms: 0,
          max_ms: 0,
          rss_bytes: 40_000_000,
          restarts: 0,
        },
      ],
      listeners: [
        {
          protocol: 'fastcgi',
          address: 'unix:/run/a "b".sock',
          connections: 3,
          requests: 9,
          refused: 2,
        },
      ],
      totals: { workers: 2, requests: 9, in_flight: 1, restarts: 1 },
    });
  });

  it('Prometheus text exposition, byte for byte (labels escaped)', () => {
    expect(prometheusText(SNAPSHOT, NOW)).toBe(`# HELP tsgi_up Always 1 while the server answers.
# TYPE tsgi_up gauge
tsgi_up 1
# HELP tsgi_uptime_seconds Seconds since the server (master) started.
# TYPE tsgi_uptime_seconds gauge
tsgi_uptime_seconds 60
# HELP tsgi_generation Worker generation (increases with every reload).
# TYPE tsgi_generation gauge
tsgi_generation 2
# HELP tsgi_reloads_total Reloads (SIGHUP or --reload).
# TYPE tsgi_reloads_total counter
tsgi_reloads_total 1
# HELP tsgi_workers Worker processes, by state.
# TYPE tsgi_workers gauge
tsgi_workers{state="starting"} 0
tsgi_workers{state="ready"} 1
tsgi_workers{state="stopping"} 1
# HELP tsgi_worker_requests_total Requests the worker finished.
# TYPE tsgi_worker_requests_total counter
tsgi_worker_requests_total{worker="1",pid="101"} 4
tsgi_worker_requests_total{worker="2",pid="102"} 0
# HELP tsgi_worker_requests_in_flight Requests the worker is running.
# TYPE tsgi_worker_requests_in_flight gauge
tsgi_worker_requests_in_flight{worker="1",pid="101"} 1
tsgi_worker_requests_in_flight{worker="2",pid="102"} 0
# HELP tsgi_worker_request_duration_seconds Time of the requests the worker finished.
# TYPE tsgi_worker_request_duration_seconds summary
tsgi_worker_request_duration_seconds_sum{worker="1",pid="101"} 0.01
tsgi_worker_request_duration_seconds_count{worker="1",pid="101"} 4
tsgi_worker_request_duration_seconds_sum{worker="2",pid="102"} 0
tsgi_worker_request_duration_seconds_count{worker="2",pid="102"} 0
# HELP tsgi_worker_request_duration_max_seconds Longest request the worker finished.
# TYPE tsgi_worker_request_duration_max_seconds gauge
tsgi_worker_request_duration_max_seconds{worker="1",pid="101"} 0.0055
tsgi_worker_request_duration_max_seconds{worker="2",pid="102"} 0
# HELP tsgi_worker_resident_memory_bytes Resident set size of the worker.
# TYPE tsgi_worker_resident_memory_bytes gauge
tsgi_worker_resident_memory_bytes{worker="1",pid="101"} 50000000
tsgi_worker_resident_memory_bytes{worker="2",pid="102"} 40000000
# HELP tsgi_worker_start_time_seconds When the worker started, seconds since the epoch.
# TYPE tsgi_worker_start_time_seconds gauge
tsgi_worker_start_time_seconds{worker="1",pid="101"} 1704067210
tsgi_worker_start_time_seconds{worker="2",pid="102"} 1704067200.5
# HELP tsgi_worker_restarts_total Workers that held this worker slot before the current one.
# TYPE tsgi_worker_restarts_total counter
tsgi_worker_restarts_total{worker="1",pid="101"} 1
tsgi_worker_restarts_total{worker="2",pid="102"} 0
# HELP tsgi_listener_connections_total Connections accepted on the listener.
# TYPE tsgi_listener_connections_total counter
tsgi_listener_connections_total{protocol="fastcgi",address="unix:/run/a \\"b\\".sock"} 3
# HELP tsgi_listener_requests_total Requests finished on the listener.
# TYPE tsgi_listener_requests_total counter
tsgi_listener_requests_total{protocol="fastcgi",address="unix:/run/a \\"b\\".sock"} 9
# HELP tsgi_listener_refused_total Connections refused by --allow or FCGI_WEB_SERVER_ADDRS.
# TYPE tsgi_listener_refused_total counter
tsgi_listener_refused_total{protocol="fastcgi",address="unix:/run/a \\"b\\".sock"} 2
`);
  });
});

describe('the stats endpoint', () => {
  let cli = '';
  let dir = '';
  const children: Child[] = [];
  beforeAll(async () => {
    cli = await ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'tsgi-stats-'));
    writeFileSync(
      join(dir, 'app.mjs'),
      `export default (env, start) => { start('200 OK', [['Content-Type', 'text/plain']]); return [String(process.pid)]; };`,
    );
  });
  afterEach(async () => {
    for (const c of children.splice(0)) await c.stop();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('a single process: its own live numbers, JSON and /metrics, 404 and 405 elsewhere', async () => {
    const [port, statsPort] = [await freePort(), await freePort()];
    const child = await startTsgi(
      cli,
      ['app.mjs', '--http', `127.0.0.1:${port}`, '--stats', `127.0.0.1:${statsPort}`],
      { cwd: dir },
    );
    children.push(child);
    await child.waitForStderr(
      new RegExp(
        `tsgi: statistics on 127\\.0\\.0\\.1:${statsPort}: JSON at /, Prometheus text at /metrics\n`,
      ),
    );
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    for (let i = 0; i < 3; i++) expect((await httpGet(port, '/', { agent })).status).toBe(200);
    agent.destroy();
    const s = await getStats(statsPort);
    expect(s.mode).toBe('single');
    expect(s.pid).toBe(child.proc.pid);
    expect(s.workers.length).toBe(1);
    expect(s.workers[0]).toMatchObject({
      id: 1,
      pid: child.proc.pid,
      state: 'ready',
      requests: 3,
      in_flight: 0,
      restarts: 0,
    });
    expect(s.workers[0]!.rss_bytes).toBeGreaterThan(1_000_000);
    expect(s.workers[0]!.max_ms).toBeGreaterThanOrEqual(s.workers[0]!.avg_ms);
    expect(s.listeners).toEqual([
      { protocol: 'http', address: `127.0.0.1:${port}`, connections: 1, requests: 3, refused: 0 },
    ]);
    expect(s.totals).toEqual({ workers: 1, requests: 3, in_flight: 0, restarts: 0 });
    const m = await httpGet(statsPort, '/metrics');
    expect(m.status).toBe(200);
    expect(m.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(m.body).toContain(`tsgi_worker_requests_total{worker="1",pid="${child.proc.pid}"} 3\n`);
    expect(m.body).toContain(
      `tsgi_listener_requests_total{protocol="http",address="127.0.0.1:${port}"} 3\n`,
    );
    expect((await httpGet(statsPort, '/nope')).status).toBe(404);
    expect((await httpGet(statsPort, '/', { method: 'POST', body: '' })).status).toBe(405);
  });

  /** A master with two workers serving HTTP, and its stats endpoint. */
  async function masterWithStats(): Promise<{ child: Child; port: number; statsPort: number }> {
    const [port, statsPort] = [await freePort(), await freePort()];
    const child = await startTsgi(
      cli,
      [
        'app.mjs',
        '--http',
        `127.0.0.1:${port}`,
        '--workers',
        '2',
        '--stats',
        `127.0.0.1:${statsPort}`,
      ],
      { cwd: dir },
    );
    children.push(child);
    return { child, port, statsPort };
  }

  it('a master counts a request as soon as it has ended, not at the next heartbeat', async () => {
    const { port, statsPort } = await masterWithStats();
    /* each request is in the very next read of the endpoint, with no waiting in between */
    const seen: number[] = [];
    for (let i = 1; i <= 6; i++) {
      expect((await httpGet(port, '/')).status).toBe(200);
      seen.push((await getStats(statsPort)).totals.requests);
    }
    expect(seen).toEqual([1, 2, 3, 4, 5, 6]);
    const metrics = (await httpGet(statsPort, '/metrics')).body;
    expect(metrics).toContain(
      `tsgi_listener_requests_total{protocol="http",address="127.0.0.1:${port}"} 6\n`,
    );
  });

  it('a master: per-worker numbers from the heartbeats, listener totals over all workers', async () => {
    const { child, port, statsPort } = await masterWithStats();
    const pids = new Map<string, number>();
    for (let i = 0; i < 20; i++) {
      const r = await httpGet(port, '/');
      pids.set(r.body, (pids.get(r.body) ?? 0) + 1);
    }
    const s = await waitFor('20 requests in the stats', async () => {
      const x = await getStats(statsPort);
      return x.totals.requests === 20 ? x : undefined;
    });
    expect(s.mode).toBe('master');
    expect(s.pid).toBe(child.proc.pid);
    expect(s.workers.map((w) => [w.id, w.state, w.generation])).toEqual([
      [1, 'ready', 1],
      [2, 'ready', 1],
    ]);
    for (const w of s.workers) {
      expect(w.requests).toBe(pids.get(String(w.pid)) ?? 0);
      expect(w.rss_bytes).toBeGreaterThan(1_000_000);
      expect(w.in_flight).toBe(0);
    }
    expect(s.listeners).toEqual([
      { protocol: 'http', address: `127.0.0.1:${port}`, connections: 20, requests: 20, refused: 0 },
    ]);
    expect(s.totals).toEqual({ workers: 2, requests: 20, in_flight: 0, restarts: 0 });
  });
});
