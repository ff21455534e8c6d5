/**
 * The process that serves requests: either a lone `tsgi serve` process (no master), or a worker
 * forked by the master (master.ts), which runs this file as its main module.
 *
 * {@link Serving} holds the protocol servers of one process: each listener's server gets the
 * app (wrapped by the request tracker only when something needs it: stats, --timeout, the
 * access log, --max-requests), an --allow guard when one applies, and counters.
 *
 * A worker gets its configuration from the master in the TSGI_WORKER environment variable
 * (JSON) and its listening sockets as inherited file descriptors; it loads the app, listens,
 * tells the master it is ready, then reports its numbers on every heartbeat. It asks the
 * master to be recycled (--max-requests, --max-rss) and stops gracefully when told to (or on
 * SIGTERM/SIGINT, or when the master is gone). An app that cannot be loaded is reported to the
 * master, which prints it once; the worker then exits with status 78 (EX_CONFIG).
 */
import process from 'node:process';
import { performance } from 'node:perf_hooks';
import { realpathSync } from 'node:fs';
import { Server, Socket, type SocketConstructorOpts } from 'node:net';
import type { Writable } from 'node:stream';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { App } from '../gateway/types.js';
import type { ConnectionLimits } from '../protocol/socket.js';
import { fcgiWebServerAddrs, guardServer, parseAllowList, type AllowList } from './allow.js';
import { AppLoadError, loadApp, type AppInterface } from './app-loader.js';
import type { LogFormat } from './config.js';
import { listen, ListenError, type ListenAddress } from './listen.js';
import { mountApp } from './mount.js';
import { appErrors, createLogger, type Logger } from './log.js';
import { protocolByFlag, type Protocol, type ProtocolServer } from './protocols.js';
import { detachHandle, type RawHandle, type StreamSocket } from '../protocol/transport.js';
import { RequestTracker, type RequestCounters } from './request-tracker.js';
import { watchStrayErrors } from './stray.js';
import { startWatchdog, type Watchdog } from './watchdog.js';
import type { ListenerStats } from './stats.js';

/** How long a draining process keeps just-accepted connections before closing idle ones. */
const SETTLE_MS = 250;

/** --max-rss: the resident size is read at most this often (ms). */
const RSS_CHECK_MS = 20;

/** Exit status of a worker whose app cannot be loaded (sysexits.h EX_CONFIG). */
export const EXIT_APP_LOAD = 78;

/** What a Serving needs to know. */
export interface ServingOptions {
  log: Logger;
  /** Wrap the app with the request tracker (stats, timeout, access log, max-requests). */
  track: boolean;
  /** Count connections per listener (for stats). */
  countConnections: boolean;
  timeoutMs: number;
  /**
   * --max-rss enforced by the request watchdog (a process without a master: above it, the
   * process answers its requests 500 and exits); 0 where a master recycles the process.
   */
  watchdogMaxRssBytes: number;
  accessLog: boolean;
  /** --allow entries, or null. */
  allow: string[] | null;
  multiprocess: boolean;
  /** --mount prefix (environ form, see mount.ts), or null. */
  mount: string | null;
  /** --keep-alive for HTTP listeners in ms, or null (node's default). */
  keepAliveMs: number | null;
  /** --header-timeout, --idle-timeout, ...: FastCGI, SCGI and uwsgi connection limits. */
  connectionLimits: Partial<ConnectionLimits>;
  /** The worker id for the watchdog's log line; null in a lone process. */
  worker: number | null;
  onFinish?: (c: RequestCounters) => void;
}

/** One listener of this process. */
export interface ServedListener {
  protocol: Protocol;
  server: ProtocolServer;
  shown: string;
  stats: ListenerStats;
}

/** The protocol servers of one process. */
export class Serving {
  readonly tracker: RequestTracker | null;
  /** The request watchdog (with --timeout and the addon), or null. */
  readonly watchdog: Watchdog | null;
  readonly listeners: ServedListener[] = [];
  private readonly allow: AllowList | null;
  private readonly fcgiAllow: AllowList | null;
  /** tsgi.errors of the protocols without an error channel (JSON entries under json logs). */
  private readonly errors: Writable;

