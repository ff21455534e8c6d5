/**
 * The master process of `tsgi serve --workers N` (the design is in docs/process-manager.md).
 *
 * The master binds every listener once (TCP, unix, inherited fd, systemd sockets), drops
 * privileges, then forks N workers and hands each one the listening sockets as inherited file
 * descriptors; the workers accept on them directly, so a request never passes through the
 * master. The master never loads the app. It:
 *
 * - replaces a worker that dies (at once; with an exponential backoff while workers die at
 *   start-up), and exits with status 1 after reporting once when the app cannot be loaded at
 *   start;
 * - kills a worker whose heartbeat stops for longer than --timeout (a request stuck in a busy
 *   loop: JavaScript cannot interrupt it) — the kernel then closes its connections, so the
 *   front server answers 502 at once — and starts another;
 * - recycles a worker that asks for it (--max-requests, --max-rss): the replacement starts
 *   first, then the old one finishes its requests and exits;
 * - reloads on SIGHUP (and on file changes with --reload): new workers start, and each old one
 *   is retired once its replacement is ready; an app that fails to load leaves the running
 *   workers in place;
 * - on SIGTERM/SIGINT tells every worker to finish and waits up to --graceful-timeout;
 * - serves --stats from the workers' heartbeats.
 */
import process from 'node:process';
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomInt } from 'node:crypto';
import type { Server } from 'node:http';
import { codec } from '../codec/index.js';
import { selectedTransport } from '../protocol/transport.js';
import { splitAppSpec } from './app-loader.js';
import type { ServeConfig } from './config.js';
import { exposureWarning } from './allow.js';
import { bindSocket, listen, ListenError, unixSocketSetup, type BoundSocket } from './listen.js';
import type { Logger } from './log.js';
import { dropPrivileges, type Ids } from './privileges.js';
import { StartError, type ServeListener, type ServeOptions } from './start.js';
import { EXIT_TIMEOUT } from './watchdog.js';
import { watchForReload } from './reload.js';
import {
  createStatsServer,
  type ListenerStats,
  type StatsSnapshot,
  type WorkerStats,
} from './stats.js';
import {
  WORKER_ENV,
  WORKER_MODULE,
  type MasterMessage,
  type WorkerConfig,
  type WorkerMessage,
} from './worker.js';

type HeartbeatNumbers = Extract<WorkerMessage, { t: 'hb' }>;

interface Worker {
  id: number;
  generation: number;
  proc: ChildProcess;
  pid: number;
  state: 'starting' | 'ready' | 'stopping';
  startedAt: number;
  readyAt: number;
  lastHeartbeat: number;
  /** It runs the request watchdog: a busy loop ends it after answering 504 (watchdog.ts). */
  watchdog: boolean;
  /** Above --max-rss: retire as soon as another worker serves (do not wait for its own). */
  retireSoon: boolean;
  numbers: HeartbeatNumbers | null;
  /** The worker this one replaces once ready (recycle, reload). */
  replacing: Worker | null;
  /** The worker starting to replace this one. */
  replacement: Worker | null;
  /** The app could not be loaded: the worker's message. */
  fatal: string | null;
  /** Why the master killed it, for the exit message. */
  killedFor: string | null;
  /** SIGKILL timer of a retiring worker. */
  graceTimer: NodeJS.Timeout | null;
  /** Killed before it was ready because a newer start made it useless: nothing to report. */
  discarded: boolean;
  /** Its exit was handled. */
  exited: boolean;
}

/** Workers that die at start-up this many times in a row at the first start: give up. */
const START_ATTEMPTS = 5;
/** A worker that lived longer than this since it was ready resets the slot's backoff. */
const STABLE_MS = 5000;
const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 30_000;
/** How long a stats request waits for the workers' fresh numbers. */
const REFRESH_MS = 1000;

function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
}

/**
 * The master of `tsgi serve --workers N`: its state, and one method per event — a worker
 * spawned, ready, asking to recycle, handing over a connection, exiting; a reload, a retire,
 * a heartbeat timeout, a stats request, a stop signal. {@link Master.run} binds, starts the
 * workers and resolves with the exit status once it stopped.
 */
