/**
 * The statistics endpoint (`--stats ADDR`): per-worker and per-listener numbers as JSON at `/`
 * (also `/stats`) and the same numbers in the Prometheus text exposition format at `/metrics`.
 *
 * The numbers come from a snapshot function: under a master, the workers' answers to a
 * request for fresh numbers made when the endpoint is asked (so a request is counted as soon
 * as it has ended; a worker that does not answer within a moment is shown as of its last
 * heartbeat); in a single process, the live counters. The exposition format is written here (it is a few lines of text); a metrics
 * library would want to own the counters, and these live in other processes.
 */
import { Buffer } from 'node:buffer';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { VERSION } from '../version.js';

/** A worker's numbers (a single process is worker 1 of itself). */
export interface WorkerStats {
  /** Slot number, 1..N (a replacement takes its predecessor's number). */
  id: number;
  pid: number;
  /** Increases with every reload (SIGHUP, --reload). */
  generation: number;
  state: 'starting' | 'ready' | 'stopping';
  /** When it started, ms since the epoch. */
  startedAt: number;
  requests: number;
  inFlight: number;
  /** Sum of request durations, ms. */
  totalMs: number;
  maxMs: number;
  rssBytes: number;
  /** How many workers held this slot before this one (crashes, kills, recycles, reloads). */
  restarts: number;
}

/** A listener's totals over every worker that served it, including the ones gone. */
export interface ListenerStats {
  protocol: string;
  address: string;
  connections: number;
  requests: number;
  /** Connections refused by --allow / FCGI_WEB_SERVER_ADDRS. */
  refused: number;
}

export interface StatsSnapshot {
  mode: 'single' | 'master';
  /** The master's pid (the process's own in single mode). */
  pid: number;
  startedAt: number;
  generation: number;
  reloads: number;
  workers: WorkerStats[];
  listeners: ListenerStats[];
}

const round3 = (n: number): number => Math.round(n * 1000) / 1000;

/** The JSON document served at `/`. */
export function statsJson(s: StatsSnapshot, now: number = Date.now()): Record<string, unknown> {
  let inFlight = 0;
  let restarts = 0;
  for (const w of s.workers) {
    inFlight += w.inFlight;
    restarts += w.restarts;
  }
  let requests = 0;
  for (const l of s.listeners) requests += l.requests;
  return {
    version: VERSION,
    mode: s.mode,
    pid: s.pid,
    started: new Date(s.startedAt).toISOString(),
    uptime_s: round3((now - s.startedAt) / 1000),
    generation: s.generation,
    reloads: s.reloads,
    workers: s.workers.map((w) => ({
      id: w.id,
      pid: w.pid,
      generation: w.generation,
      state: w.state,
      started: new Date(w.startedAt).toISOString(),
      requests: w.requests,
      in_flight: w.inFlight,
      avg_ms: w.requests === 0 ? 0 : round3(w.totalMs / w.requests),
      max_ms: round3(w.maxMs),
      rss_bytes: w.rssBytes,
      restarts: w.restarts,
    })),
    listeners: s.listeners.map((l) => ({
      protocol: l.protocol,
      address: l.address,
      connections: l.connections,
      requests: l.requests,
      refused: l.refused,
    })),
    totals: {
      workers: s.workers.length,
      requests,
      in_flight: inFlight,
      restarts,
    },
  };
}

