/**
 * The layers import downwards only: the codec, the gateway and the protocol servers never
 * import the command layer (lib/server, lib/command, lib/cli.ts), so a library user who embeds
 * a protocol server loads none of the process manager.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const LIB = resolve(__dirname, '..', '..', 'lib');
const LOWER = ['codec', 'gateway', 'protocol'];
const UPPER = ['server/', 'command/', 'cli.ts'];

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
});
