/**
 * Options of `tsgi serve` (lib/server/config.ts): defaults < config file < command line, the
 * listener group rule, the config files (tsgi.config.json, tsgi.config.mjs, --config FILE),
 * and the messages for bad values; then the command itself reading a config file.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  optionsHelp,
  optionsMarkdown,
  README_OPTIONS_BEGIN,
  README_OPTIONS_END,
  parseCommandLine,
  readConfigFile,
  resolveConfig,
  type ServeConfig,
} from '../../lib/server/config.js';
import { PROTOCOLS } from '../../lib/server/protocols.js';
import { ensureBuilt, ROOT } from '../support/build.js';
import { freePort } from '../support/peers.js';
import { httpGet, startTsgi } from '../support/process-manager.js';
import type { Child } from '../support/spawn.js';

const dir = mkdtempSync(join(tmpdir(), 'tsgi-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
/** A fresh directory with these files. */
function folder(files: Record<string, string>): string {
  const d = join(dir, `case${n++}`);
  mkdirSync(d);
  for (const [name, text] of Object.entries(files)) writeFileSync(join(d, name), text);
  return d;
}

async function resolved(args: string[], files: Record<string, string> = {}): Promise<ServeConfig> {
  const cwd = folder(files);
  const cli = parseCommandLine(args);
  return resolveConfig(cli, await readConfigFile(cli.values.config as string | undefined, cwd));
}

