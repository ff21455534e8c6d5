/**
 * `npm run bench:compare`: the native codec against the TypeScript codec, side by side in one
 * run, on the cases of bench/fixtures.mjs, plus the TypeScript codec against the
 * npm package fastcgi-stream on case (a). Runs on the compiled codecs in dist/ (the npm script
 * builds them first). Timings are a report, not an assertion: the exit code is 0 whatever the
 * numbers, and non-zero only when a codec computes a wrong result or cannot be loaded.
 *
 *   node bench/compare.mjs [--json [file]] [--time ms] [--quick]
 */
import { createRequire } from 'node:module';
import * as H from './harness.mjs';

const USAGE = `usage: node bench/compare.mjs [--json [file]] [--time ms] [--quick]
  --json [file]  also write the results as JSON (default bench/results.json)
  --time ms      time budget per task (default 2000); --quick: 300 ms, for a smoke run`;

const opts = H.parseArgs(process.argv.slice(2), {
  timeMs: 2000,
  warmupMs: 300,
  jsonPath: 'bench/results.json',
});
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}

const dist = new URL('../dist/codec/', import.meta.url);
async function importDist(file) {
  try {
    return await import(new URL(file, dist).href);
  } catch (err) {
    throw new Error(`cannot load dist/codec/${file} (run \`npm run build:ts\`): ${err.message}`, {
      cause: err,
    });
  }
}

const { tsCodec } = await importDist('ts/index.js');
const { cgiVariables } = await importDist('environ.js');
let nativeCodec = null;
let nativeReason;
try {
  const { loadNativeCodec } = await importDist('native.js');
  const loaded = loadNativeCodec();
  nativeCodec = loaded.codec;
  nativeReason = loaded.reason;
} catch (err) {
  nativeReason = err.message;
}

// fastcgi-stream is CommonJS and uses `new Buffer()`; its deprecation warning is not ours.
process.noDeprecation = true;
const { FastCGIStream } = createRequire(import.meta.url)('fastcgi-stream');

const env = H.environment();
console.log('tsgi bench:compare');
console.log(`node ${env.node} (V8 ${env.v8}), ${env.platform}`);
console.log(`${env.cpus} CPUs: ${env.cpuModel}; load average ${env.loadavg.join(' ')}`);
if (H.busyWarning(env)) console.log(H.busyWarning(env));
console.log(`time per task ${opts.timeMs} ms after ${opts.warmupMs} ms of warm-up`);
if (nativeCodec) {
  console.log(`codecs: native (name "${nativeCodec.name}") and ts (name "${tsCodec.name}")`);
} else {
  const bar = '!'.repeat(78);
  console.log(`\n${bar}\n!! NATIVE CODEC NOT AVAILABLE: ${nativeReason || 'no reason given'}`);
  console.log(`!! Only the TypeScript codec runs; no native/ts ratio can be reported.\n${bar}`);
  console.log(`codecs: ts (name "${tsCodec.name}")`);
}

const codecs = nativeCodec
  ? [
      ['native', nativeCodec],
      ['ts', tsCodec],
    ]
  : [['ts', tsCodec]];
/**
 * Each codec gets its own instance of the harness and of cgiVariables (a module imported under
 * another URL is another instance), so that the two codecs' ops share no JIT feedback: in
 * production a process runs one codec, and cgiVariables sees one codec's strings.
 */
async function isolatedTasks(label, codec) {
  const own = await import(`./harness.mjs?${label}`);
  const { cgiVariables: ownCgiVariables } = await importDist(`environ.js?${label}`);
  return own.codecTasks(own.codecCases(ownCgiVariables), [[label, codec]]);
}
const perCodec = [];
for (const [label, codec] of codecs) perCodec.push(await isolatedTasks(label, codec));
const cases = H.codecCases(cgiVariables);
const fcs = H.fastcgiStreamCase(FastCGIStream);
// Interleaved by case, so that native and ts of one case run next to each other.
const tasks = [
  ...cases.flatMap((_, i) => perCodec.map((list) => list[i])),
  ...H.fastcgiStreamTasks(fcs, tsCodec, FastCGIStream),
];
console.log(`all ${codecs.length} codec(s) and fastcgi-stream give the expected results; timing…`);

const started = performance.now();
const results = H.runTasks(tasks, { timeMs: opts.timeMs, warmupMs: opts.warmupMs });
const seconds = (performance.now() - started) / 1000;

const main = H.codecRows(cases, results, nativeCodec !== null);
const fcgiStream = H.fastcgiStreamRows(fcs, results);
console.log(`\n${H.table(main.header, main.rows)}\n`);
console.log(`${H.table(fcgiStream.header, fcgiStream.rows)}\n`);
console.log(
  `timed in ${seconds.toFixed(1)} s; ns/op is the mean of all samples ± its 95 % margin of error`,
);

if (opts.json) {
  await H.writeJson(opts.json, {
    environment: env,
    timeMs: opts.timeMs,
    warmupMs: opts.warmupMs,
    codecs: codecs.map(([label, c]) => ({ label, name: c.name })),
    nativeUnavailable: nativeCodec ? null : nativeReason,
    cases: main.records,
    fastcgiStream: fcgiStream.record,
  });
}
