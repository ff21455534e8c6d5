/**
 * Loading the application named on the command line: `APP[:export]`, the export chosen by the
 * rules of DESIGN.md (named export, else default, else `application`, else `app`), an optional
 * factory called once, and the interface that says what the export is.
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe } from '../gateway/respond.js';
import type { App } from '../gateway/types.js';

/** What the export is: a TSGI app, a node:http request listener, or a fetch handler. */
export type AppInterface = 'tsgi' | 'node' | 'fetch';

/** The interfaces `--interface` accepts. */
export const INTERFACES: readonly AppInterface[] = ['tsgi'];

/** The app cannot be loaded; the message is for the user. */
export class AppLoadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'AppLoadError';
  }
}

export interface LoadOptions {
  /** The export is a factory: call it once (it may be async) and serve what it returns. */
  factory?: boolean;
  /** What the export is (default "tsgi"). */
  interface?: AppInterface;
}

const IDENT = /^[A-Za-z_$][\w$]*$/;

/** Splits APP[:export]; a Windows drive letter is not an export. */
export function splitAppSpec(spec: string): { file: string; name: string | null } {
  const colon = spec.lastIndexOf(':');
  if (colon > 0) {
    const name = spec.slice(colon + 1);
    const file = spec.slice(0, colon);
    if (IDENT.test(name) && !(file.length === 1 && /^[A-Za-z]$/.test(file))) {
      return { file, name };
    }
  }
  return { file: spec, name: null };
}

/** Checks an `--interface` value; throws an AppLoadError naming the accepted ones. */
export function parseInterface(value: string): AppInterface {
  if ((INTERFACES as readonly string[]).includes(value)) return value as AppInterface;
  throw new AppLoadError(
    `--interface ${value} is not available; this version serves ${INTERFACES.map((i) => `"${i}"`).join(', ')} apps`,
  );
}

/** Imports APP (relative to the current directory) and returns the TSGI app to serve. */
export async function loadApp(spec: string, options: LoadOptions = {}): Promise<App> {
  const iface = parseInterface(options.interface ?? 'tsgi');
  const { file, name } = splitAppSpec(spec);
  const abs = resolve(file);
  if (!existsSync(abs)) throw new AppLoadError(`cannot find the app module "${file}" (${abs})`);
  let mod: Record<string, unknown>;
  try {
    mod = (await import(pathToFileURL(abs).href)) as Record<string, unknown>;
  } catch (err) {
    throw new AppLoadError(
      `cannot load the app module "${file}": ${(err as Error).message ?? err}`,
    );
  }
  let chosen: string;
  if (name !== null) {
    if (!(name in mod)) {
      throw new AppLoadError(
        `"${file}" has no export named "${name}" (it exports: ${exportsOf(mod)})`,
      );
    }
    chosen = name;
  } else {
    const found = ['default', 'application', 'app'].find((n) => n in mod && mod[n] !== undefined);
    if (found === undefined) {
      throw new AppLoadError(
        `"${file}" has no default export and no export named "application" or "app" ` +
          `(it exports: ${exportsOf(mod)}); name one as ${file}:NAME`,
      );
    }
    chosen = found;
  }
  const value = mod[chosen];
  if (typeof value !== 'function') {
    throw new AppLoadError(
      `the export "${chosen}" of "${file}" is ${describe(value)}, not a function`,
    );
  }
  let served: unknown = value;
  if (options.factory === true) {
    try {
      served = await (value as () => unknown)();
    } catch (err) {
      throw new AppLoadError(
        `the factory "${chosen}" of "${file}" failed: ${(err as Error).message ?? err}`,
      );
    }
    if (typeof served !== 'function') {
      throw new AppLoadError(
        `the factory "${chosen}" of "${file}" returned ${describe(served)}, not an app function`,
      );
    }
  }
  return adapt(served as (...args: never[]) => unknown, iface);
}

/** Turns the export into a TSGI app according to its interface. */
function adapt(fn: (...args: never[]) => unknown, iface: AppInterface): App {
  switch (iface) {
    case 'tsgi':
      return fn as unknown as App;
    default:
      throw new AppLoadError(`--interface ${iface} is not available`);
  }
}

function exportsOf(mod: Record<string, unknown>): string {
  const names = Object.keys(mod);
  return names.length === 0 ? 'nothing' : names.join(', ');
}
