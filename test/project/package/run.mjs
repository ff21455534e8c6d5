#!/usr/bin/env node
// The package test (`npm run test:package`): what a user gets from `npm install tsgi`.
//
//  1. Make the tarball as a user would from a clone: copy the checkout's files as git has them
//     (tracked, and new ones not ignored; no dist/, build/ or prebuilds/) to a temporary
//     folder and run plain `npm pack` there. Its prepack script builds dist/ (ESM and
//     CommonJS) and this platform's prebuild, so the tarball must hold
//     prebuilds/linux-x64/tsgi.glibc.node. The checkout's own dist/, build/ and prebuilds/ are
//     not touched. With TSGI_PACKAGE_USE_PREBUILDS=1 (the release workflow, which gathers
//     every platform's prebuild into prebuilds/) the files `npm pack` takes from the checkout,
//     its prebuilds/ among them, are packed with --ignore-scripts instead, as it publishes.
//  2. Check the tarball: what it holds and what it must not, no install script, publint clean.
//  3. Install it into a fresh project with a PATH holding only node, npm, npx and sh (no
//     compiler, make or python), then prove:
//     (a) the native codec loads from prebuilds/linux-x64 and the conformance vectors pass
//         through the installed package;
//     (b) with prebuilds/ removed the ts codec is selected and the same vectors pass;
//     (c) `npx tsgi serve` answers an HTTP request on 127.0.0.1;
//     (d) ESM import and CommonJS require both work, and types resolve for both (tsc);
//     (e) publint reports no problem (step 2).
//
// Environment: CI=true turns skips into failures; TSGI_PACKAGE_KEEP=1 keeps the temporary
// folder. Linux x64 only (the prebuild it makes and checks is linux-x64).
import { spawn, spawnSync } from 'node:child_process';
import {
  accessSync,
  constants as fsConstants,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { bindingRecipe, freePort } from '../../../scripts/cross/common.mjs';

const repo = realpathSync(fileURLToPath(new URL('../../..', import.meta.url)));
const fixtures = join(repo, 'test', 'project', 'package', 'fixtures');
const isCI = process.env.CI === 'true' || process.env.CI === '1';
const usePrebuilds = process.env.TSGI_PACKAGE_USE_PREBUILDS === '1';
const keep = process.env.TSGI_PACKAGE_KEEP === '1';
const PREBUILD = 'prebuilds/linux-x64/tsgi.glibc.node';
/* tsgi-cgi-bridge beside the addon, and the Node.js bridge of platforms without it */
const BRIDGE = 'prebuilds/linux-x64/tsgi-cgi-bridge.glibc';
const NODE_BRIDGE = 'dist/cgi-bridge.js';

let passed = 0;
let failed = 0;
let skipped = 0;

function log(line) {
  process.stdout.write(`${line}\n`);
}

/** Runs one named check; a thrown Error fails it, a thrown Skip skips it (fails under CI). */
class Skip extends Error {}
async function check(name, fn) {
  try {
    const note = await fn();
    passed++;
    log(`ok    ${name}${note ? ` — ${note}` : ''}`);
  } catch (err) {
    if (err instanceof Skip && !isCI) {
      skipped++;
      log(`SKIP  ${name} — ${err.message}`);
      return;
    }
    failed++;
    log(`FAIL  ${name}${err instanceof Skip ? ' (skipped, but CI=true)' : ''}`);
    log(indent(err instanceof Error ? err.message : String(err)));
  }
}

function indent(text) {
  return text
    .trimEnd()
    .split('\n')
    .map((l) => `      ${l}`)
    .join('\n');
}

function tail(text, lines = 40) {
  const all = String(text ?? '')
    .trimEnd()
    .split('\n');
  return all.slice(-lines).join('\n');
}

/** spawnSync that throws with the command's output when it fails. */
function run(cmd, args, { cwd = repo, env = process.env, expectFail = false } = {}) {
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', maxBuffer: 64 << 20 });
  const shown = `${cmd} ${args.join(' ')} (in ${cwd})`;
  if (r.error) throw new Error(`${shown}: ${r.error.message}`);
  if (expectFail ? r.status === 0 : r.status !== 0) {
    throw new Error(
      `${shown} exited with ${r.status}${r.signal ? ` (${r.signal})` : ''}\n` +
        `--- stdout\n${tail(r.stdout)}\n--- stderr\n${tail(r.stderr)}`,
    );
  }
  return r;
}

function json(stdout) {
  const line = stdout.trim().split('\n').pop();
  return JSON.parse(line);
}

/** The first executable named `name` on PATH, with symlinks resolved. */
function which(name) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const p = join(dir, name);
    if (existsSync(p)) return realpathSync(p);
  }
  throw new Error(`${name} is not on PATH`);
}