  /** Throws an Error for a bad --allow or FCGI_WEB_SERVER_ADDRS entry. */
  constructor(private readonly options: ServingOptions) {
    this.watchdog =
      options.timeoutMs > 0 || options.watchdogMaxRssBytes > 0
        ? startWatchdog(
            { timeoutMs: options.timeoutMs, maxRssBytes: options.watchdogMaxRssBytes },
            options.log.format,
            options.worker,
          )
        : null;
    this.tracker = options.track
      ? new RequestTracker({
          timeoutMs: options.timeoutMs,
          accessLog: options.accessLog ? options.log : null,
          log: options.log,
          onFinish: options.onFinish,
          watchdog: this.watchdog,
        })
      : null;
    this.allow = options.allow === null ? null : parseAllowList(options.allow);
    const env = fcgiWebServerAddrs();
    let fcgi: AllowList | null = null;
    if (this.allow === null && env !== null) {
      try {
        fcgi = parseAllowList(env);
      } catch (err) {
        throw new Error(`FCGI_WEB_SERVER_ADDRS: ${(err as Error).message}`, { cause: err });
      }
    }
    this.fcgiAllow = fcgi;
    this.errors = appErrors(options.log);
    this.tracker?.start();
  }

  /** Creates the server of one listener (not yet listening). */
  add(protocol: Protocol, app: App, shown: string): ServedListener {
    const stats: ListenerStats = {
      protocol: protocol.flag,
      address: shown,
      connections: 0,
      requests: 0,
      refused: 0,
    };
    const mounted = this.options.mount === null ? app : mountApp(app, this.options.mount);
    const served = this.tracker === null ? mounted : this.tracker.wrap(mounted, stats);
    const log = this.options.log;
    const server = protocol.create(served, {
      multiprocess: this.options.multiprocess,
      log: (line) => log.warn(line, { event: 'protocol', protocol: protocol.flag }),
      errors: this.errors,
      httpKeepAliveMs: this.options.keepAliveMs ?? undefined,
      connectionLimits: this.options.connectionLimits,
    });
    if (this.options.countConnections) server.on('connection', () => stats.connections++);
    const allow = this.allow ?? (protocol.flag === 'fastcgi' ? this.fcgiAllow : null);
    if (allow !== null) {
      guardServer(
        server,
        allow,
        (line) => log.warn(line, { event: 'refused' }),
        stats,
        `${protocol.title} ${shown}`,
      );
    }
    const entry = { protocol, server, shown, stats };
    this.listeners.push(entry);
    return entry;
  }

  /**
   * Stops accepting, lets running requests finish. With `keepIdle` (a worker retiring while
   * others keep serving: reload, recycle) idle kept connections stay open and are served until
   * the front server closes them or {@link Serving.closeIdle} is called; see
   * ConnectionGateway.drain in lib/protocol/socket.ts.
   */
  async drain(
    options: {
      settleMs?: number;
      keepIdle?: boolean;
      /** With keepIdle: gives a connection between requests to another process (true: taken). */
      handover?: (listener: number, socket: StreamSocket) => boolean;
    } = {},
  ): Promise<void> {
    const settleMs = options.settleMs ?? SETTLE_MS;
    const keepIdle = options.keepIdle === true;
    const handover = options.handover;
    /* Stop accepting first, and give a connection accepted just before a moment to send its
       request: the protocol servers' drain closes connections that have none running, and the
       other workers keep accepting on the same sockets meanwhile. */
    let accepting = false;
    for (const l of this.listeners) {
      if (!l.server.listening) continue;
      accepting = true;
      /* net.Server's close: http.Server's would also close idle connections at once */
      Server.prototype.close.call(l.server);
    }
    const drainAll = (): Promise<unknown> =>
      Promise.all(
        this.listeners.map((l, i) =>
          l.server.drain({
            keepIdle,
            handover: handover === undefined ? undefined : (socket) => handover(i, socket),
          }),
        ),
      );
    const settle = (): Promise<unknown> =>
      accepting && settleMs > 0 ? new Promise((r) => setTimeout(r, settleMs)) : Promise.resolve();
    if (keepIdle) {
      /* nothing is closed: hand kept connections over now (a worker retiring for memory
         stops growing at once), and wait again after the settle for late arrivals */
      void drainAll();
      await settle();
    } else await settle();
    await drainAll();
    this.tracker?.stop();
  }

