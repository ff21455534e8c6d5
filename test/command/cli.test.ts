import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../support/build.js';
import { FcgiClient, params, parseCgi } from '../support/fcgi-client.js';
import { startChild, type Child } from '../support/spawn.js';
import { VERSION } from '../../lib/version.js';

let cli = '';
const dir = mkdtempSync(join(tmpdir(), 'tsgi-cli-'));
const children: Child[] = [];
const servers: Server[] = [];

beforeAll(async () => {
  cli = await ensureBuilt();
  const files: Record<string, string> = {
    'hello.mjs': `export default (env, start) => { start('200 OK', [['Content-Type', 'text/plain']]); return ['default ' + env.PATH_INFO]; };
export const other = (env, start) => { start('200 OK', [['Content-Type', 'text/plain']]); return ['other']; };`,
    'application.mjs': `export const application = (env, start) => { start('200 OK', [['Content-Type', 'text/plain']]); return ['application']; };
export const app = () => { throw new Error('not this one'); };`,
    'app.mjs': `export const app = (env, start) => { start('200 OK', [['Content-Type', 'text/plain']]); return ['app']; };`,
    'factory.mjs': `let calls = 0;
export default async () => { calls++; const n = calls; return (env, start) => { start('200 OK', [['Content-Type', 'text/plain']]); return ['factory call ' + n]; }; };`,
    'none.mjs': `export const handler = 1; export const other = 2;`,
    'notfn.mjs': `export default 'a string';`,
    'broken.mjs': `export default (;`,
    'slow.mjs': `export default async (env, start) => {
  await new Promise((r) => setTimeout(r, 300));
  start('200 OK', [['Content-Type', 'text/plain']]);
  return ['slow done'];
};`,
  };
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
});

afterEach(async () => {
  for (const c of children.splice(0)) await c.stop();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, ...args], { cwd: dir }, (err, stdout, stderr) => {
      const code = err ? ((err as { code?: number }).code ?? 1) : 0;
      resolve({ code, stdout, stderr });
    });
  });
}

function serve(args: string[], stdin: 'ignore' | number = 'ignore'): Child {
  const child = startChild(process.execPath, [cli, 'serve', ...args], {
    cwd: dir,
    stdio: [stdin, 'pipe', 'pipe'],
  });
  children.push(child);
  return child;
}

