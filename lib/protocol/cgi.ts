/**
 * CGI/1.1 (RFC 3875): `tsgi cgi APP` runs the app once, for the request the web server put in
 * the process environment and on stdin, and writes a CGI response to stdout. Usable as a
 * cgi-bin program behind Apache mod_cgi and lighttpd mod_cgi, through a wrapper script:
 *
 *     #!/bin/sh
 *     exec tsgi cgi /srv/app/app.mjs
 *
 * or with the app named by the environment (`SetEnv TSGI_APP /srv/app/app.mjs` in Apache,
 * `setenv.add-environment` in lighttpd) and a wrapper that runs plain `tsgi cgi`.
 *
 * Environ:
 * - Only request variables are taken from the environment: the CGI/1.1 meta-variables, the
 *   common server extensions (REQUEST_URI, DOCUMENT_ROOT, SCRIPT_FILENAME, HTTPS, ...) and
 *   every HTTP_*, SSL_* and REDIRECT_* variable; the rest of the process environment (PATH,
 *   HOME, TSGI_APP, ...) is not part of the request and stays out (it is in process.env),
 *   except the site variables (NODE_ENV: lib/gateway/site-env.ts), in both.
 * - On Linux the environment is read as bytes from /proc/self/environ: values are latin-1
 *   strings of the exact bytes the web server sent (as with every other protocol), and a
 *   variable given twice is joined like repeated params (see cgiVariables). Elsewhere it
 *   comes from process.env, re-encoded from UTF-8 to latin-1 bytes.
 * - tsgi.input: CONTENT_LENGTH bytes of stdin; until stdin's end when CONTENT_LENGTH is absent
 *   or empty (a server that streams a chunked body sends it so). stdin is read only when the app
 *   reads tsgi.input, with backpressure.
 * - tsgi.protocol "cgi", tsgi.run_once true, tsgi.multithread false, tsgi.multiprocess true
 *   (as wsgiref's CGIHandler); tsgi.errors is stderr (the web server's error log); tsgi.signal
 *   aborts when stdout breaks (the web server stopped reading) or on SIGTERM.
 *
 * Response: `Status: 200 OK`, the headers, an empty line, the body (RFC 3875 §6), written as
 * it comes. An error after the head left cannot be marked in CGI: the output just stops (the
 * error is on stderr). The command itself (arguments, app loading, exit status) is
 * lib/command/cgi.ts.
 */
