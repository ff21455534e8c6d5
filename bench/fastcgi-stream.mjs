/**
 * `npm run bench:fastcgi-stream`: the TypeScript codec against the npm package fastcgi-stream
 * (the FastCGI record reader node-fastcgi uses) on case (a), decoding the nginx-typical request
 * of bench/fixtures.mjs up to the point where its params are name/value strings. Target: ts at
 * least 5× fastcgi-stream. The same row is part of `npm run bench:compare`.
 *
 *   node bench/fastcgi-stream.mjs [--json [file]] [--time ms] [--quick]
 */
import { createRequire } from 'node:module';
import * as H from './harness.mjs';

const USAGE = `usage: node bench/fastcgi-stream.mjs [--json [file]] [--time ms] [--quick]
  --json [file]  also write the results as JSON (default bench/fastcgi-stream.json)
  --time ms      time budget per task (default 3000); --quick: 300 ms, for a smoke run`;

const opts = H.parseArgs(process.argv.slice(2), {
  timeMs: 3000,
  warmupMs: 500,
  jsonPath: 'bench/fastcgi-stream.json',
});
if (opts.help) {
  console.log(USAGE);
  process.exit(0);
}

let tsCodec;
try {
  ({ tsCodec } = await import(new URL('../dist/codec/ts/index.js', import.meta.url).href));
} catch (err) {
  throw new Error(`cannot load dist/codec/ts/index.js (run \`npm run build:ts\`): ${err.message}`, {
    cause: err,
  });
}
// fastcgi-stream is CommonJS and uses `new Buffer()`; its deprecation warning is not ours.
process.noDeprecation = true;
const { FastCGIStream } = createRequire(import.meta.url)('fastcgi-stream');

const env = H.environment();
console.log('tsgi bench:fastcgi-stream');
console.log(`node ${env.node} (V8 ${env.v8}), ${env.platform}`);
console.log(`${env.cpus} CPUs: ${env.cpuModel}; load average ${env.loadavg.join(' ')}`);
if (H.busyWarning(env)) console.log(H.busyWarning(env));
console.log(`time per task ${opts.timeMs} ms after ${opts.warmupMs} ms of warm-up`);
console.log(`ts codec (name "${tsCodec.name}") against fastcgi-stream`);

const fcs = H.fastcgiStreamCase(FastCGIStream);
const tasks = H.fastcgiStreamTasks(fcs, tsCodec, FastCGIStream);
const results = H.runTasks(tasks, { timeMs: opts.timeMs, warmupMs: opts.warmupMs });
const out = H.fastcgiStreamRows(fcs, results);
console.log(`\n${H.table(out.header, out.rows)}\n`);
console.log(
  `ts/fastcgi-stream = ${out.record.ratio.toFixed(2)}× (target ≥ ${fcs.target}×: ${out.record.verdict})`,
);

if (opts.json) {
  await H.writeJson(opts.json, {
    environment: env,
    timeMs: opts.timeMs,
    warmupMs: opts.warmupMs,
    fastcgiStream: out.record,
  });
}
