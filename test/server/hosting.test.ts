/**
 * The pieces of shared hosting that need no web server: the format an entry file of any name
 * is loaded as, the defaults of a process a web server spawned (--timeout 30 s unless given;
 * none for a process with listeners of its own), and --idle-exit ending a bridge-started
 * process that gets no request.
 */
import { execFileSync, spawn } from 'node:child_process';
import { pathToFileURL } from 'node:url';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { entryFormat } from '../../lib/server/entry.js';
import {
  applySpawnedDefaults,
  spawnedByWebServer,
  SPAWNED_MAX_RSS_BYTES,
  SPAWNED_TIMEOUT_MS,
} from '../../lib/server/hosting.js';
import { parseCommandLine, resolveConfig } from '../../lib/server/config.js';
import { CLI, ensureBuilt, ROOT } from '../support/build.js';

const dir = mkdtempSync(join(tmpdir(), 'tsgi-hosting-units-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('entry files of any name', () => {
  it('tells an ES module from CommonJS by its syntax, a #! line left out', () => {
    expect(entryFormat('#!/usr/bin/env -S tsgi serve\nexport default () => 1;\n')).toBe('module');
    expect(entryFormat("import x from './x.mjs';\n")).toBe('module');
    expect(entryFormat('console.log(import.meta.url);\n')).toBe('module');
    expect(entryFormat('await Promise.resolve();\nexport {};\n')).toBe('module');
    expect(entryFormat('#!/usr/bin/env -S tsgi cgi\nmodule.exports = () => 1;\n')).toBe('commonjs');
    expect(entryFormat("const { a } = require('./a.cjs');\nexports.app = a;\n")).toBe('commonjs');
  });

  it('imports a .fcgi ES module and a .cgi CommonJS module whose imports resolve from their folder', async () => {
    writeFileSync(join(dir, 'word.mjs'), "export const word = 'esm';\n");
    writeFileSync(join(dir, 'word.cjs'), "module.exports = 'cjs';\n");
    writeFileSync(
      join(dir, 'a.fcgi'),
      "#!/usr/bin/env -S tsgi serve\nimport { word } from './word.mjs';\nexport const app = word + ' ' + import.meta.url;\n",
    );
    writeFileSync(
      join(dir, 'b.cgi'),
      "#!/usr/bin/env -S tsgi cgi\nexports.app = require('./word.cjs') + ' ' + __filename;\n",
    );
    /* in a plain Node.js process: the test runner's own module loader would stand in for Node's */
    await ensureBuilt();
    const entry = join(ROOT, 'dist', 'server', 'entry.js');
    const run = (file: string) =>
      execFileSync(
        process.execPath,
        [
          '--input-type=module',
          '-e',
          `const { importEntry } = await import(${JSON.stringify(pathToFileURL(entry).href)});
           process.stdout.write((await importEntry(${JSON.stringify(file)})).app);`,
        ],
        { encoding: 'utf8' },
      );
    expect(run(join(dir, 'a.fcgi'))).toBe(`esm file://${join(dir, 'a.fcgi')}`);
    expect(run(join(dir, 'b.cgi'))).toBe(`cjs ${join(dir, 'b.cgi')}`);
  });
});

describe('a process spawned by a web server', () => {
  const config = (args: string[]) => resolveConfig(parseCommandLine(args), null);
  const fd0 = [{ addr: { type: 'fd' as const, fd: 0 } }];

  it('is one serving fd 0 with no listener configured, or one started with --idle-exit', () => {
    expect(spawnedByWebServer(config(['app.fcgi']), fd0)).toBe(true);
    expect(spawnedByWebServer(config(['app.fcgi', '--fastcgi', 'fd:0']), fd0)).toBe(false);
    const http = [{ addr: { type: 'tcp' as const, host: '127.0.0.1', port: 8000 } }];
    expect(spawnedByWebServer(config(['app.fcgi']), http)).toBe(false);
    expect(
      spawnedByWebServer(
        config(['app.fcgi', '--fastcgi', 'unix:/x.sock', '--idle-exit', '300']),
        [],
      ),
    ).toBe(true);
  });

  it('has --timeout 30 s unless one is given (0 included)', () => {
    expect(SPAWNED_TIMEOUT_MS).toBe(30_000);
    const c = config(['app.fcgi']);
    applySpawnedDefaults(c, () => false);
    expect(c.timeoutMs).toBe(30_000);
    const off = config(['app.fcgi', '--timeout', '0']);
    applySpawnedDefaults(off, (k) => k === 'timeout');
    expect(off.timeoutMs).toBe(0);
  });

  it('has --max-rss 512 MB unless one is given, enforced without a master', () => {
    expect(SPAWNED_MAX_RSS_BYTES).toBe(512 * 1024 * 1024);
    const c = config(['app.fcgi']);
    applySpawnedDefaults(c, () => false);
    expect([c.maxRssBytes, c.workers]).toEqual([512 * 1024 * 1024, null]);
    /* given: its value, and still no master (outside a web server it implies --workers 1) */
    const given = config(['app.fcgi', '--max-rss', '100']);
    expect(given.workers).toBe(1);
    applySpawnedDefaults(given, (k) => k === 'maxRss');
    expect([given.maxRssBytes, given.workers]).toEqual([100 * 1024 * 1024, null]);
    const off = config(['app.fcgi', '--max-rss', '0']);
    applySpawnedDefaults(off, (k) => k === 'maxRss');
    expect(off.maxRssBytes).toBe(0);
    /* a master asked for stays */
    const workers = config(['app.fcgi', '--max-rss', '100', '--workers', '2']);
    applySpawnedDefaults(workers, (k) => k === 'maxRss' || k === 'workers');
    expect(workers.workers).toBe(2);
    const recycle = config(['app.fcgi', '--max-requests', '1000']);
    applySpawnedDefaults(recycle, (k) => k === 'maxRequests');
    expect(recycle.workers).toBe(1);
  });

  it('--idle-exit: a process that gets no request exits after that long, saying why', async () => {
    await ensureBuilt();
    writeFileSync(join(dir, 'idle.mjs'), 'export default () => [];\n');
    const sock = join(dir, 'idle.sock');
    const child = spawn(
      process.execPath,
      [CLI, 'serve', '--fastcgi', `unix:${sock}`, '--idle-exit', '1', join(dir, 'idle.mjs')],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let err = '';
    child.stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await Promise.race([
      new Promise<number | null>((resolve) => child.on('exit', resolve)),
      new Promise<string>((resolve) =>
        setTimeout(() => resolve('still running after 10 s'), 10_000),
      ),
    ]);
    if (code === 'still running after 10 s') child.kill();
    expect(code).toBe(0);
    expect(err).toContain('tsgi: no request for 1s (--idle-exit): exiting\n');
  }, 20_000);
});
