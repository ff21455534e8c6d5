/**
 * lighttpd (started here with a config under a temp dir, stopped by pid) in front of tsgi: the
 * request matrix of test/support/matrix.ts over mod_fastcgi to a server in this process and to
 * `tsgi serve` spawned by lighttpd itself (bin-path: the listening socket on fd 0), over
 * mod_scgi in both scgi.protocol modes ("scgi" and "uwsgi"), and over mod_cgi running
 * `tsgi cgi`; then examples/lighttpd/lighttpd.conf as written (ports and paths changed). Every
 * process lighttpd spawned must be gone once lighttpd stopped. Skipped loudly without
 * lighttpd; failing under CI=true.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../support/build.js';
import { startLighttpd } from '../support/frontends.js';
import {
  describeMatrix,
  exchange,
  expectQueries,
  missingProtocol,
  ready,
  runExample,
  serveMatrix,
  type Example,
  writeCgiScript,
  writeMatrixApp,
  type MatrixGateways,
  type MatrixTarget,
} from '../support/matrix.js';
import { findPeer, freePort, isCI, missingPeerMessage } from '../support/peers.js';
import type { Child } from '../support/spawn.js';

const lighttpd = findPeer('lighttpd', 'lighttpd');

interface Setup {
  dir: string;
  gateways: MatrixGateways;
  cli: string;
  app: string;
  cgiScript: string;
}

/** A backend of lighttpd's gateway modules: `"check-local" => "disable"` serves any path. */
const backend = (options: Record<string, string | number>) =>
  `(( ${Object.entries(options)
    .map(([k, v]) => `"${k}" => ${typeof v === 'number' ? v : JSON.stringify(v)}`)
    .join(', ')}, "check-local" => "disable" ))`;

/**
 * Each target and its block. A prefix without a trailing slash makes lighttpd send SCRIPT_NAME
 * = the prefix and PATH_INFO = the rest (with "/fcgi/" it would be SCRIPT_NAME = the whole path).
 */
const ROWS: [MatrixTarget, (s: Setup) => string][] = [
  [
    {
      name: 'lighttpd mod_fastcgi host/port',
      server: 'lighttpd',
      protocol: 'fastcgi',
      mount: '/fcgi',
    },
    (s) =>
      `fastcgi.server = ( "/fcgi" => ${backend({ host: '127.0.0.1', port: s.gateways.port('fastcgi') })} )`,
  ],
  [
    {
      name: 'lighttpd mod_fastcgi bin-path (spawns tsgi serve)',
      server: 'lighttpd',
      protocol: 'fastcgi',
      mount: '/spawn',
    },
    (s) =>
      `fastcgi.server = ( "/spawn" => ${backend({
        socket: join(s.dir, 'spawn.sock'),
        'bin-path': `${process.execPath} ${s.cli} serve ${s.app}`,
        'max-procs': 1,
      })} )`,
  ],
  [
    { name: 'lighttpd mod_scgi', server: 'lighttpd', protocol: 'scgi', mount: '/scgi' },
    (s) =>
      `scgi.protocol = "scgi"
  scgi.server = ( "/scgi" => ${backend({ host: '127.0.0.1', port: s.gateways.port('scgi') })} )`,
  ],
  [
    {
      name: 'lighttpd mod_scgi, scgi.protocol = "uwsgi"',
      server: 'lighttpd',
      protocol: 'uwsgi',
      mount: '/uwsgi',
    },
    (s) =>
      `scgi.protocol = "uwsgi"
  scgi.server = ( "/uwsgi" => ${backend({ host: '127.0.0.1', port: s.gateways.port('uwsgi') })} )`,
  ],
  [
    {
      name: 'lighttpd mod_cgi running tsgi cgi',
      server: 'lighttpd',
      protocol: 'cgi',
      mount: '/cgi',
    },
    (s) => `alias.url = ( "/cgi" => "${s.cgiScript}" )
  cgi.assign = ( "" => "" )`,
  ],
];
const TARGETS = ROWS.map(([t]) => t);

/**
 * lighttpd.conf for the matrix. url-normalize is off: by default lighttpd answers 400 to any
 * byte that cannot occur in UTF-8 (0xC0, 0xC1, 0xF5-0xFF) in the URL, raw or percent-encoded.
 */
function lighttpdConf(s: Setup, port: number, blocks: string[]): string {
  return `server.document-root = "${join(s.dir, 'htdocs')}"
server.bind = "127.0.0.1"
server.port = ${port}
server.errorlog = "${join(s.dir, 'error.log')}"
server.http-parseopts = ( "url-normalize" => "disable" )
server.modules += ( "mod_alias", "mod_cgi", "mod_fastcgi", "mod_scgi" )
${blocks.join('\n')}
`;
}

