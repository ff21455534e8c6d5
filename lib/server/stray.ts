/**
 * Stray errors: an exception thrown where no request can catch it (a timer, an event handler)
 * and a rejected promise nobody handles. Node ends the process for both; behind a front
 * server that leaves the site down when nothing restarts tsgi.
 *
 * tsgi logs each one with its stack (event "stray-error") and keeps serving, as uWSGI,
 * gunicorn and php-fpm do with an error outside a request: the error belongs to the app, the
 * requests in flight and the ones to come are not its victims. `--exit-on-error` restores
 * Node's rule for apps that must not run on after one: a worker then asks the master for a
 * replacement and retires once it is ready (nothing is lost), a lone process finishes its
 * running requests and exits with status 70 (EX_SOFTWARE) for its supervisor to restart.
 */
import process from 'node:process';
import type { Logger } from './log.js';

/** Exit status of a lone process stopped by a stray error under --exit-on-error. */
export const EXIT_STRAY_ERROR = 70;

/**
 * Logs every stray error of this process; `onError` (with --exit-on-error) is called after
 * the first is logged.
 */
export function watchStrayErrors(log: Logger, onError: (() => void) | null): void {
  let called = false;
  const report = (kind: string, err: unknown): void => {
    const text = err instanceof Error ? (err.stack ?? String(err)) : String(err);
    log.error(`${kind}${onError === null ? ' (kept serving)' : ''}: ${text}`, {
      event: 'stray-error',
      kind,
    });
    if (onError !== null && !called) {
      called = true;
      onError();
    }
  };
  process.on('uncaughtException', (err) => report('uncaught exception', err));
  process.on('unhandledRejection', (reason) => report('unhandled rejection', reason));
}
