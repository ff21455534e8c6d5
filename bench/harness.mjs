/**
 * The benchmark harness shared by bench/compare.mjs and bench/fastcgi-stream.mjs: the cases,
 * a check that every implementation computes the right thing before it is timed, the tinybench
 * run, the tables and the JSON record. It takes the implementations as arguments, so it does not
 * care where they were loaded from.
 */
import os from 'node:os';
import { writeFileSync } from 'node:fs';
import { isDeepStrictEqual } from 'node:util';
import { EventEmitter } from 'node:events';
import { Bench } from 'tinybench';
import * as F from './fixtures.mjs';

/** Sink for results, so that no work can be optimised away. */
let sink = 0;

function firstParams(events) {
  for (let i = 0; i < events.length; i++) {
    if (events[i].type === 'params') return events[i];
  }
  throw new Error(`no params event: ${JSON.stringify(events.map((e) => e.type))}`);
}

function firstVars(events) {
  for (let i = 0; i < events.length; i++) {
    if (events[i].type === 'vars') return events[i].vars;
  }
  throw new Error(`no vars event: ${JSON.stringify(events.map((e) => e.type))}`);
}

/**
 * The codec cases (a)–(d), and (e): case (a) as the FastCGI server does it
 * (FcgiParser.pushVars, which the native codec turns into variables without the pairs array). `op(codec)` returns the function timed; `check` verifies one
 * result of it.
 */
export function codecCases(cgiVariables) {
  const environ = cgiVariables(F.REQUEST_PAIRS);
  const scgiEnviron = cgiVariables(F.scgiPairs(F.REQUEST_PAIRS));
  const sameBytes = (expected) => (out) => {
    if (!(out instanceof Uint8Array)) throw new Error('result is not a Uint8Array');
    if (Buffer.compare(Buffer.from(out), Buffer.from(expected)) !== 0) {
      throw new Error(
        `bytes differ from the expected encoding (${out.length} vs ${expected.length})`,
      );
    }
  };
  const sameEnviron = (expected) => (vars) => {
    if (!isDeepStrictEqual({ ...vars }, { ...expected })) throw new Error('environ differs');
  };
  return [
    {
      id: 'a',
      name: '(a) FastCGI request → environ',
      target: 1.5,
      op: (codec) => () => {
        const events = codec.createFcgiParser().push(F.FCGI_REQUEST);
        return cgiVariables(firstParams(events).pairs);
      },
      check: sameEnviron(environ),
      checkEvents: (codec) => {
        const types = codec
          .createFcgiParser()
          .push(F.FCGI_REQUEST)
          .map((e) => e.type);
        if (types.join() !== 'begin,params,stdinEnd') throw new Error(`events: ${types.join()}`);
      },
    },
    {
      id: 'e',
      name: '(e) FastCGI request → environ, pushVars',
      target: 1.5,
      op: (codec) => () => firstVars(codec.createFcgiParser().pushVars(F.FCGI_REQUEST)),
      check: sameEnviron(environ),
      checkEvents: (codec) => {
        const types = codec
          .createFcgiParser()
          .pushVars(F.FCGI_REQUEST)
          .map((e) => e.type);
        if (types.join() !== 'begin,vars,stdinEnd') throw new Error(`events: ${types.join()}`);
      },
    },
    {
      id: 'b',
      name: '(b) FastCGI response, 8 headers, 1 KiB',
      target: 1.5,
      op: (codec) => () =>
        codec.fcgiResponse(1, F.RESPONSE_STATUS, F.RESPONSE_HEADERS, F.RESPONSE_BODY, true),
      check: sameBytes(F.EXPECTED_RESPONSE),
    },
    {
      id: 'c',
      name: '(c) fcgiStream STDOUT, 1 MiB',
      target: 1,
      op: (codec) => () => codec.fcgiStream(F.FCGI_STDOUT, 1, F.BODY_1MIB, true),
      check: sameBytes(F.EXPECTED_STREAM_1MIB),
    },
    {
      id: 'd-scgi',
      name: '(d) SCGI request → environ',
      target: 1,
      op: (codec) => () => {
        const events = codec.createScgiParser().push(F.SCGI_REQUEST);
        return cgiVariables(firstParams(events).pairs);
      },
      check: sameEnviron(scgiEnviron),
      checkEvents: (codec) => {
        const types = codec
          .createScgiParser()
          .push(F.SCGI_REQUEST)
          .map((e) => e.type);
        if (types.join() !== 'params,bodyEnd') throw new Error(`events: ${types.join()}`);
      },
    },
    {
      id: 'd-uwsgi',
      name: '(d) uwsgi request → environ',
      target: 1,
      op: (codec) => () => {
        const events = codec.createUwsgiParser().push(F.UWSGI_REQUEST);
        return cgiVariables(firstParams(events).pairs);
      },
      check: sameEnviron(environ),
      checkEvents: (codec) => {
        const types = codec
          .createUwsgiParser()
          .push(F.UWSGI_REQUEST)
          .map((e) => e.type);
        if (types.join() !== 'params,bodyEnd') throw new Error(`events: ${types.join()}`);
      },
    },
  ];
}

