/**
 * Sockets: stale unix socket cleanup (a live socket and a regular file are never removed),
 * --socket-mode, fd:N and systemd socket activation (LISTEN_FDS, LISTEN_PID, LISTEN_FDNAMES)
 * with and without workers, --allow and FCGI_WEB_SERVER_ADDRS, and --user/--group (as root
 * only: skipped otherwise).
 */
import {
  chmodSync,
  existsSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type AddressInfo, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseAllowList } from '../../lib/server/allow.js';
import { clearSocketPath, socketPathState, systemdSockets } from '../../lib/server/listen.js';
import { ensureBuilt } from '../support/build.js';
import { FcgiClient, params, parseCgi } from '../support/fcgi-client.js';
import { freePort } from '../support/peers.js';
import { getStats, httpGet, startTsgi, waitFor } from '../support/process-manager.js';
import { startChild, type Child } from '../support/spawn.js';

const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;
const APP = `export default (env, start) => {
  start('200 OK', [['Content-Type', 'text/plain']]);
  return [[process.pid, process.getuid(), process.getgid(), env['tsgi.protocol']].join(' ')];
};`;

let cli = '';
const dir = mkdtempSync(join(tmpdir(), 'tsgi-sockets-'));
const children: Child[] = [];
const servers: Server[] = [];

