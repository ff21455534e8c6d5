import { execFile, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable, Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { App, Environ } from '../../lib/gateway/types.js';
import { validate } from '../../lib/gateway/validate.js';
import { cgiMain } from '../../lib/command/cgi.js';
import { isRequestVariable, runCgi, type CgiIo } from '../../lib/protocol/cgi.js';
import { ensureBuilt } from '../support/build.js';

const dir = mkdtempSync(join(tmpdir(), 'tsgi-cgi-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const APPS: Record<string, string> = {
  'echo.mjs': `export default async (env, start) => {
  const parts = [];
  for await (const c of env['tsgi.input']) parts.push(c);
  const keys = Object.keys(env).filter((k) => !k.startsWith('tsgi.')).sort();
  const vars = keys.map((k) => k + '=' + env[k]).join('\\n');
  start('200 OK', [['Content-Type', 'text/plain'], ['X-Protocol', env['tsgi.protocol']]]);
  return [vars + '\\n--\\n', Buffer.concat(parts)];
};`,
  'hello.mjs': `export const application = (env, start) => {
  start('200 OK', [['Content-Type', 'text/plain']]);
  return ['hello ' + env.PATH_INFO];
};`,
  'factory.mjs': `export default async () => (env, start) => {
  start('201 Created', [['Content-Type', 'text/plain']]);
  return ['made'];
};`,
  'broken.mjs': `export default (;`,
};

beforeAll(() => {
  for (const [name, text] of Object.entries(APPS)) writeFileSync(join(dir, name), text);
});

/** A CGI run in this process: env pairs, stdin bytes; resolves with the exit status and output. */
async function cgi(
  args: string[],
  environ: string[],
  stdin: string | Buffer = '',
  stdout: Writable = new PassThrough(),
): Promise<{ code: number; out: string; err: string }> {
  const outParts: Buffer[] = [];
  stdout.on('data', (c: Buffer) => outParts.push(c));
  let err = '';
  const stderr = new Writable({
    write(chunk: Buffer, _enc, cb) {
      err += chunk.toString('latin1');
      cb();
    },
  });
  const io: CgiIo = {
    environ,
    stdin: Readable.from([typeof stdin === 'string' ? Buffer.from(stdin, 'latin1') : stdin]),
    stdout,
    stderr,
  };
  const code = await cgiMain(args, io);
  return { code, out: Buffer.concat(outParts).toString('latin1'), err };
}

/** What Apache's mod_cgi puts in the environment for `POST /cgi-bin/app.cgi/x?q=1`. */
function apacheEnv(extra: string[] = [], method = 'GET', length?: number): string[] {
  return [
    'PATH',
    '/usr/local/bin:/usr/bin:/bin',
    'HOME',
    '/var/www',
    'HTTP_HOST',
    'example.org',
    'HTTP_USER_AGENT',
    'test',
    'SERVER_SIGNATURE',
    '',
    'SERVER_SOFTWARE',
    'Apache/2.4',
    'SERVER_NAME',
    'example.org',
    'SERVER_ADDR',
    '127.0.0.1',
    'SERVER_PORT',
    '80',
    'REMOTE_ADDR',
    '127.0.0.1',
    'DOCUMENT_ROOT',
    '/var/www/html',
    'REQUEST_SCHEME',
    'http',
    'CONTEXT_PREFIX',
    '/cgi-bin/',
    'CONTEXT_DOCUMENT_ROOT',
    '/usr/lib/cgi-bin/',
    'SERVER_ADMIN',
    'webmaster@localhost',
    'SCRIPT_FILENAME',
    '/usr/lib/cgi-bin/app.cgi',
    'REMOTE_PORT',
    '40000',
    'GATEWAY_INTERFACE',
    'CGI/1.1',
    'SERVER_PROTOCOL',
    'HTTP/1.1',
    'REQUEST_METHOD',
    method,
    'QUERY_STRING',
    'q=1',
    'REQUEST_URI',
    '/cgi-bin/app.cgi/x?q=1',
    'SCRIPT_NAME',
    '/cgi-bin/app.cgi',
    'PATH_INFO',
    '/x',
    'PATH_TRANSLATED',
    '/var/www/html/x',
    ...(length === undefined ? [] : ['CONTENT_LENGTH', String(length)]),
    ...extra,
  ];
}

const APACHE_VARS = [
  'CONTEXT_DOCUMENT_ROOT=/usr/lib/cgi-bin/',
  'CONTEXT_PREFIX=/cgi-bin/',
  'DOCUMENT_ROOT=/var/www/html',
  'GATEWAY_INTERFACE=CGI/1.1',
  'HTTP_HOST=example.org',
  'HTTP_USER_AGENT=test',
  'PATH_INFO=/x',
  'PATH_TRANSLATED=/var/www/html/x',
  'QUERY_STRING=q=1',
  'REMOTE_ADDR=127.0.0.1',
  'REMOTE_PORT=40000',
];
const APACHE_VARS_2 = [
  'REQUEST_SCHEME=http',
  'REQUEST_URI=/cgi-bin/app.cgi/x?q=1',
  'SCRIPT_FILENAME=/usr/lib/cgi-bin/app.cgi',
  'SCRIPT_NAME=/cgi-bin/app.cgi',
  'SERVER_ADDR=127.0.0.1',
  'SERVER_ADMIN=webmaster@localhost',
  'SERVER_NAME=example.org',
  'SERVER_PORT=80',
  'SERVER_PROTOCOL=HTTP/1.1',
  'SERVER_SIGNATURE=',
  'SERVER_SOFTWARE=Apache/2.4',
];

describe('tsgi cgi (in process)', () => {
  it('runs a GET: request variables only, exact output, exit 0', async () => {
    const r = await cgi([join(dir, 'echo.mjs')], apacheEnv(['TSGI_CODEC', 'ts', 'LANG', 'C']));
    const body = [...APACHE_VARS, 'REQUEST_METHOD=GET', ...APACHE_VARS_2].join('\n') + '\n--\n';
    expect(r).toEqual({
      code: 0,
      out:
        'Status: 200 OK\r\nContent-Type: text/plain\r\nX-Protocol: cgi\r\n' +
        `Content-Length: ${body.length}\r\n\r\n${body}`,
      err: '',
    });
  });

  it('gives the app the exact environ (validated), tsgi.run_once true', async () => {
    let seen: Record<string, unknown> = {};
    const app: App = (env, start) => {
      seen = { ...env };
      delete seen['tsgi.input'];
      delete seen['tsgi.errors'];
      delete seen['tsgi.signal'];
      start('204 No Content', []);
      return [];
    };
    const out = new PassThrough();
    const parts: Buffer[] = [];
    out.on('data', (c: Buffer) => parts.push(c));
    await runCgi(validate(app), {
      environ: ['PATH', '/bin', 'REQUEST_METHOD', 'GET', 'PATH_INFO', '/\xc3\xa9', 'HTTPS', 'on'],
      stdin: Readable.from([]),
      stdout: out,
    });
    expect(Buffer.concat(parts).toString('latin1')).toBe('Status: 204 No Content\r\n\r\n');
    expect(seen).toEqual({
      REQUEST_METHOD: 'GET',
      PATH_INFO: '/\xc3\xa9',
      HTTPS: 'on',
      SCRIPT_NAME: '',
      QUERY_STRING: '',
      SERVER_PROTOCOL: 'HTTP/1.0',
      SERVER_NAME: 'localhost',
      SERVER_PORT: '80',
      'tsgi.version': [1, 0],
      'tsgi.url_scheme': 'https',
      'tsgi.multithread': false,
      'tsgi.multiprocess': true,
      'tsgi.run_once': true,
      'tsgi.protocol': 'cgi',
    });
  });

  it('reads CONTENT_LENGTH bytes of stdin and ignores the rest', async () => {
    const r = await cgi(
      [join(dir, 'echo.mjs')],
      ['REQUEST_METHOD', 'POST', 'CONTENT_LENGTH', '5', 'CONTENT_TYPE', 'text/plain'],
      'helloEXTRA',
    );
    const body =
      'CONTENT_LENGTH=5\nCONTENT_TYPE=text/plain\nPATH_INFO=\nQUERY_STRING=\nREQUEST_METHOD=POST\n' +
      'SCRIPT_NAME=\nSERVER_NAME=localhost\nSERVER_PORT=80\nSERVER_PROTOCOL=HTTP/1.0\n--\nhello';
    expect(r.out).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nX-Protocol: cgi\r\n' +
        `Content-Length: ${body.length}\r\n\r\n${body}`,
    );
  });

  it('reads stdin to its end when CONTENT_LENGTH is absent (a streamed chunked body)', async () => {
    const big = Buffer.alloc(200_000, 0x62);
    const r = await cgi(
      [join(dir, 'echo.mjs')],
      ['REQUEST_METHOD', 'POST', 'SERVER_NAME', 'h', 'SERVER_PORT', '1'],
      big,
    );
    expect(r.out.endsWith('\n--\n' + big.toString('latin1'))).toBe(true);
  });

  it('finds the app in TSGI_APP, and loads factories', async () => {
    const r = await cgi([], ['TSGI_APP', join(dir, 'hello.mjs'), 'PATH_INFO', '/env']);
    expect(r.out).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 10\r\n\r\nhello /env',
    );
    const f = await cgi([join(dir, 'factory.mjs'), '--factory'], []);
    expect(f.out).toBe(
      'Status: 201 Created\r\nContent-Type: text/plain\r\nContent-Length: 4\r\n\r\nmade',
    );
  });

  it('exits 2 for usage errors and 1 when the app cannot be loaded, with a message', async () => {
    expect(await cgi([], [])).toEqual({
      code: 2,
      out: '',
      err: 'tsgi: cgi needs an APP module (or the TSGI_APP environment variable)\n',
    });
    expect((await cgi(['a.mjs', 'b.mjs'], [])).err).toBe('tsgi: unexpected argument "b.mjs"\n');
    expect((await cgi(['a.mjs', '--interface', 'wsgi'], [])).code).toBe(2);
    expect((await cgi(['a.mjs', '--bogus'], [])).code).toBe(2);
    const missing = join(dir, 'missing.mjs');
    expect(await cgi([missing], [])).toEqual({
      code: 1,
      out: '',
      err: `tsgi: cannot find the app module "${missing}" (${missing})\n`,
    });
    const broken = await cgi([join(dir, 'broken.mjs')], []);
    expect([broken.code, broken.out]).toEqual([1, '']);
    expect(broken.err).toMatch(/^tsgi: cannot load the app module ".*broken\.mjs": /);
    const help = await cgi(['--help'], []);
    expect([help.code, help.out.split('\n')[0]]).toEqual([
      0,
      'Usage: tsgi cgi [APP[:EXPORT]] [--factory] [--interface NAME]',
    ]);
  });

  it('answers 500 when the app throws and still exits 0, the error on stderr', async () => {
    writeFileSync(join(dir, 'throws.mjs'), `export default () => { throw new Error('kaput'); };`);
    const r = await cgi([join(dir, 'throws.mjs')], ['REQUEST_METHOD', 'GET']);
    expect(r.code).toBe(0);
    expect(r.out).toBe(
      'Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=us-ascii\r\n' +
        'Content-Length: 22\r\n\r\nInternal Server Error\n',
    );
    expect(r.err).toMatch(/^tsgi: error in application: Error: kaput\n/);
  });

  it('streams a response and waits for a slow stdout (backpressure)', async () => {
    let pulled = 0;
    const chunk = Buffer.alloc(256 * 1024, 0x63);
    const app: App = (_env, start) => {
      start('200 OK', [['Content-Type', 'application/octet-stream']]);
      return (function* () {
        for (let i = 0; i < 40; i++) {
          pulled++;
          yield chunk;
        }
      })();
    };
    const out = new PassThrough({ highWaterMark: 64 * 1024 });
    const done = runCgi(app, { environ: [], stdin: Readable.from([]), stdout: out });
    await new Promise((r) => setTimeout(r, 100));
    expect(pulled).toBeLessThan(4);
    const parts: Buffer[] = [];
    out.on('data', (c: Buffer) => parts.push(c));
    await done;
    expect(pulled).toBe(40);
    const all = Buffer.concat(parts);
    const head = 'Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n';
    expect(all.subarray(0, head.length).toString('latin1')).toBe(head);
    expect(all.length).toBe(head.length + 40 * chunk.length);
  });

  it('aborts tsgi.signal and runs close() on SIGTERM (the abort signal) or a broken stdout', async () => {
    for (const how of ['abort', 'broken'] as const) {
      let closed = 0;
      let signal: AbortSignal | null = null;
      const app: App = (env: Environ, start) => {
        signal = env['tsgi.signal'];
        start('200 OK', [['Content-Type', 'text/plain']]);
        return Object.assign(
          (async function* () {
            for (;;) {
              yield 'tick\n';
              await new Promise((r) => setTimeout(r, 2));
            }
          })(),
          { close: () => void closed++ },
        );
      };
      const term = new AbortController();
      const out = new PassThrough();
      out.resume();
      const done = runCgi(app, { environ: [], stdin: Readable.from([]), stdout: out }, term.signal);
      await new Promise((r) => setTimeout(r, 30));
      if (how === 'abort') term.abort();
      else out.destroy(Object.assign(new Error('write EPIPE'), { code: 'EPIPE' }));
      await done;
      expect(signal!.aborted).toBe(true);
      expect(closed).toBe(1);
    }
  });

  it('takes only request variables from the environment', () => {
    for (const name of ['REQUEST_METHOD', 'HTTP_X', 'SSL_PROTOCOL', 'REDIRECT_STATUS', 'HTTPS'])
      expect(isRequestVariable(name)).toBe(true);
    for (const name of ['PATH', 'HOME', 'TSGI_APP', 'NODE_OPTIONS', 'LD_PRELOAD', 'HTTPX'])
      expect(isRequestVariable(name)).toBe(false);
  });
});

