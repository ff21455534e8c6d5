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
import { fork, type ChildProcess } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { randomInt } from 'node:crypto';
import type { Server } from 'node:http';
import { codec } from '../codec/index.js';
import { transport } from '../protocol/transport.js';
import { splitAppSpec } from './app-loader.js';
import type { ServeConfig } from './config.js';
import { exposureWarning } from './allow.js';
import {
  bindSocket,
  listen,
  ListenError,
  unixSocketSetup,
  type BoundSocket,
  type ListenAddress,
} from './listen.js';
import type { Logger } from './log.js';
import { dropPrivileges, type Ids } from './privileges.js';
import { EXIT_TIMEOUT } from './watchdog.js';
import { watchForReload } from './reload.js';
import type { Protocol } from './protocols.js';
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

/** A listener the master binds. */
export interface MasterListener {
  protocol: Protocol;
  addr: ListenAddress;
}

export interface MasterOptions {
  config: ServeConfig;
  listeners: MasterListener[];
  log: Logger;
  /** Privileges to drop to after binding, or null. */
  ids: Ids | null;
}

/** The master cannot start; the message is for the user (exit status 1). */
export class MasterStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MasterStartError';
  }
}

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
function describeExit(code: number | null, signal: NodeJS.Signals | null): string {
  return signal !== null ? `was killed by ${signal}` : `exited with status ${code}`;
}

