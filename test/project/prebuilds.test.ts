/**
 * Prebuild names: what the release workflow (.github/workflows/prebuild.yml) builds and ships
 * against what the package's loader looks for.
 *
 * (a) For each matrix target, EXPECTED_PREBUILDS names the one file that target's
 *     `npm run build:prebuilds` writes: prebuildify's prebuilds/<platform>-<arch>/tsgi.node,
 *     with the libc tag (tsgi.glibc.node, tsgi.musl.node) on Linux only, where the script
 *     passes --tag-libc.
 * (b) node-gyp-build, configured as it runs on that target (platform, arch, libc), picks
 *     exactly that file out of a package that holds every expected prebuild.
 * (c) musl: lib/codec/native.ts on a musl system that node-gyp-build cannot recognise (a musl
 *     loader in /lib, no glibc in process.report, no /etc/alpine-release) and on Alpine loads
 *     prebuilds/linux-<arch>/tsgi.musl.node, and on glibc tsgi.glibc.node. Detection is faked
 *     (node:fs and process.report); the loader, node-gyp-build and the addon are real: the musl
 *     file is a copy of this machine's build, the glibc file is not an addon at all, so only
 *     the right choice loads.
 */
import {
  copyFileSync,
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { parse } from 'yaml';
import { prebuiltBridgeName } from '../../lib/server/bridge.js';

const ROOT = join(import.meta.dirname, '..', '..');
const isCI = process.env.CI === 'true' || process.env.CI === '1';
const require = createRequire(import.meta.url);

interface Target {
  target: string;
  os: string;
}
const workflow = parse(
  readFileSync(join(ROOT, '.github', 'workflows', 'prebuild.yml'), 'utf8'),
) as {
  env: { EXPECTED_PREBUILDS: string };
  jobs: { prebuild: { strategy: { matrix: { include: Target[] } } } };
};
const expected = workflow.env.EXPECTED_PREBUILDS.trim().split(/\s+/);
const targets = workflow.jobs.prebuild.strategy.matrix.include;
const buildScript = (
  JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
    scripts: Record<string, string>;
  }
).scripts['build:prebuilds']!;

/** platform, arch and libc of a matrix target's name (linux-arm64-musl, darwin-x64, …). */
function describeTarget(name: string): { platform: string; arch: string; libc?: string } {
  const m = /^(linux|darwin|win32)-(x64|arm64)(?:-(glibc|musl))?$/.exec(name);
  if (!m) throw new Error(`matrix target ${name} is not <platform>-<arch>[-<libc>]`);
  if ((m[1] === 'linux') !== (m[3] !== undefined)) {
    throw new Error(`matrix target ${name}: Linux targets name their libc, others do not`);
  }
  return { platform: m[1]!, arch: m[2]!, libc: m[3] };
}

/** The file prebuildify writes for a target, given how build:prebuilds calls it. */
function producedFile(t: { platform: string; arch: string; libc?: string }): string {
  const tagsLibc = t.platform === 'linux' && /--tag-libc/.test(buildScript);
  return `${t.platform}-${t.arch}/tsgi${tagsLibc ? `.${t.libc}` : ''}.node`;
}

