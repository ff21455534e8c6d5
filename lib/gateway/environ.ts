/**
 * The environ every protocol builds: CGI variables from the front server made consistent
 * (SCRIPT_NAME/PATH_INFO, url scheme, required keys) plus the `tsgi.*` keys.
 *
 * Rules (README, "Environ"):
 * - Variables come from `cgiVariables` (HTTP_CONTENT_LENGTH, HTTP_CONTENT_TYPE and HTTP_PROXY
 *   dropped; repeated HTTP_* joined with ", ", "; " for HTTP_COOKIE; other repeats: last wins).
 * - PATH_INFO missing: the request path (DOCUMENT_URI as sent, else REQUEST_URI before "?"
 *   percent-decoded byte by byte to latin-1) minus a SCRIPT_NAME prefix; when SCRIPT_NAME is
 *   not a prefix of it, SCRIPT_NAME becomes "" and PATH_INFO the whole path.
 * - SCRIPT_NAME never ends with "/" (the slash moves to PATH_INFO), PATH_INFO is "" or starts
 *   with "/"; both are always present.
 * - tsgi.url_scheme is "https" when HTTPS is "on"/"1" (any case) or REQUEST_SCHEME is https.
 * - QUERY_STRING defaults to ""; REQUEST_METHOD to "GET"; SERVER_NAME/SERVER_PORT to the
 *   local address when the front server sent none; SERVER_PROTOCOL to "HTTP/1.0".
 */
import type { Readable, Writable } from 'node:stream';
import { environSource, setEnvironSource, type CgiVariables } from '../codec/environ.js';
import type { Environ } from './types.js';

/** A value, or a function that makes it on first access (see {@link makeEnviron}). */
export type Lazy<T> = T | (() => T);

/** The non-CGI parts of one request's environ. */
export interface EnvironExtras {
  protocol: string;
  input: Lazy<Readable>;
  errors: Lazy<Writable>;
  signal: Lazy<AbortSignal>;
  multiprocess?: boolean;
  /** The connection's local address, asked for only when SERVER_NAME / SERVER_PORT are missing. */
  local?: () => { address?: string | undefined; port?: number | undefined };
}

const HEX = /%([0-9A-Fa-f]{2})/g;

/** Percent-decodes `s` byte by byte: `%XX` becomes the character U+00XX; bad escapes stay. */
export function percentDecodeLatin1(s: string): string {
  if (s.indexOf('%') === -1) return s;
  return s.replace(HEX, (_m, h: string) => String.fromCharCode(parseInt(h, 16)));
}

/** The path of a request target (origin-form or absolute-form), without the query. */
export function requestPath(uri: string): string {
  if (uri.charCodeAt(0) === 47 /* / */) {
    /* origin-form, what front servers send: one pass up to "?" or "#" */
    for (let i = 1; i < uri.length; i++) {
      const c = uri.charCodeAt(i);
      if (c === 63 /* ? */ || c === 35 /* # */) return uri.slice(0, i);
    }
    return uri;
  }
  let end = uri.indexOf('?');
  if (end === -1) end = uri.length;
  const hash = uri.indexOf('#');
  if (hash !== -1 && hash < end) end = hash;
  const scheme = uri.indexOf('://');
  if (scheme === -1 || scheme >= end) return uri.slice(0, end);
  const slash = uri.indexOf('/', scheme + 3);
  if (slash === -1 || slash > end) return '/';
  return uri.slice(slash, end);
}

function fixPaths(vars: CgiVariables): void {
  let script = vars.SCRIPT_NAME ?? '';
  let path = vars.PATH_INFO;
  if (path === undefined) {
    let full = vars.DOCUMENT_URI;
    if (full === undefined) full = percentDecodeLatin1(requestPath(vars.REQUEST_URI ?? ''));
    if (
      script !== '' &&
      full.startsWith(script) &&
      (full.length === script.length ||
        script.endsWith('/') ||
        full.charCodeAt(script.length) === 47)
    ) {
      path = full.slice(script.length);
    } else {
      script = '';
      path = full;
    }
  }
  /* charCodeAt(): no call into startsWith()/endsWith() for the usual "" and "/…" */
  if (script !== '' && script.charCodeAt(script.length - 1) === 47 /* / */) {
    script = script.slice(0, -1);
    if (path.charCodeAt(0) !== 47) path = '/' + path;
  }
  if (script !== '' && script.charCodeAt(0) !== 47) script = '/' + script;
  if (path !== '' && path.charCodeAt(0) !== 47) path = '/' + path;
  vars.SCRIPT_NAME = script;
  vars.PATH_INFO = path;
}