beforeAll(async () => {
  cli = await ensureBuilt();
  writeFileSync(join(dir, 'app.mjs'), APP);
});
afterEach(async () => {
  for (const c of children.splice(0)) await c.stop();
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function tsgi(args: string[], env?: NodeJS.ProcessEnv, lines = 1): Promise<Child> {
  const child = await startTsgi(cli, args, { cwd: dir, env, lines });
  children.push(child);
  return child;
}

/** A unix socket file nobody accepts on: its server was killed without cleaning up. */
async function staleSocket(path: string): Promise<void> {
  const child = startChild(process.execPath, [
    '-e',
    `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`,
  ]);
  await waitFor('the socket', () => (child.stdout().includes('up') ? true : undefined));
  child.proc.kill('SIGKILL');
  await child.exited;
}

async function listeningServer(): Promise<{ server: Server; port: number; fd: number }> {
  const server = createServer();
  servers.push(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  const fd = (server as unknown as { _handle: { fd: number } })._handle.fd;
  return { server, port, fd };
}

/** Runs the CLI the way systemd does: the listening socket on fd 3, LISTEN_PID its own pid. */
function socketActivated(fd: number, args: string[], env: Record<string, string>): Child {
  const child = startChild(
    '/bin/sh',
    [
      '-c',
      'LISTEN_PID=$$; export LISTEN_PID; exec "$0" "$@"',
      process.execPath,
      cli,
      'serve',
      ...args,
    ],
    {
      cwd: dir,
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe', fd],
    },
  );
  children.push(child);
  return child;
}

describe('unix sockets', () => {
  it('tells a stale socket, a live one, a regular file and nothing apart', async () => {
    const stale = join(dir, 'stale.sock');
    await staleSocket(stale);
    expect(await socketPathState(stale)).toBe('stale');
    await clearSocketPath(stale);
    expect(existsSync(stale)).toBe(false);
    expect(await socketPathState(stale)).toBe('absent');

    const live = join(dir, 'live.sock');
    const server = createServer();
    servers.push(server);
    await new Promise<void>((r) => server.listen(live, r));
    expect(await socketPathState(live)).toBe('live');
    await expect(clearSocketPath(live)).rejects.toThrow(
      `cannot listen on unix:${live}: address already in use`,
    );
    expect(statSync(live).isSocket()).toBe(true);

    const file = join(dir, 'file.sock');
    writeFileSync(file, 'precious');
    expect(await socketPathState(file)).toBe('not-socket');
    await expect(clearSocketPath(file)).rejects.toThrow(
      `cannot listen on unix:${file}: the path exists and is not a socket (left as it is)`,
    );
    expect(readFileSync(file, 'utf8')).toBe('precious');
  });

  for (const workers of [[], ['--workers', '2']]) {
    const mode = workers.length === 0 ? 'one process' : 'a master';
    it(`${mode}: replaces a stale socket, applies --socket-mode, removes the socket at exit`, async () => {
      const sock = join(dir, `mode${workers.length}.sock`);
      await staleSocket(sock);
      const child = await tsgi([
        'app.mjs',
        '--fastcgi',
        `unix:${sock}`,
        '--socket-mode',
        '640',
        ...workers,
      ]);
      expect(statSync(sock).mode & 0o777).toBe(0o640);
      const c = await FcgiClient.connect(sock);
      c.request(1, params('/'), '');
      expect(parseCgi((await c.reply(1)).stdout).body).toMatch(/ fastcgi$/);
      await child.stop();
      expect(await child.exited).toBe(0);
      expect(existsSync(sock)).toBe(false);
    });

    it(`${mode}: refuses a live socket and a regular file at the path, leaving both`, async () => {
      const live = join(dir, `busy${workers.length}.sock`);
      const server = createServer();
      servers.push(server);
      await new Promise<void>((r) => server.listen(live, r));
      const file = join(dir, `plain${workers.length}.sock`);
      writeFileSync(file, 'keep me');
      for (const [path, reason] of [
        [live, 'address already in use'],
        [file, 'the path exists and is not a socket (left as it is)'],
      ] as const) {
        const child = startChild(
          process.execPath,
          [cli, 'serve', 'app.mjs', '--fastcgi', `unix:${path}`, ...workers],
          {
            cwd: dir,
          },
        );
        children.push(child);
        expect(await child.exited).toBe(1);
        expect(child.stderr()).toBe(`tsgi: cannot listen on unix:${path}: ${reason}\n`);
      }
      expect(statSync(live).isSocket()).toBe(true);
      expect(readFileSync(file, 'utf8')).toBe('keep me');
    });
  }
});

describe('inherited sockets', () => {
  it('reads LISTEN_FDS only for its own pid, with names, and clears the variables', () => {
    const env: NodeJS.ProcessEnv = {
      LISTEN_FDS: '2',
      LISTEN_PID: String(process.pid),
      LISTEN_FDNAMES: 'http:x',
    };
    expect(systemdSockets(env)).toEqual([
      { fd: 3, name: 'http' },
      { fd: 4, name: 'x' },
    ]);
    expect(env).toEqual({});
    expect(systemdSockets({ LISTEN_FDS: '1', LISTEN_PID: '1' })).toEqual([]);
    expect(systemdSockets({ LISTEN_FDS: '1' })).toEqual([]);
  });

  for (const workers of [[], ['--workers', '2']]) {
    const mode = workers.length === 0 ? 'one process' : 'a master';
    it(`${mode}: serves the protocol systemd's FileDescriptorName names, FastCGI when unnamed`, async () => {
      const http = await listeningServer();
      const one = socketActivated(http.fd, ['app.mjs', ...workers], {
        LISTEN_FDS: '1',
        LISTEN_FDNAMES: 'http',
      });
      expect((await one.waitForStderr(/over (\S+) on (\S+) \(/)).slice(1)).toEqual([
        'HTTP',
        'fd:3',
      ]);
      await new Promise((r) => http.server.close(r));
      servers.length = 0;
      expect((await httpGet(http.port, '/')).body).toMatch(/ http$/);
      await one.stop();

      const fcgi = await listeningServer();
      const two = socketActivated(fcgi.fd, ['app.mjs', ...workers], { LISTEN_FDS: '1' });
      expect((await two.waitForStderr(/over (\S+) on (\S+) \(/)).slice(1)).toEqual([
        'FastCGI',
        'fd:3',
      ]);
      await new Promise((r) => fcgi.server.close(r));
      servers.length = 0;
      const c = await FcgiClient.connect(fcgi.port);
      c.request(1, params('/'), '');
      expect(parseCgi((await c.reply(1)).stdout).body).toMatch(/ fastcgi$/);
    });
  }

  it('a master hands an inherited fd:N to its workers', async () => {
    const s = await listeningServer();
    const child = startChild(
      process.execPath,
      [cli, 'serve', 'app.mjs', '--workers', '2', '--http', 'fd:3'],
      {
        cwd: dir,
        stdio: ['ignore', 'pipe', 'pipe', s.fd],
      },
    );
    children.push(child);
    await child.waitForStderr(
      /over HTTP on fd:3 \(native codec, 2 workers\)|over HTTP on fd:3 \(ts codec, 2 workers\)/,
    );
    await new Promise((r) => s.server.close(r));
    servers.length = 0;
    expect((await httpGet(s.port, '/')).status).toBe(200);
  });
});

describe('--allow and FCGI_WEB_SERVER_ADDRS', () => {
  it('parses addresses and CIDR ranges, IPv4-mapped IPv6 included', () => {
    const a = parseAllowList(['10.0.0.0/8', '192.168.1.5', '::1', 'fd00::/8']);
    expect(a.allows('10.200.3.4')).toBe(true);
    expect(a.allows('::ffff:10.1.1.1')).toBe(true);
    expect(a.allows('192.168.1.5')).toBe(true);
    expect(a.allows('192.168.1.6')).toBe(false);
    expect(a.allows('::1')).toBe(true);
    expect(a.allows('fd12::5')).toBe(true);
    expect(a.allows('127.0.0.1')).toBe(false);
    expect(a.allows(undefined)).toBe(true);
    expect(() => parseAllowList(['10.0.0.0/33'])).toThrow(
      '"10.0.0.0/33": the prefix length must be a number from 0 to 32',
    );
  });

  it('closes connections from other peers at once and logs each peer once; unix sockets pass', async () => {
    const [port, statsPort] = [await freePort(), await freePort()];
    const sock = join(dir, 'allow.sock');
    const child = await tsgi(
      [
        'app.mjs',
        '--http',
        `127.0.0.1:${port}`,
        '--fastcgi',
        `unix:${sock}`,
        '--allow',
        '10.9.9.9,192.0.2.0/24',
        '--stats',
        `127.0.0.1:${statsPort}`,
      ],
      undefined,
      2,
    );
    for (let i = 0; i < 3; i++) {
      await expect(httpGet(port, '/')).rejects.toThrow(/socket hang up|ECONNRESET/);
    }
    const c = await FcgiClient.connect(sock);
    c.request(1, params('/'), '');
    expect(parseCgi((await c.reply(1)).stdout).body).toMatch(/ fastcgi$/);
    const refused = child
      .stderr()
      .match(
        /refused a connection from 127\.0\.0\.1 on HTTP 127\.0\.0\.1:[0-9]+: not in the allowed addresses \(10\.9\.9\.9, 192\.0\.2\.0\/24\); further ones from it are not logged\n/g,
      );
    expect(refused?.length).toBe(1);
    const s = await getStats(statsPort);
    expect(s.listeners.map((l) => [l.protocol, l.connections, l.refused, l.requests])).toEqual([
      ['fastcgi', 1, 0, 1],
      ['http', 0, 3, 0],
    ]);
  });

  it('FCGI_WEB_SERVER_ADDRS guards FastCGI listeners only; --allow replaces it', async () => {
    const [fport, hport] = [await freePort(), await freePort()];
    const env = { ...process.env, FCGI_WEB_SERVER_ADDRS: '10.9.9.9' };
    const one = await tsgi(
      [
        'app.mjs',
        '--workers',
        '1',
        '--fastcgi',
        `127.0.0.1:${fport}`,
        '--http',
        `127.0.0.1:${hport}`,
      ],
      env,
    );
    const refused = await FcgiClient.connect(fport);
    await refused.whenClosed();
    expect((await httpGet(hport, '/')).status).toBe(200);
    await one.waitForStderr(
      /refused a connection from 127\.0\.0\.1 on FastCGI 127\.0\.0\.1:[0-9]+/,
    );
    await one.stop();
    await tsgi(['app.mjs', '--fastcgi', `127.0.0.1:${fport}`, '--allow', '127.0.0.1'], env);
    const ok = await FcgiClient.connect(fport);
    ok.request(1, params('/'), '');
    expect(parseCgi((await ok.reply(1)).stdout).body).toMatch(/ fastcgi$/);
  });
});

describe.skipIf(!asRoot)('--user and --group (as root)', () => {
  for (const workers of [[], ['--workers', '1']]) {
    const mode = workers.length === 0 ? 'one process' : 'a master';
    it(`${mode}: binds as root, gives the unix socket to the user, runs the app as nobody`, async () => {
      chmodSync(dir, 0o755);
      chmodSync(join(dir, 'app.mjs'), 0o644);
      const sock = join(dir, `user${workers.length}.sock`);
      const port = await freePort();
      const child = await tsgi([
        'app.mjs',
        '--fastcgi',
        `unix:${sock}`,
        '--http',
        `127.0.0.1:${port}`,
        '--socket-mode',
        '660',
        '--user',
        'nobody',
        '--group',
        'nogroup',
        ...workers,
      ]);
      const st = statSync(sock);
      expect([st.uid, st.gid, st.mode & 0o777]).toEqual([65534, 65534, 0o660]);
      const [pid, uid, gid] = (await httpGet(port, '/')).body.split(' ').map(Number);
      expect([uid, gid]).toEqual([65534, 65534]);
      const status = readFileSync(`/proc/${child.proc.pid}/status`, 'utf8');
      expect(/^Uid:\s+(\d+)/m.exec(status)![1]).toBe('65534');
      if (workers.length > 0) expect(pid).not.toBe(child.proc.pid);
    });
  }
});

describe.skipIf(!asRoot)('--user without root', () => {
  it('refuses to change identity with a clear message (run as nobody)', async () => {
    chmodSync(dir, 0o755);
    chmodSync(join(dir, 'app.mjs'), 0o644);
    const child = startChild(
      process.execPath,
      [cli, 'serve', 'app.mjs', '--http', '127.0.0.1:0', '--user', 'root'],
      { cwd: dir, uid: 65534, gid: 65534 },
    );
    children.push(child);
    expect(await child.exited).toBe(1);
    expect(child.stderr()).toBe(
      'tsgi: --user/--group need root to change identity (tsgi runs as uid 65534)\n',
    );
  });
});

if (!asRoot) {
  it.skip('--user and --group need root: skipped (the tests do not run as root)', () => {});
}