/** A fresh node-gyp-build (it reads platform, arch and LIBC once, when loaded) for `env`. */
function nodeGypBuildFor(env: Record<string, string | undefined>): {
  resolve(dir: string): string;
} {
  const file = require.resolve('node-gyp-build/node-gyp-build.js');
  const saved = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  delete require.cache[file];
  try {
    for (const [k, v] of Object.entries(env)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    return require(file) as { resolve(dir: string): string };
  } finally {
    delete require.cache[file];
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('release workflow prebuilds and the loader', () => {
  /* A published package: every expected prebuild (content does not matter to resolve). */
  let pkg = '';
  beforeAll(() => {
    pkg = mkdtempSync(join(tmpdir(), 'tsgi-prebuilds-'));
    dirs.push(pkg);
    writeFileSync(join(pkg, 'package.json'), '{ "name": "tsgi" }\n');
    for (const f of expected) {
      mkdirSync(join(pkg, 'prebuilds', f, '..'), { recursive: true });
      writeFileSync(join(pkg, 'prebuilds', f), '');
    }
  });

  it('build:prebuilds tags the libc on Linux only', () => {
    expect(buildScript).toMatch(/process\.platform\s*===\s*'linux'\s*\?\s*\['--tag-libc'\]/);
  });

  it('lists one prebuild per matrix target, tsgi-cgi-bridge beside it but on win32, and only those', () => {
    const produced = targets.flatMap((t) => {
      const d = describeTarget(t.target);
      /* scripts/prebuild-bridge.mjs names it as lib/server/bridge.ts looks for it */
      const bridge = `${d.platform}-${d.arch}/${prebuiltBridgeName(
        d.platform === 'linux' ? (d.libc as 'glibc' | 'musl') : null,
      )}`;
      return d.platform === 'win32' ? [producedFile(d)] : [producedFile(d), bridge];
    });
    expect([...expected].sort()).toEqual([...produced].sort());
  });

  for (const t of targets) {
    it(`${t.target}: node-gyp-build picks the file that target builds`, () => {
      const d = describeTarget(t.target);
      const ngb = nodeGypBuildFor({
        npm_config_platform: d.platform,
        npm_config_arch: d.arch,
        /* On Alpine node-gyp-build sees /etc/alpine-release itself (and tsgi's loader sets
         * LIBC=musl on other musl systems, see below); glibc runners leave it unset. */
        LIBC: d.libc === 'musl' ? 'musl' : undefined,
        TSGI_PREBUILD: undefined,
        PREBUILDS_ONLY: undefined,
      });
      expect(ngb.resolve(pkg)).toBe(join(pkg, 'prebuilds', producedFile(d)));
    });
  }
});

/* What the fake system looks like to lib/codec/native.ts. */
const system = { alpineRelease: false, muslLoader: false, glibcInReport: true };

vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const existsSync = (p: import('node:fs').PathLike): boolean =>
    p === '/etc/alpine-release' ? system.alpineRelease : fs.existsSync(p);
  const readdirSync = ((p: import('node:fs').PathLike, o?: unknown) => {
    const real = fs.readdirSync(p, o as undefined);
    return p === '/lib' && system.muslLoader ? [...real, `ld-musl-${muslArch()}.so.1`] : real;
  }) as typeof fs.readdirSync;
  return { ...fs, default: { ...fs, existsSync, readdirSync }, existsSync, readdirSync };
});

function muslArch(): string {
  return process.arch === 'x64' ? 'x86_64' : 'aarch64';
}

const addon = join(ROOT, 'build', 'Release', 'tsgi.node');
const canLoad = process.platform === 'linux' && existsSync(addon);
if (!canLoad) {
  console.warn(`*** tsgi tests: no ${addon} on ${process.platform}: musl loader tests SKIPPED`);
}

describe.skipIf(!canLoad && !isCI)(
  'musl: the loader hands node-gyp-build the libc it detects',
  () => {
    const tuple = `linux-${process.arch}`;

    afterEach(() => {
      vi.restoreAllMocks();
      Object.assign(system, { alpineRelease: false, muslLoader: false, glibcInReport: true });
    });

    /**
     * A package of its own for each case (a file dlopen()ed once stays mapped): lib/ (as vitest
     * runs it), package.json, node_modules, and this platform's two prebuilds: musl (a real
     * addon) and glibc (not an addon).
     */
    function makePackage(): string {
      if (!canLoad) throw new Error(`no ${addon}: the addon must be built under CI=true`);
      const root = mkdtempSync(join(tmpdir(), 'tsgi-musl-'));
      dirs.push(root);
      cpSync(join(ROOT, 'lib'), join(root, 'lib'), { recursive: true });
      copyFileSync(join(ROOT, 'package.json'), join(root, 'package.json'));
      symlinkSync(join(ROOT, 'node_modules'), join(root, 'node_modules'), 'dir');
      mkdirSync(join(root, 'prebuilds', tuple), { recursive: true });
      copyFileSync(addon, join(root, 'prebuilds', tuple, 'tsgi.musl.node'));
      writeFileSync(join(root, 'prebuilds', tuple, 'tsgi.glibc.node'), 'not an addon\n');
      return root;
    }

    /** Loads a fresh copy of the loader (and of node-gyp-build) from `root` on the fake system. */
    async function load(root: string): Promise<{ codec: unknown; reason: string }> {
      const report = process.report.getReport() as { header: Record<string, unknown> };
      if (!system.glibcInReport) delete report.header.glibcVersionRuntime;
      vi.spyOn(process.report, 'getReport').mockReturnValue(report);
      const saved = process.env.LIBC;
      delete process.env.LIBC;
      delete process.env.TSGI_NATIVE_PATH;
      delete process.env.TSGI_PREBUILD;
      const forget = () => {
        delete require.cache[require.resolve('node-gyp-build/node-gyp-build.js')];
        delete require.cache[require.resolve('node-gyp-build')];
      };
      forget();
      vi.resetModules();
      try {
        const mod = (await import(join(root, 'lib', 'codec', 'native.ts'))) as {
          loadNativeCodec(): { codec: unknown; reason: string };
        };
        return mod.loadNativeCodec();
      } finally {
        if (saved !== undefined) process.env.LIBC = saved;
        forget(); /* leave no copy that read a fake system behind */
      }
    }

    /** The .node files this process has mapped from `root`'s prebuilds/. */
    function mapped(root: string): string[] {
      const maps = readFileSync('/proc/self/maps', 'utf8').split('\n');
      return [...new Set(maps.map((l) => l.split(/\s+/).slice(5).join(' ')))].filter((p) =>
        p.startsWith(join(root, 'prebuilds')),
      );
    }

    it('a musl system without /etc/alpine-release: tsgi.musl.node', async () => {
      Object.assign(system, { muslLoader: true, glibcInReport: false });
      const root = makePackage();
      const r = await load(root);
      expect(r.reason).toBe(`loaded from ${root}`);
      expect(r.codec).not.toBeNull();
      expect(mapped(root)).toEqual([join(root, 'prebuilds', tuple, 'tsgi.musl.node')]);
    });

    it('Alpine (/etc/alpine-release): tsgi.musl.node', async () => {
      Object.assign(system, { alpineRelease: true, muslLoader: true, glibcInReport: false });
      const root = makePackage();
      const r = await load(root);
      expect(r.reason).toBe(`loaded from ${root}`);
      expect(mapped(root)).toEqual([join(root, 'prebuilds', tuple, 'tsgi.musl.node')]);
    });

    it('glibc with a musl loader installed (musl-tools): tsgi.glibc.node', async () => {
      Object.assign(system, { muslLoader: true, glibcInReport: true });
      const root = makePackage();
      const r = await load(root);
      /* the glibc file is chosen, and it is not an addon: the load fails naming it */
      expect(r.codec).toBeNull();
      expect(r.reason).toContain(join(root, 'prebuilds', tuple, 'tsgi.glibc.node'));
      expect(mapped(root)).toEqual([]);
    });
  },
);
