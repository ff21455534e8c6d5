/**
 * `tsgi serve --workers N`: the master and its workers (lib/server/master.ts, worker.ts) run as
 * the built CLI, talked to directly over HTTP and FastCGI: sharing the listeners, replacing a
 * worker that dies, reporting an app that cannot load once, giving up on workers that die at
 * start-up, --max-requests, reloads (SIGHUP, --reload, a broken app during a reload), the
 * graceful stop and --graceful-timeout, and workers that leave with their master.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../support/build.js';
import { FcgiClient, params, parseCgi } from '../support/fcgi-client.js';
import { freePort } from '../support/peers.js';
import { getStats, httpGet, startTsgi, tick, waitFor } from '../support/process-manager.js';
import type { Child } from '../support/spawn.js';

const TEXT = `[['Content-Type', 'text/plain']]`;
const FILES: Record<string, string> = {
  'app.mjs': `export default async (env, start) => {
  if (env.PATH_INFO === '/crash') process.exit(3);
  if (env.PATH_INFO === '/slow') await new Promise((r) => setTimeout(r, 400));
  if (env.PATH_INFO === '/hang') await new Promise(() => {});
  start('200 OK', ${TEXT});
  return [process.pid + ' ' + env['tsgi.multiprocess'] + ' ' + env['tsgi.protocol']];
};`,
  'broken.mjs': `throw new Error('database unreachable');`,
  'exits.mjs': `process.exit(3);`,
};

let cli = '';
const dir = mkdtempSync(join(tmpdir(), 'tsgi-workers-'));
const children: Child[] = [];

beforeAll(async () => {
  cli = await ensureBuilt();
  for (const [name, text] of Object.entries(FILES)) writeFileSync(join(dir, name), text);
});
afterEach(async () => {
  for (const c of children.splice(0)) await c.stop();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function tsgi(args: string[], lines = 1): Promise<Child> {
  const child = await startTsgi(cli, args, { cwd: dir, lines });
  children.push(child);
  return child;
}

function run(args: string[]): Promise<{ code: number; stderr: string; ms: number }> {
  const t0 = Date.now();
  return new Promise((resolve) => {
    execFile(process.execPath, [cli, 'serve', ...args], { cwd: dir }, (err, _out, stderr) =>
      resolve({
        code: err ? ((err as { code?: number }).code ?? 1) : 0,
        stderr,
        ms: Date.now() - t0,
      }),
    );
  });
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('master and workers', () => {
  it('N workers share every listener (TCP and unix); the master serves nothing itself', async () => {
    const [port, statsPort] = [await freePort(), await freePort()];
    const sock = join(dir, 'share.sock');
    const child = await tsgi(
      [
        'app.mjs',
        '--workers',
        '2',
        '--http',
        `127.0.0.1:${port}`,
        '--fastcgi',
        `unix:${sock}`,
        '--stats',
        `127.0.0.1:${statsPort}`,
      ],
      2,
    );
    expect(child.stderr()).toMatch(
      new RegExp(
        `tsgi: serving app\\.mjs over HTTP on 127\\.0\\.0\\.1:${port} \\((native|ts) codec, 2 workers\\)\n`,
      ),
    );
    const workers = (await getStats(statsPort)).workers.map((w) => w.pid).sort();
    expect(workers.length).toBe(2);
    expect(workers).not.toContain(child.proc.pid);
    const seen = new Set<number>();
    for (let i = 0; i < 200 && seen.size < 2; i++) {
      const [pid, multiprocess, protocol] = (await httpGet(port, '/')).body.split(' ');
      expect([multiprocess, protocol]).toEqual(['true', 'http']);
      seen.add(Number(pid));
    }
    expect([...seen].sort()).toEqual(workers);
    const c = await FcgiClient.connect(sock);
    c.request(1, params('/'), '');
    const body = parseCgi((await c.reply(1)).stdout).body.split(' ');
    expect(workers).toContain(Number(body[0]));
    expect(body.slice(1)).toEqual(['true', 'fastcgi']);
    await child.stop();
    expect(await child.exited).toBe(0);
    for (const pid of workers) expect(alive(pid)).toBe(false);
  });

  it('replaces a worker that dies, without touching the others', async () => {
    const [port, statsPort] = [await freePort(), await freePort()];
    const child = await tsgi([
      'app.mjs',
      '--workers',
      '2',
      '--http',
      `127.0.0.1:${port}`,
      '--stats',
      `127.0.0.1:${statsPort}`,
    ]);
    const before = (await getStats(statsPort)).workers;
    await expect(httpGet(port, '/crash')).rejects.toThrow(/socket hang up|ECONNRESET/);
    const m = await child.waitForStderr(
      /tsgi: worker ([12]) \(pid ([0-9]+)\) exited with status 3\n/,
    );
    const dead = Number(m[2]);
    const after = await waitFor('the replacement', async () => {
      const s = await getStats(statsPort);
      return s.workers.length === 2 && s.workers.every((w) => w.state === 'ready' && w.pid !== dead)
        ? s.workers
        : undefined;
    });
    const kept = before.find((w) => w.pid !== dead)!;
    expect(after.find((w) => w.id === kept.id)).toMatchObject({ pid: kept.pid, restarts: 0 });
    expect(after.find((w) => w.id === Number(m[1]))!.restarts).toBe(1);
    expect((await httpGet(port, '/')).status).toBe(200);
  });

  it('reports an app that cannot load once, and exits with status 1 (no respawn loop)', async () => {
    const r = await run(['broken.mjs', '--workers', '3', '--http', '127.0.0.1:0']);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('tsgi: cannot load the app module "broken.mjs": database unreachable\n');
  });

  it('gives up when workers die at start-up five times in a row (with backoff)', async () => {
    const r = await run(['exits.mjs', '--workers', '1', '--http', '127.0.0.1:0']);
    expect(r.code).toBe(1);
    const lines = r.stderr.trimEnd().split('\n');
    expect(lines.length).toBe(2);
    expect(lines[0]).toMatch(
      /^tsgi: worker 1 \(pid [0-9]+\) exited with status 3 before it was ready; retrying with backoff$/,
    );
    expect(lines[1]).toMatch(
      /^tsgi: worker 1 \(pid [0-9]+\) exited with status 3 before it was ready \(5 times in a row\): giving up$/,
    );
  });

  it('--max-requests recycles a worker: its replacement starts first, no request fails', async () => {
    const port = await freePort();
    const child = await tsgi([
      'app.mjs',
      '--max-requests',
      '5',
      '--max-requests-jitter',
      '0',
      '--http',
      `127.0.0.1:${port}`,
    ]);
    const pids: number[] = [];
    for (let i = 0; i < 300 && new Set(pids).size < 3; i++) {
      const r = await httpGet(port, '/');
      expect(r.status).toBe(200);
      pids.push(Number(r.body.split(' ')[0]));
      await tick(20);
    }
    const distinct = [...new Set(pids)];
    expect(distinct.length).toBeGreaterThanOrEqual(3);
    /* each worker served at least its 5 requests, and none once its successor took over */
    for (const pid of distinct) {
      const first = pids.indexOf(pid);
      const last = pids.lastIndexOf(pid);
      expect(pids.slice(first, last + 1).every((p) => p === pid)).toBe(true);
      if (pid !== distinct.at(-1)) expect(last - first + 1).toBeGreaterThanOrEqual(5);
    }
    expect(child.stderr()).toMatch(
      /tsgi: worker 1 \(pid [0-9]+\) served 5 requests \(--max-requests\): starting its replacement\n/,
    );
  });

  it('a reload with an app that no longer loads keeps the running workers; the next one works', async () => {
    const port = await freePort();
    const file = join(dir, 'reloaded.mjs');
    const version = (v: string) =>
      writeFileSync(
        file,
        `export default (env, start) => { start('200 OK', ${TEXT}); return ['${v} ' + process.pid]; };`,
      );
    version('v1');
    const child = await tsgi(['reloaded.mjs', '--workers', '2', '--http', `127.0.0.1:${port}`]);
    const v1 = (await httpGet(port, '/')).body;
    writeFileSync(file, `export default (;`);
    child.proc.kill('SIGHUP');
    await child.waitForStderr(/the running worker keeps serving\n/);
    await tick(200);
    const failures = child.stderr().match(/cannot load the app module "reloaded\.mjs"/g) ?? [];
    expect(failures.length).toBe(1);
    expect((await httpGet(port, '/')).body.split(' ')[0]).toBe('v1');
    version('v2');
    child.proc.kill('SIGHUP');
    await waitFor('v2', async () => {
      const b = (await httpGet(port, '/')).body;
      return b.startsWith('v2') ? b : undefined;
    });
    await child.waitForStderr(
      /tsgi: worker 2 \(pid [0-9]+\) stopped\n[^]*tsgi: worker 1 \(pid [0-9]+\) stopped\n|tsgi: worker 1 \(pid [0-9]+\) stopped\n[^]*tsgi: worker 2 \(pid [0-9]+\) stopped\n/,
    );
    for (let i = 0; i < 10; i++) expect((await httpGet(port, '/')).body).toMatch(/^v2 /);
    expect(v1).toMatch(/^v1 /);
  });

  it('--reload: a changed source file brings new workers with the new code', async () => {
    const port = await freePort();
    const file = join(dir, 'watched.mjs');
    writeFileSync(
      file,
      `export default (env, start) => { start('200 OK', ${TEXT}); return ['one']; };`,
    );
    const child = await tsgi(['watched.mjs', '--reload', '--http', `127.0.0.1:${port}`]);
    expect((await httpGet(port, '/')).body).toBe('one');
    await tick(200);
    writeFileSync(
      file,
      `export default (env, start) => { start('200 OK', ${TEXT}); return ['two']; };`,
    );
    await waitFor('the new code', async () =>
      (await httpGet(port, '/')).body === 'two' ? true : undefined,
    );
    expect(child.stderr()).toContain(
      'tsgi: watched.mjs changed: starting 1 new worker (generation 2)\n',
    );
  });

  it('SIGTERM: running requests finish, then master and workers exit with status 0', async () => {
    const port = await freePort();
    const child = await tsgi(['app.mjs', '--workers', '2', '--http', `127.0.0.1:${port}`]);
    const slow = httpGet(port, '/slow');
    await tick(150);
    child.proc.kill('SIGTERM');
    const r = await slow;
    expect(r.status).toBe(200);
    expect(await child.exited).toBe(0);
    expect(child.stderr()).toMatch(
      /tsgi: SIGTERM: finishing running requests\n(.*\n)*tsgi: stopped\n$/,
    );
    await expect(httpGet(port, '/')).rejects.toThrow(/ECONNREFUSED/);
  });

  it('--graceful-timeout: a request that does not finish is cut, the master exits with status 1', async () => {
    const port = await freePort();
    const child = await tsgi([
      'app.mjs',
      '--workers',
      '1',
      '--graceful-timeout',
      '0.5',
      '--http',
      `127.0.0.1:${port}`,
    ]);
    const hung = httpGet(port, '/hang').catch((e: Error) => e.message);
    await tick(150);
    child.proc.kill('SIGTERM');
    expect(await hung).toMatch(/socket hang up|ECONNRESET/);
    expect(await child.exited).toBe(1);
    expect(child.stderr()).toContain('tsgi: requests still running after 0.5s: exiting\n');
  });

  it('workers leave when their master is killed (no orphans)', async () => {
    const [port, statsPort] = [await freePort(), await freePort()];
    const child = await tsgi([
      'app.mjs',
      '--workers',
      '2',
      '--http',
      `127.0.0.1:${port}`,
      '--stats',
      `127.0.0.1:${statsPort}`,
    ]);
    const pids = (await getStats(statsPort)).workers.map((w) => w.pid);
    child.proc.kill('SIGKILL');
    await child.exited;
    await waitFor('the workers to exit', () => (pids.some(alive) ? undefined : true));
  });
});