/** The host part of a Host header value (`[::1]:8080` → `[::1]`, `a.example:80` → `a.example`). */
export function hostOf(host: string): string {
  if (host.startsWith('[')) {
    const end = host.indexOf(']');
    return end === -1 ? host : host.slice(0, end + 1);
  }
  const colon = host.indexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

function settle(target: object, key: string, value: unknown): void {
  Object.defineProperty(target, key, {
    value,
    writable: true,
    enumerable: true,
    configurable: true,
  });
}

/**
 * Sets a lazy key on an object that is not an environ object (a caller's own vars): an
 * accessor with closures of its own, replaced by the value when read or assigned.
 */
function setLazy<T>(env: Environ, key: string, value: Lazy<T>): void {
  if (typeof value !== 'function') {
    (env as Record<string, unknown>)[key] = value;
    return;
  }
  const make = value as () => T;
  Object.defineProperty(env, key, {
    enumerable: true,
    configurable: true,
    get(this: Environ): T {
      const v = make();
      settle(this, key, v);
      return v;
    },
    set(this: Environ, v: unknown): void {
      settle(this, key, v);
    },
  });
}

/**
 * @internal What makes the lazy `tsgi.*` values of one request. A protocol's request object
 * implements it; its methods run (with it as `this`) when the app first reads the key, and
 * may run again for an object that inherits from the environ.
 */
export interface EnvironSource {
  makeInput(): Readable;
  makeErrors(): Writable;
  makeSignal(): AbortSignal;
}

/**
 * One accessor pair per lazy key, shared by every environ: V8 keeps objects whose accessors
 * are the same functions in one shape, and no closure is made per request. The source comes
 * from the environ object's private slot (lib/codec/environ.ts).
 */
function lazyKey(key: string, make: (source: EnvironSource) => unknown): PropertyDescriptor {
  return {
    enumerable: true,
    configurable: true,
    get(this: object): unknown {
      const source = environSource(this) as EnvironSource | undefined;
      if (source === undefined) return undefined;
      const v = make(source);
      settle(this, key, v);
      return v;
    },
    set(this: object, v: unknown): void {
      settle(this, key, v);
    },
  };
}

const LAZY_INPUT = lazyKey('tsgi.input', (s) => s.makeInput());
const LAZY_ERRORS = lazyKey('tsgi.errors', (s) => s.makeErrors());
const LAZY_SIGNAL = lazyKey('tsgi.signal', (s) => s.makeSignal());

/** A source whose tsgi.signal is `wrap` applied to the one of the source it stands for. */
class WrappedSignalSource implements EnvironSource {
  constructor(
    private readonly inner: EnvironSource,
    private readonly wrap: (inner: AbortSignal) => AbortSignal,
  ) {}
  makeInput(): Readable {
    return this.inner.makeInput();
  }
  makeErrors(): Writable {
    return this.inner.makeErrors();
  }
  makeSignal(): AbortSignal {
    return this.wrap(this.inner.makeSignal());
  }
}

/**
 * @internal Makes the tsgi.signal of `env`, when first read, `wrap(protocol's signal)`: for an
 * environ whose tsgi.signal is still the lazy key, by standing a source in front of its own, so
 * the object keeps its shape (redefining the key would put it in dictionary mode, which costs
 * every later read of the environ). False when `env` has no lazy tsgi.signal of its own (a
 * value, or an object that inherits the key): the caller replaces the key itself then. Other
 * callers of environSource() see the new source from then on.
 */
export function wrapSignal(env: Environ, wrap: (inner: AbortSignal) => AbortSignal): boolean {
  const source = environSource(env) as EnvironSource | undefined;
  if (source === undefined) return false;
  const d = Object.getOwnPropertyDescriptor(env, 'tsgi.signal');
  if (d === undefined || d.get !== LAZY_SIGNAL.get) return false;
  return setEnvironSource(env, new WrappedSignalSource(source, wrap));
}

/** The extras of {@link makeEnviron} as a source. */
class ExtrasSource implements EnvironSource {
  constructor(private readonly extras: EnvironExtras) {}
  makeInput(): Readable {
    return (this.extras.input as () => Readable)();
  }
  makeErrors(): Writable {
    return (this.extras.errors as () => Writable)();
  }
  makeSignal(): AbortSignal {
    return (this.extras.signal as () => AbortSignal)();
  }
}

/** SCRIPT_NAME/PATH_INFO, defaults and tsgi.url_scheme: everything up to the tsgi.* keys. */
function completeCgi(
  vars: CgiVariables,
  local: (() => { address?: string | undefined; port?: number | undefined }) | undefined,
): string {
  fixPaths(vars);
  if (vars.QUERY_STRING === undefined) vars.QUERY_STRING = '';
  if (!vars.REQUEST_METHOD) vars.REQUEST_METHOD = 'GET';
  if (!vars.SERVER_PROTOCOL) vars.SERVER_PROTOCOL = 'HTTP/1.0';
  if (!vars.SERVER_NAME) {
    const host = vars.HTTP_HOST;
    vars.SERVER_NAME = host ? hostOf(host) : (local?.().address ?? 'localhost');
  }
  if (!vars.SERVER_PORT) vars.SERVER_PORT = String(local?.().port ?? 80);
  /* toLowerCase() only where it can matter: it makes a string */
  const https = vars.HTTPS;
  if (
    https !== undefined &&
    (https === '1' || (https.length === 2 && https.toLowerCase() === 'on'))
  ) {
    return 'https';
  }
  const scheme = vars.REQUEST_SCHEME;
  if (scheme !== undefined && scheme.length === 5 && scheme.toLowerCase() === 'https') {
    return 'https';
  }
  return 'http';
}

/**
 * Completes CGI variables into a TSGI environ (mutates and returns `vars`). tsgi.input,
 * tsgi.errors and tsgi.signal given as functions are made on first access (most requests never
 * touch them): they are enumerable keys whose value appears when read, and assigning one
 * replaces it.
 */
export function makeEnviron(vars: CgiVariables, extras: EnvironExtras): Environ {
  const scheme = completeCgi(vars, extras.local);
  const env = vars as unknown as Environ;
  const { input, errors, signal } = extras;
  if (
    (typeof input === 'function' || typeof errors === 'function' || typeof signal === 'function') &&
    setEnvironSource(env, new ExtrasSource(extras))
  ) {
    env['tsgi.version'] = VERSION;
    env['tsgi.url_scheme'] = scheme;
    if (typeof input === 'function') Object.defineProperty(env, 'tsgi.input', LAZY_INPUT);
    else env['tsgi.input'] = input;
    if (typeof errors === 'function') Object.defineProperty(env, 'tsgi.errors', LAZY_ERRORS);
    else env['tsgi.errors'] = errors;
    env['tsgi.multithread'] = true;
    env['tsgi.multiprocess'] = extras.multiprocess ?? false;
    env['tsgi.run_once'] = false;
    env['tsgi.protocol'] = extras.protocol;
    if (typeof signal === 'function') Object.defineProperty(env, 'tsgi.signal', LAZY_SIGNAL);
    else env['tsgi.signal'] = signal;
    return env;
  }
  env['tsgi.version'] = VERSION;
  env['tsgi.url_scheme'] = scheme;
  setLazy(env, 'tsgi.input', input);
  setLazy(env, 'tsgi.errors', errors);
  env['tsgi.multithread'] = true;
  env['tsgi.multiprocess'] = extras.multiprocess ?? false;
  env['tsgi.run_once'] = false;
  env['tsgi.protocol'] = extras.protocol;
  setLazy(env, 'tsgi.signal', signal);
  return env;
}

/**
 * @internal {@link makeEnviron} for a protocol whose request object is an
 * {@link EnvironSource}: tsgi.input, tsgi.errors and tsgi.signal are lazy, made by `source`,
 * except tsgi.errors when `errors` is given and tsgi.input when `input` is (a lazy key costs
 * an Object.defineProperty, about as much as making a small Writable: a value that exists
 * already, or costs no more, is better given). `vars` should come from cgiVariables() (an
 * environ object).
 *
 * `lean`: the environ goes to tsgi's own node adapter alone, whose handler sees node's req and
 * res and never the environ: tsgi.input and tsgi.signal (unless `input` is given) are left
 * out, and the adapter takes them from `source` ({@link environInput}, {@link environSignal}).
 * That saves the Object.defineProperty of each lazy key, which costs more than the rest of
 * the tsgi.* keys together.
 */
export function sourcedEnviron(
  vars: CgiVariables,
  protocol: string,
  multiprocess: boolean,
  source: EnvironSource,
  local?: () => { address?: string | undefined; port?: number | undefined },
  errors?: Writable,
  input?: Readable,
  lean = false,
): Environ {
  const scheme = completeCgi(vars, local);
  const env = vars as unknown as Environ;
  if (!setEnvironSource(env, source)) {
    return makeEnviron(vars, {
      protocol,
      multiprocess,
      input: input ?? (() => source.makeInput()),
      errors: errors ?? (() => source.makeErrors()),
      signal: () => source.makeSignal(),
    });
  }
  env['tsgi.version'] = VERSION;
  env['tsgi.url_scheme'] = scheme;
  if (input !== undefined) env['tsgi.input'] = input;
  else if (!lean) Object.defineProperty(env, 'tsgi.input', LAZY_INPUT);
  if (errors !== undefined) env['tsgi.errors'] = errors;
  else if (lean) env['tsgi.errors'] = source.makeErrors();
  else Object.defineProperty(env, 'tsgi.errors', LAZY_ERRORS);
  env['tsgi.multithread'] = true;
  env['tsgi.multiprocess'] = multiprocess;
  env['tsgi.run_once'] = false;
  env['tsgi.protocol'] = protocol;
  if (!lean) Object.defineProperty(env, 'tsgi.signal', LAZY_SIGNAL);
  return env;
}

/**
 * @internal The environ's tsgi.input; for a lean environ ({@link sourcedEnviron}), which has
 * none, its source's.
 */
export function environInput(env: Environ): Readable {
  const input = env['tsgi.input'] as Readable | undefined;
  if (input !== undefined) return input;
  return (environSource(env) as EnvironSource).makeInput();
}

/**
 * @internal The environ's tsgi.signal; for a lean environ ({@link sourcedEnviron}), which has
 * none, its source's.
 */
export function environSignal(env: Environ): AbortSignal {
  const signal = env['tsgi.signal'] as AbortSignal | undefined;
  if (signal !== undefined) return signal;
  return (environSource(env) as EnvironSource).makeSignal();
}

const VERSION = Object.freeze([1, 0] as const);
