/**
 * CPU time per request of serving processes driven directly, without nginx: user and system
 * time from /proc, rounds interleaved, medians.
 *
 *   node bench/request-cpu.mjs MODE[,MODE...] [ROUNDS] [N] [PORT] [CONNS] [APP [INTERFACE]]
 *
 * MODE is one of bench/request-modes.mjs (scgi, uwsgi, uwsgi-python, fastcgi, http, node-http,
 * own, ...), optionally followed by its own `:APP[:INTERFACE]` (or `own:FRAMEWORK`):
 * `fastcgi:bench/e2e/koa-hello.mjs:node,own:koa` puts Koa through tsgi beside Koa on its own
 * server. Every mode's server starts once, on PORT, PORT+1, ... (default 27500), pinned to
 * the last CPU while this process (the client) runs on the others; each gets WARM requests
 * (default 20000) first. Then each of ROUNDS rounds (default 7) sends N requests (default
 * 20000) to every mode in turn, the order rotated from round to round: a connection per
 * request, 20 at a time (PARALLEL), for scgi, uwsgi and uwsgi-python; CONNS kept connections
 * (default 20) for the others. The CPU time of the server (its process and its children) over
 * a round, divided by N, is its CPU per request.
 *
 * Behind nginx (bench:e2e) nginx spends about twice the backend's CPU on each SCGI or uwsgi
 * request and shares the machine with it, so the backend's CPU moves with nginx's; here only
 * the client runs beside the server. The split into user and system time shows how much of a
 * request is the kernel's (accept, read, write, close), which every server pays alike.
 */
import { cpuTimes } from './proc-cpu.mjs';
import { interleave, startServers } from './request-modes.mjs';

const modes = (process.argv[2] ?? 'uwsgi,uwsgi-python').split(',');
const rounds = Number(process.argv[3] ?? 7);
const n = Number(process.argv[4] ?? 20000);
const basePort = Number(process.argv[5] ?? 27500);
const conns = Number(process.argv[6] ?? 20);
const [appPath, iface] = process.argv.slice(7);
const warm = Number(process.env.WARM ?? 20000);
const parallel = Number(process.env.PARALLEL ?? 20);

const median = (a) => a.slice().sort((x, y) => x - y)[a.length >> 1];

const { servers, stop } = startServers(modes, basePort, { appPath, iface });
for (const s of servers) s.rows = [];

try {
  for (const s of servers) {
    await s.driver.start(conns);
    await s.driver.send(warm, parallel);
  }
  await interleave(servers, rounds, async (s, r) => {
    const [before] = cpuTimes([s.proc.pid]);
    const t0 = process.hrtime.bigint();
    await s.driver.send(n, parallel);
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    const [after] = cpuTimes([s.proc.pid]);
    const row = {
      user: ((after.user - before.user) / n) * 1e6,
      sys: ((after.system - before.system) / n) * 1e6,
      rate: n / seconds,
    };
    s.rows.push(row);
    console.log(
      `  round ${r + 1} ${s.mode.padEnd(20)} user ${row.user.toFixed(1)} µs  system ` +
        `${row.sys.toFixed(1)} µs  total ${(row.user + row.sys).toFixed(1)} µs  ` +
        `${Math.round(row.rate)} req/s`,
    );
  });
  console.log(
    `\n${n} requests a round, ${rounds} rounds, ` +
      `${servers.some((s) => s.spec.kept) ? `${conns} kept connections, ` : ''}` +
      `${parallel} connections at a time for a connection per request; medians:\n`,
  );
  console.log('| mode | user CPU/request | system CPU/request | CPU/request | requests/s |');
  console.log('|---|---:|---:|---:|---:|');
  for (const s of servers) {
    const total = median(s.rows.map((x) => x.user + x.sys));
    console.log(
      `| ${s.mode} | ${median(s.rows.map((x) => x.user)).toFixed(1)} µs | ` +
        `${median(s.rows.map((x) => x.sys)).toFixed(1)} µs | ${total.toFixed(1)} µs | ` +
        `${Math.round(median(s.rows.map((x) => x.rate)))} |`,
    );
  }
} finally {
  stop();
}
