/**
 * The connection attacks of docs/hardening.md against a `tsgi serve` process, with the
 * server's open descriptors (/proc/PID/fd) and resident memory (VmRSS) before, during and
 * after each: a FastCGI connection sending 10,000 BEGIN_REQUEST records and closing, 1,000
 * FastCGI connections holding ~120 KB of unfinished PARAMS and closing, 2,000 silent
 * connections, 2,000 SCGI headers trickled one byte a second, and 4,000 SCGI connections
 * holding 130 KB of unfinished header each. Linux only (reads /proc).
 *
 *   node bench/attacks.mjs [--cli PATH] [--scale F] [-- SERVE FLAGS...]
 *
 * --cli: the tsgi CLI to run (default dist/cli.js of this checkout, so an older build can be
 * measured the same way); --scale: multiply the connection counts (default 1); flags after
 * `--` go to `tsgi serve` (e.g. --header-timeout 5 to wait less); --wait-header SECS and
 * --wait-first SECS set how long attacks 4 and 3 wait when those flags are not given; --only
 * 1,3 runs those attacks alone. Prints one block per attack.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const argv = process.argv.slice(2);
const dash = argv.indexOf('--');
const own = dash === -1 ? argv : argv.slice(0, dash);
const serveFlags = dash === -1 ? [] : argv.slice(dash + 1);
const opt = (name, dflt) => {
  const i = own.indexOf(name);
  return i === -1 ? dflt : own[i + 1];
};
const cli = resolve(opt('--cli', join(here, '..', 'dist', 'cli.js')));
const scale = Number(opt('--scale', '1'));
const flagSecs = (name, dflt) => {
  const i = serveFlags.indexOf(name);
  return i === -1 ? dflt : Number(serveFlags[i + 1]);
};
/* how long attacks 3 and 4 wait: the deadlines given (or their defaults), or --wait-first and
   --wait-header (for a build without those flags) */
const headerSecs = Number(opt('--wait-header', flagSecs('--header-timeout', 30)));
const firstByteSecs = Number(opt('--wait-first', flagSecs('--first-byte-timeout', 10)));

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const n = (x) => Math.max(1, Math.round(x * scale));

/* FastCGI records, written here so that the script needs nothing of tsgi */
const record = (type, id, content) => {
  const h = Buffer.alloc(8);
  h[0] = 1;
  h[1] = type;
  h.writeUInt16BE(id, 2);
  h.writeUInt16BE(content.length, 4);
  return Buffer.concat([h, content]);
};
const begin = (id, flags) => record(1, id, Buffer.from([0, 1, flags, 0, 0, 0, 0, 0]));
const pair = (name, value) => {
  const v = Buffer.from(value, 'latin1');
  let len = Buffer.from([v.length]);
  if (v.length > 127) {
    len = Buffer.alloc(4);
    len.writeUInt32BE((v.length | 0x80000000) >>> 0);
  }
  return Buffer.concat([Buffer.from([name.length]), len, Buffer.from(name), v]);
};
const paramsRecords = (id, bytes) => {
  const out = [];
  for (let o = 0; o < bytes.length; o += 65535)
    out.push(record(4, id, bytes.subarray(o, o + 65535)));
  return Buffer.concat(out);
};
const fcgiGet = (path) =>
  Buffer.concat([
    begin(1, 0),
    paramsRecords(
      1,
      Buffer.concat([
        pair('REQUEST_METHOD', 'GET'),
        pair('SCRIPT_NAME', ''),
        pair('PATH_INFO', path),
        pair('SERVER_PROTOCOL', 'HTTP/1.1'),
      ]),
    ),
    record(4, 1, Buffer.alloc(0)),
    record(5, 1, Buffer.alloc(0)),
  ]);

function freePort() {
  return new Promise((res) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => res(p));
    });
  });
}

function open(port) {
  return new Promise((res) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const c = { s, closed: false, ended: false, bytes: [] };
    s.on('data', (d) => c.bytes.push(d));
    s.on('end', () => (c.ended = true));
    s.on('close', () => (c.closed = true));
    s.on('error', () => {});
    s.once('connect', () => res(c));
    s.once('error', () => res(c));
  });
}