/** Runs the master until it stops; resolves with the exit status. */
export async function runMaster(options: MasterOptions): Promise<number> {
  const { config, log } = options;
  const n = config.workers ?? 1;
  const heartbeatMs =
    config.timeoutMs > 0 ? Math.max(50, Math.min(1000, Math.floor(config.timeoutMs / 4))) : 1000;
  const startedAt = Date.now();

  /* 1. Bind every listener (before dropping privileges). */
  const sockets: BoundSocket[] = [];
  const setup = unixSocketSetup(
    config,
    options.listeners.map((l) => l.addr),
    options.ids,
  );
  if (setup.warning !== null) log.warn(setup.warning, { event: 'socket-mode' });
  const unix = setup.options;
  let statsServer: Server | null = null;
  const closeSockets = (): void => {
    for (const s of sockets.splice(0)) s.close();
  };
  try {
    for (const l of options.listeners) sockets.push(await bindSocket(l.addr, unix));
  } catch (err) {
    closeSockets();
    if (err instanceof ListenError) throw new MasterStartError(err.message);
    throw err;
  }

  /* State. */
  const workers = new Set<Worker>();
  const owner = new Map<number, Worker>();
  const restarts = new Map<number, number>();
  /* slots that had a ready worker: the next ready one there is a restart */
  const served = new Set<number>();
  const failures = new Map<number, number>();
  const respawnTimers = new Map<number, NodeJS.Timeout>();
  const gone: ListenerStats[] = options.listeners.map((l, i) => ({
    protocol: l.protocol.flag,
    address: sockets[i]!.shown,
    connections: 0,
    requests: 0,
    refused: 0,
  }));
  let generation = 1;
  let reloads = 0;
  let firstStart = true;
  let stopping = false;
  const reportedFatal = new Set<string>();

  /* --stats asks the workers for fresh numbers: each answers with a heartbeat */
  const heartbeatWaiters = new Map<Worker, (() => void)[]>();
  const REFRESH_MS = 1000;
  const refresh = async (): Promise<void> => {
    const asked = [...workers].filter((w) => w.state !== 'starting' && w.proc.connected);
    await Promise.all(
      asked.map(
        (w) =>
          new Promise<void>((done) => {
            const timer = setTimeout(done, REFRESH_MS);
            const list = heartbeatWaiters.get(w) ?? [];
            list.push(() => {
              clearTimeout(timer);
              done();
            });
            heartbeatWaiters.set(w, list);
            send(w, { t: 'report' });
          }),
      ),
    );
  };

  const snapshot = (): StatsSnapshot => {
    const ws: WorkerStats[] = [...workers]
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
        restarts: restarts.get(w.id) ?? 0,
      }));
    const listeners = gone.map((g, i) => {
      const l = { ...g };
      for (const w of workers) {
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
      startedAt,
      generation,
      reloads,
      workers: ws,
      listeners,
    };
  };

  /* 2. The stats endpoint, also bound before dropping privileges. */
  let statsShown = '';
  if (config.stats !== null) {
    statsServer = createStatsServer(() => refresh().then(snapshot));
    try {
      statsShown = await listen(statsServer, config.stats, unix);
    } catch (err) {
      closeSockets();
      throw new MasterStartError((err as Error).message);
    }
  }

  /* 3. Drop privileges. */
  if (options.ids !== null) {
    try {
      dropPrivileges(options.ids);
    } catch (err) {
      closeSockets();
      statsServer?.close();
      throw new MasterStartError((err as Error).message);
    }
  }

  /* Resolves once stopping and every worker is gone. */
  let finish: () => void = () => {};
  const finished = new Promise<void>((r) => (finish = r));
  let exitCode = 0;
  let started: (ok: boolean) => void = () => {};
  const startedOk = new Promise<boolean>((r) => (started = r));

  const workerPath = fileURLToPath(WORKER_MODULE);
  const fds = sockets.map((s) => s.fd);

  const send = (w: Worker, msg: MasterMessage): void => {
    if (!w.proc.connected) return;
    try {
      w.proc.send(msg);
    } catch {
      /* it is exiting */
    }
  };

  const kill = (w: Worker, signal: NodeJS.Signals = 'SIGKILL'): void => {
    try {
      w.proc.kill(signal);
    } catch {
      /* already gone */
    }
  };

  const spawn = (id: number, replacing: Worker | null): Worker => {
    respawnTimers.delete(id);
    const jitter = config.maxRequestsJitter > 0 ? randomInt(config.maxRequestsJitter + 1) : 0;
    const wc: WorkerConfig = {
      id,
      generation,
      app: config.app,
      factory: config.factory,
      interface: config.interface,
      listeners: sockets.map((s, i) => ({
        protocol: options.listeners[i]!.protocol.flag,
        fd: 4 + i,
        shown: s.shown,
      })),
      timeoutMs: config.timeoutMs,
      maxRequests: config.maxRequests > 0 ? config.maxRequests + jitter : 0,
      maxRssBytes: config.maxRssBytes,
      graceMs: config.graceMs,
      heartbeatMs,
      accessLog: config.accessLog,
      exitOnError: config.exitOnError,
      logFormat: config.logFormat,
      allow: config.allow,
      stats: config.stats !== null,
      mount: config.mount,
      keepAliveMs: config.keepAliveMs,
      connectionLimits: config.connectionLimits,
    };
    const proc = fork(workerPath, [], {
      stdio: ['ignore', 'inherit', 'inherit', 'ipc', ...fds],
      env: { ...process.env, [WORKER_ENV]: JSON.stringify(wc) },
      execArgv: process.execArgv,
    });
    const w: Worker = {
      id,
      generation,
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
    workers.add(w);
    if (replacing === null) owner.set(id, w);
    proc.on('message', (m: WorkerMessage, handle: unknown) => onMessage(w, m, handle));
    /* 'close' comes after every message the worker sent ('exit' may come before them) */
    proc.on('close', (code, signal) => onExit(w, code, signal));
    proc.on('error', (err) => {
      log.error(`worker ${id}: ${err.message}`, { event: 'worker-error', worker: id });
      /* a fork that failed has no process to wait for */
      if (proc.pid === undefined) onExit(w, null, null);
    });
    return w;
  };

  const retire = (w: Worker, why: string): void => {
    if (w.state === 'stopping') return;
    w.state = 'stopping';
    log.info(`worker ${w.id} (pid ${w.pid}) ${why}: finishing its requests`, {
      event: 'worker-retire',
      worker: w.id,
      worker_pid: w.pid,
    });
    send(w, { t: 'stop', retire: true });
    w.graceTimer = setTimeout(() => {
      w.killedFor = `requests still running after --graceful-timeout ${config.graceMs / 1000}s`;
      kill(w);
    }, config.graceMs + 1000);
    w.graceTimer.unref();
  };

  const allReady = (): boolean => {
    for (let id = 1; id <= n; id++) if (owner.get(id)?.state !== 'ready') return false;
    return true;
  };

  /* Workers whose memory is above --max-rss retire as soon as another worker serves. */
  const retireSoon = (): void => {
    for (const w of owner.values()) {
      if (!w.retireSoon || w.state !== 'ready') continue;
      const others = [...owner.values()].some((x) => x !== w && x.state === 'ready');
      if (others) retire(w, 'retired at once');
    }
  };

  /* Kept connections a retiring worker hands over go to the serving workers in turn. */
  let handoverTurn = 0;
  const handOver = (from: Worker, listener: number, handle: { close(): void }): void => {
    const serving = [...owner.values()].filter(
      (x) => x !== from && x.state === 'ready' && x.proc.connected,
    );
    if (serving.length === 0) {
      handle.close();
      return;
    }
    const to = serving[handoverTurn++ % serving.length]!;
    try {
      to.proc.send({ t: 'conn', listener } satisfies MasterMessage, handle as never);
    } catch {
      handle.close();
    }
  };

  const onMessage = (w: Worker, m: WorkerMessage, handle?: unknown): void => {
    if (m === null || typeof m !== 'object') return;
    switch (m.t) {
      case 'conn':
        if (handle !== undefined && handle !== null) {
          handOver(w, m.listener, handle as { close(): void });
        }
        break;
      case 'hb':
        w.lastHeartbeat = Date.now();
        w.numbers = m;
        for (const wake of heartbeatWaiters.get(w) ?? []) wake();
        heartbeatWaiters.delete(w);
        break;
      case 'ready': {
        if (w.state !== 'starting') return;
        if (stopping) {
          w.state = 'ready';
          retire(w, 'started while stopping');
          return;
        }
        w.state = 'ready';
        w.readyAt = Date.now();
        w.watchdog = m.watchdog === true;
        if (served.has(w.id)) restarts.set(w.id, (restarts.get(w.id) ?? 0) + 1);
        served.add(w.id);
        w.lastHeartbeat = Date.now();
        const old = w.replacing;
        w.replacing = null;
        owner.set(w.id, w);
        log.info(`worker ${w.id} (pid ${w.pid}) ready`, {
          event: 'worker-ready',
          worker: w.id,
          worker_pid: w.pid,
          generation: w.generation,
        });
        if (old !== null) {
          old.replacement = null;
          if (workers.has(old))
            retire(old, old.generation < w.generation ? 'replaced by the reload' : 'replaced');
        }
        retireSoon();
        if (firstStart && allReady()) {
          firstStart = false;
          started(true);
        }
        break;
      }
      case 'fatal':
        w.fatal = m.message;
        break;
      case 'recycle': {
        if (w.state !== 'ready' || w.replacement !== null || stopping) return;
        log.info(`worker ${w.id} (pid ${w.pid}) ${m.reason}: starting its replacement`, {
          event: 'worker-recycle',
          worker: w.id,
          worker_pid: w.pid,
          reason: m.reason,
        });
        spawn(w.id, w);
        /* memory still growing: when another worker serves, retire now (its kept
           connections go to that one) rather than once the replacement is ready */
        if (m.now === true) {
          w.retireSoon = true;
          retireSoon();
        }
        break;
      }
    }
  };

  const scheduleRespawn = (id: number): void => {
    if (stopping || respawnTimers.has(id) || owner.has(id)) return;
    const k = failures.get(id) ?? 0;
    const delay = k === 0 ? 0 : Math.min(BACKOFF_MAX_MS, BACKOFF_FIRST_MS * 2 ** (k - 1));
    const t = setTimeout(() => {
      respawnTimers.delete(id);
      if (!stopping && !owner.has(id)) spawn(id, null);
    }, delay);
    respawnTimers.set(id, t);
  };

  const fatalStop = (message: string): void => {
    if (stopping) return;
    stopping = true;
    exitCode = 1;
    log.error(message, { event: 'app-load-failed' });
    for (const w of workers) kill(w);
    if (workers.size === 0) finish();
    started(false);
  };

  const onExit = (w: Worker, code: number | null, signal: NodeJS.Signals | null): void => {
    if (w.exited) return;
    w.exited = true;
    workers.delete(w);
    if (w.graceTimer !== null) clearTimeout(w.graceTimer);
    const x = w.numbers?.listeners;
    if (x !== undefined) {
      gone.forEach((g, i) => {
        g.connections += x[i]?.connections ?? 0;
        g.requests += x[i]?.requests ?? 0;
        g.refused += x[i]?.refused ?? 0;
      });
    }
    if (w.discarded) return;
    const wasOwner = owner.get(w.id) === w;
    if (wasOwner) owner.delete(w.id);
    if (w.replacing !== null) w.replacing.replacement = null;
    const replacement = w.replacement;
    if (replacement !== null) {
      /* the replacement takes the slot at once */
      replacement.replacing = null;
      owner.set(w.id, replacement);
    }
    if (stopping) {
      if (workers.size === 0) finish();
      return;
    }
    const how = describeExit(code, signal);
    if (w.state === 'stopping' && w.killedFor === null) {
      log.info(`worker ${w.id} (pid ${w.pid}) stopped`, {
        event: 'worker-exit',
        worker: w.id,
        worker_pid: w.pid,
      });
      return;
    }
    if (w.state === 'starting') {
      const message = w.fatal ?? `worker ${w.id} (pid ${w.pid}) ${how} before it was ready`;
      /* reported once: the same failure of the next attempts (another pid) is not repeated */
      const key = w.fatal ?? `${w.id} ${how}`;
      if (firstStart) {
        const k = (failures.get(w.id) ?? 0) + 1;
        failures.set(w.id, k);
        if (w.fatal !== null || k >= START_ATTEMPTS) {
          fatalStop(w.fatal ?? `${message} (${k} times in a row): giving up`);
          return;
        }
      } else if (w.replacing !== null || !wasOwner) {
        /* a reload or recycle whose new worker failed: the old one keeps serving */
        if (!reportedFatal.has(key)) {
          reportedFatal.add(key);
          log.error(`${message}; the running worker keeps serving`, {
            event: 'worker-start-failed',
            worker: w.id,
          });
        }
        return;
      } else {
        failures.set(w.id, (failures.get(w.id) ?? 0) + 1);
      }
      if (!reportedFatal.has(key)) {
        reportedFatal.add(key);
        log.error(`${message}; retrying with backoff`, {
          event: 'worker-start-failed',
          worker: w.id,
        });
      }
      if (!owner.has(w.id)) scheduleRespawn(w.id);
      return;
    }
    /* it was serving (or retiring and had to be killed) */
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
      if (!owner.has(w.id)) scheduleRespawn(w.id);
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
    if (!owner.has(w.id)) scheduleRespawn(w.id);
  };

  /* Heartbeat watch: a ready worker silent longer than the timeout is stuck. */
  const watchdog = setInterval(
    () => {
      if (config.timeoutMs <= 0) return;
      const now = Date.now();
      for (const w of workers) {
        if (w.state === 'starting' || w.killedFor !== null) continue;
        const silent = now - w.lastHeartbeat;
        /* a worker with the request watchdog ends itself first, after answering 504: this
           is the fallback (a watchdog that could not act) */
        const limit = w.watchdog
          ? 2 * config.timeoutMs + 1000 + heartbeatMs
          : config.timeoutMs + heartbeatMs;
        if (silent > limit) {
          w.killedFor = `it did not answer for ${(silent / 1000).toFixed(1)}s (--timeout ${config.timeoutMs / 1000}s): a request is stuck`;
          kill(w);
        }
      }
    },
    Math.max(25, Math.floor(heartbeatMs / 2)),
  );
  watchdog.unref();

  /* Reload: new workers for every slot; each old one retires when its replacement is ready. */
  const reload = (why: string): void => {
    if (stopping || firstStart) return;
    generation++;
    reloads++;
    reportedFatal.clear();
    log.info(`${why}: starting ${n} new worker${n === 1 ? '' : 's'} (generation ${generation})`, {
      event: 'reload',
      generation,
    });
    for (let id = 1; id <= n; id++) {
      const timer = respawnTimers.get(id);
      if (timer !== undefined) {
        clearTimeout(timer);
        respawnTimers.delete(id);
      }
      const old = owner.get(id) ?? null;
      if (old !== null && old.replacement !== null) {
        const pending = old.replacement;
        old.replacement = null;
        pending.replacing = null;
        pending.discarded = true;
        workers.delete(pending);
        kill(pending);
      }
      if (old !== null && old.state === 'starting') {
        owner.delete(id);
        old.discarded = true;
        workers.delete(old);
        kill(old);
        spawn(id, null);
      } else {
        spawn(id, old);
      }
    }
  };

  /* Signals. */
  let graceTimer: NodeJS.Timeout | null = null;
  const onStop = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn(`${signal} again: exiting now`, { event: 'stop-now' });
      exitCode = 1;
      for (const w of workers) kill(w);
      return;
    }
    stopping = true;
    started(false);
    log.info(`${signal}: finishing running requests`, { event: 'stop', signal });
    for (const t of respawnTimers.values()) clearTimeout(t);
    respawnTimers.clear();
    for (const w of workers) {
      if (w.graceTimer !== null) clearTimeout(w.graceTimer);
      send(w, { t: 'stop' });
    }
    if (workers.size === 0) finish();
    graceTimer = setTimeout(() => {
      log.warn(`requests still running after ${config.graceMs / 1000}s: exiting`, {
        event: 'stop-timeout',
      });
      exitCode = 1;
      for (const w of workers) kill(w);
    }, config.graceMs);
    graceTimer.unref();
  };
  const onHup = (): void => reload('SIGHUP');
  process.on('SIGINT', onStop);
  process.on('SIGTERM', onStop);
  process.on('SIGHUP', onHup);

  /* --reload: watch the app's directory. */
  const watcher = config.reload
    ? watchForReload(dirname(resolve(splitAppSpec(config.app).file)), log, reload)
    : null;

  /* 4. Start the workers. */
  for (let id = 1; id <= n; id++) spawn(id, null);
  const ok = await startedOk;
  if (ok) {
    options.listeners.forEach((l, i) => {
      const shown = sockets[i]!.shown;
      const host = l.addr.type === 'tcp' ? shown.replace(/:[0-9]+$/, '') : null;
      const exposed = exposureWarning(l.protocol, shown, host, config.allow);
      if (exposed !== null) log.warn(exposed, { event: 'exposed', address: shown });
      log.info(
        `serving ${config.app} over ${l.protocol.title} on ${sockets[i]!.shown} ` +
          `(${codec.name} codec, ${l.protocol.flag === 'http' ? '' : `${transport} transport, `}` +
          `${n} worker${n === 1 ? '' : 's'})`,
        { event: 'listening', protocol: l.protocol.flag, address: sockets[i]!.shown },
      );
    });
    if (statsServer !== null) {
      log.info(`statistics on ${statsShown}: JSON at /, Prometheus text at /metrics`, {
        event: 'stats',
        address: statsShown,
      });
    }
  }
  await finished;

  /* 5. Stopped. */
  if (graceTimer !== null) clearTimeout(graceTimer);
  clearInterval(watchdog);
  await watcher?.close();
  process.off('SIGINT', onStop);
  process.off('SIGTERM', onStop);
  process.off('SIGHUP', onHup);
  closeSockets();
  if (statsServer !== null) {
    statsServer.close();
    statsServer.closeAllConnections?.();
  }
  if (exitCode === 0) log.info('stopped', { event: 'stopped' });
  return exitCode;
}
