/**
 * validate(app): a middleware that checks both sides of the TSGI interface, like Python's
 * wsgiref.validate. Put it around an app in development and in tests: the server's environ is
 * checked before the app runs, the app's startResponse arguments, write() chunks, body and
 * close() as they happen. Every violation found in one check is reported in one
 * ValidationError (its `violations` lists them), thrown where the violation happened — the
 * gateway turns it into a 500 (or a cut response) with the message on tsgi.errors.
 */
import { NOT_LATIN1_RE } from '../codec/bytes.js';
import type { App, Body, Chunk, Environ, Headers, StartResponse, Write } from './types.js';
import { describe, HOP_BY_HOP } from './respond.js';
import { FIELD_VALUE_BAD as BAD_VALUE, isStatus, isToken } from '../http/grammar.js';

/** One or more violations of the TSGI interface. */
export class ValidationError extends Error {
  readonly violations: string[];
  constructor(violations: string[]) {
    super(
      violations.length === 1
        ? `tsgi.validate: ${violations[0]}`
        : `tsgi.validate: ${violations.length} violations:\n  - ${violations.join('\n  - ')}`,
    );
    this.name = 'ValidationError';
    this.violations = violations;
  }
}

const REQUIRED_CGI = ['REQUEST_METHOD', 'SERVER_NAME', 'SERVER_PORT', 'SERVER_PROTOCOL'];
const REQUIRED_TSGI = [
  'tsgi.version',
  'tsgi.url_scheme',
  'tsgi.input',
  'tsgi.errors',
  'tsgi.multithread',
  'tsgi.multiprocess',
  'tsgi.run_once',
  'tsgi.protocol',
  'tsgi.signal',
];

function fail(violations: string[]): void {
  if (violations.length !== 0) throw new ValidationError(violations);
}

/** The violations of one environ (empty when it is valid). */
export function checkEnviron(env: unknown): string[] {
  const v: string[] = [];
  if (env === null || typeof env !== 'object' || Array.isArray(env)) {
    return [`environ must be an object, not ${describe(env)}`];
  }
  const e = env as Record<string, unknown>;
  for (const key of [...REQUIRED_CGI, ...REQUIRED_TSGI]) {
    if (!(key in e)) v.push(`environ lacks the required key ${key}`);
  }
  for (const key of Object.keys(e)) {
    if (key.includes('.')) continue;
    const value = e[key];
    if (typeof value !== 'string') {
      v.push(`environ.${key} must be a string, not ${describe(value)}`);
    } else if (NOT_LATIN1_RE.test(value)) {
      v.push(`environ.${key} is not latin-1 (a character is above U+00FF)`);
    }
  }
  for (const key of ['HTTP_CONTENT_TYPE', 'HTTP_CONTENT_LENGTH']) {
    if (key in e) v.push(`environ must not contain ${key} (use ${key.slice(5)})`);
  }
  if ('HTTP_PROXY' in e) v.push('environ must not contain HTTP_PROXY (httpoxy)');
  for (const key of REQUIRED_CGI) {
    if (typeof e[key] === 'string' && e[key] === '') v.push(`environ.${key} must not be empty`);
  }
  const method = e.REQUEST_METHOD;
  if (typeof method === 'string' && method !== '' && !isToken(method)) {
    v.push(`environ.REQUEST_METHOD is not a method token: ${JSON.stringify(method)}`);
  }
  if (!('SCRIPT_NAME' in e) && !('PATH_INFO' in e)) {
    v.push('environ must contain SCRIPT_NAME or PATH_INFO');
  }
  for (const key of ['SCRIPT_NAME', 'PATH_INFO']) {
    const p = e[key];
    if (typeof p === 'string' && p !== '' && !p.startsWith('/')) {
      v.push(`environ.${key} must be empty or start with "/": ${JSON.stringify(p)}`);
    }
  }
  if (e.SCRIPT_NAME === '/') v.push('environ.SCRIPT_NAME must not be "/" (use "" for the root)');
  const length = e.CONTENT_LENGTH;
  if (typeof length === 'string' && length !== '' && !/^[0-9]+$/.test(length)) {
    v.push(`environ.CONTENT_LENGTH must be digits: ${JSON.stringify(length)}`);
  }
  const version = e['tsgi.version'];
  if ('tsgi.version' in e && !(Array.isArray(version) && version[0] === 1 && version[1] === 0)) {
    v.push(`environ["tsgi.version"] must be [1, 0], not ${JSON.stringify(version)}`);
  }
  const scheme = e['tsgi.url_scheme'];
  if ('tsgi.url_scheme' in e && scheme !== 'http' && scheme !== 'https') {
    v.push(`environ["tsgi.url_scheme"] must be "http" or "https", not ${JSON.stringify(scheme)}`);
  }
  const input = e['tsgi.input'] as { read?: unknown; pipe?: unknown } | undefined;
  if (
    'tsgi.input' in e &&
    (typeof input?.read !== 'function' || typeof input.pipe !== 'function')
  ) {
    v.push('environ["tsgi.input"] must be a Readable');
  }
  const errors = e['tsgi.errors'] as { write?: unknown } | undefined;
  if ('tsgi.errors' in e && typeof errors?.write !== 'function') {
    v.push('environ["tsgi.errors"] must be a Writable (it has no write())');
  }
  for (const key of ['tsgi.multithread', 'tsgi.multiprocess', 'tsgi.run_once']) {
    if (key in e && typeof e[key] !== 'boolean') {
      v.push(`environ["${key}"] must be a boolean, not ${describe(e[key])}`);
    }
  }
  if ('tsgi.protocol' in e && typeof e['tsgi.protocol'] !== 'string') {
    v.push('environ["tsgi.protocol"] must be a string');
  }
  if ('tsgi.signal' in e && !(e['tsgi.signal'] instanceof AbortSignal)) {
    v.push('environ["tsgi.signal"] must be an AbortSignal');
  }
  return v;
}

