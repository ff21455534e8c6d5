/**
 * examples/express, koa, fastify, hono and fetch: each started with the `tsgi serve` line
 * written at the top of its file (plus `--http` on a port picked here), through the built CLI,
 * then asked over HTTP. Exact status, Content-Type and body.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../support/build.js';
import { waitUntilAccepting } from '../support/frontends.js';
import { unsupportedOnThisNode, warnUnsupported } from '../support/engines.js';
import { freePort } from '../support/peers.js';
import { startChild, type Child } from '../support/spawn.js';

interface Check {
  method?: string;
  path: string;
  body?: string;
  status: number;
  type: string;
  /** The expected body; PORT is replaced by the server's port. */
  text: string;
  cookies?: string[];
}

const ALL_EXAMPLES: { file: string; packages: string[]; checks: Check[] }[] = [
  {
    file: 'examples/express/app.mjs',
    packages: ['express'],
    checks: [
      {
        path: '/',
        status: 200,
        type: 'text/plain; charset=utf-8',
        text: 'Hello from Express! You are 127.0.0.1 over http.\n',
      },
      {
        method: 'POST',
        path: '/api/echo',
        body: '{"a":[1,2]}',
        status: 201,
        type: 'application/json; charset=utf-8',
        text: '{"youSent":{"a":[1,2]}}',
      },
      {
        path: '/api/stream',
        status: 200,
        type: 'text/plain; charset=utf-8',
        text: 'tick 1\ntick 2\ntick 3\n',
      },
    ],
  },
  {
    file: 'examples/koa/app.mjs',
    packages: ['koa', '@koa/router', '@koa/bodyparser'],
    checks: [
      {
        path: '/',
        status: 200,
        type: 'text/plain; charset=utf-8',
        text: 'Hello from Koa! You are 127.0.0.1 over http.\n',
      },
      {
        method: 'POST',
        path: '/api/echo',
        body: '{"a":[1,2]}',
        status: 201,
        type: 'application/json; charset=utf-8',
        text: '{"youSent":{"a":[1,2]}}',
      },
    ],
  },
  {
    file: 'examples/fastify/app.mjs',
    packages: ['fastify'],
    checks: [
      {
        path: '/',
        status: 200,
        type: 'text/plain; charset=utf-8',
        text: 'Hello from Fastify! You are 127.0.0.1 over http.\n',
      },
      {
        method: 'POST',
        path: '/api/echo',
        body: '{"a":[1,2]}',
        status: 201,
        type: 'application/json; charset=utf-8',
        text: '{"youSent":{"a":[1,2]}}',
      },
    ],
  },
  {
    file: 'examples/hono/app.mjs',
    packages: ['hono'],
    checks: [
      {
        path: '/',
        status: 200,
        type: 'text/plain;charset=UTF-8',
        text: 'Hello from Hono! You are 127.0.0.1 at http://127.0.0.1:PORT/\n',
      },
      {
        method: 'POST',
        path: '/api/echo',
        body: '{"a":[1,2]}',
        status: 201,
        type: 'application/json',
        text: '{"youSent":{"a":[1,2]}}',
      },
      {
        path: '/api/events',
        status: 200,
        type: 'text/event-stream',
        text: 'data: tick 1\n\ndata: tick 2\n\ndata: tick 3\n\n',
      },
    ],
  },
  {
    file: 'examples/fetch/hello.mjs',
    packages: [],
    checks: [
      {
        path: '/some/where',
        status: 200,
        type: 'text/plain; charset=utf-8',
        text: 'Hello from a fetch handler! You asked for /some/where\n',
        cookies: ['visited=1; Path=/', 'theme=light; Path=/'],
      },
      {
        method: 'POST',
        path: '/p',
        body: 'twelve bytes',
        status: 200,
        type: 'application/json',
        text: '{"path":"/p","received":12}',
      },
    ],
  },
];

/** The arguments of the `npx tsgi serve …` line in the example's header comment. */
function serveLine(file: string): string[] {
  const text = readFileSync(join(ROOT, file), 'utf8');
  const m = /^\/\/\s+npx tsgi serve (.+)$/m.exec(text);
  if (m === null) throw new Error(`${file} has no "npx tsgi serve" line in its header`);
  return m[1]!.trim().split(/\s+/);
}

/* the Node version matrix: an example whose packages do not support this Node is skipped */
const EXAMPLES = ALL_EXAMPLES.filter((e) => {
  const reason = unsupportedOnThisNode(e.packages);
  if (reason === null) return true;
  warnUnsupported(e.file, reason);
  describe.skip(`${e.file} (${reason})`, () => {});
  return false;
});

describe.each(EXAMPLES)('$file', ({ file, checks }) => {
  let child: Child;
  let port = 0;

  beforeAll(async () => {
    const cli = await ensureBuilt();
    const args = serveLine(file);
    expect(args[0]).toBe(file);
    port = await freePort();
    child = startChild(process.execPath, [cli, 'serve', ...args, '--http', `127.0.0.1:${port}`], {
      cwd: ROOT,
    });
    await waitUntilAccepting(child, `tsgi serve ${file}`, port);
  }, 60_000);

  afterAll(async () => {
    await child?.stop();
  });

  for (const c of checks) {
    it(`${c.method ?? 'GET'} ${c.path}`, async () => {
      const res = await fetch(`http://127.0.0.1:${port}${c.path}`, {
        method: c.method ?? 'GET',
        body: c.body,
        headers: c.body === undefined ? {} : { 'Content-Type': 'application/json' },
      });
      expect(res.status).toBe(c.status);
      expect(res.headers.get('content-type')).toBe(c.type);
      expect(await res.text()).toBe(c.text.replace('PORT', String(port)));
      if (c.cookies) expect(res.headers.getSetCookie()).toEqual(c.cookies);
    });
  }
});
