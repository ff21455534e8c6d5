/**
 * Apache httpd (started here with its own ServerRoot under a temp dir, stopped by pid) in front
 * of tsgi: the request matrix of test/support/matrix.ts over mod_proxy_fcgi (with and without
 * enablereuse=on), mod_proxy_scgi and mod_proxy_uwsgi to servers in this process, and over
 * mod_cgi running `tsgi cgi` as a cgi-bin script; then examples/apache/tsgi.conf as written
 * (ports and paths changed). Skipped loudly without apache2; failing under CI=true.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../support/build.js';
import { apacheBinary, startApache } from '../support/frontends.js';
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

const apache = apacheBinary() ?? findPeer('apache2', 'apache2');

/** Where the CGI script and the bundled app live: set up in beforeAll. */
interface Setup {
  gateways: MatrixGateways;
  cgiScript: string;
}

/**
 * Each target and its configuration. mod_proxy_fcgi needs proxy-fcgi-pathinfo=unescape to send
 * PATH_INFO (decoded) and SCRIPT_NAME = the mount; mod_proxy_uwsgi splits them itself;
 * mod_proxy_scgi cannot (see expectedEnviron).
 */
const ROWS: [MatrixTarget, (s: Setup) => string][] = [
  [
    { name: 'Apache mod_proxy_fcgi', server: 'apache', protocol: 'fastcgi', mount: '/fcgi' },
    (s) => `ProxyPass /fcgi/ fcgi://127.0.0.1:${s.gateways.port('fastcgi', 0)}/
SetEnvIf Request_URI ^/fcgi/ proxy-fcgi-pathinfo=unescape`,
  ],
  [
    {
      name: 'Apache mod_proxy_fcgi enablereuse=on',
      server: 'apache',
      protocol: 'fastcgi',
      mount: '/reuse',
    },
    (s) => `ProxyPass /reuse/ fcgi://127.0.0.1:${s.gateways.port('fastcgi', 1)}/ enablereuse=on
SetEnvIf Request_URI ^/reuse/ proxy-fcgi-pathinfo=unescape`,
  ],
  [
    { name: 'Apache mod_proxy_scgi', server: 'apache', protocol: 'scgi', mount: '/scgi' },
    (s) => `ProxyPass /scgi/ scgi://127.0.0.1:${s.gateways.port('scgi')}/`,
  ],
  [
    {
      name: 'Apache mod_proxy_scgi, tsgi --mount',
      server: 'apache',
      protocol: 'scgi',
      mount: '/scgim',
      tsgiMount: true,
    },
    (s) => `ProxyPass /scgim/ scgi://127.0.0.1:${s.gateways.port('scgi', 1)}/`,
  ],
  [
    { name: 'Apache mod_proxy_uwsgi', server: 'apache', protocol: 'uwsgi', mount: '/uwsgi' },
    (s) => `ProxyPass /uwsgi/ uwsgi://127.0.0.1:${s.gateways.port('uwsgi')}/`,
  ],
  [
    { name: 'Apache mod_cgi running tsgi cgi', server: 'apache', protocol: 'cgi', mount: '/cgi' },
    (s) => `ScriptAlias /cgi "${s.cgiScript}"
<Directory "${join(s.cgiScript, '..')}">
    Require all granted
</Directory>`,
  ],
];
const TARGETS = ROWS.map(([t]) => t);

describe.skipIf(apache === null)('Apache in front of tsgi: the request matrix', () => {
  let dir = '';
  let port = 0;
  let front: Child | null = null;
  let setup: Setup | null = null;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsgi-interop-apache-'));
    const gateways = await serveMatrix(['fastcgi', 'scgi', 'uwsgi'], {
      copies: 2,
      mounts: { 'scgi#1': '/scgim' },
    });
    const cgi = missingProtocol('cgi') === null;
    const cgiScript = cgi
      ? writeCgiScript(dir, await ensureBuilt(), writeMatrixApp(dir))
      : join(dir, 'none');
    setup = { gateways, cgiScript };
    port = await freePort();
    const s = setup;
    const sites = ROWS.filter(([t]) => ready([t]).length === 1).map(([, conf]) => conf(s));
    front = await startApache(dir, [`Listen 127.0.0.1:${port}`, ...sites].join('\n'), port);
  });

  afterAll(async () => {
    await front?.stop();
    await setup?.gateways.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describeMatrix(TARGETS, () => port);

  it('reuses FastCGI connections with enablereuse=on, and opens one per request without', async () => {
    const g = setup!.gateways;
    const before = [g.connections('fastcgi', 0), g.connections('fastcgi', 1)];
    for (let i = 0; i < 5; i++) {
      for (const mount of ['/fcgi', '/reuse']) {
        const r = await exchange(port, { target: `${mount}/query?${i}` });
        expect([r.status, r.body.toString()]).toEqual([200, String(i)]);
      }
    }
    expect(g.connections('fastcgi', 0) - before[0]!).toBe(5);
    expect(g.connections('fastcgi', 1) - before[1]!).toBeLessThanOrEqual(1);
  });

  it.skipIf(ready(TARGETS).length < TARGETS.length)(
    'works with examples/apache/tsgi.conf as written (ports and paths changed)',
    async () => {
      const g = setup!.gateways;
      const example = {
        file: 'examples/apache/tsgi.conf',
        ports: ['8080'],
        edits: () => [
          ['127.0.0.1:9000', `127.0.0.1:${g.port('fastcgi', 1)}`],
          ['127.0.0.1:9001', `127.0.0.1:${g.port('scgi')}`],
          ['127.0.0.1:9002', `127.0.0.1:${g.port('uwsgi')}`],
          ['/usr/lib/cgi-bin/tsgi.mjs', setup!.cgiScript],
        ],
        start: startApache,
      } satisfies Example;
      await runExample(example, ([p]) => expectQueries(p!, ['/fcgi', '/scgi', '/uwsgi', '/cgi']));
    },
  );
});

if (isCI && apache === null) {
  it('apache2 is installed', () => {
    throw new Error(missingPeerMessage('apache2', 'apache2'));
  });
}