async function openMany(port, count) {
  const out = [];
  for (let i = 0; i < count; i += 100) {
    const batch = [];
    for (let j = i; j < Math.min(count, i + 100); j++) batch.push(open(port));
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

/** One FastCGI GET on a new connection: "200" or the END_REQUEST protocol status. */
async function fcgiAsk(port) {
  const c = await open(port);
  c.s.write(fcgiGet('/probe'));
  for (let i = 0; i < 100 && !c.ended && !c.closed; i++) await sleep(20);
  c.s.destroy();
  const b = Buffer.concat(c.bytes);
  if (b.includes('Status: 200') || b.includes('\r\n\r\nok')) return 'ok';
  const end = b.length >= 16 && b[b.length - 15] === 3 ? b[b.length - 4] : -1;
  return end === 2 ? 'OVERLOADED' : end === -1 ? 'no answer' : `status ${end}`;
}

function measure(pid) {
  const fds = readdirSync(`/proc/${pid}/fd`).length;
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return { fds, rssMB: m ? Math.round(Number(m[1]) / 102.4) / 10 : -1 };
}
const show = (label, m) => `${label}: ${m.fds} fds, ${m.rssMB} MB`;

/** Starts `tsgi serve` with a FastCGI and an SCGI listener; resolves once both serve. */
async function startServer(dir) {
  const fport = await freePort();
  const sport = await freePort();
  const child = spawn(
    process.execPath,
    [
      cli,
      'serve',
      'app.mjs',
      '--fastcgi',
      `127.0.0.1:${fport}`,
      '--scgi',
      `127.0.0.1:${sport}`,
      ...serveFlags,
    ],
    { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr.on('data', (d) => (stderr += d));
  for (let i = 0; i < 200 && (stderr.match(/serving/g) ?? []).length < 2; i++) await sleep(50);
  await sleep(300);
  const stop = async () => {
    child.kill('SIGTERM');
    await new Promise((r) => child.once('exit', r));
  };
  return { pid: child.pid, fport, sport, stderr: () => stderr, stop };
}

/** The attacks, each against a server of its own. */
const ATTACKS = [
  /* 1. 10,000 BEGIN_REQUEST without PARAMS on one connection, then FIN */
  async ({ pid, fport }) => {
    const c = await open(fport);
    const flood = [];
    for (let id = 1; id <= 10000; id++) flood.push(begin(id, 1));
    c.s.write(Buffer.concat(flood));
    c.s.end();
    await sleep(1500);
    const m = measure(pid);
    const probes = [await fcgiAsk(fport), await fcgiAsk(fport), await fcgiAsk(fport)];
    console.log(
      `\n1. FastCGI: 10,000 BEGIN_REQUEST then FIN on one connection\n  server closed it: ` +
        `${c.closed ? 'yes' : 'no (CLOSE-WAIT)'}; ${show('after 1.5 s', m)}; next 3 requests: ${probes.join(', ')}`,
    );
    c.s.destroy();
  },
  /* 2. connections holding ~120 KB of unfinished PARAMS, closed by the client */
  async ({ pid, fport }) => {
    const before = measure(pid);
    const count = n(1000);
    const cs = await openMany(fport, count);
    const head = Buffer.concat([begin(1, 1), paramsRecords(1, pair('X_PAD', 'a'.repeat(120_000)))]);
    for (const c of cs) c.s.write(head);
    await sleep(3000);
    const held = measure(pid);
    for (const c of cs) c.s.end();
    await sleep(5000);
    const after = measure(pid);
    await sleep(15000);
    const later = measure(pid);
    console.log(
      `\n2. FastCGI: ${count} connections each holding ~120 KB of unfinished PARAMS, then FIN\n  ` +
        `${show('before', before)}; ${show('held', held)}; ${show('5 s after FIN', after)}; ` +
        `${show('20 s after', later)}; ` +
        `server closed ${cs.filter((c) => c.closed || c.ended).length}/${count}; next: ${await fcgiAsk(fport)}`,
    );
    for (const c of cs) c.s.destroy();
  },
  /* 3. silent connections */
  async ({ pid, fport }) => {
    const before = measure(pid);
    const count = n(2000);
    const cs = await openMany(fport, count);
    await sleep(1000);
    const during = measure(pid);
    await sleep((firstByteSecs + 3) * 1000);
    const after = measure(pid);
    console.log(
      `\n3. FastCGI: ${count} connections that send nothing\n  ${show('before', before)}; ` +
        `${show('after 1 s', during)}; ${show(`after ${firstByteSecs + 4} s`, after)}; ` +
        `server closed ${cs.filter((c) => c.closed || c.ended).length}/${count}`,
    );
    for (const c of cs) c.s.destroy();
  },
  /* 4. SCGI headers trickled one byte a second */
  async ({ pid, sport }) => {
    const before = measure(pid);
    const count = n(2000);
    const cs = await openMany(sport, count);
    const head = Buffer.from(
      '70:CONTENT_LENGTH\u00000\u0000SCGI\u00001\u0000REQUEST_METHOD\u0000GET\u0000',
      'latin1',
    );
    let i = 0;
    const timer = setInterval(() => {
      for (const c of cs)
        if (!c.closed && !c.ended && i < head.length) c.s.write(head.subarray(i, i + 1));
      i++;
    }, 1000);
    await sleep((headerSecs + 3) * 1000);
    clearInterval(timer);
    const after = measure(pid);
    console.log(
      `\n4. SCGI: ${count} headers trickled one byte a second\n  ${show('before', before)}; ` +
        `${show(`after ${headerSecs + 3} s`, after)}; server closed ` +
        `${cs.filter((c) => c.closed || c.ended).length}/${count}`,
    );
    for (const c of cs) c.s.destroy();
  },
  /* 5. SCGI connections each holding 130 KB of unfinished header */
  async ({ pid, sport }) => {
    const before = measure(pid);
    const count = n(4000);
    const cs = await openMany(sport, count);
    const head = Buffer.from(
      `131000:CONTENT_LENGTH\u00000\u0000SCGI\u00001\u0000X_PAD\u0000${'a'.repeat(130_000)}`,
      'latin1',
    );
    for (const c of cs) c.s.write(head);
    await sleep(4000);
    const held = measure(pid);
    const closedByServer = cs.filter((c) => c.closed || c.ended).length;
    for (const c of cs) c.s.destroy();
    await sleep(3000);
    const after = measure(pid);
    console.log(
      `\n5. SCGI: ${count} connections each holding 130 KB of unfinished header\n  ` +
        `${show('before', before)}; ${show('held', held)}; closed by the server while held: ` +
        `${closedByServer}/${count}; ${show('3 s after the clients closed', after)}`,
    );
  },
];

async function main() {
  const dir = mkdtempSync(join(tmpdir(), 'tsgi-attacks-'));
  writeFileSync(
    join(dir, 'app.mjs'),
    "export default (env, start) => { start('200 OK', [['Content-Type', 'text/plain']]); return ['ok']; };\n",
  );
  try {
    let first = true;
    const only = opt('--only', '');
    for (const [i, attack] of ATTACKS.entries()) {
      if (only !== '' && !only.split(',').includes(String(i + 1))) continue;
      const server = await startServer(dir);
      if (first) {
        first = false;
        const transport =
          /\(([^)]*transport)\)/.exec(server.stderr())?.[1] ?? 'transport not printed';
        console.log(
          `tsgi attacks: ${cli}\n  node ${process.version}, ${cpus().length} cores, load ` +
            `${loadavg()
              .map((l) => l.toFixed(2))
              .join(' ')}, ${transport}\n` +
            `  serve flags: ${serveFlags.join(' ') || '(defaults)'}; scale ${scale}; a new server per attack`,
        );
      }
      try {
        console.log(`\n${show('baseline', measure(server.pid))}`);
        await attack(server);
      } finally {
        await server.stop();
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
