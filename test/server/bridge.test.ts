/**
 * tsgi-cgi-bridge, run here as a web server runs a CGI program (the entry file's path as its
 * argument, the CGI environment, the app's folder as its working directory), in both
 * implementations: the native executable and the Node.js one, which bridgeProgram() chooses
 * when a package has no native executable (forced here with a package root that has none).
 * Proves, for each: concurrent first requests start exactly one persistent process (the app
 * records the pid of every process that loads it); a busy loop ends in the watchdog's 504 with
 * the socket file already gone when the answer arrives, and the next request reaches a fresh
 * process without an error; a memory explosion above --max-rss (no master) ends in the
 * watchdog's 500 with its one log line, and the next request reaches a fresh process.
 */
import { spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { bridgeBinary, bridgeFiles, bridgeProgram, NODE_BRIDGE } from '../../lib/server/bridge.js';
import { CLI, ensureBuilt, ROOT } from '../support/build.js';
import { isCI } from '../support/peers.js';

const APP = `
import { appendFileSync } from 'node:fs';
appendFileSync(new URL('./starts.txt', import.meta.url), process.pid + '\\n');
export default (env, start) => {
  if (env.QUERY_STRING === 'loop') for (;;);
  if (env.QUERY_STRING === 'mem') {
    const a = [];
    for (;;) a.push(new Array(1e5).fill(a.length));
  }
  start('200 OK', [['Content-Type', 'text/plain']]);
  return ['pid=' + process.pid + ' ' + env.REQUEST_METHOD + ' ' + env.SCRIPT_NAME + ' ' + env.PATH_INFO + '\\n'];
};
`;

const OK_HEAD = 'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: ';
const TIMEOUT_ANSWER =
  'Status: 504 Gateway Timeout\r\nContent-Type: text/plain; charset=us-ascii\r\n' +
  'Content-Length: 16\r\n\r\nGateway Timeout\n';
const MEMORY_ANSWER =
  'Status: 500 Internal Server Error\r\nContent-Type: text/plain; charset=us-ascii\r\n' +
  'Content-Length: 22\r\n\r\nInternal Server Error\n';

interface Run {
  status: number | null;
  stdout: string;
  stderr: string;
}

const native = bridgeBinary();
if (native === null) {
  const why = 'tsgi-cgi-bridge is not built (npm run build:native): its native half is skipped';
  if (isCI) it('the native tsgi-cgi-bridge is built', () => expect.fail(why));
  else process.stderr.write(`\n*** ${why} ***\n\n`);
}

const top = mkdtempSync(join(tmpdir(), 'tsgi-bridge-'));
/* every process a bridge started: stopped at the end */
const started = new Set<number>();

afterAll(() => {
  for (const pid of started) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      /* gone */
    }
  }
  rmSync(top, { recursive: true, force: true });
});

describe('bridgeProgram(): the native executable when there is one, else the Node.js bridge', () => {
  it('chooses by what the package root holds', () => {
    const bare = join(top, 'root-bare');
    mkdirSync(join(bare, 'dist'), { recursive: true });
    expect(bridgeProgram([bare])).toBe(null);
    writeFileSync(join(bare, NODE_BRIDGE), '');
    expect(bridgeProgram([bare])).toEqual({ path: join(bare, NODE_BRIDGE), native: false });
    mkdirSync(join(bare, 'build', 'Release'), { recursive: true });
    writeFileSync(join(bare, 'build', 'Release', 'tsgi-cgi-bridge'), '');
    expect(bridgeProgram([bare])).toEqual({
      path: join(bare, 'build', 'Release', 'tsgi-cgi-bridge'),
      native: true,
    });
  });
});

const kinds: { name: string; program: () => string; skip: boolean }[] = [
  { name: 'native', program: () => native!, skip: native === null },
  {
    name: 'Node.js',
    /* a package root without build/ or prebuilds/: the fallback is chosen */
    program: () => {
      const root = join(top, 'root-node');
      if (!existsSync(root)) {
        mkdirSync(join(root, 'dist'), { recursive: true });
        symlinkSync(join(ROOT, NODE_BRIDGE), join(root, NODE_BRIDGE));
      }
      const p = bridgeProgram([root]);
      expect(p?.native).toBe(false);
      return p!.path;
    },
    skip: false,
  },
];

