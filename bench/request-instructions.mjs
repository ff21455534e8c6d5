/**
 * Instructions per request in the serving process, counted by callgrind.
 *
 *   node bench/request-instructions.mjs scgi|uwsgi|uwsgi-python|fastcgi|http|node-http|
 *                                       http-close|node-http-close|own [N] [PORT] [CONNS]
 *                                       [APP [INTERFACE] | FRAMEWORK]
 *
 * Starts the server under `valgrind --tool=callgrind --instr-atstart=no`, sends 30000 warm-up
 * requests (WARM), turns instrumentation on (callgrind_control -i on), sends 2000 more
 * (REWARM), zeroes the counts (callgrind_control -z), sends N requests (default 2000), turns
 * instrumentation off and prints the instructions counted divided by N. Both warm-ups keep
 * V8's optimizing compiler out of the count:
 *   - V8 keeps optimizing functions that run once every many requests (Buffer's pool, a
 *     framework's rarer getters) for tens of thousands of them: after 6000 Koa requests,
 *     TurboFan still added 11,000 instructions to each of the next 2000;
 *   - the server sits idle while callgrind_control runs, and after that pause V8 optimized
 *     some functions again: about 29 million instructions, spread over the first requests
 *     counted (14,700 more on each of 2000 Fastify requests over 50 connections).
 * Without instrumentation the warm-up runs at a few thousand requests a second.
 *
 * The modes (bench/request-modes.mjs): scgi, uwsgi and uwsgi-python send a request on a
 * connection of its own; fastcgi, http, node-http and own spread the requests over CONNS kept
 * connections at once (default 1; bench:e2e's wrk runs 50); http-close and node-http-close are
 * nginx's proxy_pass without an upstream keepalive. APP (a path from the repository root)
 * replaces the tsgi modes' app, served with `--interface INTERFACE` when given:
 * `fastcgi 2000 27100 1 bench/e2e/koa-hello.mjs node` is the bench:e2e koa-tsgi-fastcgi row's
 * backend. A framework through tsgi and on its own server then do the same work:
 *
 *   fastcgi 2000 27100 1 bench/e2e/koa-hello.mjs node   against   own 2000 27101 1 koa
 *
 * Needs valgrind; prints the machine line, codec and transport.
 */
import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir, cpus } from 'node:os';
import { join } from 'node:path';
import { APP_URI, Driver, requestMode } from './request-modes.mjs';

const mode = process.argv[2] ?? 'scgi';
const n = Number(process.argv[3] ?? 2000);
const port = Number(process.argv[4] ?? 27100);
const conns = Number(process.argv[5] ?? 1);
const [appPath, iface] = process.argv.slice(6);
const warm = Number(process.env.WARM ?? 30000);
const rewarm = Number(process.env.REWARM ?? 2000);
const appRequest = appPath !== undefined && mode !== 'own';

const spec = requestMode(mode, port, appPath, iface);
const driver = new Driver(spec, port);

const dir = mkdtempSync(join(tmpdir(), 'tsgi-cg-'));
const server = spawn(
  'valgrind',
  [
    '--tool=callgrind',
    '--instr-atstart=no',
    `--callgrind-out-file=${process.env.KEEP_CG ?? join(dir, 'cg.out')}`,
    spec.command ?? process.execPath,
    ...spec.args,
  ],
  { stdio: ['ignore', 'ignore', 'pipe'], env: process.env },
);
let err = '';
server.stderr.on('data', (d) => (err += d));
try {
  await driver.start(conns);
  await driver.send(warm);
  execFileSync('callgrind_control', ['-i', 'on', String(server.pid)], { stdio: 'ignore' });
  /* the server sat idle while callgrind_control ran: let what V8 redoes after an idle spell
     run before the count starts */
  await driver.send(rewarm);
  execFileSync('callgrind_control', ['-z', String(server.pid)], { stdio: 'ignore' });
  await driver.send(n);
  execFileSync('callgrind_control', ['-i', 'off', String(server.pid)], { stdio: 'ignore' });
} finally {
  driver.close();
  server.kill('SIGTERM');
  await new Promise((r) => server.on('exit', r));
}
const m = /Collected : (\d+)/.exec(err);
const total = m ? Number(m[1]) : 0;
if (total === 0) throw new Error(`no callgrind summary\n${err}`);
console.log(
  `machine: ${cpus().length} cores, ${cpus()[0]?.model ?? '?'}, Node ${process.version}; ` +
    `codec ${process.env.TSGI_CODEC ?? 'default'}, transport ${process.env.TSGI_TRANSPORT ?? 'default'}` +
    (spec.kept ? `; ${conns} kept connection(s)` : '; a connection per request') +
    (mode === 'own'
      ? `; ${appPath ?? 'express'} on its own server`
      : appPath === undefined
        ? ''
        : `; app ${appPath}${iface ? ` (--interface ${iface})` : ''}`) +
    (appRequest || mode === 'own' ? `; the browser request for ${APP_URI}` : ''),
);
console.log(`${mode}: ${Math.round(total / n)} instructions per request (N=${n})`);
