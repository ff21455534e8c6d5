/**
 * Safe defaults of `tsgi serve`: a gateway listener (FastCGI, SCGI, uwsgi) that other machines
 * can reach with no --allow gets a one-line warning at start-up (HTTP, loopback, --allow and
 * FCGI_WEB_SERVER_ADDRS do not), and unix sockets are made so that stock Debian nginx and
 * Apache (group www-data) can connect and other users cannot, or the start-up says why not.
 */
import { chmodSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { unixSocketSetup } from '../../lib/server/listen.js';
import { ensureBuilt } from '../support/build.js';
import { startChild, type Child } from '../support/spawn.js';

let cli = '';
const dir = mkdtempSync(join(tmpdir(), 'tsgi-defaults-'));
const children: Child[] = [];

beforeAll(async () => {
  cli = await ensureBuilt();
  chmodSync(dir, 0o777);
  writeFileSync(
    join(dir, 'app.mjs'),
    `export default (env, start) => { start('200 OK', [['Content-Type', 'text/plain']]); return ['x']; };`,
  );
});
afterEach(async () => {
  for (const c of children.splice(0)) await c.stop();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function serve(args: string[], env: Record<string, string> = {}, uid?: number): Child {
  const child = startChild(process.execPath, [cli, 'serve', 'app.mjs', ...args], {
    cwd: dir,
    env: { ...process.env, FCGI_WEB_SERVER_ADDRS: '', ...env },
    ...(uid === undefined ? {} : { uid, gid: uid }),
  });
  children.push(child);
  return child;
}

/** The start-up lines once every listener is announced (`n` of them). */
async function startup(child: Child, n = 1): Promise<string[]> {
  await child.waitForStderr(new RegExp(`(?:serving app\\.mjs over[^\\n]*\\n[^]*){${n}}`));
  return child.stderr().trim().split('\n');
}

const exposed = (title: string, shown: string, port: string): string =>
  `tsgi: ${title} on ${shown} accepts connections from other machines and trusts them like the ` +
  `front server (client address, HTTPS): bind 127.0.0.1:${port} or a unix socket, or name the ` +
  'front server with --allow ADDR';

describe('gateway listeners reachable from other machines', () => {
  it('warn once per listener when nothing limits the peers', async () => {
    const lines = await startup(
      serve(['--fastcgi', '0.0.0.0:0', '--scgi', '127.0.0.1:0', '--http', '0.0.0.0:0']),
      3,
    );
    const fcgi = /over FastCGI on (0\.0\.0\.0:([0-9]+))/.exec(lines.join('\n'))!;
    expect(lines.filter((l) => l.includes('accepts connections'))).toEqual([
      exposed('FastCGI', fcgi[1]!, fcgi[2]!),
    ]);
  });

  it('under a master too; uwsgi on every interface', async () => {
    const lines = await startup(serve(['--uwsgi', ':0', '--workers', '1']));
    const m = /over uwsgi on (\S+:([0-9]+)) /.exec(lines.join('\n'))!;
    expect(lines.filter((l) => l.includes('accepts connections'))).toEqual([
      exposed('uwsgi', m[1]!, m[2]!),
    ]);
  });

  it('--allow and FCGI_WEB_SERVER_ADDRS silence it', async () => {
    const a = await startup(serve(['--scgi', '0.0.0.0:0', '--allow', '127.0.0.1']));
    expect(a.join('\n')).not.toContain('accepts connections');
    const b = await startup(
      serve(['--fastcgi', '0.0.0.0:0'], { FCGI_WEB_SERVER_ADDRS: '10.0.0.1' }),
    );
    expect(b.join('\n')).not.toContain('accepts connections');
  });
});

describe('unix sockets', () => {
  it('as root with a www-data group: group www-data, mode 0660', async () => {
    if (process.geteuid?.() !== 0) {
      expect(process.env.CI ?? '', 'CI runs as root').not.toBe('true');
      console.warn('*** SKIPPED: the www-data socket test needs root');
      return;
    }
    const path = join(dir, 'a.sock');
    await startup(serve(['--fastcgi', `unix:${path}`]));
    const st = statSync(path);
    expect((st.mode & 0o777).toString(8)).toBe('660');
    const www = /^www-data:[^:]*:([0-9]+):/m.exec(
      (await import('node:fs')).readFileSync('/etc/group', 'utf8'),
    );
    expect(www, 'stock Debian has a www-data group').not.toBeNull();
    expect(st.gid).toBe(Number(www![1]));
  });

  it('a user outside www-data: a warning naming the fix, the socket left to the umask', async () => {
    if (process.geteuid?.() !== 0) {
      console.warn('*** SKIPPED: starting tsgi as nobody needs root');
      return;
    }
    const path = join(dir, 'b.sock');
    const nobody = 65534;
    const lines = await startup(serve(['--scgi', `unix:${path}`], {}, nobody));
    expect(lines[0]).toBe(
      `tsgi: unix:${path} gets mode 0755: only its owner can connect, so nginx or Apache running ` +
        'as www-data will get "Permission denied" (502); add this user to the www-data group ' +
        '(then tsgi gives the socket to it, mode 660), or run as root with --user, or ' +
        '--socket-mode 666 to let every local user connect',
    );
    expect(statSync(path).uid).toBe(nobody);
  });

  it('--socket-mode or --group: as given, no warning; no www-data group: the fix names --group', () => {
    const addr = [{ type: 'unix' as const, path: '/run/app.sock' }];
    expect(unixSocketSetup({ socketMode: 0o600, group: null, stats: null }, addr, null)).toEqual({
      options: { mode: 0o600, uid: -1, gid: -1 },
      warning: null,
    });
    const noGroup = join(dir, 'group');
    writeFileSync(noGroup, 'root:x:0:\nstaff:x:50:\n');
    if (process.geteuid?.() === 0) {
      /* root can give the socket to any group, but there is no www-data to give it to */
      const r = unixSocketSetup(
        { socketMode: null, group: null, stats: null },
        addr,
        null,
        noGroup,
      );
      expect(r.options).toEqual({ mode: null, uid: -1, gid: -1 });
      expect(r.warning).toMatch(
        /; give the socket to the web server's group: --group GROUP --socket-mode 660 \(as root\), or --socket-mode 666 to let every local user connect$/,
      );
    }
  });
});