describe.each(kinds)('tsgi-cgi-bridge ($name)', ({ name, program, skip }) => {
  let bridge = '';
  let bin = '';
  let n = 0;

  beforeAll(async () => {
    if (skip) return;
    await ensureBuilt();
    bridge = program();
    bin = join(top, `bin-${name}`);
    mkdirSync(bin, { recursive: true });
    /* the `tsgi` command on the PATH, as npm's bin link would be */
    writeFileSync(join(bin, 'tsgi'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
    chmodSync(join(bin, 'tsgi'), 0o755);
  });

  /** A fresh app folder: the entry file app.cgi, and tsgi.config.json when `config` is given. */
  function app(config?: object): string {
    const dir = join(top, `${name}-${++n}`);
    mkdirSync(dir);
    const entry = join(dir, 'app.cgi');
    writeFileSync(entry, `#!${bridge}\n${APP}`);
    chmodSync(entry, 0o755);
    if (config !== undefined) writeFileSync(join(dir, 'tsgi.config.json'), JSON.stringify(config));
    return entry;
  }

  /** The pids of the processes that loaded the app in `entry`'s folder (each once per start). */
  function starts(entry: string): number[] {
    const file = join(dirname(entry), 'starts.txt');
    if (!existsSync(file)) return [];
    const pids = readFileSync(file, 'latin1').trim().split('\n').map(Number);
    for (const p of pids) started.add(p);
    return pids;
  }

  /** One CGI request: the bridge run on `entry` with a GET's environment. */
  function cgi(entry: string, query = ''): Promise<Run> {
    return new Promise((resolve, reject) => {
      const child = spawn(entry, [], {
        cwd: dirname(entry),
        env: {
          PATH: `${bin}:${dirname(process.execPath)}:/usr/bin:/bin`,
          GATEWAY_INTERFACE: 'CGI/1.1',
          REQUEST_METHOD: 'GET',
          SCRIPT_NAME: '/app.cgi',
          PATH_INFO: '/a/b',
          REQUEST_URI: `/app.cgi/a/b${query === '' ? '' : `?${query}`}`,
          SCRIPT_FILENAME: entry,
          QUERY_STRING: query,
          SERVER_PROTOCOL: 'HTTP/1.1',
          SERVER_NAME: '127.0.0.1',
          SERVER_PORT: '80',
          REMOTE_ADDR: '127.0.0.1',
          /* the native bridge runs `tsgi` from PATH unless told; the Node.js one its own CLI */
          ...(name === 'native' ? { TSGI_BRIDGE_TSGI: join(bin, 'tsgi') } : {}),
        },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (c: Buffer) => (stdout += c.toString('latin1')));
      child.stderr.on('data', (c: Buffer) => (stderr += c.toString('latin1')));
      child.on('error', reject);
      child.on('close', (status) => resolve({ status, stdout, stderr }));
    });
  }

  const okAnswer = (pid: number) => {
    const body = `pid=${pid} GET /app.cgi /a/b\n`;
    return `${OK_HEAD}${body.length}\r\n\r\n${body}`;
  };

  it.skipIf(skip)(
    'six concurrent first requests start exactly one persistent process, which answers all',
    async () => {
      const entry = app();
      const runs = await Promise.all([1, 2, 3, 4, 5, 6].map(() => cgi(entry)));
      const pids = starts(entry);
      expect(pids.length).toBe(1);
      for (const r of runs) {
        expect(r).toEqual({ status: 0, stdout: okAnswer(pids[0]!), stderr: '' });
      }
      /* and later requests reach that same process */
      expect((await cgi(entry)).stdout).toBe(okAnswer(pids[0]!));
      expect(starts(entry).length).toBe(1);
    },
    60_000,
  );

  /**
   * The bridge's steps when the app's process must be replaced: a first request starts it, the
   * request that wedges it gets `answer` with its socket already gone, the next request reaches
   * a fresh process. Gives the process log's lines.
   */
  async function replaced(config: object, path: string, answer: string): Promise<string> {
    const entry = app(config);
    const files = bridgeFiles(entry);
    expect((await cgi(entry)).status).toBe(0);
    const [first] = starts(entry);
    const wedged = await cgi(entry, path);
    /* at this point the old process may still be ending: nothing may connect to it */
    const socketLeft = existsSync(files.socket);
    expect(wedged).toEqual({ status: 0, stdout: answer, stderr: '' });
    expect(socketLeft).toBe(false);
    const next = await cgi(entry);
    const pids = starts(entry);
    expect(pids.length).toBe(2);
    expect(pids[1]).not.toBe(first);
    expect(next).toEqual({ status: 0, stdout: okAnswer(pids[1]!), stderr: '' });
    return readFileSync(files.log, 'latin1');
  }

  it.skipIf(skip)(
    'a busy loop: the 504 arrives with the socket already gone; the next request reaches a fresh process',
    async () => {
      const log = await replaced({ timeout: 1 }, 'loop', TIMEOUT_ANSWER);
      expect(
        log.split(
          'tsgi: the event loop was blocked longer than --timeout 1s with requests in flight ' +
            '(a busy loop?): answered 1 of them 504 Gateway Timeout; exiting\n',
        ).length - 1,
      ).toBe(1);
    },
    60_000,
  );

  it.skipIf(skip)(
    'a memory explosion above --max-rss (no master): a 500, one log line, the next request reaches a fresh process',
    async () => {
      const log = await replaced({ maxRss: 150 }, 'mem', MEMORY_ANSWER);
      const lines = log.split('\n').filter((l) => l.includes('--max-rss'));
      expect(lines.length).toBe(1);
      expect(lines[0]).toMatch(
        /^tsgi: resident memory (\d+) MB is above --max-rss 150 MB: answered 1 request\(s\) in flight 500 Internal Server Error; exiting$/,
      );
      expect(Number(/memory (\d+) MB/.exec(lines[0]!)![1])).toBeGreaterThan(150);
    },
    60_000,
  );
});