/** A label value escaped for the exposition format. */
function label(v: string | number): string {
  return String(v).replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** The same numbers in the Prometheus text exposition format (version 0.0.4). */
export function prometheusText(s: StatsSnapshot, now: number = Date.now()): string {
  const out: string[] = [];
  const metric = (
    name: string,
    type: 'counter' | 'gauge',
    help: string,
    rows: [Record<string, string | number>, number][],
  ): void => {
    out.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of rows) {
      const l = Object.entries(labels)
        .map(([k, v]) => `${k}="${label(v)}"`)
        .join(',');
      out.push(`${name}${l ? `{${l}}` : ''} ${Number.isFinite(value) ? value : 0}`);
    }
  };
  const wl = (w: WorkerStats) => ({ worker: w.id, pid: w.pid });
  metric('tsgi_up', 'gauge', 'Always 1 while the server answers.', [[{}, 1]]);
  metric('tsgi_uptime_seconds', 'gauge', 'Seconds since the server (master) started.', [
    [{}, round3((now - s.startedAt) / 1000)],
  ]);
  metric('tsgi_generation', 'gauge', 'Worker generation (increases with every reload).', [
    [{}, s.generation],
  ]);
  metric('tsgi_reloads_total', 'counter', 'Reloads (SIGHUP or --reload).', [[{}, s.reloads]]);
  metric('tsgi_workers', 'gauge', 'Worker processes, by state.', [
    ...(['starting', 'ready', 'stopping'] as const).map(
      (st) =>
        [{ state: st }, s.workers.filter((w) => w.state === st).length] as [
          Record<string, string>,
          number,
        ],
    ),
  ]);
  metric(
    'tsgi_worker_requests_total',
    'counter',
    'Requests the worker finished.',
    s.workers.map((w) => [wl(w), w.requests]),
  );
  metric(
    'tsgi_worker_requests_in_flight',
    'gauge',
    'Requests the worker is running.',
    s.workers.map((w) => [wl(w), w.inFlight]),
  );
  out.push(
    '# HELP tsgi_worker_request_duration_seconds Time of the requests the worker finished.',
    '# TYPE tsgi_worker_request_duration_seconds summary',
  );
  for (const w of s.workers) {
    const l = `worker="${w.id}",pid="${w.pid}"`;
    out.push(`tsgi_worker_request_duration_seconds_sum{${l}} ${round3(w.totalMs) / 1000}`);
    out.push(`tsgi_worker_request_duration_seconds_count{${l}} ${w.requests}`);
  }
  metric(
    'tsgi_worker_request_duration_max_seconds',
    'gauge',
    'Longest request the worker finished.',
    s.workers.map((w) => [wl(w), round3(w.maxMs) / 1000]),
  );
  metric(
    'tsgi_worker_resident_memory_bytes',
    'gauge',
    'Resident set size of the worker.',
    s.workers.map((w) => [wl(w), w.rssBytes]),
  );
  metric(
    'tsgi_worker_start_time_seconds',
    'gauge',
    'When the worker started, seconds since the epoch.',
    s.workers.map((w) => [wl(w), w.startedAt / 1000]),
  );
  metric(
    'tsgi_worker_restarts_total',
    'counter',
    'Workers that held this worker slot before the current one.',
    s.workers.map((w) => [wl(w), w.restarts]),
  );
  const ll = (l: ListenerStats) => ({ protocol: l.protocol, address: l.address });
  metric(
    'tsgi_listener_connections_total',
    'counter',
    'Connections accepted on the listener.',
    s.listeners.map((l) => [ll(l), l.connections]),
  );
  metric(
    'tsgi_listener_requests_total',
    'counter',
    'Requests finished on the listener.',
    s.listeners.map((l) => [ll(l), l.requests]),
  );
  metric(
    'tsgi_listener_refused_total',
    'counter',
    'Connections refused by --allow or FCGI_WEB_SERVER_ADDRS.',
    s.listeners.map((l) => [ll(l), l.refused]),
  );
  return out.join('\n') + '\n';
}

/**
 * An HTTP server answering GET / (JSON) and GET /metrics (Prometheus) from `snapshot`, asked
 * once per request.
 */
export function createStatsServer(snapshot: () => StatsSnapshot | Promise<StatsSnapshot>): Server {
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    void answer(req, res);
  });
  const answer = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { Allow: 'GET, HEAD', 'Content-Type': 'text/plain' });
      res.end('Method Not Allowed\n');
      return;
    }
    let body: string;
    let type: string;
    if (path === '/' || path === '/stats' || path === '/stats.json') {
      body = JSON.stringify(statsJson(await snapshot()), null, 2) + '\n';
      type = 'application/json';
    } else if (path === '/metrics') {
      body = prometheusText(await snapshot());
      type = 'text/plain; version=0.0.4; charset=utf-8';
    } else {
      res.writeHead(404, { 'Content-Type': 'text/plain' });
      res.end('Not Found: try / (JSON) or /metrics (Prometheus)\n');
      return;
    }
    res.writeHead(200, {
      'Content-Type': type,
      'Content-Length': Buffer.byteLength(body),
      'Cache-Control': 'no-store',
    });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  server.keepAliveTimeout = 5000;
  return server;
}
