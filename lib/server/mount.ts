/**
 * `--mount PREFIX`: the app is served under PREFIX whatever the front server said about
 * SCRIPT_NAME. Front servers disagree: nginx's stock scgi_params and uwsgi_params send no
 * SCRIPT_NAME, and Apache's mod_proxy_scgi sends the whole path as SCRIPT_NAME and no
 * PATH_INFO. With a mount, the request path (SCRIPT_NAME + PATH_INFO, decoded, as every
 * protocol gives it) is split again: SCRIPT_NAME = PREFIX, PATH_INFO = the rest, as uWSGI's
 * `--mount` with `--manage-script-name` and gunicorn's SCRIPT_NAME do. A request outside
 * PREFIX gets 404 (the front server sent what this app does not serve).
 */
import { Buffer } from 'node:buffer';
import type { App } from '../gateway/types.js';

const NOT_FOUND = Buffer.from('Not Found\n');

/**
 * The prefix in the environ's form (its UTF-8 bytes as latin-1 characters, no trailing "/"),
 * or null for "/" (the root: nothing to split). Throws an Error for a value that cannot be a
 * path prefix.
 */
export function parseMount(value: string): string | null {
  if (!value.startsWith('/')) throw new Error(`"${value}" must start with "/"`);
  if (/[?#]/.test(value) || [...value].some((c) => c.charCodeAt(0) < 0x20 || c === '\x7f')) {
    throw new Error(`"${value}" must be a path, without "?", "#" or control characters`);
  }
  const trimmed = value.replace(/\/+$/, '');
  if (/(^|\/)\.\.?(\/|$)/.test(trimmed) || trimmed.includes('//')) {
    throw new Error(`"${value}" must not hold empty, "." or ".." segments`);
  }
  return trimmed === '' ? null : Buffer.from(trimmed, 'utf8').toString('latin1');
}

/** `app` served under `prefix` (from {@link parseMount}). */
export function mountApp(app: App, prefix: string): App {
  return (env, startResponse) => {
    const path = env.SCRIPT_NAME + env.PATH_INFO;
    if (
      path.startsWith(prefix) &&
      (path.length === prefix.length || path.charCodeAt(prefix.length) === 0x2f)
    ) {
      env.SCRIPT_NAME = prefix;
      env.PATH_INFO = path.slice(prefix.length);
      return app(env, startResponse);
    }
    startResponse('404 Not Found', [
      ['Content-Type', 'text/plain; charset=us-ascii'],
      ['Content-Length', String(NOT_FOUND.length)],
    ]);
    return [NOT_FOUND];
  };
}
