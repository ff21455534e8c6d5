/**
 * Faults under a real nginx with load from this test (keep-alive agents, many concurrent
 * requests, every outcome counted): a SIGHUP reload under load, a request stuck in a busy
 * loop (--timeout), a request that waits forever (--timeout), memory growth (--max-rss), and
 * kill -9 of a worker that holds requests. tsgi runs as `tsgi serve --workers N` (the built
 * CLI); nginx is started here and stopped by pid. Skipped with a loud message without nginx,
 * failing under CI=true.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../support/build.js';
import { nginxHttpConf, startNginx } from '../support/frontends.js';
import { findPeer, freePort, isCI, missingPeerMessage } from '../support/peers.js';
import {
  getStats,
  httpGet,
  startLoad,
  startTsgi,
  tick,
  waitFor,
  type LoadResult,
} from '../support/process-manager.js';
import type { Child } from '../support/spawn.js';

const nginx = findPeer('nginx', 'nginx-light');

const APP = `
const TEXT = [['Content-Type', 'text/plain']];
const kept = [];
export default async function app(env, start) {
  const path = env.PATH_INFO;
  if (path.endsWith('/loop')) {
    for (;;) {}
  }
  if (path === '/wait') {
    await new Promise(() => {});
  }
  if (path === '/grow') {
    kept.push(Buffer.alloc(32 * 1024 * 1024, 1));
  }
  if (path.endsWith('/leak')) {
    kept.push(Buffer.alloc(8 * 1024 * 1024, 1));
    await new Promise((r) => setTimeout(r, 20));
  }
  if (path === '/post') {
    let n = 0;
    for await (const c of env['tsgi.input']) n += c.length;
    start('200 OK', TEXT);
    return [process.pid + ':' + n];
  }
  if (path === '/slow') {
    for await (const _ of env['tsgi.input']) {}
    await new Promise((r) => setTimeout(r, Number(env.QUERY_STRING) || 2000));
  }
  start('200 OK', TEXT);
  return [String(process.pid)];
}
`;

const PARAMS = `
            fastcgi_param REQUEST_METHOD  $request_method;
            fastcgi_param REQUEST_URI     $request_uri;
            fastcgi_param DOCUMENT_URI    $document_uri;
            fastcgi_param QUERY_STRING    $query_string;
            fastcgi_param CONTENT_TYPE    $content_type;
            fastcgi_param CONTENT_LENGTH  $content_length;
            fastcgi_param SCRIPT_NAME     "";
            fastcgi_param SERVER_PROTOCOL $server_protocol;
            fastcgi_param REMOTE_ADDR     $remote_addr;
            fastcgi_param SERVER_PORT     $server_port;
            fastcgi_param SERVER_NAME     $server_name;`;

/**
 * nginx with an upstream keepalive pool to tsgi's unix socket, as in production (its idle
 * connections close after 2 s, below tsgi's --graceful-timeout, as docs/hardening.md says), and the
 * setting docs/process-manager.md recommends with --timeout: nginx re-sends a request whose
 * cached upstream connection failed (right for the keep-alive race of a reload) but, with
 * fastcgi_next_upstream_timeout below --timeout, never a request that already ran that long
 * (one that got its worker killed would otherwise kill the next worker too).
 */
function nginxConf(port: number, sock: string): string {
  return nginxHttpConf(
    `
    server {
        listen 127.0.0.1:${port};
        location /fresh/ {${PARAMS}
            fastcgi_pass unix:${sock};
        }
        location /plain/ {${PARAMS}
            fastcgi_pass tsgi;
            fastcgi_keep_conn on;
        }
        location / {${PARAMS}
            fastcgi_pass tsgi;
            fastcgi_keep_conn on;
            fastcgi_next_upstream_timeout 500ms;
            fastcgi_read_timeout 60s;
        }
    }`,
    `    upstream tsgi { server unix:${sock}; keepalive 16; keepalive_timeout 2s; }`,
  );
}

const sum = (r: Record<string, number>) => Object.values(r).reduce((a, b) => a + b, 0);

