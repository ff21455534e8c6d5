/**
 * The framework rows of `npm run bench:e2e`, added to bench/e2e.ts's tables. For each of
 * Express, Koa, Fastify and Hono (bench/e2e/<framework>-hello.mjs, the same body and
 * Content-Type as every other row):
 *
 *   <framework>-tsgi-fastcgi   the app under `tsgi serve --interface node|fetch` over FastCGI,
 *                              fastcgi_keep_conn on, upstream keepalive
 *   <framework>-own            the app on its own server (bench/e2e/own-server.mjs: Express's
 *                              and Koa's app.listen(), Fastify's listen(), @hono/node-server),
 *                              nginx proxy_pass (HTTP/1.1 keepalive): target the tsgi row
 *                              ≥ 1.0× this one
 *
 * and express-tsgi-http: Express under the same tsgi process over its HTTP listener (node's own
 * req/res, nothing in between), proxy_pass: target ≥ 0.98× express-own.
 */
import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const HERE = fileURLToPath(new URL('.', import.meta.url));
const CLI = join(HERE, '..', '..', 'dist', 'cli.js');

type Start = (what: string, cmd: string, args: string[]) => ChildProcess;
type Ports = Record<string, number>;

const FRAMEWORKS = [
  { name: 'express', title: 'Express', iface: 'node' },
  { name: 'koa', title: 'Koa', iface: 'node' },
  { name: 'fastify', title: 'Fastify', iface: 'node' },
  { name: 'hono', title: 'Hono', iface: 'fetch' },
] as const;

/** The backends of the framework rows, for bench/e2e.ts's BACKENDS table. */
export function frameworkBackends(start: Start) {
  const backends: Record<string, { missing: () => null; start: (p: Ports) => ChildProcess }> = {};
  for (const f of FRAMEWORKS) {
    backends[`tsgi-${f.name}`] = {
      missing: () => null,
      start: (p) => {
        const args = [CLI, 'serve', join(HERE, `${f.name}-hello.mjs`), '--interface', f.iface];
        const fcgi = p[`${f.name}-tsgi-fastcgi`];
        if (fcgi !== undefined) args.push('--fastcgi', `127.0.0.1:${fcgi}`);
        const http = p[`${f.name}-tsgi-http`];
        if (http !== undefined) args.push('--http', `127.0.0.1:${http}`);
        return start(`tsgi --interface ${f.iface} (${f.title})`, process.execPath, args);
      },
    };
    backends[`${f.name}-own`] = {
      missing: () => null,
      start: (p) =>
        start(`${f.title} on its own server`, process.execPath, [
          join(HERE, 'own-server.mjs'),
          f.name,
          `127.0.0.1:${p[`${f.name}-own`]}`,
        ]),
    };
  }
  return backends;
}

/** The rows, for bench/e2e.ts's ROWS table (its FastCGI and proxy_pass locations). */
export function frameworkRows(
  fastcgi: (upstream: string) => string,
  proxy: (upstream: string) => string,
) {
  const rows = [];
  for (const f of FRAMEWORKS) {
    rows.push(
      {
        name: `${f.name}-tsgi-fastcgi`,
        backend: `tsgi-${f.name}`,
        location: fastcgi,
        keepalive: true,
      },
      { name: `${f.name}-own`, backend: `${f.name}-own`, location: proxy, keepalive: true },
    );
  }
  rows.push({
    name: 'express-tsgi-http',
    backend: 'tsgi-express',
    location: proxy,
    keepalive: true,
  });
  return rows;
}

/** Target ratios [a, b, minimum of a/b] for bench/e2e.ts's RATIOS table. */
export const FRAMEWORK_RATIOS: [string, string, number | null][] = [
  ...FRAMEWORKS.map((f): [string, string, number] => [
    `${f.name}-tsgi-fastcgi`,
    `${f.name}-own`,
    1,
  ]),
  ['express-tsgi-http', 'express-own', 0.98],
];