export class Master {
  private readonly config: ServeConfig;
  private readonly log: Logger;
  private readonly listeners: ServeListener[];
  private readonly ids: Ids | null;
  /** Worker slots (--workers). */
  private readonly n: number;
  private readonly heartbeatMs: number;
  private readonly startedAt = Date.now();
  private readonly sockets: BoundSocket[] = [];
  private statsServer: Server | null = null;
  private statsShown = '';
  private readonly workers = new Set<Worker>();
  /** The serving (or starting) worker of each slot. */
  private readonly owner = new Map<number, Worker>();
  private readonly restarts = new Map<number, number>();
  /** Slots that had a ready worker: the next ready one there is a restart. */
  private readonly served = new Set<number>();
  private readonly failures = new Map<number, number>();
  private readonly respawnTimers = new Map<number, NodeJS.Timeout>();
  /** Counters of the listeners, summed over the workers that exited. */
  private gone: ListenerStats[] = [];
  private generation = 1;
  private reloads = 0;
  private firstStart = true;
  private stopping = false;
  private readonly reportedFatal = new Set<string>();
  /** --stats asks the workers for fresh numbers: each answers with a heartbeat. */
  private readonly heartbeatWaiters = new Map<Worker, (() => void)[]>();
  /** Kept connections a retiring worker hands over go to the serving workers in turn. */
  private handoverTurn = 0;
  private exitCode = 0;
  private graceTimer: NodeJS.Timeout | null = null;
  /** Resolves once stopping and every worker is gone. */
  private finish: () => void = () => {};
  private readonly finished = new Promise<void>((r) => (this.finish = r));
  private started: (ok: boolean) => void = () => {};
  private readonly startedOk = new Promise<boolean>((r) => (this.started = r));
  private readonly workerPath = fileURLToPath(WORKER_MODULE);
  private readonly onStopSignal = (signal: NodeJS.Signals): void => this.stop(signal);
  private readonly onHup = (): void => this.reload('SIGHUP');

  constructor(options: ServeOptions) {
    this.config = options.config;
    this.log = options.log;
    this.listeners = options.listeners;
    this.ids = options.ids;
    this.n = this.config.workers ?? 1;
    const timeoutMs = this.config.timeoutMs;
    this.heartbeatMs =
      timeoutMs > 0 ? Math.max(50, Math.min(1000, Math.floor(timeoutMs / 4))) : 1000;
  }

  /** Runs the master until it stops; resolves with the exit status. */
  async run(): Promise<number> {
    const { config, log } = this;
    /* 1. Bind every listener (before dropping privileges). */
    const setup = unixSocketSetup(
      config,
      this.listeners.map((l) => l.addr),
      this.ids,
    );
    if (setup.warning !== null) log.warn(setup.warning, { event: 'socket-mode' });
    const unix = setup.options;
    try {
      for (const l of this.listeners) this.sockets.push(await bindSocket(l.addr, unix));
    } catch (err) {
      this.closeSockets();
      if (err instanceof ListenError) throw new StartError(err.message);
      throw err;
    }
    this.gone = this.listeners.map((l, i) => ({
      protocol: l.protocol.flag,
      address: this.sockets[i]!.shown,
      connections: 0,
      requests: 0,
      refused: 0,
    }));

    /* 2. The stats endpoint, also bound before dropping privileges. */
    if (config.stats !== null) {
      this.statsServer = createStatsServer(() => this.refresh().then(() => this.snapshot()));
      try {
        this.statsShown = await listen(this.statsServer, config.stats, unix);
      } catch (err) {
        this.closeSockets();
        throw new StartError((err as Error).message);
      }
    }

    /* 3. Drop privileges. */
    if (this.ids !== null) {
      try {
        dropPrivileges(this.ids);
      } catch (err) {
        this.closeSockets();
        this.statsServer?.close();
        throw new StartError((err as Error).message);
      }
    }

    /* Heartbeat watch: a ready worker silent longer than the timeout is stuck. */
    const watchdog = setInterval(
      () => this.checkHeartbeats(),
      Math.max(25, Math.floor(this.heartbeatMs / 2)),
    );
    watchdog.unref();
    process.on('SIGINT', this.onStopSignal);
    process.on('SIGTERM', this.onStopSignal);
    process.on('SIGHUP', this.onHup);
    /* --reload: watch the app's directory. */
    const watcher = config.reload
      ? watchForReload(dirname(resolve(splitAppSpec(config.app).file)), log, (why) =>
          this.reload(why),
        )
      : null;

    /* 4. Start the workers. */
    for (let id = 1; id <= this.n; id++) this.spawn(id, null);
    if (await this.startedOk) this.announce();
    await this.finished;

    /* 5. Stopped. */
    if (this.graceTimer !== null) clearTimeout(this.graceTimer);
    clearInterval(watchdog);
    await watcher?.close();
    process.off('SIGINT', this.onStopSignal);
    process.off('SIGTERM', this.onStopSignal);
    process.off('SIGHUP', this.onHup);
    this.closeSockets();
    if (this.statsServer !== null) {
      this.statsServer.close();
      this.statsServer.closeAllConnections?.();
    }
    if (this.exitCode === 0) log.info('stopped', { event: 'stopped' });
    return this.exitCode;
  }

