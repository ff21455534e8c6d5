/**
 * `npm run bench:hosting`: shared hosting behind one Apache (started here on a free port with
 * its own ServerRoot in a temp dir, stopped by pid), configured only through .htaccess files:
 *
 * - mod_fcgid: a tsgi entry file (`#!/usr/bin/env -S tsgi serve`) against php-cgi under
 *   mod_fcgid (FcgidWrapper with PHP_FCGI_MAX_REQUESTS=0);
 * - mod_cgi: tsgi-cgi-bridge (the request relayed to a persistent tsgi process) against
 *   `tsgi cgi` (one Node start per request) and php-cgi as a CGI program; the Node.js bridge
 *   (dist/cgi-bridge.js, for platforms without the native one) beside them;
 * - an infinite loop under mod_fcgid with --timeout 2: how long until its 504.
 *
 * Each app answers a 12-byte hello. Rows are measured in interleaved rounds; each round sends
 * `--requests` requests (mod_cgi rows without the native bridge: `--cgi-requests`) from
 * `--connections` keep-alive connections; the median req/s of the rounds is reported, with the
 * machine's load, cores, Node.js version and the codec. A report, not an assertion.
 *
 *   npm run bench:hosting -- [--rounds 5] [--requests 2000] [--cgi-requests 100] [--connections 4]
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { parseArgs } from 'node:util';
import { codec } from '../lib/codec/index.js';
import { bridgeBinary, NODE_BRIDGE } from '../lib/server/bridge.js';
import { CLI, ensureBuilt, ROOT } from '../test/support/build.js';
import { apacheBinary, apacheModuleDir, startApache } from '../test/support/frontends.js';
import { findBinary, freePort } from '../test/support/peers.js';

const { values: opts } = parseArgs({
  options: {
    rounds: { type: 'string', default: '5' },
    requests: { type: 'string', default: '2000' },
    'cgi-requests': { type: 'string', default: '100' },
    connections: { type: 'string', default: '4' },
  },
});
const rounds = Number(opts.rounds);
const requests = Number(opts.requests);
const cgiRequests = Number(opts['cgi-requests']);
const connections = Number(opts.connections);

const apache = apacheBinary();
const modules = apacheModuleDir();
const phpCgi = findBinary('php-cgi');
if (apache === null || modules === null || !existsSync(join(modules, 'mod_fcgid.so'))) {
  console.error(
    'bench:hosting needs apache2 and mod_fcgid (Debian: apt-get install apache2 libapache2-mod-fcgid)',
  );
  process.exit(1);
}
await ensureBuilt();
const bridge = bridgeBinary();
/* the Node.js bridge of platforms without the native one (dist/cgi-bridge.js) */
const nodeBridge = join(ROOT, NODE_BRIDGE);

const dir = mkdtempSync(join(tmpdir(), 'tsgi-bench-hosting-'));
const asRoot = process.getuid?.() === 0;
const www = join(dir, 'www');
const bin = join(dir, 'bin');
for (const d of [
  bin,
  join(www, 'fcgi'),
  join(www, 'cgi'),
  join(www, 'bridge'),
  join(www, 'nbridge'),
])
  mkdirSync(d, { recursive: true });