/** Flat pairs from fastcgi-stream's params ([name, value] or a bare name when the value is empty). */
function flattenFastcgiStream(params) {
  const out = [];
  for (const p of params) {
    if (Array.isArray(p)) out.push(p[0], p[1]);
    else out.push(p, '');
  }
  return out;
}

/**
 * Case (a) decoded up to the point where the params are name/value strings, by a codec and by
 * the npm package fastcgi-stream (the record reader of node-fastcgi). fastcgi-stream reads from
 * a stream's 'data' events and emits ('record', requestId, record); a PARAMS record's `params`
 * are decoded when the record is complete. Each op gets a fresh reader, as each op gets a fresh
 * codec parser: both are per connection.
 */
export function fastcgiStreamCase(FastCGIStream) {
  const input = Buffer.from(
    F.FCGI_REQUEST.buffer,
    F.FCGI_REQUEST.byteOffset,
    F.FCGI_REQUEST.length,
  );
  return {
    id: 'a-pairs',
    name: '(a) FastCGI request → name/value strings',
    target: 5,
    codecOp: (codec) => () => firstParams(codec.createFcgiParser().push(F.FCGI_REQUEST)).pairs,
    codecCheck: (pairs) => {
      if (!isDeepStrictEqual(pairs, [...F.REQUEST_PAIRS])) throw new Error('pairs differ');
    },
    otherOp: () => () => {
      const socket = new EventEmitter();
      const reader = new FastCGIStream(socket);
      let params = null;
      let records = 0;
      reader.on('record', (_requestId, record) => {
        records++;
        if (record.TYPE === 4 && record.params.length > 0) params = record.params;
      });
      socket.emit('data', input);
      if (records !== 4) throw new Error(`fastcgi-stream emitted ${records} records`);
      return params;
    },
    otherCheck: (params) => {
      if (!isDeepStrictEqual(flattenFastcgiStream(params), [...F.REQUEST_PAIRS])) {
        throw new Error('fastcgi-stream pairs differ');
      }
    },
  };
}

/** Run `op` once and hand the result to `check`; a failure names the implementation. */
function verify(label, op, check) {
  try {
    check(op());
  } catch (err) {
    throw new Error(`${label} computes the wrong result, refusing to time it: ${err.message}`, {
      cause: err,
    });
  }
}

/**
 * Ops per tinybench iteration, so that one iteration lasts about `iterationMs` and the cost of
 * reading the clock stays far below the cost measured. Measured after ~50 ms of running, so that
 * the op is compiled by then.
 */
function batchSize(op, iterationMs) {
  const warm = performance.now();
  while (performance.now() - warm < 50) op();
  let n = 1;
  for (;;) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) op();
    const dt = performance.now() - t0;
    if (dt >= 5 || n >= 1 << 20) return Math.max(1, Math.round((iterationMs * n) / dt));
    n *= 2;
  }
}

/**
 * Time `tasks` ([{key, op}]) with tinybench, each in batches of ops. The time budget is split
 * into `rounds` rounds, every other one in reverse task order, so that a task's position in the
 * run (heap state, a neighbour's garbage, load that comes and goes) does not favour one side.
 * Returns key → {opsPerSec, nsPerOp, rme, rounds: [ns/op of each round], samples, batch}: ns/op
 * is the mean of the rounds' means, and rme (in %) the larger of their combined 95 % margin of
 * error and half the spread between rounds.
 */
