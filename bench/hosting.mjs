/**
 * `npm run bench:hosting`: shared hosting behind one Apache (started here on a free port with
 * its own ServerRoot in a temp dir, stopped by pid), configured only through .htaccess files:
 *
 * - mod_fcgid: a tsgi entry file (`#!/usr/bin/env -S tsgi serve`) against php-cgi under
 *   mod_fcgid (FcgidWrapper with PHP_FCGI_MAX_REQUESTS=0);
 * - mod_cgi: tsgi-cgi-bridge (the request relayed to a persistent tsgi process) against
 *   `tsgi cgi` (one Node start per request) and php-cgi as a CGI program;
 * - an infinite loop under mod_fcgid with --timeout 2: how long until its 504.
 *
 * Each app answers a 12-byte hello. Rows are measured in interleaved rounds; each round sends
 * `--requests` requests (mod_cgi rows without the bridge: `--cgi-requests`) from
 * `--connections` keep-alive connections; the median req/s of the rounds is reported, with the
 * machine's load, cores, Node.js version and the codec. A report, not an assertion.
 *
 *   npm run bench:hosting -- [--rounds 5] [--requests 2000] [--cgi-requests 100] [--connections 4]
 */
import { execFileSync, spawn } from 'node:child_process';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { Agent, request } from 'node:http';
import { createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

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

const root = fileURLToPath(new URL('..', import.meta.url));
const cli = join(root, 'dist', 'cli.js');
const { codec } = await import(new URL('../dist/codec/index.js', import.meta.url).href);
const { bridgeBinary } = await import(new URL('../dist/server/bridge.js', import.meta.url).href);

const which = (name) => {
  try {
    return execFileSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).trim() || null;
  } catch {
    return null;
  }
};
const apache =
  which('apache2') ??
  which('httpd') ??
  (existsSync('/usr/sbin/apache2') ? '/usr/sbin/apache2' : null);
const modules = [
  '/usr/lib/apache2/modules',
  '/usr/lib64/httpd/modules',
  '/usr/libexec/apache2',
].find((d) => existsSync(join(d, 'mod_fcgid.so')));
const phpCgi = which('php-cgi');
const bridge = bridgeBinary();
if (apache === null || modules === undefined) {
  console.error(
    'bench:hosting needs apache2 and mod_fcgid (Debian: apt-get install apache2 libapache2-mod-fcgid)',
  );
  process.exit(1);
}

const freePort = () =>
  new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });

const dir = mkdtempSync(join(tmpdir(), 'tsgi-bench-hosting-'));
chmodSync(dir, 0o755);
const asRoot = process.getuid?.() === 0;
const www = join(dir, 'www');
const bin = join(dir, 'bin');
for (const d of [bin, join(www, 'fcgi'), join(www, 'cgi'), join(www, 'bridge')])
  mkdirSync(d, { recursive: true });
