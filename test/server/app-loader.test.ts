/**
 * Apps written as people write them: an Express app, a Koa and a Fastify instance and an
 * object with fetch() served without --interface; a plain function stays TSGI, and a node
 * (req, res) handler served as TSGI gets an error naming --interface node; CommonJS
 * `exports.app` and gunicorn's `module:attr`; TypeScript apps (stripped by Node where it can,
 * else the exact command that works); an app that calls listen() itself is warned about once
 * and its workers do not crash-loop.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../support/build.js';
import { startChild, type Child } from '../support/spawn.js';

let cli = '';
/* inside the repository, so that the apps find express, koa, fastify and tsx */
const dir = mkdtempSync(join(ROOT, 'test', '.app-loading-'));
const children: Child[] = [];

const TEXT = `[['Content-Type', 'text/plain']]`;
const FILES: Record<string, string> = {
  'express.mjs': `import express from 'express';
const app = express();
app.get('/', (req, res) => res.type('text/plain').send('express ' + req.ip));
export default app;`,
  'koa.mjs': `import Koa from 'koa';
const app = new Koa();
app.use((ctx) => { ctx.body = 'koa ' + ctx.path; });
export default app;`,
  'fastify.mjs': `import Fastify from 'fastify';
const app = Fastify();
app.get('/', async () => 'fastify');
export default app;`,
  'fetch.mjs': `export default { fetch: (request) => new Response('fetch ' + new URL(request.url).pathname) };`,
  'tsgi.mjs': `export default (env, start) => { start('200 OK', ${TEXT}); return ['tsgi ' + env.PATH_INFO]; };`,
  'fetchfn.mjs': `export default async (request) => new Response('fetch fn');`,
  'handler.mjs': `export default (req, res) => { res.setHeader('Content-Type', 'text/plain'); res.end('node'); };`,
  'exports.cjs': `exports.app = (env, start) => { start('200 OK', ${TEXT}); return ['cjs app']; };
exports.other = (env, start) => { start('200 OK', ${TEXT}); return ['cjs other']; };`,
  'typed.ts': `type Start = (status: string, headers: [string, string][]) => void;
export default (env: Record<string, string>, start: Start): string[] => {
  start('200 OK', [['Content-Type', 'text/plain']]);
  return ['typescript ' + env.PATH_INFO];
};`,
  'listens.mjs': `import express from 'express';
const app = express();
app.get('/', (req, res) => res.type('text/plain').send('served by tsgi'));
app.listen(PORT, () => console.error('app says: listening'));
export default app;`,
};

