/**
 * Loading the application named on the command line: `APP[:export]` (gunicorn's
 * `module:attr`; a module named without its extension is found as .js, .mjs, .cjs, .ts, .mts
 * or .cts), the export chosen by these rules (the named export, else the default export, else
 * `application`, else `app`; a CommonJS module's `exports.app` counts as a named export), an
 * optional factory called once, and the interface that says what the export is:
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
 *
 * Without `--interface` the interface is detected ({@link detectInterface}): an Express or
 * Connect app, a Koa app and a Fastify instance are `node`, an object with `fetch()` is
 * `fetch`, any other function is `tsgi` — and when such a function then fails the way a node
 * handler called with TSGI's arguments fails ("res.setHeader is not a function"), the error
 * says to use `--interface node`; when it returns a Response, `--interface fetch`.
 *
 * TypeScript apps run where Node.js strips types itself (23.6+, 22.18+; 22.6+ with
 * --experimental-strip-types); elsewhere the error gives the command that runs them (tsx).
 * A module that calls `listen()` itself while it loads (`app.listen(3000)` left at the end)
 * gets a warning, and that server is moved to a free loopback port, so that it opens no port
 * tsgi does not serve and workers never fight over it (EADDRINUSE).
 */
import process from 'node:process';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { Server as NetServer } from 'node:net';
import { extname } from 'node:path';
import { resolve } from 'node:path';
import { fromFetch, type FetchHandler } from '../adapters/fetch.js';
import { fromNodeHandler, type NodeHandler } from '../adapters/node.js';
import { describe } from '../gateway/respond.js';
import { importEntry } from './entry.js';
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
  /** What the export is; default: detected from its shape ({@link detectInterface}). */
  interface?: AppInterface | null;
  /** Told about things worth a warning (the module calls listen() itself). */
  onWarning?: (message: string) => void;
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

/**
 * The line where the module at `path` has the syntax error `err`, else null. V8 gives the place
 * of a module's syntax error only to the uncaught-error printer, so `node --check` (which
 * prints "PATH:LINE" first) is asked; this runs only when loading already failed.
 */
export function syntaxErrorLine(err: unknown, path: string): number | null {
  if (!(err instanceof SyntaxError)) return null;
  const r = spawnSync(process.execPath, ['--check', path], { encoding: 'utf8', timeout: 10_000 });
  for (const line of (r.stderr ?? '').split('\n')) {
    if (line.startsWith(`${path}:`)) {
      const m = /^:([0-9]+)$/.exec(line.slice(path.length));
      if (m !== null) return Number(m[1]);
    }
  }
  return null;
}

/** Checks an `--interface` value; throws an AppLoadError naming the accepted ones. */
export function parseInterface(value: string): AppInterface {
  if ((INTERFACES as readonly string[]).includes(value)) return value as AppInterface;
  throw new AppLoadError(
    `--interface ${value} is not available; this version serves ${INTERFACES.map((i) => `"${i}"`).join(', ')} apps`,
  );
}

/** Extensions tried, in order, for a module named without one (gunicorn's `app:app`). */
const MODULE_EXTENSIONS = ['.js', '.mjs', '.cjs', '.ts', '.mts', '.cts'];
const TYPESCRIPT = new Set(['.ts', '.mts', '.cts']);

/** The module file of APP: as given, else with the first extension that exists. */
function findModule(file: string): string {
  const abs = resolve(file);
  if (existsSync(abs) || extname(file) !== '') return abs;
  for (const ext of MODULE_EXTENSIONS) if (existsSync(abs + ext)) return abs + ext;
  return abs;
}

/**
 * Why this Node.js cannot import a TypeScript module, with the command that works; null
 * when the failure is not about TypeScript.
 */
function typescriptAdvice(file: string, err: unknown): string | null {
  const code = (err as NodeJS.ErrnoException).code;
  if (code !== 'ERR_UNKNOWN_FILE_EXTENSION' && code !== 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX') {
    return null;
  }
  const args = process.argv.slice(2).join(' ');
  const tsx = `npm install --save-dev tsx, then: NODE_OPTIONS="--import tsx" npx tsgi ${args}`;
  if (code === 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX') {
    return `cannot load the app module "${file}": ${(err as Error).message.split('\n')[0]}; Node.js strips types but does not compile this syntax: ${tsx}`;
  }
  const [major = 0, minor = 0] = process.versions.node.split('.').map(Number);
  /* type stripping: flagged from 22.6 and in 23.0–23.5, by default from 23.6 and 22.18 */
  const flagged = (major === 22 && minor >= 6 && minor < 18) || (major === 23 && minor < 6);
  return flagged
    ? `cannot load the app module "${file}": Node.js ${process.versions.node} runs TypeScript only with --experimental-strip-types (by default from 22.18 and 23.6): NODE_OPTIONS=--experimental-strip-types npx tsgi ${args}`
    : `cannot load the app module "${file}": Node.js ${process.versions.node} cannot run TypeScript itself (22.18+ and 23.6+ can; 22.6+ with --experimental-strip-types); with tsx: ${tsx}`;
}