  /**
   * Serves a connection another process handed over (a raw handle from process.send) on
   * listener `index`; closes it when that listener cannot take it.
   */
  adopt(index: number, handle: RawHandle): void {
    const server = this.listeners[index]?.server;
    if (server?.adopt === undefined) {
      handle.close();
      return;
    }
    const socket = new Socket({ handle, readable: true, writable: true } as SocketConstructorOpts);
    socket.allowHalfOpen = true;
    server.adopt(socket);
  }

  /** While draining: closes every connection that holds no request now. */
  closeIdle(): void {
    for (const l of this.listeners) l.server.closeIdle();
  }

  /** True when no request is running on any listener. */
  get idle(): boolean {
    return this.listeners.every((l) => l.server.idle);
  }

  /** Numbers of this process's listeners. */
  listenerStats(): ListenerStats[] {
    return this.listeners.map((l) => ({ ...l.stats }));
  }
}

/** A listener handed to a worker: its protocol, the inherited fd, the address shown. */
export interface WorkerListener {
  protocol: string;
  fd: number;
  shown: string;
}

/** The worker's configuration (TSGI_WORKER, JSON). */
export interface WorkerConfig {
  id: number;
  generation: number;
  app: string;
  factory: boolean;
  interface: AppInterface | null;
  listeners: WorkerListener[];
  timeoutMs: number;
  /** This worker's own request limit (jitter applied); 0: none. */
  maxRequests: number;
  maxRssBytes: number;
  graceMs: number;
  heartbeatMs: number;
  accessLog: boolean;
  exitOnError: boolean;
  logFormat: LogFormat;
  allow: string[] | null;
  stats: boolean;
  /** --mount prefix (environ form), or null. */
  mount: string | null;
  /** --keep-alive in ms, or null. */
  keepAliveMs: number | null;
  /** FastCGI, SCGI and uwsgi connection limits that were given. */
  connectionLimits: Partial<ConnectionLimits>;
}

/** Messages from a worker to the master. */
export type WorkerMessage =
  /** watchdog: a busy loop ends this worker itself, after answering 504 (watchdog.ts). */
  | { t: 'ready'; watchdog: boolean }
  | { t: 'fatal'; message: string }
  | {
      t: 'hb';
      requests: number;
      inFlight: number;
      totalMs: number;
      maxMs: number;
      rss: number;
      listeners: { connections: number; requests: number; refused: number }[];
    }
  /** now: retire at once when another worker serves (--max-rss), not after the replacement. */
  | { t: 'recycle'; reason: string; now?: boolean }
  /** A kept connection of listener `listener` between requests; its handle comes along. */
  | { t: 'conn'; listener: number };

/**
 * Messages from the master to a worker: stop (retire: others keep serving, so idle kept
 * connections stay open for the front server until it closes them or the grace ends).
 */
export type MasterMessage =
  | { t: 'stop'; retire?: boolean }
  /** Send your numbers now (a heartbeat out of turn). */
  | { t: 'report' }
  /** Serve this connection (a handle handed over by a retiring worker) on `listener`. */
  | { t: 'conn'; listener: number };

/** The environment variable carrying a worker's configuration. */
export const WORKER_ENV = 'TSGI_WORKER';