  /** Every worker is ready for the first time: the "serving ..." lines. */
  private announce(): void {
    const { config, log, n } = this;
    this.listeners.forEach((l, i) => {
      const shown = this.sockets[i]!.shown;
      const host = l.addr.type === 'tcp' ? shown.replace(/:[0-9]+$/, '') : null;
      const exposed = exposureWarning(l.protocol, shown, host, config.allow);
      if (exposed !== null) log.warn(exposed, { event: 'exposed', address: shown });
      log.info(
        `serving ${config.app} over ${l.protocol.title} on ${shown} ` +
          `(${codec.name} codec, ${l.protocol.flag === 'http' ? '' : `${selectedTransport().name} transport, `}` +
          `${n} worker${n === 1 ? '' : 's'})`,
        { event: 'listening', protocol: l.protocol.flag, address: shown },
      );
    });
    if (this.statsServer !== null) {
      log.info(`statistics on ${this.statsShown}: JSON at /, Prometheus text at /metrics`, {
        event: 'stats',
        address: this.statsShown,
      });
    }
  }

  private closeSockets(): void {
    for (const s of this.sockets.splice(0)) s.close();
  }

  /** Stats: asks every started worker for a heartbeat, waiting at most REFRESH_MS. */
  private async refresh(): Promise<void> {
    const asked = [...this.workers].filter((w) => w.state !== 'starting' && w.proc.connected);
    await Promise.all(
      asked.map(
        (w) =>
          new Promise<void>((done) => {
            const timer = setTimeout(done, REFRESH_MS);
            const list = this.heartbeatWaiters.get(w) ?? [];
            list.push(() => {
              clearTimeout(timer);
              done();
            });
            this.heartbeatWaiters.set(w, list);
            this.send(w, { t: 'report' });
          }),
      ),
    );
  }

  /** Stats: the workers' last heartbeats and the listeners' counters. */
  private snapshot(): StatsSnapshot {
    const ws: WorkerStats[] = [...this.workers]
      .sort((a, b) => a.id - b.id || a.startedAt - b.startedAt)
      .map((w) => ({
        id: w.id,
        pid: w.pid,
        generation: w.generation,
        state: w.state,
        startedAt: w.startedAt,
        requests: w.numbers?.requests ?? 0,
        inFlight: w.numbers?.inFlight ?? 0,
        totalMs: w.numbers?.totalMs ?? 0,
        maxMs: w.numbers?.maxMs ?? 0,
        rssBytes: w.numbers?.rss ?? 0,
        restarts: this.restarts.get(w.id) ?? 0,
      }));
    const listeners = this.gone.map((g, i) => {
      const l = { ...g };
      for (const w of this.workers) {
        const x = w.numbers?.listeners[i];
        if (x === undefined) continue;
        l.connections += x.connections;
        l.requests += x.requests;
        l.refused += x.refused;
      }
      return l;
    });
    return {
      mode: 'master',
      pid: process.pid,
      startedAt: this.startedAt,
      generation: this.generation,
      reloads: this.reloads,
      workers: ws,
      listeners,
    };
  }