/**
 * Runs `load` while `server.listen()` calls are redirected: a listen the app makes itself is
 * reported through `warn` and moved to 127.0.0.1 on a free port (its callback and 'listening'
 * still come, so an app awaiting it goes on).
 */
async function catchingListen<T>(
  file: string,
  warn: ((message: string) => void) | undefined,
  load: () => Promise<T>,
): Promise<T> {
  const proto = NetServer.prototype as unknown as { listen: (...args: unknown[]) => unknown };
  const original = proto.listen;
  let warned = false;
  proto.listen = function (this: NetServer, ...args: unknown[]) {
    const cb = typeof args[args.length - 1] === 'function' ? args[args.length - 1] : undefined;
    if (!warned) {
      warned = true;
      const asked =
        args[0] === undefined || typeof args[0] === 'function' ? '' : JSON.stringify(args[0]);
      warn?.(
        `"${file}" calls listen(${asked}) itself; tsgi serves the app on its own listeners, so ` +
          'that server was moved to a free port on 127.0.0.1 (remove the listen() call, or run it ' +
          'only when the module is the main program)',
      );
    }
    return original.call(this, { host: '127.0.0.1', port: 0 }, cb);
  };
  try {
    return await load();
  } finally {
    proto.listen = original;
  }
}

/** Imports APP (relative to the current directory) and returns the TSGI app to serve. */
export async function loadApp(spec: string, options: LoadOptions = {}): Promise<App> {
  const forced = options.interface == null ? null : parseInterface(options.interface);
  const { file, name } = splitAppSpec(spec);
  const abs = findModule(file);
  if (!existsSync(abs)) throw new AppLoadError(`cannot find the app module "${file}" (${abs})`);
  let mod: Record<string, unknown>;
  try {
    mod = await catchingListen(file, options.onWarning, async () => importEntry(abs));
  } catch (err) {
    if (TYPESCRIPT.has(extname(abs))) {
      const advice = typescriptAdvice(file, err);
      if (advice !== null) throw new AppLoadError(advice);
    }
    const line = syntaxErrorLine(err, abs);
    throw new AppLoadError(
      `cannot load the app module "${file}"${line === null ? '' : ` (line ${line})`}: ${(err as Error).message ?? err}`,
    );
  }
  /* CommonJS: import() gives module.exports as the default export; the names lexed from it
     (exports.app = ...) as named exports, and the rest only inside the default */
  const cjs = isObject(mod.default) && typeof mod.default !== 'function' ? mod.default : null;
  const lookup = (n: string): unknown =>
    n in mod ? mod[n] : cjs !== null && n in cjs ? cjs[n] : undefined;
  let chosen: string;
  if (name !== null) {
    if (lookup(name) === undefined) {
      throw new AppLoadError(
        `"${file}" has no export named "${name}" (it exports: ${exportsOf(mod, cjs)})`,
      );
    }
    chosen = name;
  } else {
    const servable = (v: unknown): boolean => v !== undefined && detectInterface(v) !== null;
    const found =
      ['default', 'application', 'app'].find((n) => servable(lookup(n))) ??
      ['default', 'application', 'app'].find((n) => lookup(n) !== undefined);
    if (found === undefined) {
      throw new AppLoadError(
        `"${file}" has no default export and no export named "application" or "app" ` +
          `(it exports: ${exportsOf(mod, cjs)}); name one as ${file}:NAME`,
      );
    }
    chosen = found;
  }
  const value = lookup(chosen);
  const what = `the export "${chosen}" of "${file}"`;
  let served: unknown = value;
  if (options.factory === true) {
    if (typeof value !== 'function') {
      throw new AppLoadError(`--factory: ${what} is ${describe(value)}, not a function`);
    }
    try {
      served = await catchingListen(file, options.onWarning, async () =>
        (value as () => unknown)(),
      );
    } catch (err) {
      throw new AppLoadError(
        `the factory "${chosen}" of "${file}" failed: ${(err as Error).message ?? err}`,
      );
    }
  }
  const servedWhat =
    options.factory === true ? `the factory "${chosen}" of "${file}" returned` : `${what} is`;
  const iface = forced ?? detectInterface(served);
  if (iface === null) {
    throw new AppLoadError(
      `${servedWhat} ${describe(served)}, not an app: a TSGI function, a node (req, res) handler, an Express, Koa or Fastify app, or an object with fetch()`,
    );
  }
  if (typeof served !== 'function' && (iface === 'tsgi' || !isObject(served))) {
    throw new AppLoadError(`${servedWhat} ${describe(served)}, not ${WANTED[iface]}`);
  }
  const app = await adapt(
    served,
    iface,
    options.factory === true ? `the factory result of "${file}"` : what,
  );
  return forced === null && iface === 'tsgi' ? hintInterface(app) : app;
}