describe('tsgi cgi (a process, as a web server runs it)', () => {
  let cli = '';
  beforeAll(async () => {
    cli = await ensureBuilt();
  });

  /** Runs `file args` with exactly `env` and `stdin`, as mod_cgi does. */
  function exec(
    file: string,
    args: string[],
    env: Record<string, string>,
    stdin: string,
  ): Promise<{ code: number; stdout: Buffer; stderr: string }> {
    return new Promise((resolve) => {
      const child = spawn(file, args, { env, cwd: dir, stdio: ['pipe', 'pipe', 'pipe'] });
      const out: Buffer[] = [];
      let err = '';
      child.stdout.on('data', (c: Buffer) => out.push(c));
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      child.on('close', (code) =>
        resolve({ code: code ?? -1, stdout: Buffer.concat(out), stderr: err }),
      );
      child.stdin.end(stdin);
    });
  }

  it('reads env and stdin, writes the exact response, exits 0', async () => {
    const env = {
      PATH: process.env.PATH ?? '/usr/bin:/bin',
      REQUEST_METHOD: 'POST',
      CONTENT_LENGTH: '4',
      CONTENT_TYPE: 'text/plain',
      SCRIPT_NAME: '/cgi-bin/app',
      PATH_INFO: '/é',
      QUERY_STRING: 'a=b',
      SERVER_NAME: 'localhost',
      SERVER_PORT: '8080',
      SERVER_PROTOCOL: 'HTTP/1.1',
      HTTP_X_FOO: 'bar',
    };
    const r = await exec(process.execPath, [cli, 'cgi', 'echo.mjs'], env, 'dataIGNORED');
    /* PATH_INFO's UTF-8 bytes arrive as latin-1 characters, as over every other protocol */
    const body =
      'CONTENT_LENGTH=4\nCONTENT_TYPE=text/plain\nHTTP_X_FOO=bar\nPATH_INFO=/\xc3\xa9\n' +
      'QUERY_STRING=a=b\nREQUEST_METHOD=POST\nSCRIPT_NAME=/cgi-bin/app\nSERVER_NAME=localhost\n' +
      'SERVER_PORT=8080\nSERVER_PROTOCOL=HTTP/1.1\n--\ndata';
    expect(r.stderr).toBe('');
    expect(r.stdout.toString('latin1')).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nX-Protocol: cgi\r\n' +
        `Content-Length: ${body.length}\r\n\r\n${body}`,
    );
    expect(r.code).toBe(0);
  });

  it('works as a cgi-bin wrapper script, and exits 1 when the app cannot be loaded', async () => {
    const script = join(dir, 'app.cgi');
    writeFileSync(
      script,
      `#!/bin/sh\nexec ${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} cgi "$TSGI_APP"\n`,
    );
    chmodSync(script, 0o755);
    const ok = await exec(
      script,
      [],
      { TSGI_APP: join(dir, 'hello.mjs'), REQUEST_METHOD: 'GET', PATH_INFO: '/wrapped' },
      '',
    );
    expect([ok.code, ok.stdout.toString('latin1')]).toEqual([
      0,
      'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 14\r\n\r\nhello /wrapped',
    ]);
    const bad = await exec(script, [], { TSGI_APP: join(dir, 'broken.mjs') }, '');
    expect([bad.code, bad.stdout.length]).toEqual([1, 0]);
    expect(bad.stderr).toMatch(/^tsgi: cannot load the app module /);
  });

  it('is listed in tsgi --help', async () => {
    const help = await new Promise<string>((resolve) =>
      execFile(process.execPath, [cli, '--help'], (_e, stdout) => resolve(stdout)),
    );
    expect(help).toContain('\nUsage: tsgi cgi [APP[:EXPORT]] [--factory] [--interface NAME]\n');
  });
});
