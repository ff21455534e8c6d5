/**
 * The request watchdog of one process (--timeout): a native thread (native/core/watchdog.h)
 * that, when the event loop has not turned for the timeout while a request older than the
 * timeout is in flight (a busy loop: JavaScript cannot interrupt it), writes a complete
 * `504 Gateway Timeout` answer on the connection of every request that has not begun its
 * response, logs one line and ends the process (status {@link EXIT_TIMEOUT}).
 *
 * The front server so gets an answer instead of a dropped connection, which nginx would
 * replay onto the next worker (fastcgi_next_upstream error) and lose that one too. It needs
 * no master: a lone process (`tsgi serve --timeout` under a process manager that restarts it,
 * mod_fcgid, systemd) ends the same way, with the same log line.
 *
 * The request tracker (request-tracker.ts) registers each request before its app runs and removes it
 * before any byte of its response is written; a registration is one call into the addon.
 */
import { loadNativeBinding } from '../codec/native.js';
import type { LogFormat } from './config.js';

/** Exit status of a process the watchdog ended (native kExitTimeout; as timeout(1)). */
export const EXIT_TIMEOUT = 124;

interface WatchdogBinding {
  watchdogStart(timeoutMs: number, json: boolean, prefix: string, suffix: string): boolean;
  watchdogAdd(fd: number, kind: number, requestId: number): number;
  watchdogRemove(slot: number): void;
}

/** The running watchdog: register a request, and remove it. */
export interface Watchdog {
  /** Registers a request by its target (lib/protocol/transport.ts watchdogTarget); its slot or -1. */
  add(target: number): number;
  remove(slot: number): void;
}

let started: Watchdog | null | undefined;

/**
 * Starts this process's watchdog (once; later calls return the same one), or null when the
 * addon is not loaded or has none (Windows). `worker`: the worker id for the log line.
 */
export function startWatchdog(
  timeoutMs: number,
  format: LogFormat,
  worker: number | null,
): Watchdog | null {
  if (started !== undefined) return started;
  const b = loadNativeBinding() as Partial<WatchdogBinding> | null;
  started = null;
  if (b === null || typeof b.watchdogStart !== 'function') return null;
  const secs = timeoutMs / 1000;
  const msg = `the event loop was blocked longer than --timeout ${secs}s with requests in flight (a busy loop?): answered `;
  const tail = ` of them 504 Gateway Timeout; exiting`;
  const ok =
    format === 'json'
      ? b.watchdogStart(
          timeoutMs,
          true,
          `"pid":${process.pid},${worker === null ? '' : `"worker":${worker},`}"event":"timeout-exit","msg":"${msg}`,
          `${tail}"}\n`,
        )
      : b.watchdogStart(
          timeoutMs,
          false,
          `tsgi: ${worker === null ? '' : `worker ${worker} (pid ${process.pid}): `}${msg}`,
          `${tail}\n`,
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
 * Makes the watchdog stop listening on `fd` before it answers and exits (a process spawned
 * by a web server on fd 0: the web server's next connection is refused, so it starts another
 * process instead of handing the request to this one). False without the addon.
 */
export function closeOnFire(fd: number): boolean {
  const b = loadNativeBinding() as { watchdogCloseOnFire?: (fd: number) => void } | null;
  if (b === null || typeof b.watchdogCloseOnFire !== 'function') return false;
  b.watchdogCloseOnFire(fd);
  return true;
}
