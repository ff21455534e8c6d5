/**
 * The Express rows of `npm run bench:e2e` (docs/benchmarks.md), added to bench/e2e.ts's tables:
 *
 *   express-tsgi-fastcgi   bench/e2e/express-hello.mjs under `tsgi serve --interface node`
 *                          over FastCGI, fastcgi_keep_conn on, upstream keepalive
 *   express-node-http      the same app on plain node:http, nginx proxy_pass (HTTP/1.1
 *                          keepalive): target express-tsgi-fastcgi ≥ 1.0× this row
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const CLI = join(HERE, '..', '..', 'dist', 'cli.js');

type Start = (what: string, cmd: string, args: string[]) => ChildProcess;

/** The backends of the Express rows, for bench/e2e.ts's BACKENDS table. */
export function expressBackends(start: Start) {
  return {
    'tsgi-express': {
      missing: () => null,
      start: (p: Record<string, number>) =>
        start('tsgi --interface node (Express)', process.execPath, [
          CLI,
          'serve',
          join(HERE, 'express-hello.mjs'),
          '--interface',
          'node',
          '--fastcgi',
          `127.0.0.1:${p['express-tsgi-fastcgi']}`,
        ]),
    },
    'express-node-http': {
      missing: () => null,
      start: (p: Record<string, number>) =>
        start('Express on node:http', process.execPath, [
          join(HERE, 'express-node-http.mjs'),
          `127.0.0.1:${p['express-node-http']}`,
        ]),
    },
  };
}

/** The rows, for bench/e2e.ts's ROWS table (its FastCGI and proxy_pass locations). */
export function expressRows(
  fastcgi: (upstream: string) => string,
  proxy: (upstream: string) => string,
) {
  return [
    { name: 'express-tsgi-fastcgi', backend: 'tsgi-express', location: fastcgi, keepalive: true },
    { name: 'express-node-http', backend: 'express-node-http', location: proxy, keepalive: true },
  ];
}

/** Target ratios [a, b, minimum of a/b] for bench/e2e.ts's RATIOS table. */
export const EXPRESS_RATIOS: [string, string, number | null][] = [
  ['express-tsgi-fastcgi', 'express-node-http', 1],
];
