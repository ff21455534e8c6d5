/**
 * Importing an app module whose file name Node.js does not know: the `.fcgi` or `.cgi` entry
 * file of shared hosting, whose first line is `#!/usr/bin/env -S tsgi serve` (or `tsgi cgi`)
 * and whose body is the app. `import()` refuses such a file (ERR_UNKNOWN_FILE_EXTENSION), so
 * its format is decided here — ES module when its text does not compile as a CommonJS module
 * (it has `import`/`export` statements, `import.meta` or a top-level await), else CommonJS —
 * and a module loader hook (module.register) tells Node.js that format for this one URL. The
 * file keeps its own URL: its relative imports and require() calls resolve from its folder,
 * and import.meta.url / __filename name it.
 */
import process from 'node:process';
import { readFileSync } from 'node:fs';
import * as nodeModule from 'node:module';
import { extname } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Script } from 'node:vm';

/** Extensions Node.js imports by itself (TypeScript ones where it strips types). */
const KNOWN_EXTENSIONS: ReadonlySet<string> = new Set([
  '.js',
  '.mjs',
  '.cjs',
  '.json',
  '.node',
  '.ts',
  '.mts',
  '.cts',
  '.wasm',
]);

/** The format Node.js is told for an entry file of another name. */
export type EntryFormat = 'module' | 'commonjs';

/**
 * The format of the JavaScript `source`: `commonjs` when it compiles as the body of a
 * CommonJS module (a first `#!` line left out), else `module`. A file with a syntax error is
 * called a module, so that import() reports the error with its place.
 */
export function entryFormat(source: string): EntryFormat {
  const body = source.startsWith('#!') ? source.replace(/^#![^\n]*/, '') : source;
  try {
    new Script(`(function (exports, require, module, __filename, __dirname) {${body}\n})`);
    return 'commonjs';
  } catch {
    return 'module';
  }
}

/* The hooks run on Node's loader thread; they are given as source so that the ES module and
   the CommonJS builds of tsgi register the same text. `data` maps file URLs to formats. */
const HOOKS = `
let formats = new Map();
export function initialize(data) { formats = new Map(Object.entries(data)); }
export async function load(url, context, next) {
  const format = formats.get(url.split('?')[0]);
  if (format === undefined) return next(url, context);
  if (format === 'commonjs') return { format, shortCircuit: true };
  const { readFile } = await import('node:fs/promises');
  return { format, source: await readFile(new URL(url)), shortCircuit: true };
}
`;

const registered = new Map<string, EntryFormat>();

/** True when `file` needs {@link importEntry}: Node.js does not import its extension itself. */
export function isEntryFile(file: string): boolean {
  return !KNOWN_EXTENSIONS.has(extname(file).toLowerCase());
}

/**
 * Imports the module at the absolute path `file` as import() would, also when its name has
 * an extension Node.js does not know (see the module comment).
 */
export async function importEntry(file: string): Promise<Record<string, unknown>> {
  const url = pathToFileURL(file).href;
  if (!isEntryFile(file)) return (await import(url)) as Record<string, unknown>;
  const format = entryFormat(readFileSync(file, 'utf8'));
  if (registered.get(url) !== format) {
    const register = (nodeModule as { register?: typeof nodeModule.register }).register;
    if (typeof register !== 'function') {
      if (format === 'commonjs') {
        /* Node.js before 18.19/20.6: require() treats an unknown extension as .js */
        const mod = nodeModule.createRequire(file)(file) as unknown;
        return { default: mod };
      }
      throw new Error(
        `Node.js ${process.versions.node} cannot load an ES module named "${extname(file)}" (18.19+ and 20.6+ can); name it .mjs, or make the entry file re-export it`,
      );
    }
    registered.set(url, format);
    register(`data:text/javascript,${encodeURIComponent(HOOKS)}`, {
      data: Object.fromEntries(registered),
    });
  }
  return (await import(url)) as Record<string, unknown>;
}