export function runTasks(tasks, { timeMs, warmupMs, rounds = 2, iterationMs = 0.2 }) {
  const batches = new Map();
  const perRound = new Map(tasks.map((t) => [t.key, []]));
  for (const { key, op } of tasks) batches.set(key, batchSize(op, iterationMs));
  for (let round = 0; round < rounds; round++) {
    const bench = new Bench({
      time: timeMs / rounds,
      warmupTime: warmupMs,
      iterations: 10,
      throws: true,
    });
    const ordered = round % 2 === 0 ? tasks : [...tasks].reverse();
    for (const { key, op } of ordered) {
      const batch = batches.get(key);
      bench.add(key, () => {
        let s = 0;
        for (let i = 0; i < batch; i++) s += op() === undefined ? 0 : 1;
        sink += s;
      });
    }
    bench.runSync();
    for (const task of bench.tasks) {
      const r = task.result;
      if (r.state !== 'completed') throw new Error(`${task.name}: ${r.state} ${r.error ?? ''}`);
      const batch = batches.get(task.name);
      perRound.get(task.name).push({
        nsPerOp: (r.latency.mean * 1e6) / batch,
        rme: r.latency.rme,
        samples: r.latency.samplesCount,
      });
    }
  }
  const out = {};
  for (const [key, rs] of perRound) {
    const nsPerOp = rs.reduce((a, r) => a + r.nsPerOp, 0) / rs.length;
    const combined = Math.sqrt(rs.reduce((a, r) => a + r.rme * r.rme, 0)) / rs.length;
    const ns = rs.map((r) => r.nsPerOp);
    const halfSpread = ((Math.max(...ns) - Math.min(...ns)) / 2 / nsPerOp) * 100;
    out[key] = {
      opsPerSec: 1e9 / nsPerOp,
      nsPerOp,
      rme: Math.max(combined, halfSpread),
      rounds: ns,
      samples: rs.reduce((a, r) => a + r.samples, 0),
      batch: batches.get(key),
    };
  }
  if (sink < 0) console.log(sink);
  return out;
}

/** The machine and runtime, printed with every run. */
export function environment() {
  const cpus = os.cpus();
  return {
    node: process.version,
    v8: process.versions.v8,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpus: cpus.length,
    cpuModel: cpus[0]?.model?.trim() ?? 'unknown',
    loadavg: os.loadavg().map((n) => Number(n.toFixed(2))),
    date: new Date().toISOString(),
  };
}

const fmtOps = (n) =>
  n >= 1e6 ? `${(n / 1e6).toFixed(2)} M` : n >= 1e3 ? `${(n / 1e3).toFixed(1)} k` : n.toFixed(1);
const fmtNs = (n) => (n >= 1e5 ? `${(n / 1e3).toFixed(0)} µs` : `${n.toFixed(0)} ns`);
/** ns/op with the relative margin of error of the mean (95 %). */
const fmtNsRme = (r) => `${fmtNs(r.nsPerOp)} ±${r.rme.toFixed(1)}%`;
const fmtRatio = (r) => `${r.toFixed(2)}×`;