/** The violations of startResponse's arguments. */
export function checkStartResponse(status: unknown, headers: unknown): string[] {
  const v: string[] = [];
  if (typeof status !== 'string') {
    v.push(`status must be a string, not ${describe(status)}`);
  } else if (!isStatus(status)) {
    v.push(
      `status must be three digits, optionally a space and a reason ("200 OK", "200"): ${JSON.stringify(status)}`,
    );
  }
  if (!Array.isArray(headers)) {
    v.push(`headers must be an array of [name, value] pairs, not ${describe(headers)}`);
    return v;
  }
  headers.forEach((h: unknown, i: number) => {
    if (!Array.isArray(h) || h.length !== 2) {
      v.push(`headers[${i}] must be a [name, value] pair, not ${describe(h)}`);
      return;
    }
    const [name, value] = h as unknown[];
    if (typeof name !== 'string' || typeof value !== 'string') {
      v.push(`headers[${i}] name and value must be strings`);
      return;
    }
    if (!isToken(name)) v.push(`header name ${JSON.stringify(name)} is not a token`);
    const lower = name.toLowerCase();
    if (lower === 'status')
      v.push('the "Status" header is not allowed (the status is an argument)');
    if (HOP_BY_HOP.has(lower)) v.push(`hop-by-hop header "${name}" is not allowed`);
    if (name.endsWith('-') || name.endsWith('_')) {
      v.push(`header name ${JSON.stringify(name)} must not end with "-" or "_"`);
    }
    if (BAD_VALUE.test(value)) {
      v.push(`header "${name}" has a control character or a character above U+00FF in its value`);
    }
  });
  return v;
}

function checkChunk(chunk: unknown, where: string): string[] {
  if (typeof chunk === 'string') {
    return NOT_LATIN1_RE.test(chunk) ? [`${where} is a string that is not latin-1`] : [];
  }
  if (chunk instanceof Uint8Array) return [];
  return [`${where} must be a string or a Uint8Array, not ${describe(chunk)}`];
}