function httpGet(port, path) {
  return new Promise((resolveGet, reject) => {
    const req = request({ host: '127.0.0.1', port, path, timeout: 2000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolveGet({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/* Terminal colour codes, to read vitest's summary line. */
const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, 'g');

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// ---------------------------------------------------------------------------------------------

if (process.platform !== 'linux' || process.arch !== 'x64') {
  log(`test:package runs on linux-x64 only (this is ${process.platform}-${process.arch})`);
  log('0 passed, 1 failed');
  process.exit(1);
}

const work = realpathSync(mkdtempSync(join(tmpdir(), 'tsgi-package-')));
const stage = join(work, 'stage');
const consumer = join(work, 'consumer');
const sandboxBin = join(work, 'bin');
let tarball = '';
let installed = '';
log(`test:package: working in ${work}${keep ? ' (kept)' : ''}`);

/* The environment of everything run "as a user": no npm_* variables inherited from
 * `npm run test:package`, and a PATH with only node, npm, npx and sh. */
const userEnv = Object.fromEntries(
  Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) && k !== 'INIT_CWD'),
);
Object.assign(userEnv, {
  PATH: sandboxBin,
  npm_config_audit: 'false',
  npm_config_fund: 'false',
  npm_config_update_notifier: 'false',
  npm_config_loglevel: 'error',
});
delete userEnv.TSGI_CODEC;
delete userEnv.TSGI_NATIVE_PATH;
delete userEnv.NODE_DEBUG;

try {
  // ---- 0. the release workflow -------------------------------------------------------------
  await check('.github/workflows/prebuild.yml: valid YAML with every target', async () => {
    const { parseDocument } = await import('yaml');
    const text = readFileSync(join(repo, '.github', 'workflows', 'prebuild.yml'), 'utf8');
    const doc = parseDocument(text, { prettyErrors: true, uniqueKeys: true });
    if (doc.errors.length) throw new Error(doc.errors.map((e) => e.message).join('\n'));
    const wf = doc.toJS();
    const problems = [];
    const include = wf.jobs?.prebuild?.strategy?.matrix?.include ?? [];
    const targets = include.map((t) => t.target);
    for (const t of [
      'linux-x64-glibc',
      'linux-arm64-glibc',
      'linux-x64-musl',
      'linux-arm64-musl',
      'darwin-x64',
      'darwin-arm64',
      'win32-x64',
    ]) {
      if (!targets.includes(t)) problems.push(`no matrix target ${t}`);
    }
    for (const t of include) if (!t.os) problems.push(`target ${t.target} has no runner`);
    if (!include.some((t) => /alpine/.test(t.container ?? ''))) {
      problems.push('no target builds in an Alpine container');
    }
    const expected = String(wf.env?.EXPECTED_PREBUILDS ?? '')
      .split(/\s+/)
      .filter(Boolean);
    /* an addon per target, and tsgi-cgi-bridge beside each but win32's (POSIX only) */
    if (expected.length !== 13) problems.push(`EXPECTED_PREBUILDS lists ${expected.length} files`);
    for (const f of expected.filter((f) => f.endsWith('.node') && !f.startsWith('win32-'))) {
      const bridge = f.replace(/tsgi(\.(glibc|musl))?\.node$/, 'tsgi-cgi-bridge$1');
      if (!expected.includes(bridge)) problems.push(`EXPECTED_PREBUILDS lacks ${bridge}`);
    }
    if (!/node scripts\/prebuild-bridge\.mjs/.test(text)) {
      problems.push('the prebuild job does not run scripts/prebuild-bridge.mjs');
    }
    const steps = JSON.stringify(wf.jobs?.package?.steps ?? []);
    if (!/npm publish --provenance/.test(steps)) problems.push('no `npm publish --provenance`');
    if (wf.jobs?.package?.permissions?.['id-token'] !== 'write') {
      problems.push('the package job lacks id-token: write (provenance)');
    }
    if (!/download-artifact/.test(steps)) problems.push('the package job collects no artifacts');
    if (!/EXPECTED_PREBUILDS/.test(steps)) problems.push('no check of the expected files');
    const scripts = JSON.parse(readFileSync(join(repo, 'package.json'), 'utf8')).scripts ?? {};
    for (const m of text.matchAll(/npm run ([\w:-]+)/g)) {
      if (!scripts[m[1]]) problems.push(`the workflow runs a missing script: ${m[1]}`);
    }
    if (problems.length) throw new Error(problems.join('\n'));
    return `${targets.length} targets`;
  });

  // ---- 1. stage and pack -----------------------------------------------------------------
  if (usePrebuilds) {
    await check('stage: the packed files, dist/ built fresh (ESM + CommonJS)', () => {
      const dry = run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts']);
      const [entry] = JSON.parse(dry.stdout);
      mkdirSync(stage, { recursive: true });
      let copied = 0;
      for (const { path } of entry.files) {
        if (path.startsWith('dist/')) continue; // built fresh below
        mkdirSync(dirname(join(stage, path)), { recursive: true });
        cpSync(join(repo, path), join(stage, path));
        copied++;
      }
      symlinkSync(join(repo, 'node_modules'), join(stage, 'node_modules'), 'dir');
      run('npm', ['run', '--silent', 'build:ts', '--', '--outDir', join(stage, 'dist')]);
      run('npm', ['run', '--silent', 'build:cjs', '--', join(stage, 'dist')]);
      return `${copied} files copied (the checkout's prebuilds/ among them), dist/ built`;
    });

    await check('npm pack --ignore-scripts (the release workflow’s gathered prebuilds)', () => {
      const r = run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', work], {
        cwd: stage,
      });
      const [entry] = JSON.parse(r.stdout);
      tarball = join(work, entry.filename);
      return `${entry.filename}: ${entry.entryCount} files, ${entry.size} bytes`;
    });
  } else {
    await check(
      'clone: the checkout’s files as git has them, no dist/, build/ or prebuilds/',
      () => {
        /* What a clone holds: tracked files, plus new ones not ignored (this work tree's state). */
        const listed = run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'])
          .stdout.split('\0')
          .filter((f) => f !== '' && existsSync(join(repo, f)));
        for (const f of listed) {
          mkdirSync(dirname(join(stage, f)), { recursive: true });
          cpSync(join(repo, f), join(stage, f));
        }
        const built = ['dist', 'build', 'prebuilds'].filter((d) => existsSync(join(stage, d)));
        if (built.length) throw new Error(`the clone already has ${built.join(', ')}`);
        symlinkSync(join(repo, 'node_modules'), join(stage, 'node_modules'), 'dir');
        return `${listed.length} files`;
      },
    );

    await check(
      'plain `npm pack` in the clone: prepack builds dist/ and this platform’s prebuild',
      () => {
        const r = run('npm', ['pack', '--json', '--pack-destination', work], { cwd: stage });
        const [entry] = JSON.parse(r.stdout.slice(r.stdout.indexOf('[')));
        tarball = join(work, entry.filename);
        const prebuilds = entry.files.map((f) => f.path).filter((f) => f.startsWith('prebuilds/'));
        if (!prebuilds.includes(PREBUILD)) {
          throw new Error(
            `the tarball has no ${PREBUILD} (prebuilds: ${prebuilds.join(', ') || 'none'})`,
          );
        }
        return `${entry.filename}: ${entry.entryCount} files, ${entry.size} bytes; ${prebuilds.join(', ')}`;
      },
    );
  }
  if (!tarball) throw new Error('no tarball: cannot go on');

  // ---- 2. the tarball --------------------------------------------------------------------
  await check('tarball: ships dist/, prebuilds/, native sources, binding.gyp, nothing else', () => {
    const files = run('tar', ['-tzf', tarball])
      .stdout.split('\n')
      .filter(Boolean)
      .map((f) => f.replace(/^package\//, ''));
    const must = [
      'package.json',
      'binding.gyp',
      /* every source the addon builds from (a user without a prebuild compiles them) */
      ...bindingRecipe().sources,
      'native/binding/common.h',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cjs/index.js',
      'dist/cjs/index.d.ts',
      'dist/cjs/package.json',
      PREBUILD,
      BRIDGE,
      NODE_BRIDGE,
    ];
    const problems = must.filter((f) => !files.includes(f)).map((f) => `missing ${f}`);
    /* both bridges are #! interpreters: they must be executable as installed */
    for (const line of run('tar', ['-tvzf', tarball]).stdout.split('\n')) {
      const [mode] = line.split(/\s+/);
      const name = line.slice(line.lastIndexOf(' ') + 1).replace(/^package\//, '');
      if ((name === BRIDGE || name === NODE_BRIDGE) && !/^-rwxr-xr-x$/.test(mode ?? '')) {
        problems.push(`${name} is ${mode}, not executable (-rwxr-xr-x)`);
      }
    }
    const allowed =
      /^(package\.json|README(\.md)?|LICEN[SC]E(\.md)?|binding\.gyp|dist\/.+|prebuilds\/[^/]+\/([^/]+\.node|tsgi-cgi-bridge(\.(glibc|musl))?)|native\/(binding|core|transport)\/[^/]+\.(cc|h)|native\/bridge\/[^/]+\.c)$/;
    for (const f of files) if (!allowed.test(f)) problems.push(`should not ship ${f}`);
    if (problems.length) throw new Error(problems.join('\n'));
    return `${files.length} files`;
  });

  await check('package.json: no install script, gypfile false, bin tsgi, exports', () => {
    const pkg = JSON.parse(readFileSync(join(stage, 'package.json'), 'utf8'));
    const problems = [];
    for (const s of ['preinstall', 'install', 'postinstall']) {
      if (pkg.scripts?.[s]) problems.push(`scripts.${s} is set: ${pkg.scripts[s]}`);
    }
    if (pkg.gypfile !== false) problems.push('gypfile is not false');
    if (pkg.bin?.tsgi !== './dist/cli.js') problems.push('bin.tsgi is not ./dist/cli.js');
    const root = pkg.exports?.['.'];
    if (!root?.import?.types || !root?.require?.types) {
      problems.push('exports["."] needs types for both import and require');
    }
    if (problems.length) throw new Error(problems.join('\n'));
  });

  await check('(e) publint: no error, warning or suggestion', async () => {
    const { publint } = await import('publint');
    const { formatMessage } = await import('publint/utils');
    const data = readFileSync(tarball);
    const tar = data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength);
    const { messages, pkg } = await publint({
      pack: { tarball: tar },
      level: 'suggestion',
      strict: true,
    });
    if (messages.length) {
      throw new Error(
        messages
          .map((m) => `${m.type}: ${formatMessage(m, pkg, { color: false }) ?? m.code}`)
          .join('\n'),
      );
    }
  });

  // ---- 3. a user's project without a compiler -------------------------------------------
  await check('sandbox PATH: node, npm, npx and sh only; no compiler, make or python', () => {
    mkdirSync(sandboxBin);
    symlinkSync(process.execPath, join(sandboxBin, 'node'));
    for (const tool of ['npm', 'npx']) symlinkSync(which(tool), join(sandboxBin, tool));
    symlinkSync(which('sh'), join(sandboxBin, 'sh'));
    const tools = ['cc', 'gcc', 'g++', 'c++', 'clang', 'clang++', 'make', 'cmake'];
    const found = run(
      'sh',
      ['-c', `for t in ${tools.join(' ')} python python3; do command -v "$t"; done; true`],
      {
        env: userEnv,
      },
    ).stdout.trim();
    if (found) throw new Error(`found on the sandbox PATH:\n${found}`);
  });

  await check('install the tarball into a fresh project (no compiler on PATH)', () => {
    mkdirSync(consumer);
    writeFileSync(
      join(consumer, 'package.json'),
      JSON.stringify({ name: 'tsgi-consumer', version: '1.0.0', private: true }, null, 2),
    );
    for (const f of readdirSync(fixtures)) cpSync(join(fixtures, f), join(consumer, f));
    run('npm', ['install', '--prefer-offline', '--no-save', tarball], {
      cwd: consumer,
      env: userEnv,
    });
    installed = join(consumer, 'node_modules', 'tsgi');
    if (!existsSync(join(installed, 'package.json'))) throw new Error('node_modules/tsgi missing');
    if (existsSync(join(installed, 'build')))
      throw new Error('something built node_modules/tsgi/build');
    return relative(work, installed);
  });
  if (!installed) throw new Error('the package did not install: cannot go on');

  const conformanceDir = join(consumer, 'conformance');
  /** The repo's conformance suite, its lib/ imports pointed at the installed package. */
  function prepareConformance() {
    if (existsSync(conformanceDir)) return;
    const sources = ['test/codec/vectors.test.ts', 'test/support/codecs.ts'];
    for (const f of sources) {
      mkdirSync(dirname(join(conformanceDir, f)), { recursive: true });
      cpSync(join(repo, f), join(conformanceDir, f));
    }
    const vectorDir = join('test', 'codec', 'vectors');
    cpSync(join(repo, vectorDir), join(conformanceDir, vectorDir), { recursive: true });
    const vectors = readdirSync(join(conformanceDir, vectorDir)).filter((f) => f.endsWith('.json'));
    if (vectors.length === 0) throw new Error('test/codec/vectors/ holds no vector file');
    /* Every '../../lib/…' module the suite imports becomes `export * from 'tsgi'`: the suite
     * sees only the installed package's public API. */
    const libImports = new Set();
    for (const f of sources) {
      const text = readFileSync(join(conformanceDir, f), 'utf8');
      for (const m of text.matchAll(/['"](?:\.\.\/)+(lib\/[^'"]+\.js)['"]/g)) libImports.add(m[1]);
    }
    for (const p of libImports) {
      mkdirSync(dirname(join(conformanceDir, p)), { recursive: true });
      writeFileSync(join(conformanceDir, p), "export * from 'tsgi';\n");
    }
    /* vitest itself comes from this checkout (it is not part of what a user installs). */
    mkdirSync(join(conformanceDir, 'node_modules'));
    symlinkSync(
      join(repo, 'node_modules', 'vitest'),
      join(conformanceDir, 'node_modules', 'vitest'),
      'dir',
    );
    writeFileSync(join(conformanceDir, 'package.json'), '{ "private": true, "type": "module" }\n');
  }

  function conformance(env) {
    prepareConformance();
    const r = run(
      process.execPath,
      [join(repo, 'node_modules', 'vitest', 'vitest.mjs'), 'run', '--root', conformanceDir],
      { cwd: conformanceDir, env },
    );
    const summary = `${r.stdout}\n${r.stderr}`
      .split('\n')
      .map((l) => l.replace(ANSI, '').trim())
      .filter((l) => /^Tests\s/.test(l));
    return summary.join(' ') || 'passed';
  }

  // (a) native from prebuilds/linux-x64 -------------------------------------------------------
  await check('(a) the native codec is selected, loaded from prebuilds/linux-x64', () => {
    const r = run('node', ['check-codec.mjs'], { cwd: consumer, env: userEnv });
    const seen = json(r.stdout);
    const want = realpathSync(join(installed, PREBUILD));
    if (seen.codec !== 'native') throw new Error(`codec is ${seen.codec}: ${seen.reason}`);
    if (!seen.addons.includes(want)) {
      throw new Error(`expected ${want} mapped, found: ${seen.addons.join(', ') || 'none'}`);
    }
    return relative(consumer, want);
  });

  await check(
    '(a) bridgeProgram() chooses the prebuilt tsgi-cgi-bridge, executable as installed',
    () => {
      const r = run(
        'node',
        [
          '-e',
          "import('./node_modules/tsgi/dist/server/bridge.js').then((m) => console.log(JSON.stringify(m.bridgeProgram())))",
        ],
        { cwd: consumer, env: userEnv },
      );
      const seen = json(r.stdout);
      const want = realpathSync(join(installed, BRIDGE));
      if (!seen.native || realpathSync(seen.path) !== want) {
        throw new Error(`expected ${want} (native), got ${JSON.stringify(seen)}`);
      }
      accessSync(want, fsConstants.X_OK);
      accessSync(join(installed, NODE_BRIDGE), fsConstants.X_OK);
      return relative(consumer, want);
    },
  );

  await check('(a) conformance vectors through the installed package (native and ts)', () =>
    conformance({ ...userEnv, CI: 'true' }),
  );

  // (b) no prebuilds: the ts fallback -------------------------------------------------------
  const prebuilds = join(installed, 'prebuilds');
  renameSync(prebuilds, `${prebuilds}.away`);
  try {
    await check('(b) without prebuilds/ bridgeProgram() chooses the Node.js bridge', () => {
      const r = run(
        'node',
        [
          '-e',
          "import('./node_modules/tsgi/dist/server/bridge.js').then((m) => console.log(JSON.stringify(m.bridgeProgram())))",
        ],
        { cwd: consumer, env: userEnv },
      );
      const seen = json(r.stdout);
      const want = realpathSync(join(installed, NODE_BRIDGE));
      if (seen.native !== false || realpathSync(seen.path) !== want) {
        throw new Error(`expected ${want} (not native), got ${JSON.stringify(seen)}`);
      }
      return relative(consumer, want);
    });

    await check('(b) without prebuilds/ the ts codec is selected, silently', () => {
      const r = run('node', ['check-codec.mjs'], { cwd: consumer, env: userEnv });
      const seen = json(r.stdout);
      if (seen.codec !== 'ts') throw new Error(`codec is ${seen.codec}`);
      if (seen.addons.length) throw new Error(`an addon is mapped: ${seen.addons.join(', ')}`);
      if (r.stderr.trim()) throw new Error(`unexpected stderr:\n${r.stderr}`);
    });

    await check('(b) NODE_DEBUG=tsgi says why, in one line', () => {
      const r = run('node', ['check-codec.mjs'], {
        cwd: consumer,
        env: { ...userEnv, NODE_DEBUG: 'tsgi' },
      });
      const lines = r.stderr.split('\n').filter((l) => l.includes('tsgi'));
      if (lines.length !== 1)
        throw new Error(`expected one tsgi line on stderr, got:\n${r.stderr}`);
      return lines[0].trim();
    });

    await check('(b) TSGI_CODEC=native fails loudly', () => {
      const r = run('node', ['check-codec.mjs'], {
        cwd: consumer,
        env: { ...userEnv, TSGI_CODEC: 'native' },
        expectFail: true,
      });
      if (!/TSGI_CODEC=native/.test(r.stderr)) throw new Error(`stderr:\n${r.stderr}`);
    });

    await check('(b) conformance vectors through the installed package (ts only)', () => {
      const env = { ...userEnv };
      delete env.CI;
      return conformance(env);
    });

    await check('(d) ESM import and CommonJS require on the ts codec', () => {
      const esm = json(run('node', ['consumer.mjs'], { cwd: consumer, env: userEnv }).stdout);
      const cjs = json(run('node', ['consumer.cjs'], { cwd: consumer, env: userEnv }).stdout);
      if (esm.codec !== 'ts' || cjs.codec !== 'ts') throw new Error(JSON.stringify({ esm, cjs }));
    });
  } finally {
    renameSync(`${prebuilds}.away`, prebuilds);
  }

  // (c) npx tsgi serve -----------------------------------------------------------------------
  /**
   * Runs `npx --no-install tsgi serve APP --http 127.0.0.1:PORT` in `cwd` as the user, GETs
   * `path` and checks the answer starts with `want` (waiting up to `waitMs` for the server);
   * resolves with "200 BODY" and the output.
   */
  async function npxServe(cwd, app, path, want, waitMs = 15000, env = userEnv) {
    const port = await freePort();
    const args = ['--no-install', 'tsgi', 'serve', app, '--http', `127.0.0.1:${port}`];
    /* Its own process group, so that npx, sh and the server all end together. */
    const child = spawn('npx', args, {
      cwd,
      env,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (c) => (output += c));
    child.stderr.on('data', (c) => (output += c));
    let exited = null;
    child.on('exit', (code, signal) => (exited = signal ?? code));
    try {
      const deadline = Date.now() + waitMs;
      for (;;) {
        if (exited !== null)
          throw new Error(`npx ${args.join(' ')} exited (${exited}):\n${output}`);
        try {
          const res = await httpGet(port, path);
          if (res.status !== 200 || !res.body.startsWith(want)) {
            throw new Error(`answered ${res.status}: ${JSON.stringify(res.body)}\n${output}`);
          }
          return { answer: `200 ${JSON.stringify(res.body.trim())}`, output };
        } catch (err) {
          if (!/ECONNREFUSED|timeout/.test(err.message) || Date.now() > deadline) {
            throw new Error(`${err.message}\n--- tsgi output\n${tail(output)}`, { cause: err });
          }
          await sleep(100);
        }
      }
    } finally {
      if (exited === null) {
        try {
          process.kill(-child.pid, 'SIGTERM');
        } catch {
          /* already gone */
        }
        await sleep(200);
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
  }

  await check('(c) `npx tsgi serve` answers an HTTP request on 127.0.0.1', async () => {
    if (!existsSync(join(installed, 'dist', 'cli.js'))) {
      throw new Skip('dist/cli.js is not in the package yet (lib/cli.ts not written?)');
    }
    return (await npxServe(consumer, 'app.mjs', '/hello', 'hello from tsgi GET /hello')).answer;
  });

  await check('(f) a clone without a compiler: npm ci completes, the ts codec serves', async () => {
    const clone = join(work, 'clone');
    run('git', ['clone', '--quiet', '--no-hardlinks', repo, clone]);
    const r = run('npm', ['ci', '--prefer-offline', '--foreground-scripts'], {
      cwd: clone,
      env: { ...userEnv, CI: '' },
    });
    const said = `${r.stdout}\n${r.stderr}`.split('\n').filter((l) => l.startsWith('tsgi: '));
    const line =
      'tsgi: native addon not built (not found on PATH: a C++ compiler, make, python3); using ' +
      'the TypeScript codec. To build it: install python3, make and g++ (or clang++), then run ' +
      'npm run build:native';
    if (said.length !== 1 || said[0] !== line) {
      throw new Error(
        `expected the one line\n${line}\ngot:\n${said.join('\n')}\n${tail(r.stderr)}`,
      );
    }
    if (existsSync(join(clone, 'build'))) throw new Error('something made build/ in the clone');
    const { answer, output } = await npxServe(
      clone,
      'examples/hello.mjs',
      '/x',
      'Hello, world! You asked for /x',
      /* npm 11 runs a project's own bin by installing the project into its npx cache first;
         under CI=true `npx --no-install` refuses that (exit 1, no word), so the quick start
         runs as in a user's terminal, without CI */
      120_000,
      { ...userEnv, CI: '' },
    );
    if (!output.includes('(ts codec)')) throw new Error(`not the ts codec:\n${output}`);
    return answer;
  });

  // (d) ESM, CommonJS and types -----------------------------------------------------------------
  await check('(d) ESM import of the installed package (native codec)', () => {
    const r = json(run('node', ['consumer.mjs'], { cwd: consumer, env: userEnv }).stdout);
    if (r.codec !== 'native' || r.problems.length) throw new Error(JSON.stringify(r));
  });

  await check('(d) CommonJS require of the installed package (native codec)', () => {
    const r = json(run('node', ['consumer.cjs'], { cwd: consumer, env: userEnv }).stdout);
    if (r.codec !== 'native' || r.problems.length) throw new Error(JSON.stringify(r));
    if (!r.entry.endsWith('/node_modules/tsgi/dist/cjs/index.js')) throw new Error(r.entry);
    return relative(consumer, r.entry);
  });

  await check('(d) types resolve for ESM (.mts) and CommonJS (.cts) consumers (tsc)', () => {
    const types = join(consumer, 'types');
    mkdirSync(types);
    const body = [
      "const head: Uint8Array = codec.encodeHead('200 OK', ['A', 'b'], 'cgi');",
      'const parser: Parser<ScgiEvent> = codec.createScgiParser({ maxPairs: 10 });',
      'const events: ScgiEvent[] = parser.push(head);',
      "const name: CodecName = codec.name === 'native' ? 'native' : tsCodec.name;",
      'const err: CodecError | null = null;',
      'export const result: unknown[] = [events, name, err, loadNativeCodec().reason.length];',
      '// @ts-expect-error: the codec has no such method',
      'codec.noSuchMethod();',
      '',
    ].join('\n');
    const imports =
      "import { codec, tsCodec, loadNativeCodec, CodecError } from 'tsgi';\n" +
      "import type { CodecName, Parser, ScgiEvent } from 'tsgi';\n";
    writeFileSync(join(types, 'esm.mts'), imports + body);
    writeFileSync(join(types, 'cjs.cts'), imports + body);
    writeFileSync(
      join(types, 'tsconfig.json'),
      JSON.stringify(
        {
          compilerOptions: {
            module: 'nodenext',
            moduleResolution: 'nodenext',
            target: 'es2022',
            strict: true,
            noEmit: true,
            skipLibCheck: false,
            types: ['node'],
            typeRoots: [join(repo, 'node_modules', '@types')],
            traceResolution: true,
          },
          files: ['esm.mts', 'cjs.cts'],
        },
        null,
        2,
      ),
    );
    const tsc = join(repo, 'node_modules', 'typescript', 'bin', 'tsc');
    const r = run('node', [tsc, '-p', types], { cwd: types, env: userEnv });
    /* Which declaration file each consumer resolved 'tsgi' to (--traceResolution). */
    const resolved = {};
    let from = '';
    for (const line of r.stdout.split('\n')) {
      const start = /^=+ Resolving module 'tsgi' from '([^']+)'/.exec(line);
      if (start) from = relative(types, start[1]);
      const done = /^=+ Module name 'tsgi' was successfully resolved to '([^']+)'/.exec(line);
      if (done && from) resolved[from] = relative(installed, done[1]);
    }
    const want = { 'esm.mts': 'dist/index.d.ts', 'cjs.cts': 'dist/cjs/index.d.ts' };
    for (const [file, dts] of Object.entries(want)) {
      if (resolved[file] !== dts) {
        throw new Error(`${file}: 'tsgi' resolved to ${resolved[file]}, expected ${dts}`);
      }
    }
    return Object.entries(resolved)
      .map(([file, dts]) => `${file} → ${dts}`)
      .join(', ');
  });

  await check('(d) ESM and CommonJS copies in one process both keep working', () => {
    const r = spawnSync('node', ['dual.mjs'], { cwd: consumer, env: userEnv, encoding: 'utf8' });
    if (r.status === 0) return json(r.stdout).esm;
    throw new Error(`ESM and CommonJS copies broke each other: ${(r.stdout || r.stderr).trim()}`);
  });
} catch (err) {
  failed++;
  log(`FAIL  ${err instanceof Error ? err.message : String(err)}`);
} finally {
  if (!keep) rmSync(work, { recursive: true, force: true });
}

log(`\n${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exitCode = failed === 0 ? 0 : 1;