if (asRoot) execFileSync('chown', ['nobody', join(www, 'bridge'), join(www, 'nbridge')]);
const script = (path: string, text: string): void => {
  writeFileSync(path, text);
  chmodSync(path, 0o755);
};
script(join(bin, 'tsgi'), `#!/bin/sh\nexec "${process.execPath}" "${CLI}" "$@"\n`);
const HELLO = `(env, start) => {
  if (env.QUERY_STRING === 'loop') for (;;);
  if (env.QUERY_STRING === 'pid') {
    start('200 OK', [['Content-Type', 'text/plain']]);
    return [String(process.pid)];
  }
  start('200 OK', [['Content-Type', 'text/plain']]);
  return ['Hello world!'];
};`;
writeFileSync(
  join(www, 'fcgi', '.htaccess'),
  'Options +ExecCGI\nAddHandler fcgid-script .fcgi .php\n' +
    (phpCgi ? `FcgidWrapper "${join(bin, 'php-fcgi')}" .php\n` : ''),
);
script(join(www, 'fcgi', 'hello.fcgi'), `#!/usr/bin/env -S tsgi serve\nexport default ${HELLO}\n`);
script(
  join(www, 'fcgi', 'loop.fcgi'),
  `#!/usr/bin/env -S tsgi serve --timeout 2\nexport default ${HELLO}\n`,
);
writeFileSync(join(www, 'cgi', '.htaccess'), 'Options +ExecCGI\nAddHandler cgi-script .cgi\n');
script(join(www, 'cgi', 'hello.cgi'), `#!/usr/bin/env -S tsgi cgi\nexport default ${HELLO}\n`);
writeFileSync(join(www, 'bridge', '.htaccess'), 'Options +ExecCGI\nAddHandler cgi-script .cgi\n');
if (bridge !== null)
  script(join(www, 'bridge', 'hello.cgi'), `#!${bridge}\nexport default ${HELLO}\n`);
writeFileSync(join(www, 'nbridge', '.htaccess'), 'Options +ExecCGI\nAddHandler cgi-script .cgi\n');
script(join(www, 'nbridge', 'hello.cgi'), `#!${nodeBridge}\nexport default ${HELLO}\n`);
if (phpCgi !== null) {
  script(join(bin, 'php-fcgi'), `#!/bin/sh\nPHP_FCGI_MAX_REQUESTS=0 exec "${phpCgi}"\n`);
  writeFileSync(
    join(www, 'fcgi', 'hello.php'),
    "<?php header('Content-Type: text/plain'); echo 'Hello world!';\n",
  );
  script(
    join(www, 'cgi', 'php.cgi'),
    `#!/usr/bin/env -S ${phpCgi} -d cgi.force_redirect=0\n<?php header('Content-Type: text/plain'); echo 'Hello world!';\n`,
  );
}

const port = await freePort();
const httpd = await startApache(
  dir,
  `Listen 127.0.0.1:${port}
TypesConfig /dev/null
MaxKeepAliveRequests 0
FcgidIPCDir "${join(dir, 'fcgid')}"
FcgidProcessTableFile "${join(dir, 'fcgid-shm')}"
DocumentRoot "${www}"
<Directory "${www}">
  AllowOverride All
  Require all granted
</Directory>
`,
  port,
  {
    modules: ['fcgid', 'mime', 'env'],
    path: `${bin}:${dirname(process.execPath)}:/usr/local/bin:/usr/bin:/bin`,
  },
);

const get = (path: string, agent: Agent): Promise<{ status: number; body: string }> =>
  new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });

/** req/s of `n` requests over `connections` keep-alive connections; every answer checked. */
async function run(path: string, n: number): Promise<number> {
  const agent = new Agent({ keepAlive: true, maxSockets: connections });
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (next < n) {
        next++;
        const r = await get(path, agent);
        if (r.status !== 200 || r.body !== 'Hello world!') {
          throw new Error(`${path}: ${r.status} ${r.body.slice(0, 200)}`);
        }
      }
    }),
  );
  const s = (performance.now() - t0) / 1000;
  agent.destroy();
  return n / s;
}

