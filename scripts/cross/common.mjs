// What the cross-platform checks (`npm run test:arm64`, `npm run test:win32`) share (and
// test/project/package/run.mjs takes freePort from): the Node
// binary they run the addon under (a registry package of that platform's Node, fetched with
// `npm pack` and kept in node_modules/.cache/), the addon's build recipe as binding.gyp states
// it, a staged package folder, and named checks with a closing "N passed, N failed" line.
//
// CI=true turns a missing tool into a failure; elsewhere the check is skipped loudly.
import { spawn, spawnSync } from 'node:child_process';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  realpathSync,
  rmSync,
  symlinkSync,
} from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The checkout. */
export const repo = realpathSync(fileURLToPath(new URL('../..', import.meta.url)));

/** The Node release whose arm64 and win32 builds the addon is tested under. */
export const NODE_VERSION = '22.23.3';

export const isCI = process.env.CI === 'true' || process.env.CI === '1';

const CACHE = join(repo, 'node_modules', '.cache', 'tsgi-cross');

/** A thrown Skip skips a check on a developer's machine and fails it under CI=true. */
export class Skip extends Error {}

let passed = 0;
let failed = 0;
let skipped = 0;
let stopped = false;

export function log(line) {
  process.stdout.write(`${line}\n`);
}

function indent(text) {
  return String(text)
    .trimEnd()
    .split('\n')
    .map((l) => `      ${l}`)
    .join('\n');
}

/**
 * Runs one named check and prints ok/FAIL/SKIP with its time. Once a check failed or was
 * skipped with `needed`, later checks are not run (they would only fail for the same reason).
 */
export async function check(name, fn, { needed = true } = {}) {
  if (stopped) {
    skipped++;
    log(`--    ${name} (not run: an earlier step did not pass)`);
    return undefined;
  }
  const t0 = Date.now();
  try {
    const note = await fn();
    passed++;
    const secs = ((Date.now() - t0) / 1000).toFixed(1);
    log(`ok    ${name} (${secs} s)${note ? ` — ${note}` : ''}`);
    return note;
  } catch (err) {
    if (needed) stopped = true;
    if (err instanceof Skip && !isCI) {
      skipped++;
      log(`SKIP  ${name} — ${err.message}`);
      return undefined;
    }
    failed++;
    log(`FAIL  ${name}${err instanceof Skip ? ' (a needed tool is missing, and CI=true)' : ''}`);
    log(indent(err instanceof Error ? err.message : String(err)));
    return undefined;
  }
}

/** Prints the closing line and sets the exit code. */
export function finish() {
  log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exitCode = failed === 0 ? 0 : 1;
}

export function tail(text, lines = 40) {
  return String(text ?? '')
    .trimEnd()
    .split('\n')
    .slice(-lines)
    .join('\n');
}

/** spawnSync that throws with the command's output when it fails. */
export function run(cmd, args, { cwd = repo, env = process.env, input } = {}) {
  const r = spawnSync(cmd, args, { cwd, env, input, encoding: 'utf8', maxBuffer: 256 << 20 });
  const shown = `${cmd} ${args.join(' ')}`;
  if (r.error) throw new Error(`${shown}: ${r.error.message}`);
  if (r.status !== 0) {
    throw new Error(
      `${shown} exited with ${r.status}${r.signal ? ` (${r.signal})` : ''}\n` +
        `--- stdout\n${tail(r.stdout)}\n--- stderr\n${tail(r.stderr)}`,
    );
  }
  return r;
}

/** Like {@link run}, but asynchronous (other work, e.g. a server, goes on meanwhile). */
export function runAsync(cmd, args, { cwd = repo, env = process.env, timeoutMs = 600_000 } = {}) {
  return new Promise((resolveRun, reject) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (c) => (stdout += c));
    child.stderr.setEncoding('utf8').on('data', (c) => (stderr += c));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      const r = { status, signal, stdout, stderr };
      if (status === 0) resolveRun(r);
      else {
        const err = new Error(
          `${cmd} ${args.join(' ')} exited with ${status}${signal ? ` (${signal})` : ''}\n` +
            `--- stdout\n${tail(stdout)}\n--- stderr\n${tail(stderr)}`,
        );
        reject(Object.assign(err, r));
      }
    });
  });
}

/** A free TCP port on 127.0.0.1. */
export function freePort() {
  return new Promise((resolvePort, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolvePort(port));
    });
  });
}

