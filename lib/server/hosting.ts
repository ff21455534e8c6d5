/**
 * A process spawned by a web server (FastCGI on fd 0: Apache mod_fcgid, lighttpd's
 * `bin-path`): the defaults of shared hosting, where there is no master, no shell and no
 * restart button (docs/hosting.md).
 *
 * - `--timeout` defaults to {@link SPAWNED_TIMEOUT_MS}, below mod_fcgid's FcgidIOTimeout
 *   (40 s): a request stuck in a busy loop is answered 504 by the native watchdog
 *   (lib/server/watchdog.ts), which logs one line and ends the process; the web server
 *   starts another for the next request.
 * - `--max-rss` defaults to {@link SPAWNED_MAX_RSS_BYTES} and needs no master: the same
 *   watchdog thread reads the resident size, and above it answers the requests in flight 500,
 *   logs one line and ends the process (a memory explosion, or a slow leak).
 * - The app's folder is watched (chokidar, as --reload): on a change to a source file or to
 *   the entry file itself, the process finishes the requests it runs and exits, so the web
 *   server's next request starts a process that loads the edited code.
 *   `--no-exit-on-change` turns this off.
 * - The watchdog stops listening on fd 0 (and on a unix socket of tsgi-cgi-bridge, whose file
 *   it removes) before it answers and exits, so that the web server or the bridge does not
 *   hand its next request to the dying process (a reset connection, a 500).
 */
import { dirname, resolve } from 'node:path';
import type { ServeConfig } from './config.js';
import type { ListenAddress } from './listen.js';
import type { Logger } from './log.js';
import { splitAppSpec } from './app-loader.js';
import { watchForReload, type ReloadWatcher } from './reload.js';
import { closeOnFire } from './watchdog.js';
import { adoptSiteVariables } from '../gateway/site-env.js';
import type { App } from '../gateway/types.js';

/** --timeout of a process spawned by a web server, unless one is given (ms). */
export const SPAWNED_TIMEOUT_MS = 30_000;

/** --max-rss of a process spawned by a web server, unless one is given (512 MB). */
export const SPAWNED_MAX_RSS_BYTES = 512 * 1024 * 1024;

/**
 * True when a web server started this process: it serves the listening socket the web server
 * gave it on fd 0 (no listener configured, none from systemd), or it was started by
 * tsgi-cgi-bridge (--idle-exit).
 */
export function spawnedByWebServer(
  config: ServeConfig,
  listeners: readonly { addr: ListenAddress }[],
): boolean {
  return config.idleExitMs > 0 || onFd0(config, listeners);
}

function onFd0(config: ServeConfig, listeners: readonly { addr: ListenAddress }[]): boolean {
  const only = listeners.length === 1 ? listeners[0]!.addr : null;
  return config.listeners.length === 0 && only !== null && only.type === 'fd' && only.fd === 0;
}

/**
 * The app of a spawned process: the first request's site variables (NODE_ENV) are copied
 * into process.env where it has none (lib/gateway/site-env.ts); with --idle-exit, `stop` is
 * called after that long without a request.
 */
export function spawnedApp(app: App, config: ServeConfig, log: Logger, stop: () => void): App {
  let first = true;
  const idleMs = config.idleExitMs;
  let idle: NodeJS.Timeout | null = null;
  const arm = (): void => {
    if (idleMs <= 0) return;
    if (idle !== null) clearTimeout(idle);
    idle = setTimeout(() => {
      log.info(`no request for ${idleMs / 1000}s (--idle-exit): exiting`, { event: 'idle-exit' });
      stop();
    }, idleMs);
    idle.unref();
  };
  arm();
  return (environ, start) => {
    arm();
    if (first) {
      first = false;
      adoptSiteVariables(environ);
    }
    return app(environ, start);
  };
}

/**
 * Sets the defaults of a spawned process on `config`: --timeout and --max-rss when neither the
 * command line nor the config file gave one (`given` tells). --max-rss does not start a master
 * here (the watchdog enforces it, and the web server starts the next process), unless
 * --workers, --max-requests or --reload ask for one.
 */
export function applySpawnedDefaults(config: ServeConfig, given: (key: string) => boolean): void {
  if (!given('timeout')) config.timeoutMs = SPAWNED_TIMEOUT_MS;
  if (!given('maxRss')) config.maxRssBytes = SPAWNED_MAX_RSS_BYTES;
  if (!given('workers') && config.maxRequests === 0 && !config.reload) config.workers = null;
}

/**
 * What a spawned process does once it serves: the watchdog stops listening on fd 0 before it
 * answers a stuck request and exits; the app's folder is watched and `stop` (finish running
 * requests, exit) called once, on the first change (a null watcher with --no-exit-on-change).
 */
export function superviseSpawned(
  config: ServeConfig,
  log: Logger,
  stop: () => void,
): ReloadWatcher | null {
  if (config.listeners.length === 0) closeOnFire(0);
  if (config.noExitOnChange) return null;
  const entry = resolve(splitAppSpec(config.app).file);
  let done = false;
  const watcher = watchForReload(
    dirname(entry),
    log,
    (why) => {
      if (done) return;
      done = true;
      log.info(
        `${why}: finishing running requests and exiting, so that the web server starts the new code`,
        {
          event: 'exit-on-change',
        },
      );
      void watcher.close();
      stop();
    },
    undefined,
    new Set([entry]),
    'exit on change',
  );
  return watcher;
}