async function failure(args: string[], files: Record<string, string> = {}): Promise<string> {
  try {
    await resolved(args, files);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error('no error');
}

describe('config: precedence and values', () => {
  it('defaults: one process, no limits, text logs, no access log', async () => {
    expect(await resolved(['app.mjs'])).toEqual({
      app: 'app.mjs',
      listeners: [],
      factory: false,
      interface: null,
      mount: null,
      keepAliveMs: null,
      connectionLimits: {},
      workers: null,
      timeoutMs: 0,
      maxRequests: 0,
      maxRequestsJitter: 0,
      maxRssBytes: 0,
      graceMs: 30_000,
      reload: false,
      noExitOnChange: false,
      idleExitMs: 0,
      socketMode: null,
      user: null,
      group: null,
      allow: null,
      stats: null,
      accessLog: false,
      exitOnError: false,
      logFormat: 'text',
      configFile: null,
    });
  });

  it('the file sets options, the command line overrides them one by one', async () => {
    const file = JSON.stringify({
      app: 'file-app.mjs',
      workers: 4,
      timeout: 30,
      maxRequests: 1000,
      maxRss: 256,
      gracefulTimeout: '5',
      socketMode: '660',
      allow: ['127.0.0.1', '10.0.0.0/8,::1'],
      stats: '127.0.0.1:9191',
      accessLog: true,
      logFormat: 'json',
      mount: '/app/',
      keepAlive: 75,
    });
    const c = await resolved(['--workers', '2', '--timeout', '2.5', '--no-access-log'], {
      'tsgi.config.json': file,
    });
    expect(c).toMatchObject({
      app: 'file-app.mjs',
      workers: 2,
      timeoutMs: 2500,
      maxRequests: 1000,
      maxRequestsJitter: 100,
      maxRssBytes: 256 * 1024 * 1024,
      graceMs: 5000,
      socketMode: 0o660,
      allow: ['127.0.0.1', '10.0.0.0/8', '::1'],
      stats: { type: 'tcp', host: '127.0.0.1', port: 9191 },
      accessLog: false,
      logFormat: 'json',
      mount: '/app',
      keepAliveMs: 75_000,
    });
    expect(c.configFile).toMatch(/tsgi\.config\.json$/);
    expect((await resolved(['cli-app.mjs'], { 'tsgi.config.json': file })).app).toBe('cli-app.mjs');
  });

  it('connection deadlines and caps: each a flag and a config key; only those given are set', async () => {
    const file = JSON.stringify({
      app: 'a.mjs',
      headerTimeout: 20,
      firstByteTimeout: '5',
      idleTimeout: 90,
      tcpKeepalive: 0,
      maxHeadMemory: 16,
      maxUnfinished: 500,
      fastcgiMaxReqs: 8,
    });
    const fromFile = await resolved([], { 'tsgi.config.json': file });
    expect(fromFile.connectionLimits).toEqual({
      headerTimeoutMs: 20_000,
      firstByteTimeoutMs: 5000,
      idleTimeoutMs: 90_000,
      tcpKeepAliveMs: 0,
      maxHeadBytes: 16 * 1024 * 1024,
      maxUnfinished: 500,
      maxConnRequests: 8,
    });
    const cli = await resolved(
      ['--header-timeout', '0.5', '--idle-timeout', '120', '--fastcgi-max-reqs', '1'],
      { 'tsgi.config.json': file },
    );
    expect(cli.connectionLimits).toMatchObject({
      headerTimeoutMs: 500,
      idleTimeoutMs: 120_000,
      maxConnRequests: 1,
      firstByteTimeoutMs: 5000,
    });
    expect(await failure(['a.mjs', '--max-unfinished', '0'])).toBe(
      '--max-unfinished needs a whole number of at least 1, not "0"',
    );
    expect(await failure(['a.mjs', '--max-head-memory', '0'])).toBe(
      '--max-head-memory needs a positive number of megabytes, not "0"',
    );
    expect(await failure(['a.mjs', '--idle-timeout', 'soon'])).toBe(
      '--idle-timeout needs a number of seconds, not "soon"',
    );
  });

  it('listeners on the command line replace every listener of the file', async () => {
    const file = JSON.stringify({ app: 'a.mjs', fastcgi: 'unix:/tmp/x.sock', http: [':8000'] });
    expect((await resolved([], { 'tsgi.config.json': file })).listeners).toEqual([
      { protocol: 'fastcgi', addr: { type: 'unix', path: '/tmp/x.sock' } },
      { protocol: 'http', addr: { type: 'tcp', host: '', port: 8000 } },
    ]);
    expect(
      (await resolved(['--http', '127.0.0.1:8001'], { 'tsgi.config.json': file })).listeners,
    ).toEqual([{ protocol: 'http', addr: { type: 'tcp', host: '127.0.0.1', port: 8001 } }]);
  });

  it('--max-requests, --max-rss and --reload start a master with one worker; jitter is N/10 unless given', async () => {
    expect((await resolved(['a.mjs', '--max-requests', '50'])).workers).toBe(1);
    expect((await resolved(['a.mjs', '--max-rss', '100'])).workers).toBe(1);
    expect((await resolved(['a.mjs', '--reload'])).workers).toBe(1);
    expect((await resolved(['a.mjs', '--max-requests', '50', '--workers', '3'])).workers).toBe(3);
    expect((await resolved(['a.mjs', '--max-requests', '55'])).maxRequestsJitter).toBe(5);
    expect(
      (await resolved(['a.mjs', '--max-requests', '55', '--max-requests-jitter', '0']))
        .maxRequestsJitter,
    ).toBe(0);
    expect((await resolved(['a.mjs', '--workers', 'auto'])).workers).toBeGreaterThanOrEqual(1);
  });

  it('tsgi.config.mjs: an object, or a function (maybe async) returning one; --config FILE', async () => {
    expect(
      (await resolved([], { 'tsgi.config.mjs': `export default { app: 'm.mjs', workers: 3 };` }))
        .workers,
    ).toBe(3);
    expect(
      (
        await resolved([], {
          'tsgi.config.mjs': `export default async () => ({ app: 'f.mjs', timeout: 7 });`,
        })
      ).timeoutMs,
    ).toBe(7000);
    const named = await resolved(['--config', 'other.json'], {
      'other.json': JSON.stringify({ app: 'o.mjs', workers: 5 }),
      'tsgi.config.json': JSON.stringify({ app: 'ignored.mjs' }),
    });
    expect([named.app, named.workers]).toEqual(['o.mjs', 5]);
    expect(named.configFile).toMatch(/other\.json$/);
  }, 10_000);

  it('names the option, the file and the problem', async () => {
    const json = (v: unknown) => ({
      'tsgi.config.json': JSON.stringify({ app: 'a.mjs', ...(v as object) }),
    });
    const known = ['app', ...PROTOCOLS.map((p) => p.flag)].concat(
      'factory, interface, mount, workers, timeout, maxRequests, maxRequestsJitter, maxRss, ' +
        'gracefulTimeout, exitOnError, reload, noExitOnChange, idleExit, keepAlive, headerTimeout, firstByteTimeout, idleTimeout, ' +
        'tcpKeepalive, deferAccept, maxHeadMemory, maxUnfinished, fastcgiMaxReqs, socketMode, user, group, ' +
        'allow, stats, accessLog, logFormat',
    );
    expect(await failure([], json({ 'max-requests': 5 }))).toBe(
      'tsgi.config.json: unknown option "max-requests"; did you mean "maxRequests"?',
    );
    expect(await failure([], json({ zzzzzz: 5 }))).toBe(
      `tsgi.config.json: unknown option "zzzzzz"; known options: ${known.join(', ')}`,
    );
    expect(await failure([], json({ socketMode: 660 }))).toBe(
      'tsgi.config.json: "socketMode" needs the mode as an octal string such as "660", not 660',
    );
    expect(await failure([], json({ workers: 0 }))).toBe(
      'tsgi.config.json: "workers" needs a whole number of at least 1, not "0"',
    );
    expect(await failure([], json({ reload: 'yes' }))).toBe(
      'tsgi.config.json: "reload" needs true or false, not "yes"',
    );
    expect(await failure([], json({ http: 'nowhere' }))).toBe(
      'tsgi.config.json: "http": "nowhere": expected HOST:PORT, :PORT, unix:/path or fd:N',
    );
    expect(await failure(['a.mjs', '--timeout', 'soon'])).toBe(
      '--timeout needs a number of seconds, not "soon"',
    );
    expect(await failure(['a.mjs', '--socket-mode', '999'])).toBe(
      '--socket-mode needs an octal mode such as 660, not "999"',
    );
    expect(await failure(['a.mjs', '--allow', '127.0.0.1,example.org'])).toBe(
      '--allow "example.org" is not an IP address or a CIDR range (such as 10.0.0.0/8)',
    );
    expect(await failure(['a.mjs', '--log-format', 'xml'])).toBe(
      '--log-format needs text or json, not "xml"',
    );
    expect(await failure(['a.mjs', '--mount', 'app'])).toBe('--mount "app" must start with "/"');
    expect(await failure([], json({ mount: '/a/../b' }))).toBe(
      'tsgi.config.json: "mount" "/a/../b" must not hold empty, "." or ".." segments',
    );
    expect(await failure(['a.mjs', '--stats', 'fd:3'])).toBe(
      '--stats: "fd:3": the stats endpoint cannot use fd:N',
    );
    expect(await failure([], { 'tsgi.config.json': '{ "app": ' })).toBe(
      'tsgi.config.json:1:10: expected a value',
    );
    expect(await failure([], { 'tsgi.config.json': '[1]' })).toBe(
      'tsgi.config.json: the options must be an object',
    );
    expect(
      await failure([], { 'tsgi.config.json': '{}', 'tsgi.config.mjs': 'export default {}' }),
    ).toMatch(
      /^both tsgi\.config\.json and tsgi\.config\.mjs exist in .*: keep one, or name it with --config$/,
    );
    expect(await failure(['--config', 'missing.json'])).toMatch(
      /^--config missing\.json: no such file \(.*missing\.json\)$/,
    );
    expect(await failure([], { 'tsgi.config.mjs': 'throw new Error("bad config")' })).toBe(
      'tsgi.config.mjs: cannot load it: bad config',
    );
    expect(await failure([])).toBe('serve needs an APP module');
  });

  it('documents every option in the help', () => {
    const help = optionsHelp();
    for (const flag of [
      '--fastcgi ADDR',
      '--http ADDR',
      '--workers N',
      '--timeout SECS',
      '--max-requests N',
      '--max-requests-jitter N',
      '--max-rss MB',
      '--graceful-timeout SECS',
      '--reload',
      '--socket-mode MODE',
      '--user USER',
      '--group GROUP',
      '--allow ADDR[,ADDR]',
      '--stats ADDR',
      '--access-log',
      '--no-access-log',
      '--log-format FORMAT',
      '--config FILE',
      '--factory',
      '--interface NAME',
      '--mount PREFIX',
      '--keep-alive SECS',
    ]) {
      expect(help).toContain(`  ${flag}`);
    }
    for (const line of help.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
  });

  it("the README's option table is the one the table writes (npm run docs:options)", () => {
    const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
    const begin = readme.indexOf(README_OPTIONS_BEGIN);
    const end = readme.indexOf(README_OPTIONS_END);
    expect(begin, 'README.md has the option table markers').toBeGreaterThan(0);
    expect(readme.slice(begin + README_OPTIONS_BEGIN.length + 1, end)).toBe(optionsMarkdown());
    /* every flag of --help has its row, under its config key */
    const rows = optionsMarkdown().split('\n');
    expect(rows).toContain(
      '| `--max-requests N` | `maxRequests` | recycle a worker after about N requests (needs a master: implies --workers 1) |',
    );
    expect(rows).toContain('| `--fastcgi ADDR` | `fastcgi` | serve FastCGI on ADDR (repeatable) |');
    for (const m of optionsHelp().matchAll(/^ {2}--([a-z-]+)/gm)) {
      if (m[1] === 'help' || m[1] === 'version') continue;
      expect(
        rows.some((r) => r.startsWith(`| \`--${m[1]}`)),
        m[1],
      ).toBe(true);
    }
  });
});

describe('config: the command', () => {
  let cli = '';
  const children: Child[] = [];
  beforeAll(async () => {
    cli = await ensureBuilt();
  });
  afterEach(async () => {
    for (const c of children.splice(0)) await c.stop();
  });

  const APP = `export default (env, start) => { start('200 OK', [['Content-Type', 'text/plain']]); return ['from config']; };`;

  it('serves what tsgi.config.json says; flags override it', async () => {
    const [a, b] = [await freePort(), await freePort()];
    const cwd = folder({
      'app.mjs': APP,
      'tsgi.config.json': JSON.stringify({ app: 'app.mjs', http: `127.0.0.1:${a}` }),
    });
    const one = await startTsgi(cli, [], { cwd });
    children.push(one);
    expect(one.stderr()).toContain(`over HTTP on 127.0.0.1:${a} `);
    expect((await httpGet(a, '/')).body).toBe('from config');
    await one.stop();
    const two = await startTsgi(cli, ['--http', `127.0.0.1:${b}`, '--workers', '1'], { cwd });
    children.push(two);
    expect(two.stderr()).toContain(`over HTTP on 127.0.0.1:${b} (`);
    expect(two.stderr()).not.toContain(`127.0.0.1:${a}`);
    expect((await httpGet(b, '/')).body).toBe('from config');
  });

  it('exits with status 2 and the message for a bad config file', async () => {
    const cwd = folder({ 'tsgi.config.json': JSON.stringify({ app: 'app.mjs', workers: 'many' }) });
    const r = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile(process.execPath, [cli, 'serve'], { cwd }, (err, _out, stderr) =>
        resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stderr }),
      );
    });
    expect(r).toEqual({
      code: 2,
      stderr: 'tsgi: tsgi.config.json: "workers" needs a whole number of at least 1, not "many"\n',
    });
  });
});
