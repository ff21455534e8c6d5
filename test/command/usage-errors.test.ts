/**
 * The tsgi command's usage errors and environment errors, word for word: one line in tsgi's
 * voice with the nearest option or command, gunicorn's and uWSGI's options answered with
 * tsgi's, config files' syntax errors with line:column, no stack trace for a bad TSGI_CODEC,
 * TSGI_NATIVE_PATH or TSGI_TRANSPORT, and help on stdout (asked for) or stderr (usage error).
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../support/build.js';

let cli = '';
const dir = mkdtempSync(join(tmpdir(), 'tsgi-usage-'));

beforeAll(async () => {
  cli = await ensureBuilt();
  writeFileSync(
    join(dir, 'app.mjs'),
    `export default (env, start) => { start('200 OK', [['Content-Type', 'text/plain']]); return ['x']; };`,
  );
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function run(args: string[], env: Record<string, string> = {}, cwd = dir): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli, ...args],
      { cwd, env: { ...process.env, TSGI_CODEC: '', TSGI_TRANSPORT: '', ...env }, timeout: 20_000 },
      (err, stdout, stderr) => {
        const code = err ? ((err as { code?: number }).code ?? 1) : 0;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

/** A usage error: status 2, nothing on stdout, exactly this line on stderr. */
const usage = (line: string): Result => ({ code: 2, stdout: '', stderr: `tsgi: ${line}\n` });

describe('usage errors: one line, the nearest valid option or command', () => {
  it('a misspelt option gets the nearest one', async () => {
    expect(await run(['serve', 'app.mjs', '--wokers', '2'])).toEqual(
      usage('unknown option --wokers; did you mean --workers?'),
    );
    expect(await run(['serve', 'app.mjs', '--fastcig', ':9000'])).toEqual(
      usage('unknown option --fastcig; did you mean --fastcgi?'),
    );
    expect(await run(['serve', 'app.mjs', '--socketmode', '660'])).toEqual(
      usage('unknown option --socketmode; did you mean --socket-mode?'),
    );
    expect(await run(['serve', 'app.mjs', '--zzzzqq'])).toEqual(
      usage('unknown option --zzzzqq (tsgi --help lists the options)'),
    );
  });

  it("gunicorn's --bind, -b and -w and uWSGI's options get tsgi's equivalent", async () => {
    const bind =
      'tsgi names the protocol with each address: --http ADDR, --fastcgi ADDR, --scgi ADDR or --uwsgi ADDR (e.g. --fastcgi 127.0.0.1:9000)';
    expect(await run(['serve', 'app.mjs', '--bind', '127.0.0.1:8000'])).toEqual(
      usage(`unknown option --bind: ${bind}`),
    );
    expect(await run(['serve', '-b', ':8000', 'app.mjs'])).toEqual(
      usage(`unknown option -b: ${bind}`),
    );
    expect(await run(['serve', '-w', '4', 'app.mjs'])).toEqual(
      usage('unknown option -w: use --workers N'),
    );
    expect(await run(['serve', 'app.mjs', '--chmod-socket=660'])).toEqual(
      usage('unknown option --chmod-socket: use --socket-mode MODE (e.g. --socket-mode 660)'),
    );
  });

  it('a missing value, a value given to a flag', async () => {
    expect(await run(['serve', 'app.mjs', '--workers'])).toEqual(
      usage('--workers needs a value: --workers N'),
    );
    expect(await run(['serve', 'app.mjs', '--fastcgi', '--workers', '2'])).toEqual(
      usage('--fastcgi needs a value: --fastcgi ADDR'),
    );
    expect(await run(['serve', 'app.mjs', '--reload=yes'])).toEqual(
      usage('--reload takes no value (given "yes")'),
    );
    expect(await run(['cgi', 'app.mjs', '--factroy'])).toEqual(
      usage('cgi: unknown option --factroy; did you mean --factory?'),
    );
  });

  it('an app or a serve option without "serve" is answered with the command that works', async () => {
    expect(await run(['app.mjs'])).toEqual(
      usage('"app.mjs" is not a command; to serve it: tsgi serve app.mjs'),
    );
    expect(await run(['server.ts:app', '--workers', '2'])).toEqual(
      usage('"server.ts:app" is not a command; to serve it: tsgi serve server.ts:app --workers 2'),
    );
    expect(await run(['--http', ':8000', 'app.mjs'])).toEqual(
      usage('--http is an option of serve: tsgi serve --http :8000 app.mjs'),
    );
    expect(await run(['srve', 'app.mjs'])).toEqual(
      usage('unknown command "srve"; did you mean "tsgi serve"?'),
    );
  });

  it('help: stdout and 0 when asked for; stderr and 2 for bare tsgi', async () => {
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.stderr).toBe('');
    expect(help.stdout).toMatch(/^Usage: tsgi serve APP\[:EXPORT\] \[options\]\n/);
    expect(await run(['help'])).toEqual(help);
    expect(await run(['serve', '-h'])).toEqual(help);
    expect(await run([])).toEqual({ code: 2, stdout: '', stderr: help.stdout });
  });
});