/** Passes a kept connection between requests to the master; false when it cannot. */
function handOver(listener: number, socket: StreamSocket): boolean {
  if (!process.connected || process.send === undefined) return false;
  const handle = detachHandle(socket);
  if (handle === null) return false;
  try {
    process.send({ t: 'conn', listener } satisfies WorkerMessage, handle as never);
  } catch {
    handle.close();
  }
  return true;
}

function send(msg: WorkerMessage): Promise<void> {
  return new Promise((done) => {
    if (!process.connected || process.send === undefined) {
      done();
      return;
    }
    try {
      process.send(msg, undefined, undefined, () => done());
    } catch {
      done();
    }
  });
}

/** Runs a worker: the main function of a process forked by the master. */
export async function runWorker(): Promise<void> {
  const text = process.env[WORKER_ENV];
  delete process.env[WORKER_ENV];
  if (text === undefined || process.send === undefined) {
    process.stderr.write('tsgi: the worker module is started by the tsgi master, not by hand\n');
    process.exit(2);
  }
  const cfg = JSON.parse(text) as WorkerConfig;
  const log = createLogger(cfg.logFormat, { worker: cfg.id });
  let stopping = false;
  let serving: Serving | null = null;
  let heartbeat: NodeJS.Timeout | null = null;

  const report = (): Promise<void> => {
    const c = serving?.tracker?.counters;
    return send({
      t: 'hb',
      requests: c?.requests ?? 0,
      inFlight: c?.inFlight ?? 0,
      totalMs: c?.totalMs ?? 0,
      maxMs: c?.maxMs ?? 0,
      rss: process.memoryUsage.rss(),
      listeners: (serving?.listeners ?? []).map((l) => ({
        connections: l.stats.connections,
        requests: l.stats.requests,
        refused: l.stats.refused,
      })),
    });
  };

  let recycleAsked = false;
  const recycle = (reason: string, now = false): void => {
    if (recycleAsked || stopping) return;
    recycleAsked = true;
    void send({ t: 'recycle', reason, now });
  };

  /* --max-rss: checked after requests (at most every RSS_CHECK_MS: reading the resident size
     costs tens of microseconds) and on a timer of the same period, so that memory that grows
     per request stops near the limit instead of at the next heartbeat. Over it, the worker
     retires at once when other workers serve (see master.ts). */
  let rssCheckedAt = 0;
  const checkRss = (): void => {
    if (cfg.maxRssBytes <= 0 || recycleAsked) return;
    rssCheckedAt = performance.now();
    const rss = process.memoryUsage.rss();
    if (rss > cfg.maxRssBytes) {
      recycle(
        `resident memory ${(rss / 1048576).toFixed(0)} MB is above --max-rss ${(cfg.maxRssBytes / 1048576).toFixed(0)} MB`,
        true,
      );
    }
  };

  /* Retiring (reload, recycle: other workers serve the same sockets) keeps idle connections
     open until the front server closes them, so that no request it sends on one is lost; the
     grace period then closes what is still idle. Stopping closes them at once. */
  let retiring = false;
  const stop = (retire = false): void => {
    if (stopping) {
      if (retiring && !retire) {
        retiring = false;
        serving?.closeIdle();
      }
      return;
    }
    stopping = true;
    retiring = retire;
    const grace = setTimeout(() => {
      if (serving === null || serving.idle) {
        /* only idle kept connections were left: the exit closes them */
        log.flush();
        process.exit(0);
      }
      log.warn(
        `worker ${cfg.id} (pid ${process.pid}): requests still running after ${cfg.graceMs / 1000}s: exiting`,
      );
      log.flush();
      process.exit(1);
    }, cfg.graceMs);
    grace.unref();
    /* a retiring worker hands each kept connection, between two requests, to the master,
       which gives it to a worker that keeps serving: the front server never sees it close */
    const drained =
      serving === null
        ? Promise.resolve()
        : serving.drain({ keepIdle: retire, handover: retire ? handOver : undefined });
    void drained
      .then(() => report())
      .then(() => {
        if (heartbeat !== null) clearInterval(heartbeat);
        log.flush();
        process.exit(0);
      });
  };
  watchStrayErrors(
    log,
    cfg.exitOnError ? () => recycle('a stray error with --exit-on-error') : null,
  );
  process.on('SIGTERM', () => stop());
  process.on('SIGINT', () => stop());
  /* the master handles SIGHUP (reload); a terminal hang-up reaches the whole group */
  process.on('SIGHUP', () => {});
  process.on('message', (m: MasterMessage, handle: unknown) => {
    if (m === null || typeof m !== 'object') return;
    if (m.t === 'stop') stop(m.retire === true);
    else if (m.t === 'report') void report();
    else if (m.t === 'conn' && handle !== undefined && handle !== null) {
      /* a worker retiring itself meanwhile hands it on again (or closes it when stopping) */
      if (serving === null) (handle as RawHandle).close();
      else serving.adopt(m.listener, handle as RawHandle);
    }
  });
  process.on('disconnect', () => {
    /* the master is gone: nobody would replace or stop this worker */
    stop();
  });

  let app: App;
  try {
    app = await loadApp(cfg.app, {
      factory: cfg.factory,
      interface: cfg.interface,
      /* every worker loads the app: the first one speaks for all */
      onWarning: cfg.id === 1 ? (m) => log.warn(m, { event: 'app-warning' }) : undefined,
    });
  } catch (err) {
    const message =
      err instanceof AppLoadError
        ? err.message
        : `error while loading the app: ${(err as Error).stack ?? err}`;
    await send({ t: 'fatal', message });
    process.exit(EXIT_APP_LOAD);
  }
  if (stopping) return;
  const maxRequests = cfg.maxRequests;
  serving = new Serving({
    log,
    track:
      cfg.stats || cfg.timeoutMs > 0 || cfg.accessLog || maxRequests > 0 || cfg.maxRssBytes > 0,
    countConnections: cfg.stats,
    timeoutMs: cfg.timeoutMs,
    /* the master recycles a worker above --max-rss */
    watchdogMaxRssBytes: 0,
    accessLog: cfg.accessLog,
    allow: cfg.allow,
    mount: cfg.mount,
    keepAliveMs: cfg.keepAliveMs,
    connectionLimits: cfg.connectionLimits,
    worker: cfg.id,
    multiprocess: true,
    onFinish:
      maxRequests > 0 || cfg.maxRssBytes > 0
        ? (c) => {
            if (maxRequests > 0 && c.requests >= maxRequests)
              recycle(`served ${c.requests} requests (--max-requests)`);
            if (cfg.maxRssBytes > 0 && performance.now() - rssCheckedAt >= RSS_CHECK_MS) checkRss();
          }
        : undefined,
  });
  for (const l of cfg.listeners) {
    try {
      const protocol = protocolByFlag(l.protocol);
      if (protocol === undefined) throw new ListenError(`unknown protocol ${l.protocol}`);
      const entry = serving.add(protocol, app, l.shown);
      const addr: ListenAddress = { type: 'fd', fd: l.fd };
      await listen(entry.server, addr);
    } catch (err) {
      const message = (err as Error).message.split(`fd:${l.fd}`).join(l.shown);
      await send({ t: 'fatal', message });
      process.exit(EXIT_APP_LOAD);
    }
  }
  if (stopping) return;
  await send({ t: 'ready', watchdog: serving.watchdog !== null });
  void report();
  if (cfg.maxRssBytes > 0) setInterval(checkRss, RSS_CHECK_MS).unref();
  heartbeat = setInterval(() => void report(), cfg.heartbeatMs);
}

/** The path of this module, which the master forks. */
export const WORKER_MODULE = new URL(import.meta.url);

const invoked = process.argv[1];
if (invoked !== undefined && import.meta.url === pathToFileURL(realPath(invoked)).href) {
  void runWorker();
}

function realPath(p: string): string {
  try {
    return realpathSync(resolve(p));
  } catch {
    return resolve(p);
  }
}
