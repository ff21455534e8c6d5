/**
 * The request watchdog of one process (--timeout): a native thread (native/core/watchdog.h)
 * that, when the event loop has not turned for the timeout while a request older than the
 * timeout is in flight (a busy loop: JavaScript cannot interrupt it), writes a complete
 * `504 Gateway Timeout` answer on the connection of every request that has not begun its
 * response, logs one line and ends the process (status {@link EXIT_TIMEOUT}).
 *
 * In a process without a master it also enforces --max-rss: the thread reads the resident
 * size itself (every 20 ms, no JavaScript involved, so an allocation loop is caught too), and
 * above the limit answers those requests `500 Internal Server Error`, logs one line and ends
 * the process (status {@link EXIT_MEMORY}). Either way it first stops listening and removes the
 * unix socket files it was given ({@link closeOnFire}), so nothing connects to the dying process.
 *
 * The front server so gets an answer instead of a dropped connection, which nginx would
 * replay onto the next worker (fastcgi_next_upstream error) and lose that one too. It needs
 * no master: a lone process (`tsgi serve --timeout` under a process manager that restarts it,
 * mod_fcgid, systemd) ends the same way, with the same log line.
 *
 * The request tracker (request-tracker.ts) registers each request before its app runs and removes it
 * before any byte of its response is written; a registration is one call into the addon.
 */
import process from 'node:process';
import type { Server as NetServer } from 'node:net';
import { resolve } from 'node:path';
import { loadNativeBinding } from '../codec/native.js';
import { listeningFd } from '../protocol/transport.js';
import type { LogFormat } from './config.js';

/** Exit status of a process the watchdog ended (native kExitTimeout; as timeout(1)). */
export const EXIT_TIMEOUT = 124;
/** Exit status of a process the watchdog ended above --max-rss (native kExitMemory). */
export const EXIT_MEMORY = 137;

interface WatchdogBinding {
  watchdogStart(
    timeoutMs: number,
    maxRssBytes: number,
    json: boolean,
    timeoutLine: string,
    memoryLine: string,
  ): boolean;
  watchdogAdd(fd: number, kind: number, requestId: number): number;
  watchdogRemove(slot: number): void;
}

/** The running watchdog: register a request, and remove it. */
export interface Watchdog {
  /** Registers a request by its target (lib/protocol/transport.ts watchdogTarget); its slot or -1. */
  add(target: number): number;
  remove(slot: number): void;
}

/** What the watchdog of a process watches. */
export interface WatchdogLimits {
  /** --timeout (ms): a busy loop longer than this ends the process; 0: not watched. */
  timeoutMs: number;
  /** --max-rss (bytes) in a process without a master; 0: not watched. */
  maxRssBytes: number;
}

let started: Watchdog | null | undefined;

/**
 * Starts this process's watchdog (once; later calls return the same one), or null when the
 * addon is not loaded or has none (Windows), or `limits` watch nothing. `worker`: the worker id
 * for the log line.
 */
export function startWatchdog(
  limits: WatchdogLimits,
  format: LogFormat,
  worker: number | null,
): Watchdog | null {
  if (started !== undefined) return started;
  const b = loadNativeBinding() as Partial<WatchdogBinding> | null;
  started = null;
  if (b === null || typeof b.watchdogStart !== 'function') return null;
  const { timeoutMs, maxRssBytes } = limits;
  /* the native thread fills in {requests} (answered) and {rss} (MB) */
  const timeoutMsg =
    `the event loop was blocked longer than --timeout ${timeoutMs / 1000}s with requests in ` +
    'flight (a busy loop?): answered {requests} of them 504 Gateway Timeout; exiting';
  const memoryMsg =
    `resident memory {rss} MB is above --max-rss ${Math.round(maxRssBytes / 1048576)} MB: ` +
    'answered {requests} request(s) in flight 500 Internal Server Error; exiting';
  const line =
    format === 'json'
      ? (event: string, msg: string) =>
          `"pid":${process.pid},${worker === null ? '' : `"worker":${worker},`}"event":"${event}","msg":"${msg}"}\n`
      : (_event: string, msg: string) =>
          `tsgi: ${worker === null ? '' : `worker ${worker} (pid ${process.pid}): `}${msg}\n`;
  const ok = b.watchdogStart(
    timeoutMs,
    maxRssBytes,
    format === 'json',
    line('timeout-exit', timeoutMsg),
    line('memory-exit', memoryMsg),
  );
  if (!ok) return null;
  const add = b.watchdogAdd!.bind(b);
  const remove = b.watchdogRemove!.bind(b);
  started = {
    add: (target) =>
      target < 0
        ? -1
        : add(Math.floor(target / 262144), target % 4, Math.floor(target / 4) % 65536),
    remove,
  };
  return started;
}

/**
 * Makes the watchdog stop listening on `fd` before it answers and exits, and remove the unix
 * socket file `path` first (omitted: a socket the process did not create, as the one a web
 * server gives on fd 0). A web server that spawned the process then gets a refused connection
 * for its next request, and tsgi-cgi-bridge finds no socket, so each starts another process
 * instead of handing the request to this one. False without the addon.
 */
export function closeOnFire(fd: number, path = ''): boolean {
  const b = loadNativeBinding() as {
    watchdogCloseOnFire?: (fd: number, path: string) => void;
  } | null;
  if (b === null || typeof b.watchdogCloseOnFire !== 'function') return false;
  b.watchdogCloseOnFire(fd, path);
  return true;
}

/**
 * {@link closeOnFire} for a server this process bound: its listening socket is closed, and
 * the unix socket file at `unixPath` removed (null: a TCP listener), when the watchdog fires.
 * False when the server has no descriptor (not listening) or without the addon.
 */
export function closeServerOnFire(server: NetServer, unixPath: string | null): boolean {
  const fd = listeningFd(server);
  if (fd < 0) return false;
  return closeOnFire(fd, unixPath === null ? '' : resolve(unixPath));
}