type Row = [name: string, path: string, requests: number];
const rows: Row[] = [
  ['mod_fcgid: tsgi serve (entry file hello.fcgi)', '/fcgi/hello.fcgi', requests],
  ...(phpCgi
    ? [['mod_fcgid: php-cgi (PHP_FCGI_MAX_REQUESTS=0)', '/fcgi/hello.php', requests] as Row]
    : []),
  ...(bridge
    ? [['mod_cgi: tsgi-cgi-bridge -> persistent tsgi', '/bridge/hello.cgi', requests] as Row]
    : []),
  ['mod_cgi: Node.js bridge -> persistent tsgi', '/nbridge/hello.cgi', cgiRequests],
  ['mod_cgi: tsgi cgi (Node start per request)', '/cgi/hello.cgi', cgiRequests],
  ...(phpCgi ? [['mod_cgi: php-cgi as a CGI program', '/cgi/php.cgi', cgiRequests] as Row] : []),
];
/* warm-up: start the persistent processes */
for (const [, path] of rows) await run(path, connections * 2);
const results: number[][] = rows.map(() => []);
for (let r = 0; r < rounds; r++) {
  for (const [i, row] of rows.entries()) results[i]!.push(await run(row[1], row[2]));
}
const median = (a: number[]): number => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;

/* the infinite loop: time to its 504, and the next request */
const loopTimes: string[] = [];
for (let i = 0; i < 3; i++) {
  await get('/fcgi/loop.fcgi', new Agent());
  const t0 = performance.now();
  const stuck = await get('/fcgi/loop.fcgi?loop', new Agent());
  const took = ((performance.now() - t0) / 1000).toFixed(2);
  const after = await get('/fcgi/loop.fcgi', new Agent());
  loopTimes.push(`${stuck.status} in ${took} s, next ${after.status}`);
}

console.log(
  `bench:hosting: Apache ${execFileSync(apache, ['-v'], { encoding: 'utf8' })
    .split('\n')[0]!
    .replace(/^Server version: /, '')}, ` +
    `mpm_event, mod_fcgid, mod_cgi; ${cpus().length} cores, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; ` +
    `Node.js ${process.versions.node}; tsgi codec ${codec.name}, FastCGI over mod_fcgid's unix socket; ` +
    `${connections} keep-alive connections; median of ${rounds} interleaved rounds`,
);
const w = Math.max(...rows.map((r) => r[0].length));
for (const [i, row] of rows.entries()) {
  const rs = results[i]!;
  console.log(
    `  ${row[0].padEnd(w)}  ${median(rs).toFixed(1).padStart(8)} req/s   (rounds: ${rs.map((x) => x.toFixed(0)).join(' ')})`,
  );
}
const rate = (name: string): number | null => {
  const i = rows.findIndex((r) => r[0].startsWith(name));
  return i < 0 ? null : median(results[i]!);
};
const ratio = (a: string, b: string): string => {
  const x = rate(a);
  const y = rate(b);
  return x !== null && y !== null ? (x / y).toFixed(1) : 'n/a';
};
console.log(
  `  mod_fcgid tsgi / php-cgi: ${ratio('mod_fcgid: tsgi', 'mod_fcgid: php')}x (target >= 1)`,
);
console.log(
  `  mod_cgi bridge / tsgi cgi: ${ratio('mod_cgi: tsgi-cgi-bridge', 'mod_cgi: tsgi cgi')}x (target >= 10)`,
);
console.log(
  `  mod_cgi bridge / php-cgi: ${ratio('mod_cgi: tsgi-cgi-bridge', 'mod_cgi: php')}x (target >= 3)`,
);
console.log(
  `  mod_cgi native bridge / Node.js bridge: ${ratio('mod_cgi: tsgi-cgi-bridge', 'mod_cgi: Node.js bridge')}x`,
);
console.log(
  `  mod_cgi Node.js bridge / tsgi cgi: ${ratio('mod_cgi: Node.js bridge', 'mod_cgi: tsgi cgi')}x`,
);
console.log(`  infinite loop under mod_fcgid, --timeout 2: ${loopTimes.join('; ')}`);
if (bridge === null) console.log('  (tsgi-cgi-bridge is not built: npm run build:native)');
/* the process the bridge started outlives Apache (until its --idle-exit): stop it */
for (const folder of bridge !== null ? ['bridge', 'nbridge'] : ['nbridge'])
  process.kill(Number((await get(`/${folder}/hello.cgi?pid`, new Agent())).body), 'SIGTERM');
await httpd.stop();
rmSync(dir, { recursive: true, force: true });