describe('config files', () => {
  const withConfig = (name: string, text: string): string => {
    const cwd = join(dir, `cfg-${Math.random().toString(36).slice(2)}`);
    mkdirSync(cwd);
    writeFileSync(join(cwd, 'app.mjs'), `export default () => [];`);
    writeFileSync(join(cwd, name), text);
    return cwd;
  };

  it('a JSON syntax error is named by line:column', async () => {
    const missingComma = withConfig(
      'tsgi.config.json',
      '{\n  "app": "app.mjs",\n  "workers": 2\n  "reload": true\n}\n',
    );
    expect(await run(['serve'], {}, missingComma)).toEqual(
      usage('tsgi.config.json:4:3: expected a comma'),
    );
    const trailing = withConfig('tsgi.config.json', '{\n  "app": "app.mjs",\n}\n');
    expect(await run(['serve'], {}, trailing)).toEqual(
      usage('tsgi.config.json:3:1: expected a property name in double quotes'),
    );
    const comment = withConfig('tsgi.config.json', '{\n  // workers\n  "workers": 2\n}\n');
    expect(await run(['serve'], {}, comment)).toEqual(
      usage('tsgi.config.json:2:3: JSON has no comments (use tsgi.config.mjs for comments)'),
    );
  });

  it('an .mjs syntax error names its line; a misspelt key gets the nearest', async () => {
    const broken = withConfig('tsgi.config.mjs', 'export default {\n  workers: 2,\n  app: ,\n};\n');
    const r = await run(['serve'], {}, broken);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^tsgi: tsgi\.config\.mjs:3: Unexpected token ','\n$/);
    const typo = withConfig('tsgi.config.json', '{ "app": "app.mjs", "wokers": 2 }');
    expect(await run(['serve'], {}, typo)).toEqual(
      usage('tsgi.config.json: unknown option "wokers"; did you mean "workers"?'),
    );
  });
});

describe('environment variables: one line, no stack trace', () => {
  const serveArgs = ['serve', 'app.mjs', '--fastcgi', '127.0.0.1:0'];

  it('a value the variable does not take is a usage error', async () => {
    expect(await run(serveArgs, { TSGI_CODEC: 'fast' })).toEqual(
      usage('TSGI_CODEC must be "ts" or "native", not "fast"'),
    );
    expect(await run(serveArgs, { TSGI_TRANSPORT: 'uv' })).toEqual(
      usage('TSGI_TRANSPORT must be "native" or "node", not "uv"'),
    );
  });

  it('TSGI_CODEC=native with a TSGI_NATIVE_PATH that does not load: status 1, one line', async () => {
    const missing = join(dir, 'missing.node');
    expect(await run(serveArgs, { TSGI_CODEC: 'native', TSGI_NATIVE_PATH: missing })).toEqual({
      code: 1,
      stdout: '',
      stderr: `tsgi: TSGI_CODEC=native but the native codec did not load: ${missing}: Cannot find module '${missing}'\n`,
    });
  });

  it('TSGI_NATIVE_PATH that does not load, codec not forced: a warning naming the fallback', async () => {
    const missing = join(dir, 'missing.node');
    /* "tsgi cgi" runs the app once and exits: no server to stop */
    const r = await run(['cgi', 'app.mjs'], {
      TSGI_NATIVE_PATH: missing,
      REQUEST_METHOD: 'GET',
      SERVER_PROTOCOL: 'HTTP/1.1',
    });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(
      `tsgi: TSGI_NATIVE_PATH=${missing} did not load (${missing}: Cannot find module '${missing}'); using the ts codec\n`,
    );
  });
});
