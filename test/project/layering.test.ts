/**
 * The layers import downwards only: the codec, the gateway and the protocol servers never
 * import the command layer (lib/server, lib/command, lib/cli.ts), so a library user who embeds
 * a protocol server loads none of the process manager. In native/, only the N-API binding
 * (native/binding) includes Node's headers: native/core is plain C++17 (no libuv either) and
 * native/transport is libuv only, so both build and test without Node.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const LIB = resolve(__dirname, '..', '..', 'lib');
const LOWER = ['codec', 'gateway', 'protocol'];
const UPPER = ['server/', 'command/', 'cli.ts'];
const NATIVE = resolve(__dirname, '..', '..', 'native');
/** Node's headers: N-API and the embedder API. */
const NODE_HEADERS =
  /^(node_api|js_native_api|js_native_api_types|node_api_types|napi|node|v8)\.h$/;

/** Every .ts file under `dir`. */
function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true, recursive: true })
    .filter((e) => e.isFile() && e.name.endsWith('.ts'))
    .map((e) => join(e.parentPath ?? e.path, e.name));
}

/** The lib-relative paths `file` imports (static, re-exports, dynamic, type-only). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles
    .map((f) => f.fileName)
    .filter((name) => name.startsWith('.'))
    .map((name) => relative(LIB, resolve(dirname(file), name)).replace(/\.js$/, '.ts'));
}

describe('layering', () => {
  for (const layer of LOWER) {
    it(`lib/${layer} imports nothing from lib/server, lib/command or lib/cli.ts`, () => {
      const files = sources(join(LIB, layer));
      expect(files.length).toBeGreaterThan(0);
      const upward: string[] = [];
      for (const file of files) {
        for (const target of importsOf(file)) {
          if (UPPER.some((u) => target === u || target.startsWith(u))) {
            upward.push(`${relative(LIB, file)} -> ${target}`);
          }
        }
      }
      expect(upward).toEqual([]);
    });
  }

  /** The #include targets of every C/C++ source and header under native/`folder`. */
  function includesUnder(folder: string): [file: string, header: string][] {
    const out: [string, string][] = [];
    for (const e of readdirSync(join(NATIVE, folder), { withFileTypes: true, recursive: true })) {
      if (!e.isFile() || !/\.(cc|h|c)$/.test(e.name)) continue;
      const file = join(e.parentPath ?? e.path, e.name);
      for (const m of readFileSync(file, 'utf8').matchAll(/^\s*#\s*include\s*[<"]([^>"]+)[>"]/gm)) {
        out.push([relative(NATIVE, file), m[1]]);
      }
    }
    return out;
  }

  it('native/core includes neither Node nor libuv headers, nor the binding', () => {
    const bad = includesUnder('core')
      .filter(
        ([, h]) =>
          NODE_HEADERS.test(h) || h === 'uv.h' || h.startsWith('uv/') || h.startsWith('binding/'),
      )
      .map(([f, h]) => `${f} -> ${h}`);
    expect(bad).toEqual([]);
  });

  it('native/transport includes no Node headers, nor the binding', () => {
    const found = includesUnder('transport');
    expect(found.map(([, h]) => h)).toContain('uv.h');
    const bad = found
      .filter(([, h]) => NODE_HEADERS.test(h) || h.startsWith('binding/'))
      .map(([f, h]) => `${f} -> ${h}`);
    expect(bad).toEqual([]);
  });

  it('native/binding is where node_api.h is included', () => {
    expect(includesUnder('binding')).toContainEqual(['binding/common.h', 'node_api.h']);
  });
});
