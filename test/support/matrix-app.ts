/**
 * The app behind every front server in the interop matrix (test/support/matrix.ts). It runs in
 * the test process (createXServer) and in child processes (`tsgi serve`, `tsgi cgi`), for
 * which {@link writeMatrixApp} bundles this file into a plain ES module.
 *
 * Every front server mounts it under a one-segment prefix (/fcgi, /scgi, …). Routes are taken
 * from the request path rebuilt as SCRIPT_NAME + PATH_INFO (PEP 3333's URL reconstruction)
 * minus that first segment, so that each server's own split of the two (see the environ case)
 * is asserted once, in the environ case, and not by every route.
 */
import { createHash } from 'node:crypto';
import type { App, Environ } from '../../lib/gateway/types.js';
import { validate } from '../../lib/gateway/validate.js';

const TEXT: [string, string][] = [['Content-Type', 'text/plain']];

/** The streamed download: 160 chunks of 64 KiB (10 MiB), each numbered. */
export const DOWNLOAD_CHUNK = 64 * 1024;
export const DOWNLOAD_CHUNKS = 160;

/** Chunk `i` of the download: its number in the first 4 bytes, then `i & 0xff`. */
export function downloadChunk(i: number): Buffer {
  const b = Buffer.alloc(DOWNLOAD_CHUNK, i & 0xff);
  b.writeUInt32BE(i, 0);
  return b;
}

/** The environ keys the environ case reports (null when absent). */
export const ENVIRON_KEYS = [
  'REQUEST_METHOD',
  'SCRIPT_NAME',
  'PATH_INFO',
  'QUERY_STRING',
  'CONTENT_LENGTH',
  'SERVER_PROTOCOL',
  'HTTP_HOST',
  'tsgi.url_scheme',
  'tsgi.protocol',
] as const;

const hex = (s: unknown) =>
  typeof s === 'string' ? Buffer.from(s, 'latin1').toString('hex') : null;

/** The request path after the mount segment: "/fcgi/a/b" → "/a/b". */
function route(env: Environ): string {
  const full = env.SCRIPT_NAME + env.PATH_INFO;
  const slash = full.indexOf('/', 1);
  return slash === -1 ? '' : full.slice(slash);
}

async function readBody(env: Environ): Promise<{ length: number; sha256: string }> {
  const h = createHash('sha256');
  let length = 0;
  for await (const c of env['tsgi.input']) {
    h.update(c as Buffer);
    length += (c as Buffer).length;
  }
  return { length, sha256: h.digest('hex') };
}

const json = (start: Parameters<App>[1], value: unknown) => {
  start('200 OK', [['Content-Type', 'application/json']]);
  return [JSON.stringify(value)];
};

const routes: App = async (env, start) => {
  const path = route(env);
  if (path === '/query') {
    start('200 OK', TEXT);
    return [env.QUERY_STRING];
  }
  if (path === '/upload') {
    const body = await readBody(env);
    return json(start, { contentLength: env.CONTENT_LENGTH ?? null, ...body });
  }
  if (path.startsWith('/bytes/')) {
    return json(start, {
      path: hex(path),
      query: hex(env.QUERY_STRING),
      header: hex(env.HTTP_X_HIGH),
    });
  }
  if (path === '/headers') {
    return json(start, {
      multi: env.HTTP_X_MULTI ?? null,
      cookie: env.HTTP_COOKIE ?? null,
      fooBar: env.HTTP_X_FOO_BAR ?? null,
    });
  }
  if (path.startsWith('/environ/')) {
    return json(
      start,
      Object.fromEntries(ENVIRON_KEYS.map((k) => [k, (env[k] as string | undefined) ?? null])),
    );
  }
  if (path === '/redirect') {
    start('302 Found', [['Location', 'http://elsewhere.example/target']]);
    return [];
  }
  if (path === '/error') throw new Error('deliberate failure of the matrix app');
  if (path === '/download') {
    start('200 OK', [['Content-Type', 'application/octet-stream']]);
    return (async function* () {
      for (let i = 0; i < DOWNLOAD_CHUNKS; i++) yield downloadChunk(i);
    })();
  }
  if (path === '/pid') {
    start('200 OK', TEXT);
    return [String(process.pid)];
  }
  start('404 Not Found', TEXT);
  return [`no route ${path}`];
};

/** The matrix app, checked on both sides by validate(). */
export const matrixApp: App = validate(routes);
export default matrixApp;