if (asRoot) execFileSync('chown', ['nobody', join(www, 'bridge')]);
const script = (path, text) => {
  writeFileSync(path, text);
  chmodSync(path, 0o755);
};
script(join(bin, 'tsgi'), `#!/bin/sh\nexec "${process.execPath}" "${cli}" "$@"\n`);
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
const mod = (m) => `LoadModule ${m}_module "${join(modules, `mod_${m}.so`)}"`;
writeFileSync(
  join(dir, 'httpd.conf'),
  [
    `ServerRoot "${dir}"`,
    `DefaultRuntimeDir "${dir}"`,
    `PidFile "${join(dir, 'apache.pid')}"`,
    `ErrorLog "${join(dir, 'error.log')}"`,
    'LogLevel warn',
    `Mutex file:${dir} default`,
    `ScoreBoardFile "${join(dir, 'scoreboard')}"`,
    'ServerName localhost',
    ...['mpm_event', 'authz_core', 'mime', 'env', 'cgi', 'fcgid'].map(mod),
    ...(asRoot ? ['User nobody', 'Group nogroup'] : []),
    `Listen 127.0.0.1:${port}`,
    'TypesConfig /dev/null',
    'MaxKeepAliveRequests 0',
    `FcgidIPCDir "${join(dir, 'fcgid')}"`,
    `FcgidProcessTableFile "${join(dir, 'fcgid-shm')}"`,
    `DocumentRoot "${www}"`,
    `<Directory "${www}">`,
    '  AllowOverride All',
    '  Require all granted',
    '</Directory>',
    '',
  ].join('\n'),
);
const httpd = spawn(apache, ['-X', '-f', join(dir, 'httpd.conf')], {
  env: { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin`, LANG: 'C' },
  stdio: 'inherit',
});
const stopAll = () => {
  try {
    process.kill(httpd.pid, 'SIGTERM');
  } catch {
    /* gone */
  }
};
process.on('exit', stopAll);

const get = (path, agent) =>
  new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.setEncoding('latin1');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, body }));
    });
    req.on('error', reject);
    req.end();
  });

for (let i = 0; ; i++) {
  try {
    await get('/', new Agent());
    break;
  } catch {
    if (i > 100)
      throw new Error(`apache did not start: ${readFileSync(join(dir, 'error.log'), 'utf8')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** req/s of `n` requests over `connections` keep-alive connections; every answer checked. */
async function run(path, n) {
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

const rows = [
  ['mod_fcgid: tsgi serve (entry file hello.fcgi)', '/fcgi/hello.fcgi', requests],
  ...(phpCgi
    ? [['mod_fcgid: php-cgi (PHP_FCGI_MAX_REQUESTS=0)', '/fcgi/hello.php', requests]]
    : []),
  ...(bridge
    ? [['mod_cgi: tsgi-cgi-bridge -> persistent tsgi', '/bridge/hello.cgi', requests]]
    : []),
  ['mod_cgi: tsgi cgi (Node start per request)', '/cgi/hello.cgi', cgiRequests],
  ...(phpCgi ? [['mod_cgi: php-cgi as a CGI program', '/cgi/php.cgi', cgiRequests]] : []),
];
/* warm-up: start the persistent processes */
for (const [, path] of rows) await run(path, connections * 2);
const results = rows.map(() => []);
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < rows.length; i++) results[i].push(await run(rows[i][1], rows[i][2]));
}
const median = (a) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)];

/* the infinite loop: time to its 504, and the next request */
const loopTimes = [];
for (let i = 0; i < 3; i++) {
  await get('/fcgi/loop.fcgi', new Agent());
  const t0 = performance.now();
  const stuck = await get('/fcgi/loop.fcgi?loop', new Agent());
  loopTimes.push(`${stuck.status} in ${((performance.now() - t0) / 1000).toFixed(2)} s`);
  const after = await get('/fcgi/loop.fcgi', new Agent());
  loopTimes[i] += `, next ${after.status}`;
}

console.log(
  `bench:hosting: Apache ${execFileSync(apache, ['-v'], { encoding: 'utf8' })
    .split('\n')[0]
    .replace(/^Server version: /, '')}, ` +
    `mpm_event, mod_fcgid, mod_cgi; ${cpus().length} cores, load ${loadavg()
      .map((l) => l.toFixed(2))
      .join(' ')}; ` +
    `Node.js ${process.versions.node}; tsgi codec ${codec.name}, FastCGI over mod_fcgid's unix socket; ` +
    `${connections} keep-alive connections; median of ${rounds} interleaved rounds`,
);
const w = Math.max(...rows.map((r) => r[0].length));
for (let i = 0; i < rows.length; i++) {
  console.log(
    `  ${rows[i][0].padEnd(w)}  ${median(results[i]).toFixed(1).padStart(8)} req/s   (rounds: ${results[i].map((x) => x.toFixed(0)).join(' ')})`,
  );
}
const rate = (name) => {
  const i = rows.findIndex((r) => r[0].startsWith(name));
  return i < 0 ? null : median(results[i]);
};
const ratio = (a, b) =>
  rate(a) !== null && rate(b) !== null ? (rate(a) / rate(b)).toFixed(1) : 'n/a';
console.log(
  `  mod_fcgid tsgi / php-cgi: ${ratio('mod_fcgid: tsgi', 'mod_fcgid: php')}x (target >= 1)`,
);
console.log(
  `  mod_cgi bridge / tsgi cgi: ${ratio('mod_cgi: tsgi-cgi-bridge', 'mod_cgi: tsgi cgi')}x (target >= 10)`,
);
console.log(
  `  mod_cgi bridge / php-cgi: ${ratio('mod_cgi: tsgi-cgi-bridge', 'mod_cgi: php')}x (target >= 3)`,
);
console.log(`  infinite loop under mod_fcgid, --timeout 2: ${loopTimes.join('; ')}`);
if (bridge === null) console.log('  (tsgi-cgi-bridge is not built: npm run build:native)');
/* the process the bridge started outlives Apache (until its --idle-exit): stop it */
if (bridge !== null)
  process.kill(Number((await get('/bridge/hello.cgi?pid', new Agent())).body), 'SIGTERM');
stopAll();
await new Promise((r) => setTimeout(r, 300));
rmSync(dir, { recursive: true, force: true });