import process from 'node:process';
import { Buffer } from 'node:buffer';
import { readFileSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import { cgiVariables, type CgiVariables } from '../codec/environ.js';
import { codec } from '../codec/index.js';
import { makeEnviron } from '../gateway/environ.js';
import { errorStream } from '../gateway/errors.js';
import { BodyInput, contentLength } from '../gateway/input.js';
import { respond, type Sink } from '../gateway/respond.js';
import type { App, Environ } from '../gateway/types.js';
import { SITE_VARIABLES } from '../gateway/site-env.js';
import { DrainWait } from './socket.js';

/** Where one CGI run reads and writes; every field defaults to the process's own. */
export interface CgiIo {
  /**
   * The environment as a flat `[name, value, ...]` array of latin-1 strings, in order, repeats
   * kept (default: {@link processEnvironment}).
   */
  environ?: readonly string[];
  /** The request body (default: process.stdin). */
  stdin?: Readable;
  /** Where the response goes (default: process.stdout). */
  stdout?: Writable;
  /** tsgi.errors and the command's messages (default: process.stderr). */
  stderr?: Writable;
}

/** CGI/1.1 meta-variables (RFC 3875 §4.1) and the extensions Apache, lighttpd and nginx set. */
const REQUEST_VARIABLES = new Set([
  'AUTH_TYPE',
  'CONTENT_LENGTH',
  'CONTENT_TYPE',
  'GATEWAY_INTERFACE',
  'PATH_INFO',
  'PATH_TRANSLATED',
  'QUERY_STRING',
  'REMOTE_ADDR',
  'REMOTE_HOST',
  'REMOTE_IDENT',
  'REMOTE_USER',
  'REQUEST_METHOD',
  'SCRIPT_NAME',
  'SERVER_NAME',
  'SERVER_PORT',
  'SERVER_PROTOCOL',
  'SERVER_SOFTWARE',
  'CONTEXT_DOCUMENT_ROOT',
  'CONTEXT_PREFIX',
  'DOCUMENT_ROOT',
  'DOCUMENT_URI',
  'HTTPS',
  'REMOTE_PORT',
  'REQUEST_SCHEME',
  'REQUEST_URI',
  'SCRIPT_FILENAME',
  'SCRIPT_URI',
  'SCRIPT_URL',
  'SERVER_ADDR',
  'SERVER_ADMIN',
  'SERVER_SIGNATURE',
  'UNIQUE_ID',
]);
const REQUEST_PREFIX = /^(?:HTTP|SSL|REDIRECT)_/;

/** True for the environment variables that describe the request (see the module comment). */
export function isRequestVariable(name: string): boolean {
  return REQUEST_VARIABLES.has(name) || REQUEST_PREFIX.test(name) || SITE_VARIABLES.has(name);
}

/**
 * The process environment as a flat `[name, value, ...]` array of latin-1 strings: the exact
 * bytes from /proc/self/environ on Linux (repeats kept), else process.env re-encoded.
 */
export function processEnvironment(): string[] {
  const out: string[] = [];
  let raw: string | null = null;
  if (process.platform === 'linux') {
    try {
      raw = readFileSync('/proc/self/environ', 'latin1');
    } catch {
      raw = null;
    }
  }
  if (raw !== null) {
    for (const entry of raw.split('\0')) {
      const eq = entry.indexOf('=');
      if (eq > 0) out.push(entry.slice(0, eq), entry.slice(eq + 1));
    }
    return out;
  }
  for (const [name, value] of Object.entries(process.env)) {
    if (value === undefined) continue;
    out.push(
      Buffer.from(name, 'utf8').toString('latin1'),
      Buffer.from(value, 'utf8').toString('latin1'),
    );
  }
  return out;
}

/** The CGI variables of the request in `environ` (flat pairs): request variables only. */
export function cgiRequestVariables(environ: readonly string[]): CgiVariables {
  const pairs: string[] = [];
  for (let i = 0; i + 1 < environ.length; i += 2) {
    if (isRequestVariable(environ[i]!)) pairs.push(environ[i]!, environ[i + 1]!);
  }
  return cgiVariables(pairs);
}

/** tsgi.input over stdin: made on first read, CONTENT_LENGTH bytes (or to EOF), backpressure. */
function stdinInput(stdin: Readable, length: number): BodyInput {
  const input = new BodyInput(length);
  if (input.complete) return input;
  const onData = (chunk: Buffer): void => {
    if (!input.feed(chunk)) stdin.pause();
    if (input.complete) detach();
  };
  const onEnd = (): void => {
    detach();
    input.finish();
  };
  const onError = (): void => {
    detach();
    input.abort();
  };
  const detach = (): void => {
    stdin.off('data', onData);
    stdin.off('end', onEnd);
    stdin.off('error', onError);
    stdin.pause();
  };
  input.onWant = () => stdin.resume();
  stdin.on('data', onData);
  stdin.on('end', onEnd);
  stdin.on('error', onError);
  return input;
}

/** The Sink over stdout. */
class CgiSink implements Sink {
  private done = false;
  private readonly drainWait: DrainWait;
  constructor(
    private readonly stdout: Writable,
    readonly signal: AbortSignal,
  ) {
    this.drainWait = new DrainWait(stdout);
  }

  get aborted(): boolean {
    return this.signal.aborted;
  }

  head(status: string, headers: string[], body: Uint8Array | null, last: boolean): void {
    if (this.done) return;
    const head = codec.encodeHead(status, headers, 'cgi');
    this.stdout.write(body === null || body.length === 0 ? head : Buffer.concat([head, body]));
    if (last) this.done = true;
  }

  write(chunk: Uint8Array): void {
    if (!this.done) this.stdout.write(chunk);
  }

  end(): void {
    this.done = true;
  }

  ready(): Promise<void> | null {
    return this.done ? null : this.drainWait.ready();
  }

  cut(): void {
    /* CGI has no way to mark a response incomplete: the output stops here. */
    this.done = true;
  }
}

/**
 * Runs `app` for the one request described by `io` (the process's environment, stdin and
 * stdout by default) and resolves once the response is written and close() ran. `abort`
 * aborts tsgi.signal from outside (`tsgi cgi` passes SIGTERM through it; lib/command/cgi.ts).
 */
export async function runCgi(app: App, io: CgiIo = {}, abort?: AbortSignal): Promise<void> {
  const stdin = io.stdin ?? process.stdin;
  const stdout = io.stdout ?? process.stdout;
  const stderr = io.stderr ?? process.stderr;
  const vars = cgiRequestVariables(io.environ ?? processEnvironment());
  const controller = new AbortController();
  const stop = (): void => controller.abort();
  abort?.addEventListener('abort', stop, { once: true });
  if (abort?.aborted) stop();
  stdout.on('error', stop);
  const length = contentLength(vars.CONTENT_LENGTH);
  const env: Environ = makeEnviron(vars, {
    protocol: 'cgi',
    input: () => stdinInput(stdin, length),
    errors: () => errorStream((bytes) => stderr.write(bytes)),
    signal: controller.signal,
    multiprocess: true,
  });
  env['tsgi.multithread'] = false;
  env['tsgi.run_once'] = true;
  try {
    await respond(app, env, new CgiSink(stdout, controller.signal));
    /* Resolves once what was written left the process (or stdout broke). */
    if (!stdout.destroyed) await new Promise<void>((resolve) => stdout.write('', () => resolve()));
  } finally {
    /* The 'error' listener stays: a broken stdout after the response must not crash. */
    abort?.removeEventListener('abort', stop);
  }
}