/** Pids of the live descendants of `pid` (Linux /proc); empty elsewhere. */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^[0-9]+$/.test(e));
  } catch {
    return [];
  }
  for (const e of entries) {
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'latin1');
      /* "pid (comm) state ppid …": comm may hold spaces and parentheses */
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      parent.set(Number(e), ppid);
    } catch {
      /* gone meanwhile */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [c, pp] of parent) {
      if (pp === p) {
        out.push(c);
        walk(c);
      }
    }
  };
  walk(pid);
  return out;
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return !readFileSync(`/proc/${pid}/stat`, 'latin1').includes(') Z ');
  } catch {
    return false;
  }
};

/** Stops lighttpd and fails when anything it spawned outlives it (killed then, by pid). */
async function stopAndCheck(front: Child): Promise<number[]> {
  const spawned = front.proc.pid === undefined ? [] : descendants(front.proc.pid);
  await front.stop();
  const deadline = Date.now() + 5000;
  while (spawned.some(alive) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  const left = spawned.filter(alive);
  for (const pid of left) process.kill(pid, 'SIGKILL');
  return left;
}

describe.skipIf(lighttpd === null)('lighttpd in front of tsgi: the request matrix', () => {
  let port = 0;
  let front: Child | null = null;
  let setup: Setup | null = null;
  let leftover: number[] = [];

  beforeAll(async () => {
    const dir = mkdtempSync(join(tmpdir(), 'tsgi-interop-lighttpd-'));
    mkdirSync(join(dir, 'htdocs'));
    const cli = await ensureBuilt();
    const app = writeMatrixApp(dir);
    const gateways = await serveMatrix(['fastcgi', 'scgi', 'uwsgi']);
    const cgiScript =
      missingProtocol('cgi') === null ? writeCgiScript(dir, cli, app) : join(dir, 'none');
    setup = { dir, gateways, cli, app, cgiScript };
    const s = setup;
    port = await freePort();
    const blocks = ROWS.filter(([t]) => ready([t]).length === 1).map(
      ([t, conf]) => `$HTTP["url"] =~ "^${t.mount}/" {\n  ${conf(s)}\n}`,
    );
    front = await startLighttpd(dir, lighttpdConf(s, port, blocks), port);
  });

  afterAll(async () => {
    if (front) leftover = await stopAndCheck(front);
    await setup?.gateways.stop();
    if (setup) rmSync(setup.dir, { recursive: true, force: true });
    expect(leftover).toEqual([]);
  });

  describeMatrix(TARGETS, () => port);

  it('opens a FastCGI, SCGI or uwsgi connection per request', async () => {
    const g = setup!.gateways;
    for (const p of ['fastcgi', 'scgi', 'uwsgi'] as const) {
      const before = g.connections(p);
      const mount = p === 'fastcgi' ? '/fcgi' : `/${p}`;
      for (let i = 0; i < 3; i++) await expectQueries(port, [mount]);
      expect([p, g.connections(p) - before]).toEqual([p, 3]);
    }
  });

  it('serves bin-path from the tsgi process lighttpd spawned, which stops with lighttpd', async () => {
    const r = await exchange(port, { target: '/spawn/pid' });
    const pid = Number(r.body.toString());
    expect([r.status, pid !== process.pid && alive(pid)]).toEqual([200, true]);
    expect(descendants(front!.proc.pid!)).toContain(pid);
  });

  it.skipIf(ready(TARGETS).length < TARGETS.length)(
    'works with examples/lighttpd/lighttpd.conf as written (ports and paths changed)',
    async () => {
      const g = setup!.gateways;
      let left: number[] = [];
      const example = {
        file: 'examples/lighttpd/lighttpd.conf',
        ports: ['8080'],
        edits: (dir: string) => [
          [/^var\.repo = .*$/m, `var.repo = ${JSON.stringify(ROOT.replace(/\/$/, ''))}`],
          ['"port" => 9000', `"port" => ${g.port('fastcgi')}`],
          ['"port" => 9001', `"port" => ${g.port('scgi')}`],
          ['"port" => 9002', `"port" => ${g.port('uwsgi')}`],
          ['/tmp/tsgi-lighttpd.sock', join(dir, 'tsgi.sock')],
        ],
        start: startLighttpd,
        stop: async (child: Child) => void (left = await stopAndCheck(child)),
      } satisfies Example;
      await runExample(example, async ([p]) => {
        await expectQueries(p!, ['/fcgi', '/scgi', '/uwsgi']);
        for (const mount of ['/spawn', '/cgi']) {
          const r = await exchange(p!, { target: `${mount}/hello` });
          expect([mount, r.status, r.body.toString()]).toEqual([
            mount,
            200,
            'Hello, world! You asked for /hello\n',
          ]);
        }
      });
      expect(left).toEqual([]);
    },
  );
});

if (isCI && lighttpd === null) {
  it('lighttpd is installed', () => {
    throw new Error(missingPeerMessage('lighttpd', 'lighttpd'));
  });
}
