/**
 * `--reload` (lib/server/reload.ts): survives saves by rename (twice: recursive fs.watch on
 * Linux went deaf after the first), gathers a burst of changes into one reload naming the
 * file, and says nothing about files and folders it cannot read.
 */
import { chmodSync, mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../support/build.js';
import { freePort } from '../support/peers.js';
import { httpGet, waitFor } from '../support/process-manager.js';
import { startChild, type Child } from '../support/spawn.js';

let cli = '';
const dir = mkdtempSync(join(tmpdir(), 'tsgi-reload-'));
const children: Child[] = [];

const app = (word: string): string =>
  `export default (env, start) => { start('200 OK', [['Content-Type', 'text/plain']]); return [${JSON.stringify(word)}]; };`;

beforeAll(async () => {
  cli = await ensureBuilt();
  chmodSync(dir, 0o777);
});
afterEach(async () => {
  for (const c of children.splice(0)) await c.stop();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Saves `text` to `file` as editors do: a temporary file renamed over it. */
function saveByRename(file: string, text: string): void {
  const tmp = `${file}.tmp-save`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

async function start(cwd: string, uid?: number): Promise<{ child: Child; port: number }> {
  const port = await freePort();
  const child = startChild(
    process.execPath,
    [cli, 'serve', 'app.mjs', '--reload', '--http', `127.0.0.1:${port}`],
    { cwd, ...(uid === undefined ? {} : { uid, gid: uid }) },
  );
  children.push(child);
  await child.waitForStderr(/--reload: watching .* for changes\n/);
  await child.waitForStderr(/serving app\.mjs over HTTP/);
  return { child, port };
}

const body = async (port: number): Promise<string> => (await httpGet(port, '/')).body;

describe('--reload', () => {
  it('reloads after each of two saves by rename, naming the file', async () => {
    const cwd = join(dir, 'rename');
    mkdirSync(cwd);
    writeFileSync(join(cwd, 'app.mjs'), app('one'));
    const { child, port } = await start(cwd);
    expect(await body(port)).toBe('one');
    saveByRename(join(cwd, 'app.mjs'), app('two'));
    await waitFor('the second version', async () =>
      (await body(port)) === 'two' ? true : undefined,
    );
    saveByRename(join(cwd, 'app.mjs'), app('three'));
    await waitFor('the third version', async () =>
      (await body(port)) === 'three' ? true : undefined,
    );
    const reloads = child
      .stderr()
      .split('\n')
      .filter((l) => l.includes('new worker'));
    expect(reloads).toEqual([
      'tsgi: app.mjs changed: starting 1 new worker (generation 2)',
      'tsgi: app.mjs changed: starting 1 new worker (generation 3)',
    ]);
  });

  it('a burst of changes is one reload; other files and node_modules are not watched', async () => {
    const cwd = join(dir, 'burst');
    mkdirSync(join(cwd, 'lib'), { recursive: true });
    mkdirSync(join(cwd, 'node_modules', 'dep'), { recursive: true });
    writeFileSync(join(cwd, 'app.mjs'), app('one'));
    const { child, port } = await start(cwd);
    writeFileSync(join(cwd, 'notes.txt'), 'not a source file');
    writeFileSync(join(cwd, 'node_modules', 'dep', 'index.js'), '// a dependency');
    await new Promise((r) => setTimeout(r, 600));
    expect(child.stderr()).not.toContain('new worker');
    writeFileSync(join(cwd, 'lib', 'a.mjs'), '// a');
    writeFileSync(join(cwd, 'lib', 'b.mjs'), '// b');
    saveByRename(join(cwd, 'app.mjs'), app('two'));
    await waitFor('the new version', async () => ((await body(port)) === 'two' ? true : undefined));
    await new Promise((r) => setTimeout(r, 600));
    const reloads = child
      .stderr()
      .split('\n')
      .filter((l) => l.includes('new worker'));
    /* one reload for the three changes, named by whichever change was seen first */
    expect(reloads.length).toBe(1);
    const first =
      /^tsgi: (\S+) and 2 other files changed: starting 1 new worker \(generation 2\)$/.exec(
        reloads[0]!,
      );
    expect([join('lib', 'a.mjs'), join('lib', 'b.mjs'), 'app.mjs']).toContain(first?.[1]);
  });

  it('a folder it cannot read is skipped quietly', async () => {
    if (process.geteuid?.() !== 0) {
      console.warn('*** SKIPPED: running tsgi as nobody (to meet an unreadable folder) needs root');
      return;
    }
    const cwd = join(dir, 'unreadable');
    mkdirSync(join(cwd, 'secret'), { recursive: true });
    writeFileSync(join(cwd, 'secret', 'key.json'), '{}');
    chmodSync(join(cwd, 'secret'), 0o700);
    writeFileSync(join(cwd, 'app.mjs'), app('one'));
    chmodSync(cwd, 0o777);
    chmodSync(join(cwd, 'app.mjs'), 0o666);
    const { child, port } = await start(cwd, 65534);
    saveByRename(join(cwd, 'app.mjs'), app('two'));
    chmodSync(join(cwd, 'app.mjs'), 0o666);
    await waitFor('the new version', async () => ((await body(port)) === 'two' ? true : undefined));
    expect(child.stderr()).not.toMatch(/EACCES|permission|secret/i);
  });
});