/** The first executable named one of `names` on PATH (or an absolute candidate that exists). */
export function findTool(...names) {
  for (const name of names) {
    if (name.startsWith('/')) {
      if (existsSync(name)) return name;
      continue;
    }
    for (const dir of (process.env.PATH ?? '').split(delimiter)) {
      if (dir && existsSync(join(dir, name))) return join(dir, name);
    }
  }
  return null;
}

/** Finds each tool or throws a Skip naming the Debian package that has it. */
export function needTools(tools) {
  const found = {};
  const missing = [];
  for (const [key, { names, pkg }] of Object.entries(tools)) {
    found[key] = findTool(...names);
    if (!found[key]) missing.push(`${names[0]} (Debian package ${pkg})`);
  }
  if (missing.length) throw new Skip(`missing: ${missing.join(', ')}`);
  return found;
}

/**
 * The folder of registry package `name@version` (its package/ contents), fetched once with
 * `npm pack` into node_modules/.cache/tsgi-cross/ and reused afterwards.
 */
export function registryPackage(name, version) {
  const dir = join(CACHE, `${name.replace(/[@/]/g, '_')}-${version}`);
  const done = join(dir, '.complete');
  if (existsSync(done)) return join(dir, 'package');
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const r = run('npm', ['pack', '--json', '--pack-destination', dir, `${name}@${version}`], {
    cwd: dir,
  });
  const [entry] = JSON.parse(r.stdout);
  run('tar', ['-xzf', join(dir, entry.filename), '-C', dir]);
  rmSync(join(dir, entry.filename));
  run('touch', [done]);
  return join(dir, 'package');
}

/**
 * The addon's recipe from binding.gyp (the one place it is written): sources, include dirs,
 * defines, C and C++ flags, and what its `OS=='win'` condition adds. binding.gyp is a Python
 * literal; with its comments and trailing commas removed it is JSON.
 */
export function bindingRecipe() {
  const text = readFileSync(join(repo, 'binding.gyp'), 'utf8')
    .split('\n')
    .map((l) => l.replace(/^\s*#.*$/, ''))
    .join('\n')
    .replace(/,(\s*[\]}])/g, '$1');
  const gyp = JSON.parse(text);
  const target = gyp.targets.find((t) => t.target_name === 'tsgi');
  if (!target) throw new Error('binding.gyp has no target "tsgi"');
  const win = (target.conditions ?? []).find(([cond]) => cond === "OS=='win'")?.[1] ?? {};
  return {
    sources: target.sources,
    includeDirs: target.include_dirs ?? [],
    defines: [...(target.defines ?? []), ...(win.defines ?? [])],
    cflags: target.cflags ?? [],
    cflagsCc: target.cflags_cc ?? [],
  };
}

/** The machine code of an ELF shared object (e_machine): 62 is x86-64, 183 is AArch64. */
export function elfMachine(file) {
  const b = readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46) throw new Error(`${file} is not an ELF file`);
  return b.readUInt16LE(18);
}

/** A new temporary folder (removed by the caller unless TSGI_CROSS_KEEP=1). */
export function tempDir(prefix) {
  return realpathSync(mkdtempSync(join(tmpdir(), prefix)));
}

export const keep = process.env.TSGI_CROSS_KEEP === '1';

/**
 * A package folder as a user's install has it: package.json, dist/ (built by `npm run
 * build:ts` and `build:cjs`), node_modules linked to the checkout's, and no build/ folder (so
 * node-gyp-build can only find prebuilds/). `extra` lists more checkout paths to copy.
 */
export function stagePackage(dir, extra = []) {
  if (!existsSync(join(repo, 'dist', 'index.js'))) {
    throw new Error('dist/ is not built: run `npm run build:ts` first');
  }
  mkdirSync(dir, { recursive: true });
  for (const p of ['package.json', 'dist', ...extra]) {
    cpSync(join(repo, p), join(dir, p), { recursive: true });
  }
  symlinkSync(join(repo, 'node_modules'), join(dir, 'node_modules'), 'dir');
  return dir;
}

/** Lines of vitest's summary ("Tests  699 passed (699)"), colour codes removed. */
export function vitestSummary(output) {
  const ansi = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');
  return output
    .split('\n')
    .map((l) => l.replace(ansi, '').trim())
    .filter((l) => /^(Test Files|Tests)\s/.test(l))
    .join('; ');
}