describe.skipIf(nginx === null)('process faults behind nginx', () => {
  let cli = '';
  let dir = '';
  const children: Child[] = [];

  beforeAll(async () => {
    cli = await ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'tsgi-faults-'));
    writeFileSync(join(dir, 'app.mjs'), APP);
  });
  afterEach(async () => {
    for (const c of children.splice(0).reverse()) await c.stop();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** tsgi with `args` on a fresh unix socket and a stats port, nginx in front. */
  async function setup(name: string, args: string[]) {
    const sub = join(dir, name);
    execFileSync('mkdir', ['-p', sub]);
    const sock = join(sub, 'tsgi.sock');
    const statsPort = await freePort();
    const tsgi = await startTsgi(
      cli,
      [
        join(dir, 'app.mjs'),
        '--fastcgi',
        `unix:${sock}`,
        '--stats',
        `127.0.0.1:${statsPort}`,
        ...args,
      ],
      { cwd: sub },
    );
    children.push(tsgi);
    const port = await freePort();
    children.push(await startNginx(sub, nginxConf(port, sock), port));
    return { tsgi, port, statsPort };
  }

  it('a SIGHUP reload under continuous load loses no request', async () => {
    const { tsgi, port, statsPort } = await setup('reload', ['--workers', '2']);
    const before = (await getStats(statsPort)).workers.map((w) => w.pid).sort();
    const load = startLoad(port, '/', 8);
    await waitFor('1000 requests', () => (load.result.total >= 1000 ? true : undefined), 20_000);
    tsgi.proc.kill('SIGHUP');
    const after = await waitFor('the new generation alone', async () => {
      const s = await getStats(statsPort);
      const ready = s.workers.filter((w) => w.generation === 2 && w.state === 'ready');
      return s.workers.length === 2 && ready.length === 2
        ? ready.map((w) => w.pid).sort()
        : undefined;
    });
    const mark = load.result.total;
    await waitFor(
      '1000 more requests',
      () => (load.result.total >= mark + 1000 ? true : undefined),
      20_000,
    );
    const result: LoadResult = await load.stop();
    expect(result.errors).toEqual({});
    expect(result.statuses).toEqual({ 200: result.total });
    for (const pid of after) expect(before).not.toContain(pid);
    /* only these workers served: the old generation before the reload, the new one after */
    const served = Object.keys(result.bodies).map(Number);
    for (const pid of served) expect([...before, ...after]).toContain(pid);
    expect(served.some((pid) => before.includes(pid))).toBe(true);
    expect(served.some((pid) => after.includes(pid))).toBe(true);
    expect(sum(result.bodies)).toBe(result.total);
    expect(tsgi.stderr()).toContain('tsgi: SIGHUP: starting 2 new workers (generation 2)\n');
  });

  it('two SIGHUP reloads under continuous POST load through upstream keepalive lose nothing', async () => {
    const { tsgi, port, statsPort } = await setup('reload-post', ['--workers', '2']);
    const body = 'p'.repeat(3000);
    const load = startLoad(port, '/post', 12, { method: 'POST', body });
    const pids = new Set((await getStats(statsPort)).workers.map((w) => w.pid));
    for (const generation of [2, 3]) {
      const mark = load.result.total;
      await waitFor('500 requests', () => (load.result.total >= mark + 500 ? true : undefined));
      tsgi.proc.kill('SIGHUP');
      await waitFor(`generation ${generation} ready`, async () => {
        const s = await getStats(statsPort);
        const ready = s.workers.filter((w) => w.generation === generation && w.state === 'ready');
        if (ready.length !== 2) return undefined;
        for (const w of ready) pids.add(w.pid);
        return true;
      });
    }
    /* the retired workers finish once nginx closed their idle kept connections */
    await waitFor(
      'the old generations gone',
      async () => ((await getStats(statsPort)).workers.length === 2 ? true : undefined),
      15_000,
    );
    const mark = load.result.total;
    await waitFor('500 more requests', () => (load.result.total >= mark + 500 ? true : undefined));
    const result = await load.stop();
    expect(result.errors).toEqual({});
    expect(result.statuses).toEqual({ 200: result.total });
    const served = new Set<number>();
    for (const b of Object.keys(result.bodies)) {
      const [pid, n] = b.split(':').map(Number);
      expect(n).toBe(body.length);
      served.add(pid!);
    }
    expect(served.size).toBeGreaterThanOrEqual(4);
    for (const pid of served) expect(pids).toContain(pid);
    expect(tsgi.stderr()).toContain('tsgi: SIGHUP: starting 2 new workers (generation 3)\n');
  });

  it('a looping GET under --workers 2 --timeout 2 costs one 504 and one worker, once', async () => {
    const { tsgi, port, statsPort } = await setup('loop', ['--workers', '2', '--timeout', '2']);
    const before = (await getStats(statsPort)).workers.map((w) => w.pid);
    /* upstream keepalive and nginx's default fastcgi_next_upstream (error timeout): a
       dropped connection would be replayed onto the other worker */
    const load = startLoad(port, '/plain/', 4);
    await tick(200);
    const stuck = await httpGet(port, '/plain/loop');
    expect([stuck.status, stuck.body]).toEqual([504, 'Gateway Timeout\n']);
    const m = await tsgi.waitForStderr(
      /tsgi: worker ([12]) \(pid ([0-9]+)\): the event loop was blocked longer than --timeout 2s with requests in flight \(a busy loop\?\): answered 1 of them 504 Gateway Timeout; exiting\n/,
    );
    const victim = Number(m[2]);
    expect(before).toContain(victim);
    const survivor = before.find((pid) => pid !== victim)!;
    await tsgi.waitForStderr(
      new RegExp(
        `tsgi: worker ${m[1]} \\(pid ${victim}\\) exited with status 124: its event loop was blocked longer than --timeout 2s: it answered the requests it held 504 and exited\n`,
      ),
    );
    const now = await waitFor('the replacement', async () => {
      const s = await getStats(statsPort);
      return s.workers.length === 2 && s.workers.every((w) => w.state === 'ready') ? s : undefined;
    });
    await tick(500);
    const result = await load.stop();
    /* the other worker was never killed, and the loop cost one worker, once */
    expect(now.workers.map((w) => w.pid)).toContain(survivor);
    expect(now.workers.map((w) => w.pid)).not.toContain(victim);
    expect((await getStats(statsPort)).totals.restarts).toBe(1);
    expect(tsgi.stderr().match(/exited with status 124/g)).toHaveLength(1);
    expect(tsgi.stderr()).not.toMatch(/killed/);
    expect(result.errors).toEqual({});
    expect(result.statuses).toEqual({ 200: result.total });
  });

  it('answers 504 for a request that waits past --timeout, and the worker stays', async () => {
    const { port, statsPort } = await setup('wait', ['--workers', '1', '--timeout', '1']);
    const before = (await getStats(statsPort)).workers[0]!.pid;
    const r = await httpGet(port, '/wait');
    expect([r.status, r.body]).toEqual([504, 'Gateway Timeout\n']);
    expect((await httpGet(port, '/')).body).toBe(String(before));
    expect((await getStats(statsPort)).workers.map((w) => w.pid)).toEqual([before]);
  });

  it('recycles a worker above --max-rss while every request succeeds', async () => {
    const { tsgi, port, statsPort } = await setup('rss', ['--workers', '1', '--max-rss', '160']);
    const first = (await getStats(statsPort)).workers[0]!.pid;
    const load = startLoad(port, '/', 4);
    const grown: number[] = [];
    for (let i = 0; i < 4; i++) grown.push((await httpGet(port, '/grow')).status);
    const next = await waitFor('the recycled worker', async () => {
      const s = await getStats(statsPort);
      const w = s.workers.find((x) => x.pid !== first && x.state === 'ready');
      return w !== undefined && s.workers.length === 1 ? w : undefined;
    });
    await tick(300);
    const result = await load.stop();
    expect(grown).toEqual([200, 200, 200, 200]);
    expect(result.errors).toEqual({});
    expect(result.statuses).toEqual({ 200: result.total });
    expect(Object.keys(result.bodies).map(Number).sort()).toEqual([first, next.pid].sort());
    expect(tsgi.stderr()).toMatch(
      new RegExp(
        `tsgi: worker 1 \\(pid ${first}\\) resident memory [0-9]+ MB is above --max-rss 160 MB: starting its replacement\n`,
      ),
    );
  });

  it('memory that grows with every request stops within 25% of --max-rss', async () => {
    const { tsgi, port } = await setup('rss-growth', ['--workers', '2', '--max-rss', '200']);
    const master = tsgi.proc.pid!;
    /* the peak resident size (VmHWM) of every worker, polled while they live */
    const peaks = new Map<number, number>();
    let polling = true;
    const poll = (async () => {
      while (polling) {
        let kids: string[] = [];
        try {
          kids = readFileSync(`/proc/${master}/task/${master}/children`, 'latin1')
            .trim()
            .split(' ');
        } catch {
          /* the master is gone */
        }
        for (const k of kids) {
          try {
            const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${k}/status`, 'latin1'));
            if (m) peaks.set(Number(k), Math.max(peaks.get(Number(k)) ?? 0, Number(m[1]) * 1024));
          } catch {
            /* it exited */
          }
        }
        await tick(5);
      }
    })();
    /* a leak of 8 MB per request, one request after the other on a kept connection */
    const load = startLoad(port, '/plain/leak', 1);
    await waitFor(
      'four workers recycled for memory',
      () =>
        (tsgi.stderr().match(/is above --max-rss 200 MB/g) ?? []).length >= 4 ? true : undefined,
      30_000,
    );
    const result = await load.stop();
    polling = false;
    await poll;
    expect(result.errors).toEqual({});
    expect(result.statuses).toEqual({ 200: result.total });
    expect(peaks.size).toBeGreaterThanOrEqual(4);
    const worst = Math.max(...peaks.values());
    expect(worst / 1048576).toBeLessThanOrEqual(250);
  });

  it('kill -9 of a worker: only the requests it held fail, a new worker takes its place', async () => {
    const { tsgi, port, statsPort } = await setup('kill', ['--workers', '2']);
    const agent = new Agent({ keepAlive: true, maxSockets: 16 });
    const slow = Array.from({ length: 6 }, () =>
      httpGet(port, '/slow?4000', { agent }).then(
        (r) => r,
        (e: Error) => ({ status: -1, body: e.message, headers: {} }),
      ),
    );
    const held = await waitFor('six requests in flight', async () => {
      const s = await getStats(statsPort);
      return s.totals.in_flight === 6 ? s.workers : undefined;
    });
    const victim = held.reduce((a, b) => (b.in_flight > a.in_flight ? b : a));
    const survivor = held.find((w) => w !== victim)!;
    const load = startLoad(port, '/', 4);
    await tick(200);
    process.kill(victim.pid, 'SIGKILL');
    const replies = await Promise.all(slow);
    await tick(300);
    const result = await load.stop();
    agent.destroy();
    const failed = replies.filter((r) => r.status !== 200);
    expect(failed.map((r) => r.status)).toEqual(Array(victim.in_flight).fill(502));
    expect(replies.filter((r) => r.status === 200).map((r) => Number(r.body))).toEqual(
      Array(survivor.in_flight).fill(survivor.pid),
    );
    expect(result.errors).toEqual({});
    expect(result.statuses).toEqual({ 200: result.total });
    await tsgi.waitForStderr(
      new RegExp(`tsgi: worker ${victim.id} \\(pid ${victim.pid}\\) was killed by SIGKILL\n`),
    );
    const now = await waitFor('the replacement', async () => {
      const s = await getStats(statsPort);
      return s.workers.length === 2 && s.workers.every((w) => w.state === 'ready') ? s : undefined;
    });
    expect(now.workers.map((w) => w.pid)).not.toContain(victim.pid);
    expect(now.workers.map((w) => w.pid)).toContain(survivor.pid);
  });
});

if (isCI && nginx === null) {
  it('nginx is installed', () => {
    throw new Error(missingPeerMessage('nginx', 'nginx-light'));
  });
}