beforeAll(async () => {
  cli = await ensureBuilt();
  for (const [name, text] of Object.entries(FILES)) writeFileSync(join(dir, name), text);
});
afterEach(async () => {
  for (const c of children.splice(0)) await c.stop();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function serve(args: string[], env: Record<string, string> = {}): Child {
  const child = startChild(process.execPath, [cli, 'serve', ...args], {
    cwd: dir,
    env: { ...process.env, ...env },
  });
  children.push(child);
  return child;
}

/** Serves APP on HTTP and answers GET `path`: "STATUS BODY". */
async function served(args: string[], path = '/x'): Promise<{ reply: string; child: Child }> {
  const child = serve([...args, '--http', '127.0.0.1:0']);
  const m = await child.waitForStderr(/over HTTP on 127\.0\.0\.1:([0-9]+) \(/);
  const res = await fetch(`http://127.0.0.1:${m[1]}${path}`);
  return { reply: `${res.status} ${await res.text()}`, child };
}

describe('the interface is detected from the export', () => {
  it('Express, Koa, Fastify and an object with fetch() are served without --interface', async () => {
    expect((await served(['express.mjs'], '/')).reply).toBe('200 express 127.0.0.1');
    expect((await served(['koa.mjs'], '/k')).reply).toBe('200 koa /k');
    expect((await served(['fastify.mjs'], '/')).reply).toBe('200 fastify');
    expect((await served(['fetch.mjs'], '/f')).reply).toBe('200 fetch /f');
  });

  it('a plain function stays TSGI', async () => {
    expect((await served(['tsgi.mjs'], '/p')).reply).toBe('200 tsgi /p');
  });

  it('a node handler called as TSGI: 500 and an error naming --interface node', async () => {
    const { reply, child } = await served(['handler.mjs']);
    expect(reply).toBe('500 Internal Server Error\n');
    await child.waitForStderr(/is not a function/);
    expect(child.stderr()).toContain(
      'TypeError: res.setHeader is not a function (the app looks like a node (req, res) handler, called here as a TSGI app: serve it with --interface node)',
    );
    /* and with the option it is served */
    expect((await served(['handler.mjs', '--interface', 'node'])).reply).toBe('200 node');
  });

  it('a fetch function called as TSGI: 500 and an error naming --interface fetch', async () => {
    const { reply, child } = await served(['fetchfn.mjs']);
    expect(reply).toBe('500 Internal Server Error\n');
    await child.waitForStderr(/--interface fetch/);
    expect(child.stderr()).toContain(
      'TypeError: the app returned a Response: it is a fetch handler, called here as a TSGI app: serve it with --interface fetch',
    );
    expect((await served(['fetchfn.mjs', '--interface', 'fetch'])).reply).toBe('200 fetch fn');
  });
});

describe('app modules', () => {
  it('CommonJS exports.app is found; module:attr picks one, with or without the extension', async () => {
    expect((await served(['exports.cjs'])).reply).toBe('200 cjs app');
    expect((await served(['exports.cjs:other'])).reply).toBe('200 cjs other');
    expect((await served(['exports:other'])).reply).toBe('200 cjs other');
    expect((await served(['tsgi:default'])).reply).toBe('200 tsgi /x');
  });

  it('TypeScript: served where Node strips types, else the command that works', async () => {
    const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
    const strips = major > 23 || (major === 23 && minor >= 6) || (major === 22 && minor >= 18);
    if (strips) {
      expect((await served(['typed.ts'])).reply).toBe('200 typescript /x');
      return;
    }
    const child = serve(['typed.ts', '--http', '127.0.0.1:0']);
    expect(await child.exited).toBe(1);
    const flagged = (major === 22 && minor >= 6) || major === 23;
    const advice = flagged
      ? `tsgi: cannot load the app module "typed.ts": Node.js ${process.versions.node} runs TypeScript only with --experimental-strip-types (by default from 22.18 and 23.6): NODE_OPTIONS=--experimental-strip-types npx tsgi serve typed.ts --http 127.0.0.1:0\n`
      : `tsgi: cannot load the app module "typed.ts": Node.js ${process.versions.node} cannot run TypeScript itself (22.18+ and 23.6+ can; 22.6+ with --experimental-strip-types); with tsx: npm install --save-dev tsx, then: NODE_OPTIONS="--import tsx" npx tsgi serve typed.ts --http 127.0.0.1:0\n`;
    expect(child.stderr()).toBe(advice);
    /* the command it gives works (tsx is a devDependency of tsgi) */
    const fixed = flagged ? '--experimental-strip-types' : '--import tsx';
    const again = serve(['typed.ts', '--http', '127.0.0.1:0'], { NODE_OPTIONS: fixed });
    const m = await again.waitForStderr(/over HTTP on 127\.0\.0\.1:([0-9]+) \(/);
    const res = await fetch(`http://127.0.0.1:${m[1]}/t`);
    expect(`${res.status} ${await res.text()}`).toBe('200 typescript /t');
  });

  it('an app that calls listen() itself: one warning, the workers serve and do not crash-loop', async () => {
    /* the port the app asks for is held by another process: a real listen would fail */
    const { createServer } = await import('node:net');
    const busy = createServer();
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as { port: number }).port;
    writeFileSync(join(dir, 'listens.mjs'), FILES['listens.mjs']!.replace('PORT', String(port)));
    try {
      const child = serve(['listens.mjs', '--http', '127.0.0.1:0', '--workers', '2']);
      const m = await child.waitForStderr(/over HTTP on 127\.0\.0\.1:([0-9]+) \(/);
      for (let i = 0; i < 4; i++) {
        const res = await fetch(`http://127.0.0.1:${m[1]}/`);
        expect(`${res.status} ${await res.text()}`).toBe('200 served by tsgi');
      }
      const warning =
        `"listens.mjs" calls listen(${port}) itself; tsgi serves the app on its own listeners, ` +
        'so that server was moved to a free port on 127.0.0.1 (remove the listen() call, or run ' +
        'it only when the module is the main program)';
      const lines = child.stderr().split('\n');
      expect(lines.filter((l) => l.includes('calls listen('))).toEqual([`tsgi: ${warning}`]);
      expect(child.stderr()).not.toMatch(/EADDRINUSE|exited with status|killed/);
      /* the app's own callback still ran (in both workers) */
      expect(lines.filter((l) => l === 'app says: listening').length).toBe(2);
    } finally {
      busy.close();
    }
  });
});