  private send(w: Worker, msg: MasterMessage): void {
    if (!w.proc.connected) return;
    try {
      w.proc.send(msg);
    } catch {
      /* it is exiting */
    }
  }

  private kill(w: Worker, signal: NodeJS.Signals = 'SIGKILL'): void {
    try {
      w.proc.kill(signal);
    } catch {
      /* already gone */
    }
  }

  /** Forks a worker for slot `id`, to replace `replacing` once ready (or to own the slot). */
  private spawn(id: number, replacing: Worker | null): Worker {
    const { config, log } = this;
    this.respawnTimers.delete(id);
    const jitter = config.maxRequestsJitter > 0 ? randomInt(config.maxRequestsJitter + 1) : 0;
    const wc: WorkerConfig = {
      id,
      generation: this.generation,
      app: config.app,
      factory: config.factory,
      interface: config.interface,
      listeners: this.sockets.map((s, i) => ({
        protocol: this.listeners[i]!.protocol.flag,
        fd: 4 + i,
        shown: s.shown,
      })),
      timeoutMs: config.timeoutMs,
      maxRequests: config.maxRequests > 0 ? config.maxRequests + jitter : 0,
      maxRssBytes: config.maxRssBytes,
      graceMs: config.graceMs,
      heartbeatMs: this.heartbeatMs,
      accessLog: config.accessLog,
      exitOnError: config.exitOnError,
      logFormat: config.logFormat,
      allow: config.allow,
      stats: config.stats !== null,
      mount: config.mount,
      keepAliveMs: config.keepAliveMs,
      connectionLimits: config.connectionLimits,
    };
    const proc = fork(this.workerPath, [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...this.sockets.map((s) => s.fd)],
      env: { ...process.env, [WORKER_ENV]: JSON.stringify(wc) },
      execArgv: process.execArgv,
    });
    const w: Worker = {
      id,
      generation: this.generation,
      proc,
      pid: proc.pid ?? 0,
      state: 'starting',
      startedAt: Date.now(),
      readyAt: 0,
      lastHeartbeat: 0,
      watchdog: false,
      retireSoon: false,
      numbers: null,
      replacing,
      replacement: null,
      fatal: null,
      killedFor: null,
      graceTimer: null,
      discarded: false,
      exited: false,
    };
    if (replacing !== null) replacing.replacement = w;
    this.workers.add(w);
    if (replacing === null) this.owner.set(id, w);
    proc.on('message', (m: WorkerMessage, handle: unknown) => this.onMessage(w, m, handle));
    /* 'close' comes after every message the worker sent ('exit' may come before them) */
    proc.on('close', (code, signal) => this.onExit(w, code, signal));
    proc.on('error', (err) => {
      log.error(`worker ${id}: ${err.message}`, { event: 'worker-error', worker: id });
      /* a fork that failed has no process to wait for */
      if (proc.pid === undefined) this.onExit(w, null, null);
    });
    return w;
  }

  /** Tells `w` to finish its requests and exit; kills it after --graceful-timeout. */
  private retire(w: Worker, why: string): void {
    if (w.state === 'stopping') return;
    w.state = 'stopping';
    this.log.info(`worker ${w.id} (pid ${w.pid}) ${why}: finishing its requests`, {
      event: 'worker-retire',
      worker: w.id,
      worker_pid: w.pid,
    });
    this.send(w, { t: 'stop', retire: true });
    w.graceTimer = setTimeout(() => {
      w.killedFor = `requests still running after --graceful-timeout ${this.config.graceMs / 1000}s`;
      this.kill(w);
    }, this.config.graceMs + 1000);
    w.graceTimer.unref();
  }

  private allReady(): boolean {
    for (let id = 1; id <= this.n; id++) if (this.owner.get(id)?.state !== 'ready') return false;
    return true;
  }

  /** Workers whose memory is above --max-rss retire as soon as another worker serves. */
  private retireEarly(): void {
    for (const w of this.owner.values()) {
      if (!w.retireSoon || w.state !== 'ready') continue;
      const others = [...this.owner.values()].some((x) => x !== w && x.state === 'ready');
      if (others) this.retire(w, 'retired at once');
    }
  }

  /** A kept connection a retiring worker hands over goes to the next serving worker. */
  private handOver(from: Worker, listener: number, handle: { close(): void }): void {
    const serving = [...this.owner.values()].filter(
      (x) => x !== from && x.state === 'ready' && x.proc.connected,
    );
    if (serving.length === 0) {
      handle.close();
      return;
    }
    const to = serving[this.handoverTurn++ % serving.length]!;
    try {
      to.proc.send({ t: 'conn', listener } satisfies MasterMessage, handle as never);
    } catch {
      handle.close();
    }
  }

  private onMessage(w: Worker, m: WorkerMessage, handle?: unknown): void {
    if (m === null || typeof m !== 'object') return;
    switch (m.t) {
      case 'conn':
        if (handle !== undefined && handle !== null) {
          this.handOver(w, m.listener, handle as { close(): void });
        }
        break;
      case 'hb':
        this.onHeartbeat(w, m);
        break;
      case 'ready':
        this.onReady(w, m.watchdog === true);
        break;
      case 'fatal':
        w.fatal = m.message;
        break;
      case 'recycle':
        this.onRecycle(w, m.reason, m.now === true);
        break;
    }
  }

  private onHeartbeat(w: Worker, numbers: HeartbeatNumbers): void {
    w.lastHeartbeat = Date.now();
    w.numbers = numbers;
    for (const wake of this.heartbeatWaiters.get(w) ?? []) wake();
    this.heartbeatWaiters.delete(w);
  }

  /** `w` loaded the app and serves: it takes its slot and the worker it replaces retires. */
  private onReady(w: Worker, watchdog: boolean): void {
    if (w.state !== 'starting') return;
    if (this.stopping) {
      w.state = 'ready';
      this.retire(w, 'started while stopping');
      return;
    }
    w.state = 'ready';
    w.readyAt = Date.now();
    w.watchdog = watchdog;
    if (this.served.has(w.id)) this.restarts.set(w.id, (this.restarts.get(w.id) ?? 0) + 1);
    this.served.add(w.id);
    w.lastHeartbeat = Date.now();
    const old = w.replacing;
    w.replacing = null;
    this.owner.set(w.id, w);
    this.log.info(`worker ${w.id} (pid ${w.pid}) ready`, {
      event: 'worker-ready',
      worker: w.id,
      worker_pid: w.pid,
      generation: w.generation,
    });
    if (old !== null) {
      old.replacement = null;
      if (this.workers.has(old))
        this.retire(old, old.generation < w.generation ? 'replaced by the reload' : 'replaced');
    }
    this.retireEarly();
    if (this.firstStart && this.allReady()) {
      this.firstStart = false;
      this.started(true);
    }
  }

  /** `w` asks to be recycled (--max-requests, --max-rss): its replacement starts first. */
  private onRecycle(w: Worker, reason: string, now: boolean): void {
    if (w.state !== 'ready' || w.replacement !== null || this.stopping) return;
    this.log.info(`worker ${w.id} (pid ${w.pid}) ${reason}: starting its replacement`, {
      event: 'worker-recycle',
      worker: w.id,
      worker_pid: w.pid,
      reason,
    });
    this.spawn(w.id, w);
    /* memory still growing: when another worker serves, retire now (its kept
       connections go to that one) rather than once the replacement is ready */
    if (now) {
      w.retireSoon = true;
      this.retireEarly();
    }
  }

  /** Starts a worker in slot `id` again, after the slot's backoff. */
  private scheduleRespawn(id: number): void {
    if (this.stopping || this.respawnTimers.has(id) || this.owner.has(id)) return;
    const k = this.failures.get(id) ?? 0;
    const delay = k === 0 ? 0 : Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (k - 1));
    const t = setTimeout(() => {
      this.respawnTimers.delete(id);
      if (!this.stopping && !this.owner.has(id)) this.spawn(id, null);
    }, delay);
    this.respawnTimers.set(id, t);
  }

  /** The app cannot be loaded at the first start: stop everything, exit status 1. */
  private fatalStop(message: string): void {
    if (this.stopping) return;
    this.stopping = true;
    this.exitCode = 1;
    this.log.error(message, { event: 'app-load-failed' });
    for (const w of this.workers) this.kill(w);
    if (this.workers.size === 0) this.finish();
    this.started(false);
  }

  private onExit(w: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    if (w.exited) return;
    w.exited = true;
    this.workers.delete(w);
    if (w.graceTimer !== null) clearTimeout(w.graceTimer);
    const x = w.numbers?.listeners;
    if (x !== undefined) {
      this.gone.forEach((g, i) => {
        g.connections += x[i]?.connections ?? 0;
        g.requests += x[i]?.requests ?? 0;
        g.refused += x[i]?.refused ?? 0;
      });
    }
    if (w.discarded) return;
    const wasOwner = this.owner.get(w.id) === w;
    if (wasOwner) this.owner.delete(w.id);
    if (w.replacing !== null) w.replacing.replacement = null;
    const replacement = w.replacement;
    if (replacement !== null) {
      /* the replacement takes the slot at once */
      replacement.replacing = null;
      this.owner.set(w.id, replacement);
    }
    if (this.stopping) {
      if (this.workers.size === 0) this.finish();
      return;
    }
    const how = describeExit(code, signal);
    if (w.state === 'stopping' && w.killedFor === null) {
      this.log.info(`worker ${w.id} (pid ${w.pid}) stopped`, {
        event: 'worker-exit',
        worker: w.id,
        worker_pid: w.pid,
      });
      return;
    }
    if (w.state === 'starting') this.onStartFailure(w, how, wasOwner);
    else this.onServingExit(w, code, signal, how);
  }

  /** A worker died before it was ready. */
  private onStartFailure(w: Worker, how: string, wasOwner: boolean): void {
    const { log, failures } = this;
    const message = w.fatal ?? `worker ${w.id} (pid ${w.pid}) ${how} before it was ready`;
    /* reported once: the same failure of the next attempts (another pid) is not repeated */
    const key = w.fatal ?? `${w.id} ${how}`;
    if (this.firstStart) {
      const k = (failures.get(w.id) ?? 0) + 1;
      failures.set(w.id, k);
      if (w.fatal !== null || k >= START_ATTEMPTS) {
        this.fatalStop(w.fatal ?? `${message} (${k} times in a row): giving up`);
        return;
      }
    } else if (w.replacing !== null || !wasOwner) {
      /* a reload or recycle whose new worker failed: the old one keeps serving */
      if (!this.reportedFatal.has(key)) {
        this.reportedFatal.add(key);
        log.error(`${message}; the running worker keeps serving`, {
          event: 'worker-start-failed',
          worker: w.id,
        });
      }
      return;
    } else {
      failures.set(w.id, (failures.get(w.id) ?? 0) + 1);
    }
    if (!this.reportedFatal.has(key)) {
      this.reportedFatal.add(key);
      log.error(`${message}; retrying with backoff`, {
        event: 'worker-start-failed',
        worker: w.id,
      });
    }
    if (!this.owner.has(w.id)) this.scheduleRespawn(w.id);
  }

  /** A worker that was serving (or retiring and had to be killed) exited. */
  private onServingExit(
    w: Worker,
    code: number | null,
    signal: NodeJS.Signals | null,
    how: string,
  ): void {
    const { config, log, failures } = this;
    if (w.watchdog && code === EXIT_TIMEOUT && w.killedFor === null) {
      w.killedFor = `its event loop was blocked longer than --timeout ${config.timeoutMs / 1000}s: it answered the requests it held 504 and exited`;
      log.warn(`worker ${w.id} (pid ${w.pid}) ${how}: ${w.killedFor}`, {
        event: 'worker-exit',
        worker: w.id,
        worker_pid: w.pid,
        code,
        reason: w.killedFor,
      });
      failures.set(w.id, 0);
      if (!this.owner.has(w.id)) this.scheduleRespawn(w.id);
      return;
    }
    const why = w.killedFor !== null ? `killed: ${w.killedFor}` : how;
    log.warn(`worker ${w.id} (pid ${w.pid}) ${why}`, {
      event: 'worker-exit',
      worker: w.id,
      worker_pid: w.pid,
      code,
      signal,
      ...(w.killedFor !== null ? { reason: w.killedFor } : {}),
    });
    if (w.state === 'stopping') return;
    const stable = w.readyAt > 0 && Date.now() - w.readyAt >= STABLE_MS;
    if (stable || w.killedFor !== null) failures.set(w.id, 0);
    else failures.set(w.id, (failures.get(w.id) ?? 0) + 1);
    if (!this.owner.has(w.id)) this.scheduleRespawn(w.id);
  }

  /** Timeout: kills a ready worker whose heartbeat stopped (a request stuck in a busy loop). */
  private checkHeartbeats(): void {
    const { config, heartbeatMs } = this;
    if (config.timeoutMs <= 0) return;
    const now = Date.now();
    for (const w of this.workers) {
      if (w.state === 'starting' || w.killedFor !== null) continue;
      const silent = now - w.lastHeartbeat;
      /* a worker with the request watchdog ends itself first, after answering 504: this
         is the fallback (a watchdog that could not act) */
      const limit = w.watchdog
        ? 2 * config.timeoutMs + 1000 + heartbeatMs
        : config.timeoutMs + heartbeatMs;
      if (silent > limit) {
        w.killedFor = `it did not answer for ${(silent / 1000).toFixed(1)}s (--timeout ${config.timeoutMs / 1000}s): a request is stuck`;
        this.kill(w);
      }
    }
  }

  /** Reload: new workers for every slot; each old one retires when its replacement is ready. */
  reload(why: string): void {
    const { n, log, owner } = this;
    if (this.stopping || this.firstStart) return;
    this.generation++;
    this.reloads++;
    this.reportedFatal.clear();
    log.info(
      `${why}: starting ${n} new worker${n === 1 ? '' : 's'} (generation ${this.generation})`,
      { event: 'reload', generation: this.generation },
    );
    for (let id = 1; id <= n; id++) {
      const timer = this.respawnTimers.get(id);
      if (timer !== undefined) {
        clearTimeout(timer);
        this.respawnTimers.delete(id);
      }
      const old = owner.get(id) ?? null;
      if (old !== null && old.replacement !== null) {
        const pending = old.replacement;
        old.replacement = null;
        pending.replacing = null;
        pending.discarded = true;
        this.workers.delete(pending);
        this.kill(pending);
      }
      if (old !== null && old.state === 'starting') {
        owner.delete(id);
        old.discarded = true;
        this.workers.delete(old);
        this.kill(old);
        this.spawn(id, null);
      } else {
        this.spawn(id, old);
      }
    }
  }

  /** SIGINT/SIGTERM: every worker finishes its requests; a second signal kills them. */
  stop(signal: NodeJS.Signals): void {
    const { log, config } = this;
    if (this.stopping) {
      log.warn(`${signal} again: exiting now`, { event: 'stop-now' });
      this.exitCode = 1;
      for (const w of this.workers) this.kill(w);
      return;
    }
    this.stopping = true;
    this.started(false);
    log.info(`${signal}: finishing running requests`, { event: 'stop', signal });
    for (const t of this.respawnTimers.values()) clearTimeout(t);
    this.respawnTimers.clear();
    for (const w of this.workers) {
      if (w.graceTimer !== null) clearTimeout(w.graceTimer);
      this.send(w, { t: 'stop' });
    }
    if (this.workers.size === 0) this.finish();
    this.graceTimer = setTimeout(() => {
      log.warn(`requests still running after ${config.graceMs / 1000}s: exiting`, {
        event: 'stop-timeout',
      });
      this.exitCode = 1;
      for (const w of this.workers) this.kill(w);
    }, config.graceMs);
    this.graceTimer.unref();
  }
}

/** Runs the master until it stops; resolves with the exit status. */
export function runMaster(options: ServeOptions): Promise<number> {
  return new Master(options).run();
}