function hasHeader(headers: Headers, name: string): boolean {
  return headers.some(([n]) => n.toLowerCase() === name);
}

/** Wraps `app` so that both sides of the interface are checked. */
export function validate(app: App): App {
  return (environ: Environ, startResponse: StartResponse) => {
    fail(checkEnviron(environ));
    let status: string | null = null;
    let headers: Headers = [];
    let headersSent = false;
    let closed = false;

    const code = (): number => (status === null ? 0 : Number(status.slice(0, 3)));
    const onBytes = (chunk: Chunk, where: string): void => {
      const v = checkChunk(chunk, where);
      if (status === null) v.push(`${where} was produced before startResponse() was called`);
      if (closed) v.push(`${where} was produced after close()`);
      fail(v);
      if (chunk.length === 0) return;
      if (!headersSent) {
        const c = code();
        if (c === 204 || c === 304 || (c >= 100 && c < 200)) {
          v.push(`a ${c} response must not have a body`);
        } else if (!hasHeader(headers, 'content-type')) {
          v.push('a response with a body needs a Content-Type header');
        }
        fail(v);
        headersSent = true;
      }
    };

    const checkedStart: StartResponse = (s, h, excInfo) => {
      const v = checkStartResponse(s, h);
      if (status !== null && (excInfo === undefined || excInfo === null)) {
        v.push('startResponse() called a second time without excInfo');
      }
      fail(v);
      const write = startResponse(s, h, excInfo);
      status = s;
      headers = h;
      const checkedWrite: Write = (chunk) => {
        onBytes(chunk, 'a write() chunk');
        write(chunk);
      };
      return checkedWrite;
    };

    const checkBody = (body: unknown): Body => {
      if (typeof body === 'string' || body instanceof Uint8Array) {
        fail([`the app returned ${describe(body)} as its body; return an iterable such as [body]`]);
      }
      const b = body as Body | null | undefined;
      const isSync = typeof (b as Iterable<Chunk> | null)?.[Symbol.iterator] === 'function';
      const isAsync =
        typeof (b as AsyncIterable<Chunk> | null)?.[Symbol.asyncIterator] === 'function';
      if (!isSync && !isAsync) fail([`the app returned ${describe(body)}, not an iterable body`]);
      if (Array.isArray(b)) {
        if (status === null)
          fail(['the app returned an array body without calling startResponse()']);
        b.forEach((chunk: Chunk, i: number) => onBytes(chunk, `body[${i}]`));
        return b;
      }
      const original = b!;
      let index = 0;
      const close = (): void | Promise<void> => {
        if (closed) fail(['close() was called twice']);
        closed = true;
        return original.close?.();
      };
      if (isAsync) {
        return {
          close,
          [Symbol.asyncIterator]() {
            const it = (original as AsyncIterable<Chunk>)[Symbol.asyncIterator]();
            return {
              async next(): Promise<IteratorResult<Chunk>> {
                const r = await it.next();
                if (!r.done) onBytes(r.value, `body chunk ${index++}`);
                else if (status === null)
                  fail(['the body ended without startResponse() being called']);
                return r;
              },
              async return(value?: unknown): Promise<IteratorResult<Chunk>> {
                if (it.return) return it.return(value);
                return { done: true, value: undefined };
              },
            };
          },
        };
      }
      return {
        close,
        [Symbol.iterator]() {
          const it = (original as Iterable<Chunk>)[Symbol.iterator]();
          return {
            next(): IteratorResult<Chunk> {
              const r = it.next();
              if (!r.done) onBytes(r.value, `body chunk ${index++}`);
              else if (status === null)
                fail(['the body ended without startResponse() being called']);
              return r;
            },
            return(value?: unknown): IteratorResult<Chunk> {
              if (it.return) return it.return(value);
              return { done: true, value: undefined };
            },
          };
        },
      };
    };

    const result = app(environ, checkedStart);
    if (result !== null && typeof (result as Promise<Body>).then === 'function') {
      return (result as Promise<Body>).then(checkBody);
    }
    return checkBody(result);
  };
}
