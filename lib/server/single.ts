/**
 * `tsgi serve` without --workers: one process serves alone, the protocol servers run here
 * (the fastest path: nothing sits between them and the app unless an option asks for it).
 * {@link Solo} owns the lifecycle: the listeners and the "serving ..." lines, dropping
 * privileges, SIGINT/SIGTERM, stray errors (--exit-on-error), --stats and the note when the
 * request watchdog is missing.
 */
import process from 'node:process';
import { spawnedApp, spawnedByWebServer, superviseSpawned } from './hosting.js';
import type { Server as NetServer } from 'node:net';
import type { Server } from 'node:http';
import { codec } from '../codec/index.js';
import type { App } from '../gateway/types.js';
import { serverTransport } from '../protocol/transport.js';
import { exposureWarning } from './allow.js';
import { AppLoadError, loadApp } from './app-loader.js';
import type { ServeConfig } from './config.js';
import {
  formatAddress,
  listen,
  ListenError,
  unixSocketSetup,
  type UnixSocketOptions,
} from './listen.js';
import type { Logger } from './log.js';
import { dropPrivileges, type Ids } from './privileges.js';
import type { Protocol } from './protocols.js';
import { StartError, type ServeListener, type ServeOptions } from './start.js';
import { createStatsServer, type StatsSnapshot } from './stats.js';
import { EXIT_STRAY_ERROR, watchStrayErrors } from './stray.js';
import { closeServerOnFire } from './watchdog.js';
import { Serving } from './worker.js';

/** One process, no master: serves until SIGINT/SIGTERM; {@link Solo.run} gives the status. */
export class Solo {
  private readonly config: ServeConfig;
  private readonly log: Logger;
  private readonly listeners: ServeListener[];
  private readonly ids: Ids | null;
  private readonly startedAt = Date.now();
  private readonly serving: Serving;
  private readonly stats: Server | null;
  /** The app once loaded (with --user: after dropping privileges). */
  private app: App | null = null;
  private stopping = false;
  private exitStatus = 0;
  /** Opening the listeners; stopping waits for it. */
  private startup: Promise<unknown> = Promise.resolve();
  private stopped: (code: number) => void = () => {};
  private readonly finished = new Promise<number>((resolve) => (this.stopped = resolve));
  private readonly onSignal = (signal: NodeJS.Signals): void => this.signal(signal);

  /** Throws a StartError when the servers cannot be set up (a bad option value). */
  constructor(options: ServeOptions) {
    this.config = options.config;
    this.log = options.log;
    this.listeners = options.listeners;
    this.ids = options.ids;
    const config = this.config;
    try {
      this.serving = new Serving({
        log: this.log,
        track:
          config.stats !== null ||
          config.timeoutMs > 0 ||
          config.maxRssBytes > 0 ||
          config.accessLog,
        countConnections: config.stats !== null,
        timeoutMs: config.timeoutMs,
        /* no master to recycle this process: the watchdog ends it */
        watchdogMaxRssBytes: config.maxRssBytes,
        accessLog: config.accessLog,
        allow: config.allow,
        multiprocess: false,
        mount: config.mount,
        keepAliveMs: config.keepAliveMs,
        connectionLimits: config.connectionLimits,
        worker: null,
      });
    } catch (err) {
      throw new StartError((err as Error).message);
    }
    this.stats = config.stats === null ? null : createStatsServer(() => this.snapshot());
  }

  /** Serves until stopped; resolves with the exit status. */
  async run(): Promise<number> {
    const { config, log, ids } = this;
    /* With --user the sockets are bound first and the app is loaded after dropping privileges;
       the servers then call it through a forwarding function. */
    this.app = ids === null ? await this.load() : null;
    const loaded: App = this.app ?? ((env, start) => this.app!(env, start));
    const spawned = spawnedByWebServer(config, this.listeners);
    const target = spawned ? spawnedApp(loaded, config, log, () => this.stop()) : loaded;
    if (config.timeoutMs > 0 && this.serving.watchdog === null) {
      log.info(
        'the native addon is not loaded: --timeout ends requests that wait, but a request stuck ' +
          'in a busy loop needs a master to kill its process',
      );
    }
    if (config.maxRssBytes > 0 && this.serving.watchdog === null) {
      log.warn('the native addon is not loaded: --max-rss needs a master (--workers 1) here', {
        event: 'max-rss-unwatched',
      });
    }
    /* Signals are handled from before the first listener opens, so none is ever missed. */
    process.on('SIGINT', this.onSignal);
    process.on('SIGTERM', this.onSignal);
    watchStrayErrors(
      log,
      config.exitOnError
        ? () => {
            log.info('--exit-on-error: finishing running requests', { event: 'stop' });
            this.exitStatus = EXIT_STRAY_ERROR;
            this.stop();
          }
        : null,
    );
    const sockets = unixSocketSetup(
      config,
      this.listeners.map((l) => l.addr),
      ids,
    );
    if (sockets.warning !== null) log.warn(sockets.warning, { event: 'socket-mode' });
    const opening = this.open(target, sockets.options);
    this.startup = opening.catch(() => undefined);
    try {
      await opening;
    } catch (err) {
      await this.stopAll();
      if (err instanceof ListenError) throw new StartError(err.message);
      throw err;
    }
    if (spawned) superviseSpawned(config, log, () => this.stop());
    return this.finished;
  }

