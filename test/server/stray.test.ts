/**
 * Stray errors (an exception thrown in a timer, a rejection nobody handles) in `tsgi serve`
 * without a master: the process logs them and keeps serving; with --exit-on-error it finishes
 * its requests and exits with status 70; under a master, --exit-on-error gets the worker
 * replaced.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../support/build.js';
import { freePort } from '../support/peers.js';
import { httpGet, startTsgi, waitFor } from '../support/process-manager.js';
import type { Child } from '../support/spawn.js';

const APP = `
export default function app(env, start) {
  if (env.PATH_INFO === '/throw') setTimeout(() => { throw new Error('boom in a timer'); }, 0);
  if (env.PATH_INFO === '/reject') Promise.reject(new Error('nobody handles this'));
  start('200 OK', [['Content-Type', 'text/plain']]);
  return [String(process.pid)];
}
`;

describe('stray errors', () => {
  let cli = '';
  let dir = '';
  const children: Child[] = [];

  beforeAll(async () => {
    cli = await ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'tsgi-stray-'));
    writeFileSync(join(dir, 'app.mjs'), APP);
  });
  afterEach(async () => {
    for (const c of children.splice(0)) await c.stop();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function serve(args: string[] = []) {
    const port = await freePort();
    const child = await startTsgi(
      cli,
      [join(dir, 'app.mjs'), '--http', `127.0.0.1:${port}`, ...args],
      { cwd: dir },
    );
    children.push(child);
    return { child, port };
  }

  it('one process: a throw in a timer and an unhandled rejection are logged, the next requests succeed', async () => {
    const { child, port } = await serve();
    const pid = String(child.proc.pid);
    expect(await httpGet(port, '/throw')).toMatchObject({ status: 200, body: pid });
    await child.waitForStderr(
      /tsgi: uncaught exception \(kept serving\): Error: boom in a timer\n {4}at Timeout\._onTimeout/,
    );
    expect(await httpGet(port, '/')).toMatchObject({ status: 200, body: pid });
    expect(await httpGet(port, '/reject')).toMatchObject({ status: 200, body: pid });
    await child.waitForStderr(
      /tsgi: unhandled rejection \(kept serving\): Error: nobody handles this\n {4}at app /,
    );
    for (let i = 0; i < 3; i++) {
      expect(await httpGet(port, '/')).toMatchObject({ status: 200, body: pid });
    }
    expect(child.proc.exitCode).toBe(null);
  });

  it('one process with --exit-on-error: finishes and exits with status 70', async () => {
    const { child, port } = await serve(['--exit-on-error']);
    expect((await httpGet(port, '/reject')).status).toBe(200);
    expect(await child.exited).toBe(70);
    expect(child.stderr()).toMatch(
      /tsgi: unhandled rejection: Error: nobody handles this\n[^]*tsgi: --exit-on-error: finishing running requests\ntsgi: stopped\n$/,
    );
  });

  it('a worker with --exit-on-error is replaced, and requests keep succeeding', async () => {
    const { child, port } = await serve(['--workers', '1', '--exit-on-error']);
    const first = (await httpGet(port, '/')).body;
    expect((await httpGet(port, '/throw')).body).toBe(first);
    await child.waitForStderr(
      new RegExp(
        `tsgi: worker 1 \\(pid ${first}\\) a stray error with --exit-on-error: starting its replacement\\n`,
      ),
    );
    const next = await waitFor('the replacement', async () => {
      const r = await httpGet(port, '/');
      expect(r.status).toBe(200);
      return r.body !== first ? r.body : undefined;
    });
    expect(next).toMatch(/^[0-9]+$/);
  });
});