/**
 * What an export is, from its shape: `node` for an Express or Connect app (a function with
 * `handle()`, `use()` and `listen()`), a Koa app or a Fastify instance; `fetch` for an object
 * with `fetch()`; `tsgi` for any other function; null for anything else.
 */
export function detectInterface(value: unknown): AppInterface | null {
  if (typeof value === 'function') {
    const f = value as unknown as Record<string, unknown>;
    if (
      typeof f.handle === 'function' &&
      typeof f.use === 'function' &&
      typeof f.listen === 'function'
    ) {
      return 'node';
    }
    return 'tsgi';
  }
  if (!isObject(value)) return null;
  if (typeof value.callback === 'function' && typeof value.use === 'function') return 'node';
  if (
    typeof value.routing === 'function' &&
    typeof value.ready === 'function' &&
    typeof value.inject === 'function'
  ) {
    return 'node';
  }
  if (typeof value.fetch === 'function') return 'fetch';
  return null;
}

/** A TypeError of code that treats TSGI's (environ, startResponse) as node's (req, res). */
const NODE_HANDLER_ERROR =
  /\.(?:setHeader|writeHead|getHeader|removeHeader|end|write|on|once|pipe|status|send|json|header|set|redirect|sendFile|type)\b[^]* is not a function/;

/** The error for a function detected as TSGI that answered with a fetch Response. */
function fetchHandlerError(): TypeError {
  return new TypeError(
    'the app returned a Response: it is a fetch handler, called here as a TSGI app: serve it with --interface fetch',
  );
}

/**
 * Serves an app detected as TSGI (a plain function) and, until its first request goes
 * through, turns the failures that show it is another kind of handler into errors that name
 * the option that serves it: a node (req, res) handler (its TypeError gets the hint) or a
 * fetch handler (it returns a Response). After one request went through, it is the plain app.
 */
function hintInterface(app: App): App {
  let armed = true;
  const hint = (err: unknown): unknown => {
    if (err instanceof TypeError && NODE_HANDLER_ERROR.test(err.message)) {
      const extra =
        ' (the app looks like a node (req, res) handler, called here as a TSGI app: serve it with --interface node)';
      err.message += extra;
      if (typeof err.stack === 'string') {
        const nl = err.stack.indexOf('\n');
        err.stack =
          nl === -1
            ? `${err.stack}${extra}`
            : `${err.stack.slice(0, nl)}${extra}${err.stack.slice(nl)}`;
      }
    }
    return err;
  };
  return (env, start) => {
    if (!armed) return app(env, start);
    let result;
    try {
      result = app(env, start);
    } catch (err) {
      throw hint(err);
    }
    if (result instanceof Response) throw fetchHandlerError();
    if (
      result !== null &&
      typeof result === 'object' &&
      typeof (result as Promise<unknown>).then === 'function'
    ) {
      return (result as Promise<never>).then(
        (body) => {
          if ((body as unknown) instanceof Response) throw fetchHandlerError();
          armed = false;
          return body;
        },
        (err: unknown) => {
          throw hint(err);
        },
      );
    }
    armed = false;
    return result;
  };
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

function exportsOf(mod: Record<string, unknown>, cjs: Record<string, unknown> | null): string {
  const names = [...new Set([...Object.keys(mod), ...(cjs === null ? [] : Object.keys(cjs))])];
  return names.length === 0 ? 'nothing' : names.join(', ');
}
