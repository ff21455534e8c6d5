/**
 * What the node and fetch adapters share: the request's header list rebuilt from the CGI
 * variables, its target and absolute URL, the refusal of upgrade / CONNECT requests, and the
 * default Content-Type.
 *
 * Header names: CGI folds a header name to upper case and turns "-" into "_" (`X-Request-Id`
 * becomes `HTTP_X_REQUEST_ID`), so the original spelling is gone. The adapters rebuild it as
 * "-" between words, each word capitalised (`X-Request-Id`); `CONTENT_TYPE` and
 * `CONTENT_LENGTH` become `Content-Type` and `Content-Length`. A header that arrived with an
 * underscore in its name (only when the front server lets it through, e.g. nginx's
 * `underscores_in_headers on`) comes back with a dash. Repeated headers arrive joined by the
 * gateway (", ", and "; " for Cookie), and HTTP_PROXY never arrives (httpoxy).
 */
import type { Environ, StartResponse } from '../gateway/types.js';
import { isToken } from '../http/grammar.js';

/** What an adapter sends when the app's response has a body but no Content-Type. */
export const DEFAULT_CONTENT_TYPE = 'application/octet-stream';

const NAME_CACHE_LIMIT = 1024;
const names = new Map<string, string>([
  ['CONTENT_TYPE', 'Content-Type'],
  ['CONTENT_LENGTH', 'Content-Length'],
]);

/**
 * The HTTP header name of a CGI variable (`HTTP_X_FORWARDED_FOR` → `X-Forwarded-For`,
 * `CONTENT_TYPE` → `Content-Type`), or null when it is not a request header.
 */
export function headerName(cgi: string): string | null {
  const known = names.get(cgi);
  if (known !== undefined) return known;
  if (!cgi.startsWith('HTTP_') || cgi.length === 5) return null;
  const words = cgi.slice(5).toLowerCase().split('_');
  let name = '';
  for (let i = 0; i < words.length; i++) {
    const w = words[i]!;
    if (i !== 0) name += '-';
    name += w.length === 0 ? '' : w[0]!.toUpperCase() + w.slice(1);
  }
  if (!isToken(name)) return null;
  name = interned(name);
  if (names.size < NAME_CACHE_LIMIT) names.set(cgi, name);
  return name;
}

/**
 * `s` as the one copy V8 keeps of it (what a property key becomes). A name built piece by
 * piece is a concatenation, and every comparison with it goes through V8's runtime: node
 * compares each request header name with its known names (matchKnownFields) on every request,
 * and the adapters compare it with theirs. The interned copy compares by identity with a
 * literal (Fastify through FastCGI runs 1,800 instructions a request fewer for it).
 */
function interned(s: string): string {
  return Object.keys({ [s]: 0 })[0]!;
}

/**
 * The header name an environ variable `key` may carry ({@link headerName} for `HTTP_*`, and
 * `CONTENT_TYPE` / `CONTENT_LENGTH`), or null when it never carries one. Whether it does for
 * one request depends on its value too: {@link carriesHeader}.
 */
function headerKey(key: string): string | null {
  const c = key.charCodeAt(0);
  if (c === 72 /* H */) return headerName(key);
  if (c !== 67 /* C */ || (key !== 'CONTENT_TYPE' && key !== 'CONTENT_LENGTH')) return null;
  return headerName(key);
}

/**
 * Whether the variable `key` (one {@link headerKey} names) carries a header with `value`: every
 * `HTTP_*` string, and `CONTENT_TYPE` and `CONTENT_LENGTH` when they are not empty (nginx
 * sends them empty when the request had none).
 */
function carriesHeader(key: string, value: unknown): value is string {
  return typeof value === 'string' && (value !== '' || key.charCodeAt(0) === 72); /* H */
}

/**
 * The request header the environ variable `key` of `env` carries, or null: every `HTTP_*`
 * variable, plus `CONTENT_TYPE` and `CONTENT_LENGTH` when they are not empty. The one rule of
 * which variables are headers ({@link headerKey} and {@link carriesHeader}); the value is read
 * only for such a key (reading a lazy `tsgi.*` key would make its object).
 */
export function headerOf(env: Environ, key: string): string | null {
  const name = headerKey(key);
  return name !== null && carriesHeader(key, env[key]) ? name : null;
}

/**
 * {@link headerOf} over every key of environs that repeat one another's keys: a front server
 * sends the same variables in the same order on every request, so the name found for a key
 * is kept by the key's place in the environ, and a key equal to the one found at its place
 * last time is not looked up again. A reader may leave out some names altogether (`omit`).
 */
export class HeaderReader {
  /** The keys of the environ read last, in its order. */
  private readonly keys: string[] = [];
  /** headerKey() of each of them, null for one left out. */
  private readonly names: (string | null)[] = [];

  constructor(private readonly omit: ReadonlySet<string> | null = null) {}

  /** The request headers of `env` as flat `[name, value, name, value, …]`, in environ order. */
  read(env: Environ): string[] {
    const out: string[] = [];
    const keys = this.keys;
    const names = this.names;
    let at = 0;
    for (const key in env) {
      let name: string | null;
      if (keys[at] === key) {
        name = names[at]!;
      } else {
        name = headerKey(key);
        if (name !== null && this.omit !== null && this.omit.has(name)) name = null;
        keys[at] = key;
        names[at] = name;
      }
      at++;
      if (name === null) continue;
      const value = env[key];
      if (carriesHeader(key, value)) {
        out.push(name);
        out.push(value);
      }
    }
    return out;
  }
}

const reader = new HeaderReader();

/**
 * The request headers as flat `[name, value, name, value, …]` in environ order: the variables
 * {@link headerOf} names.
 */
