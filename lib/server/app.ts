/**
 * Loading the application named on the command line: `APP[:export]`, the export chosen by the
 * rules of DESIGN.md (named export, else default, else `application`, else `app`), an optional
 * factory called once, and the interface that says what the export is:
 *
 * - `tsgi`: a TSGI app `(environ, startResponse) => body`.
 * - `node`: a node:http request listener `(req, res)` (an Express app, Koa's `app.callback()`,
 *   Fastify's `routing`), or a framework instance recognised by its shape: a Koa app (an
 *   object with `callback()` and `use()`: its `callback()` is served) or a Fastify instance
 *   (an object with `routing`, `ready()` and `inject()`: it is made ready once, then its
 *   `routing` is served). Run through fromNodeHandler (lib/adapters/node.ts).
 * - `fetch`: `(request) => Response`, or an object with a `fetch(request)` method (a Hono or
 *   itty-router app, a `{ fetch }` module in the style of Workers). Run through fromFetch
 *   (lib/adapters/fetch.ts).
 */
import { existsSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { fromFetch, type FetchHandler } from '../adapters/fetch.js';
import { fromNodeHandler, type NodeHandler } from '../adapters/node.js';
import { describe } from '../gateway/respond.js';
import type { App } from '../gateway/types.js';

/** What the export is: a TSGI app, a node:http request listener, or a fetch handler. */
export type AppInterface = 'tsgi' | 'node' | 'fetch';

/** The interfaces `--interface` accepts. */
export const INTERFACES: readonly AppInterface[] = ['tsgi', 'node', 'fetch'];

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
  if (typeof value !== 'function' && (iface === 'tsgi' || !isObject(value))) {
    throw new AppLoadError(
      `the export "${chosen}" of "${file}" is ${describe(value)}, not ${iface === 'tsgi' ? 'a function' : WANTED[iface]}`,
    );
  }
  let served: unknown = value;
  if (options.factory === true) {
    if (typeof value !== 'function') {
      throw new AppLoadError(
        `--factory: the export "${chosen}" of "${file}" is ${describe(value)}, not a function`,
      );
    }
    try {
      served = await (value as () => unknown)();
    } catch (err) {
      throw new AppLoadError(
        `the factory "${chosen}" of "${file}" failed: ${(err as Error).message ?? err}`,
      );
    }
    if (typeof served !== 'function' && (iface === 'tsgi' || !isObject(served))) {
      throw new AppLoadError(
        `the factory "${chosen}" of "${file}" returned ${describe(served)}, not ${WANTED[iface]}`,
      );
    }
  }
  return adapt(
    served,
    iface,
    `the ${options.factory === true ? 'factory result' : `export "${chosen}"`} of "${file}"`,
  );
}

const WANTED: Record<AppInterface, string> = {
  tsgi: 'an app function',
  node: 'a (req, res) request listener, a Koa app or a Fastify instance',
  fetch: 'a (request) => Response function or an object with a fetch() method',
};

function isObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object';
}

/**
 * Turns what the module gave into a TSGI app according to its interface (see the module
 * comment). `what` names it in errors.
 */
export async function adapt(value: unknown, iface: AppInterface, what = 'the app'): Promise<App> {
  switch (iface) {
    case 'tsgi':
      if (typeof value !== 'function') {
        throw new AppLoadError(`${what} is ${describe(value)}, not an app function`);
      }
      return value as App;
    case 'node': {
      if (typeof value === 'function') return fromNodeHandler(value as NodeHandler);
      const v = value as Record<string, unknown>;
      if (isObject(v) && typeof v.callback === 'function' && typeof v.use === 'function') {
        /* Koa: app.callback() is its request listener */
        const listener = (v.callback as () => unknown).call(v);
        if (typeof listener !== 'function') {
          throw new AppLoadError(
            `${what} looks like a Koa app, but its callback() gave no function`,
          );
        }
        return fromNodeHandler(listener as NodeHandler);
      }
      if (
        isObject(v) &&
        typeof v.routing === 'function' &&
        typeof v.ready === 'function' &&
        typeof v.inject === 'function'
      ) {
        /* Fastify: plugins load in ready(); routing is the server's request listener */
        try {
          await (v.ready as () => Promise<unknown>).call(v);
        } catch (err) {
          throw new AppLoadError(
            `${what} is a Fastify instance whose ready() failed: ${(err as Error).message ?? err}`,
          );
        }
        return fromNodeHandler(v.routing as NodeHandler);
      }
      throw new AppLoadError(`${what} is ${describe(value)}, not ${WANTED.node}`);
    }
    case 'fetch': {
      if (typeof value === 'function') return fromFetch(value as FetchHandler);
      const v = value as Record<string, unknown>;
      if (isObject(v) && typeof v.fetch === 'function') {
        const fetch = v.fetch as FetchHandler;
        return fromFetch((request, environ) => fetch.call(v, request, environ));
      }
      throw new AppLoadError(`${what} is ${describe(value)}, not ${WANTED.fetch}`);
    }
  }
}

function exportsOf(mod: Record<string, unknown>): string {
  const names = Object.keys(mod);
  return names.length === 0 ? 'nothing' : names.join(', ');
}