async function get(port: number, path = '/'): Promise<string> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`);
  return `${res.status} ${await res.text()}`;
}

const listening = (child: Child, kind = 'HTTP') =>
  child
    .waitForStderr(new RegExp(`over ${kind} on (?:127\\.0\\.0\\.1:([0-9]+)|(\\S+)) \\(`))
    .then((m) => m[1] ?? m[2]!);

describe('tsgi command', () => {
  it('prints its version and help', async () => {
    expect(await run(['--version'])).toEqual({ code: 0, stdout: `tsgi ${VERSION}\n`, stderr: '' });
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: tsgi serve APP\[:EXPORT\] \[options\]\n/);
    expect(help.stdout).toContain('--fastcgi ADDR');
    expect((await run(['serve', '--help'])).stdout).toBe(help.stdout);
    const none = await run([]);
    expect(none).toEqual({ code: 2, stdout: '', stderr: help.stdout });
  });

  it('refuses bad usage with status 2', async () => {
    expect(await run(['frobnicate'])).toEqual({
      code: 2,
      stdout: '',
      stderr:
        'tsgi: unknown command "frobnicate"; the commands are serve, cgi, request, help (tsgi --help)\n',
    });
    const bogus = await run(['serve', 'hello.mjs', '--bogus']);
    expect(bogus.code).toBe(2);
    expect(bogus.stderr).toBe('tsgi: unknown option --bogus (tsgi --help lists the options)\n');
    expect(await run(['serve'])).toMatchObject({
      code: 2,
      stderr: 'tsgi: serve needs an APP module\n',
    });
    expect(await run(['serve', 'hello.mjs', '--http', 'nowhere'])).toMatchObject({
      code: 2,
      stderr: 'tsgi: "nowhere": expected HOST:PORT, :PORT, unix:/path or fd:N\n',
    });
    expect(await run(['serve', 'hello.mjs', '--interface', 'wsgi'])).toMatchObject({ code: 2 });
  });

  it('explains a missing module, a missing export, an export that is not a function', async () => {
    const cases: [string[], string][] = [
      [['nope.mjs'], `tsgi: cannot find the app module "nope.mjs" (${join(dir, 'nope.mjs')})\n`],
      [
        ['hello.mjs:missing'],
        'tsgi: "hello.mjs" has no export named "missing" (it exports: default, other)\n',
      ],
      [
        ['none.mjs'],
        'tsgi: "none.mjs" has no default export and no export named "application" or "app" ' +
          '(it exports: handler, other); name one as none.mjs:NAME\n',
      ],
      [
        ['notfn.mjs'],
        'tsgi: the export "default" of "notfn.mjs" is a string, not an app: a TSGI function, a node (req, res) handler, an Express, Koa or Fastify app, or an object with fetch()\n',
      ],
      [
        ['none.mjs:handler'],
        'tsgi: the export "handler" of "none.mjs" is number 1, not an app: a TSGI function, a node (req, res) handler, an Express, Koa or Fastify app, or an object with fetch()\n',
      ],
      [['hello.mjs:other', '--factory'], 'tsgi: the factory "other" of "hello.mjs" failed: '],
    ];
    for (const [args, message] of cases) {
      const r = await run(['serve', ...args, '--http', '127.0.0.1:0']);
      expect(r.code).toBe(1);
      expect(r.stderr.startsWith(message)).toBe(true);
    }
    const broken = await run(['serve', 'broken.mjs', '--http', '127.0.0.1:0']);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(
      /^tsgi: cannot load the app module "broken.mjs" \(line 1\): Unexpected token/,
    );
  });

  it('reports a busy port', async () => {
    const busy = createServer();
    servers.push(busy);
    await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
    const port = (busy.address() as AddressInfo).port;
    expect(await run(['serve', 'hello.mjs', '--fastcgi', `127.0.0.1:${port}`])).toEqual({
      code: 1,
      stdout: '',
      stderr: `tsgi: cannot listen on 127.0.0.1:${port}: address already in use\n`,
    });
  });

  it('picks the default export, else application, else app, or the named one', async () => {
    const cases: [string, string][] = [
      ['hello.mjs', 'default /x'],
      ['hello.mjs:other', 'other'],
      ['application.mjs', 'application'],
      ['app.mjs', 'app'],
      ['factory.mjs', 'factory call 1'],
    ];
    for (const [spec, body] of cases) {
      const child = serve([
        spec,
        '--http',
        '127.0.0.1:0',
        ...(spec.startsWith('factory') ? ['--factory'] : []),
      ]);
      const port = Number(await listening(child));
      expect(await get(port, '/x')).toBe(`200 ${body}`);
      if (spec.startsWith('factory')) expect(await get(port)).toBe('200 factory call 1');
      await child.stop();
    }
  });

  it('serves FastCGI on a unix socket and HTTP at once, and drains on SIGTERM', async () => {
    const sock = join(dir, 'fcgi.sock');
    const child = serve(['slow.mjs', '--fastcgi', `unix:${sock}`, '--http', '127.0.0.1:0']);
    const port = Number(await listening(child));
    expect(await listening(child, 'FastCGI')).toBe(`unix:${sock}`);
    const c = await FcgiClient.connect(sock);
    c.request(1, params('/'), '', { keepConn: true });
    const http = get(port);
    await new Promise((r) => setTimeout(r, 100));
    child.proc.kill('SIGTERM');
    expect(parseCgi((await c.reply(1)).stdout).body).toBe('slow done');
    expect(await http).toBe('200 slow done');
    await c.whenClosed();
    expect(await child.exited).toBe(0);
    expect(child.stderr()).toContain('tsgi: SIGTERM: finishing running requests\ntsgi: stopped\n');
  });

  it('stops at once on SIGINT when idle', async () => {
    const child = serve(['hello.mjs', '--http', '127.0.0.1:0']);
    await listening(child);
    child.proc.kill('SIGINT');
    expect(await child.exited).toBe(0);
  });

  it('serves FastCGI on fd 0 when it is a listening socket (spawned by a web server)', async () => {
    const listener = createServer();
    servers.push(listener);
    await new Promise<void>((r) => listener.listen(0, '127.0.0.1', r));
    const port = (listener.address() as AddressInfo).port;
    const fd = (listener as unknown as { _handle: { fd: number } })._handle.fd;
    const child = serve(['hello.mjs'], fd);
    expect(await listening(child, 'FastCGI')).toBe('fd:0');
    /* the parent's copy must not accept: close it, the child keeps its own */
    await new Promise((r) => listener.close(r));
    servers.length = 0;
    const c = await FcgiClient.connect(port);
    c.request(1, params('/fd0'));
    expect(parseCgi((await c.reply(1)).stdout).body).toBe('default /fd0');
  });

  it('falls back to HTTP on 127.0.0.1:8000 when fd 0 is not a listening socket', async () => {
    const child = serve(['hello.mjs']);
    const m = await child.waitForStderr(
      /over HTTP on 127\.0\.0\.1:8000 |cannot listen on 127\.0\.0\.1:8000: /,
    );
    expect(m[0]).toMatch(/8000/);
  });
});