/** A plain Markdown table (readable in a terminal, pastable into the README). */
export function table(header, rows) {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => String(r[i]).length)));
  const line = (r) => `| ${r.map((c, i) => String(c).padEnd(widths[i])).join(' | ')} |`;
  return [line(header), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`]
    .concat(rows.map(line))
    .join('\n');
}

/**
 * The verdict of a ratio against its target, with the noise of both measurements: a ratio
 * below target by less than the combined relative margin of error proves nothing either way.
 */
function verdict(ratio, target, rmeA, rmeB) {
  if (ratio >= target) return 'meets';
  const noise = (rmeA + rmeB) / 100;
  if (ratio >= target * (1 - noise)) return 'inconclusive (within noise)';
  return 'MISSES';
}

/** A warning when other processes compete for the CPUs (load average over half the cores). */
export function busyWarning(env) {
  if (env.loadavg[0] <= env.cpus / 2) return '';
  return (
    `warning: load average ${env.loadavg[0]} on ${env.cpus} CPUs before the run: other ` +
    'processes compete for the CPUs, expect noisy numbers (see the ± margins)'
  );
}

/** Rows and records of the native-vs-ts cases. */
export function codecRows(cases, results, haveNative) {
  const rows = [];
  const records = [];
  for (const c of cases) {
    const ts = results[`${c.id}/ts`];
    const nat = haveNative ? results[`${c.id}/native`] : undefined;
    const ratio = nat ? nat.opsPerSec / ts.opsPerSec : undefined;
    const target = c.target === 1 ? 'native ≥ ts' : `native ≥ ${c.target}× ts`;
    const v = nat ? verdict(ratio, c.target, nat.rme, ts.rme) : 'n/a (no native)';
    rows.push([
      c.name,
      nat ? fmtOps(nat.opsPerSec) : '—',
      fmtOps(ts.opsPerSec),
      nat ? fmtNsRme(nat) : '—',
      fmtNsRme(ts),
      nat ? fmtRatio(ratio) : '—',
      `${target}: ${v}`,
    ]);
    records.push({
      case: c.id,
      name: c.name,
      native: nat ?? null,
      ts,
      ratio: ratio ?? null,
      target: c.target,
      verdict: v,
    });
  }
  return {
    header: ['case', 'native ops/s', 'ts ops/s', 'native ns/op', 'ts ns/op', 'native/ts', 'target'],
    rows,
    records,
  };
}

/** Rows and record of the ts-vs-fastcgi-stream case. */
export function fastcgiStreamRows(c, results) {
  const ts = results[`${c.id}/ts`];
  const other = results[`${c.id}/fastcgi-stream`];
  const ratio = ts.opsPerSec / other.opsPerSec;
  const v = verdict(ratio, c.target, ts.rme, other.rme);
  return {
    header: [
      'case',
      'ts ops/s',
      'fastcgi-stream ops/s',
      'ts ns/op',
      'fastcgi-stream ns/op',
      'ts/fastcgi-stream',
      'target',
    ],
    rows: [
      [
        c.name,
        fmtOps(ts.opsPerSec),
        fmtOps(other.opsPerSec),
        fmtNsRme(ts),
        fmtNsRme(other),
        fmtRatio(ratio),
        `ts ≥ ${c.target}× fastcgi-stream: ${v}`,
      ],
    ],
    record: {
      case: c.id,
      name: c.name,
      ts,
      fastcgiStream: other,
      ratio,
      target: c.target,
      verdict: v,
    },
  };
}

/** Verify, then build the task list for the codec cases. */
export function codecTasks(cases, codecs) {
  const tasks = [];
  for (const c of cases) {
    for (const [label, codec] of codecs) {
      if (c.checkEvents) {
        try {
          c.checkEvents(codec);
        } catch (err) {
          throw new Error(`${label} codec, ${c.name}: unexpected ${err.message}`, { cause: err });
        }
      }
      const op = c.op(codec);
      verify(`${label} codec, ${c.name}`, op, c.check);
      tasks.push({ key: `${c.id}/${label}`, op });
    }
  }
  return tasks;
}

/** Verify, then build the two tasks of the fastcgi-stream comparison. */
export function fastcgiStreamTasks(c, tsCodec, FastCGIStream) {
  const codecOp = c.codecOp(tsCodec);
  const otherOp = c.otherOp(FastCGIStream);
  verify(`ts codec, ${c.name}`, codecOp, c.codecCheck);
  verify(`fastcgi-stream, ${c.name}`, otherOp, c.otherCheck);
  return [
    { key: `${c.id}/ts`, op: codecOp },
    { key: `${c.id}/fastcgi-stream`, op: otherOp },
  ];
}

/** Command-line options shared by the bench scripts. */
export function parseArgs(argv, defaults) {
  const opts = { json: null, timeMs: defaults.timeMs, warmupMs: defaults.warmupMs };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--json') {
      opts.json = argv[i + 1] && !argv[i + 1].startsWith('--') ? argv[++i] : defaults.jsonPath;
    } else if (a.startsWith('--json=')) {
      opts.json = a.slice('--json='.length);
    } else if (a === '--time') {
      opts.timeMs = Number(argv[++i]);
    } else if (a === '--quick') {
      opts.timeMs = 300;
      opts.warmupMs = 100;
    } else if (a === '--help' || a === '-h') {
      opts.help = true;
    } else {
      throw new Error(`unknown argument ${a}`);
    }
  }
  if (!(opts.timeMs > 0)) throw new Error('--time needs a positive number of milliseconds');
  return opts;
}

/**
 * Write the JSON record of a run, formatted by the project's Prettier when it is installed (so
 * that a results file kept in the tree passes `prettier --check`).
 */
export async function writeJson(path, data) {
  let text = JSON.stringify(data, null, 2) + '\n';
  try {
    const prettier = await import('prettier');
    const config = (await prettier.resolveConfig(path)) ?? {};
    text = await prettier.format(text, { ...config, filepath: path });
  } catch {
    // Prettier is a devDependency: without it, plain JSON.stringify output will do.
  }
  writeFileSync(path, text);
  console.log(`\nresults written to ${path}`);
}