export function requestHeaders(env: Environ): string[] {
  return reader.read(env);
}

/** True when a comma-separated header value lists `token` (case-insensitive). */
export function listsToken(value: string | undefined, token: string): boolean {
  if (value === undefined) return false;
  for (const part of value.split(',')) {
    if (part.trim().toLowerCase() === token) return true;
  }
  return false;
}

/**
 * Why the request cannot be served through the TSGI interface, or null: CONNECT (a tunnel) and
 * protocol upgrades (`Upgrade` with `Connection: upgrade`, as WebSocket sends) need the raw
 * client socket, which no gateway protocol hands over.
 */
export function unsupportedRequest(env: Environ): string | null {
  if (env.REQUEST_METHOD === 'CONNECT') {
    return 'CONNECT requests (tunnels) cannot be served through the TSGI interface';
  }
  const upgrade = env.HTTP_UPGRADE;
  if (
    typeof upgrade === 'string' &&
    listsToken(env.HTTP_CONNECTION as string | undefined, 'upgrade')
  ) {
    return (
      `protocol upgrades (Upgrade: ${upgrade}) cannot be served through the TSGI interface: ` +
      'the gateway protocols do not hand over the client connection'
    );
  }
  return null;
}

/** Answers 501 Not Implemented with `reason` as the plain-text body. */
export function notImplemented(startResponse: StartResponse, reason: string): string[] {
  startResponse('501 Not Implemented', [['Content-Type', 'text/plain; charset=utf-8']]);
  return [`501 Not Implemented: ${reason}\n`];
}

/** Answers 400 Bad Request with `reason` as the plain-text body. */
export function badRequest(startResponse: StartResponse, reason: string): string[] {
  startResponse('400 Bad Request', [['Content-Type', 'text/plain; charset=utf-8']]);
  return [`400 Bad Request: ${reason}\n`];
}

const UNSAFE_TARGET = /[^\x21-\x7e]/;
const UNSAFE_PATH = /[^\x21-\x7e]|[%?#]/;

/** Percent-encodes every character of `s` that `unsafe` matches (latin-1: one byte each). */
function encode(s: string, unsafe: RegExp): string {
  if (!unsafe.test(s)) return s;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const ch = s[i]!;
    if (!unsafe.test(ch)) {
      out += ch;
      continue;
    }
    const c = s.charCodeAt(i);
    out += '%' + (c < 16 ? '0' : '') + c.toString(16).toUpperCase();
  }
  return out;
}

/**
 * The request target the app routes on: REQUEST_URI below the app's mount point. The mount
 * point is SCRIPT_NAME, stripped from the front of REQUEST_URI when PATH_INFO is not empty (a
 * mount was configured: `fastcgi_param SCRIPT_NAME /app`, Apache's proxy-fcgi-pathinfo,
 * uWSGI-style SCRIPT_NAME) and always under CGI (SCRIPT_NAME is the script's own path). With
 * SCRIPT_NAME "" (the examples' configuration), or with nginx's stock fastcgi_params (the whole
 * path in SCRIPT_NAME, PATH_INFO ""), REQUEST_URI is taken as it is. When REQUEST_URI is absent
 * or does not start with SCRIPT_NAME as written, the target is PATH_INFO percent-encoded, plus
 * "?" QUERY_STRING. Bytes that HTTP does not allow raw in a target (space, controls,
 * 0x80–0xFF, which nginx passes on as received) are percent-encoded.
 */
export function requestTarget(env: Environ): string {
  const uri = env.REQUEST_URI as string | undefined;
  const script = env.SCRIPT_NAME;
  const path = env.PATH_INFO;
  const mounted = script !== '' && (path !== '' || env['tsgi.protocol'] === 'cgi');
  if (typeof uri === 'string' && uri !== '') {
    if (!mounted) return encode(uri, UNSAFE_TARGET);
    if (uri.startsWith(script)) {
      const next = uri.charCodeAt(script.length);
      if (Number.isNaN(next) || next === 63 /* ? */)
        return encode('/' + uri.slice(script.length), UNSAFE_TARGET);
      if (next === 47 /* / */) return encode(uri.slice(script.length), UNSAFE_TARGET);
    }
  }
  let target = encode(mounted ? path : script + path, UNSAFE_PATH);
  if (target === '') target = '/';
  const query = env.QUERY_STRING;
  if (query) target += '?' + encode(query, UNSAFE_TARGET);
  return target;
}

function hostPart(env: Environ): string {
  const host = env.HTTP_HOST;
  if (typeof host === 'string' && host !== '') return host;
  let name = env.SERVER_NAME;
  if (name.includes(':') && !name.startsWith('[')) name = `[${name}]`;
  const port = env.SERVER_PORT;
  const scheme = env['tsgi.url_scheme'];
  const standard = (scheme === 'https' && port === '443') || (scheme === 'http' && port === '80');
  return port && !standard ? `${name}:${port}` : name;
}

/**
 * The absolute URL of the request: `tsgi.url_scheme` + "://" + Host (else SERVER_NAME and a
 * non-default SERVER_PORT) + the request target. Throws a TypeError when the Host header
 * does not make a valid URL.
 */
export function requestUrl(env: Environ): URL {
  const target = requestTarget(env);
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) return new URL(target);
  return new URL(`${env['tsgi.url_scheme']}://${hostPart(env)}${target}`);
}

/** Writes `text` (one line) on tsgi.errors; a broken error stream is ignored. */
export function logError(env: Environ, text: string): void {
  try {
    env['tsgi.errors'].write(text.endsWith('\n') ? text : text + '\n');
  } catch {
    /* nothing better to do */
  }
}
