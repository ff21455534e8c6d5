/**
 * nginx (started here under a temp prefix, stopped by pid) in front of tsgi's FastCGI, SCGI
 * and uwsgi servers running in this process: the request matrix of test/support/matrix.ts
 * over fastcgi_pass, scgi_pass and uwsgi_pass, then examples/nginx/scgi-uwsgi.conf as written
 * (ports changed). FastCGI's own edge cases (keep_conn on/off, aborts, multiplexing) are in
 * test/interop/nginx-fastcgi.test.ts. Skipped loudly without nginx; failing under CI=true.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  NGINX_SCGI_PARAMS,
  NGINX_UWSGI_PARAMS,
  nginxHttpConf,
  nginxParams,
  nginxUser,
  startNginx,
} from '../support/frontends.js';
import {
  describeMatrix,
  exchange,
  expectQueries,
  header,
  ready,
  runExample,
  serveMatrix,
  type Example,
  type MatrixGateways,
  type MatrixTarget,
} from '../support/matrix.js';
import { findPeer, freePort, isCI, missingPeerMessage } from '../support/peers.js';
import type { Child } from '../support/spawn.js';

const nginx = findPeer('nginx', 'nginx-light');

/** What examples/nginx/nginx.conf sends over FastCGI. */
const FASTCGI_PARAMS = [
  'REQUEST_METHOD $request_method',
  'REQUEST_URI $request_uri',
  'DOCUMENT_URI $document_uri',
  'QUERY_STRING $query_string',
  'CONTENT_TYPE $content_type',
  'CONTENT_LENGTH $content_length',
  'SERVER_PROTOCOL $server_protocol',
  'REQUEST_SCHEME $scheme',
  'REMOTE_ADDR $remote_addr',
  'REMOTE_PORT $remote_port',
  'SERVER_PORT $server_port',
  'SERVER_NAME $server_name',
];
/** Debian's scgi_params, and the Host header. */
const SCGI_PARAMS = [...NGINX_SCGI_PARAMS, 'HTTP_HOST $host'];
/** Debian's uwsgi_params, and the Host header. */
const UWSGI_PARAMS = [...NGINX_UWSGI_PARAMS, 'HTTP_HOST $host'];

/**
 * Each target, its location match and body. Every upstream asks for keepalive, but nginx keeps
 * connections only for FastCGI (with fastcgi_keep_conn on): its scgi and uwsgi modules read
 * the response to the end of the connection. Under a prefix, uwsgi_params' PATH_INFO (the whole
 * path) is followed by the rest of the path, captured by the location: tsgi takes the last.
 */
const ROWS: [MatrixTarget, string, string][] = [
  [
    {
      name: 'nginx fastcgi_pass (upstream keepalive)',
      server: 'nginx',
      protocol: 'fastcgi',
      mount: '/fcgi',
    },
    '/fcgi/',
    `${nginxParams('fastcgi', FASTCGI_PARAMS)}
            fastcgi_param SCRIPT_NAME /fcgi;
            fastcgi_pass fastcgi_keep;
            fastcgi_keep_conn on;`,
  ],
  [
    { name: 'nginx scgi_pass', server: 'nginx', protocol: 'scgi', mount: '/scgi' },
    '/scgi/',
    `${nginxParams('scgi', SCGI_PARAMS)}
            scgi_param SCRIPT_NAME /scgi;
            scgi_pass scgi_keep;`,
  ],
  [
    { name: 'nginx uwsgi_pass', server: 'nginx', protocol: 'uwsgi', mount: '/uwsgi' },
    '~ ^/uwsgi(?<path_info>/.*)$',
    `${nginxParams('uwsgi', UWSGI_PARAMS)}
            uwsgi_param SCRIPT_NAME /uwsgi;
            uwsgi_param PATH_INFO $path_info;
            uwsgi_pass uwsgi_keep;`,
  ],
];
const TARGETS = ROWS.map(([t]) => t);
const RUNNABLE = ROWS.filter(([t]) => ready([t]).length === 1);

describe.skipIf(nginx === null)('nginx in front of tsgi: the request matrix', () => {
  let dir = '';
  let port = 0;
  let front: Child | null = null;
  let gateways: MatrixGateways | null = null;

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'tsgi-interop-nginx-'));
    const g = await serveMatrix(RUNNABLE.map(([t]) => t.protocol));
    gateways = g;
    port = await freePort();
    const locations = RUNNABLE.map(
      ([, match, body]) => `        location ${match} {\n${body}\n        }`,
    ).join('\n');
    const upstreams = [...new Set(RUNNABLE.map(([t]) => t.protocol))].map(
      (p) => `    upstream ${p}_keep { server 127.0.0.1:${g.port(p)}; keepalive 4; }`,
    );
    front = await startNginx(
      dir,
      nginxHttpConf(
        `    server {\n        listen 127.0.0.1:${port};\n        server_name localhost;\n${locations}\n    }`,
        upstreams.join('\n'),
      ),
      port,
    );
  });

  afterAll(async () => {
    await front?.stop();
    await gateways?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  describeMatrix(TARGETS, () => port);

  it('keeps one FastCGI connection, and opens one SCGI or uwsgi connection per request', async () => {
    const g = gateways!;
    for (const [t] of RUNNABLE) {
      const before = g.connections(t.protocol);
      for (let i = 0; i < 5; i++) {
        /* the app answers (text/plain), whatever its route decides */
        const r = await exchange(port, { target: `${t.mount}/query?${i}` });
        expect(header(r, 'content-type')).toBe('text/plain');
      }
      const opened = g.connections(t.protocol) - before;
      /* FastCGI: at most the first of these requests opens the connection nginx then keeps */
      if (t.protocol === 'fastcgi') expect(opened).toBeLessThanOrEqual(1);
      else expect([t.protocol, opened]).toEqual([t.protocol, 5]);
    }
  });

  it.skipIf(ready(TARGETS).length < TARGETS.length)(
    'works with examples/nginx/scgi-uwsgi.conf as written (ports changed)',
    async () => {
      const g = gateways!;
      const example = {
        file: 'examples/nginx/scgi-uwsgi.conf',
        ports: ['8081', '8082'],
        edits: () => [
          ['127.0.0.1:9001', `127.0.0.1:${g.port('scgi')}`],
          ['127.0.0.1:9002', `127.0.0.1:${g.port('uwsgi')}`],
          ['error_log stderr notice;', `error_log stderr notice;\n${nginxUser}`],
        ],
        start: startNginx,
      } satisfies Example;
      await runExample(example, async (ports) => {
        for (const p of ports) {
          /* mounted at /: the first path segment is the matrix app's mount */
          await expectQueries(p, ['/m']);
          const e = await exchange(p, { target: '/m/environ/x?y' });
          expect(JSON.parse(e.body.toString())).toMatchObject({
            SCRIPT_NAME: '',
            PATH_INFO: '/m/environ/x',
          });
        }
      });
    },
  );
});

if (isCI && nginx === null) {
  it('nginx is installed', () => {
    throw new Error(missingPeerMessage('nginx', 'nginx-light'));
  });
}