  private async load(): Promise<App> {
    try {
      return await loadApp(this.config.app, {
        factory: this.config.factory,
        interface: this.config.interface,
        onWarning: (m) => this.log.warn(m, { event: 'app-warning' }),
      });
    } catch (err) {
      if (err instanceof AppLoadError) throw new StartError(err.message);
      throw err;
    }
  }

  /** Stats: this process is the one worker. */
  private snapshot(): StatsSnapshot {
    const { startedAt, serving } = this;
    return {
      mode: 'single',
      pid: process.pid,
      startedAt,
      generation: 1,
      reloads: 0,
      workers: [
        {
          id: 1,
          pid: process.pid,
          generation: 1,
          state: this.stopping ? 'stopping' : 'ready',
          startedAt,
          requests: serving.tracker?.counters.requests ?? 0,
          inFlight: serving.tracker?.counters.inFlight ?? 0,
          totalMs: serving.tracker?.counters.totalMs ?? 0,
          maxMs: serving.tracker?.counters.maxMs ?? 0,
          rssBytes: process.memoryUsage.rss(),
          restarts: 0,
        },
      ],
      listeners: serving.listenerStats(),
    };
  }

  /** Opens the listeners (and --stats), drops privileges, says what serves where. */
  private async open(target: App, unix: UnixSocketOptions): Promise<void> {
    const { config, log, ids, serving, stats } = this;
    const opened: [Protocol, string, NetServer][] = [];
    for (const l of this.listeners) {
      if (this.stopping) return;
      const entry = serving.add(l.protocol, target, formatAddress(l.addr));
      const shown = await listen(entry.server, l.addr, unix);
      /* a watchdog exit first closes what this process bound (an fd it was given is shared) */
      if (serving.watchdog !== null && l.addr.type !== 'fd') {
        closeServerOnFire(entry.server, l.addr.type === 'unix' ? l.addr.path : null);
      }
      entry.shown = shown;
      entry.stats.address = shown;
      opened.push([l.protocol, shown, entry.server]);
      if (ids === null) this.announce(l.protocol, shown, entry.server);
    }
    let statsShown = '';
    if (stats !== null && config.stats !== null && !this.stopping) {
      statsShown = await listen(stats, config.stats, unix);
    }
    if (ids !== null) {
      try {
        dropPrivileges(ids);
      } catch (err) {
        throw new StartError((err as Error).message);
      }
      this.app = await this.load();
      for (const [protocol, shown, server] of opened) this.announce(protocol, shown, server);
    }
    if (statsShown !== '') {
      log.info(`statistics on ${statsShown}: JSON at /, Prometheus text at /metrics`, {
        event: 'stats',
        address: statsShown,
      });
    }
  }

  /** The "serving ..." line of a listener (and the warning when it is exposed). */
  private announce(protocol: Protocol, shown: string, server: NetServer): void {
    const { config, log } = this;
    const bound = server.address();
    const host = bound !== null && typeof bound === 'object' ? bound.address : null;
    const exposed = exposureWarning(protocol, shown, host, config.allow);
    if (exposed !== null) log.warn(exposed, { event: 'exposed', address: shown });
    /* HTTP is node:http's; the gateway protocols say which connection transport they got */
    const via = protocol.flag === 'http' ? '' : `, ${serverTransport(server)} transport`;
    log.info(
      `serving ${config.app} over ${protocol.title} on ${shown} (${codec.name} codec${via})`,
      {
        event: 'listening',
        protocol: protocol.flag,
        address: shown,
      },
    );
  }

  /** SIGINT/SIGTERM: finish running requests; a second signal exits at once. */
  private signal(signal: NodeJS.Signals): void {
    const log = this.log;
    if (this.stopping) {
      log.warn(`${signal} again: exiting now`, { event: 'stop-now' });
      log.flush();
      process.exit(1);
    }
    log.info(`${signal}: finishing running requests`, { event: 'stop', signal });
    this.stop();
  }

  /** Stops accepting, waits up to --graceful-timeout for running requests, then resolves run(). */
  private stop(): void {
    if (this.stopping) return;
    this.stopping = true;
    const log = this.log;
    const graceMs = this.config.graceMs;
    const timer = setTimeout(() => {
      log.warn(`requests still running after ${graceMs / 1000}s: exiting`, {
        event: 'stop-timeout',
      });
      log.flush();
      process.exit(1);
    }, graceMs);
    timer.unref();
    this.startup
      .then(() => this.stopAll())
      .then(() => {
        clearTimeout(timer);
        log.info('stopped', { event: 'stopped' });
        this.stopped(this.exitStatus);
      });
  }

  private async stopAll(): Promise<void> {
    await this.serving.drain();
    const stats = this.stats;
    if (stats !== null && stats.listening) {
      stats.close();
      stats.closeAllConnections();
    }
  }
}

/** Runs one process alone until it stops; resolves with the exit status. */
export function runSolo(options: ServeOptions): Promise<number> {
  return new Solo(options).run();
}
