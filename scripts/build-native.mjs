#!/usr/bin/env node
// Builds the native addon (codec and connection transport) with node-gyp, as part of
// `npm install` in a clone (prepare → build). Building needs Python 3, make and a C++17
// compiler (g++ or clang++); the Node.js headers come with node-gyp (downloaded once, or from
// its cache).
//
// `--optional` (what `npm run build` passes): when the build cannot be done here (no compiler
// on PATH, or node-gyp fails), print one line saying so and why, and succeed: tsgi then runs
// with its TypeScript codec, which gives the same bytes. Under CI=true the addon is required
// and a failed build fails. Without `--optional` (`npm run build:native`) a failure fails.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { delimiter, join } from 'node:path';

const optional = process.argv.includes('--optional');
const ci = process.env.CI === 'true' || process.env.CI === '1';

/** The first of `names` found on PATH, or null. */
function onPath(names) {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    for (const name of names) {
      if (dir !== '' && existsSync(join(dir, name))) return name;
    }
  }
  return null;
}

function skip(why) {
  process.stderr.write(
    `tsgi: native addon not built (${why}); using the TypeScript codec. ` +
      'To build it: install python3, make and g++ (or clang++), then run npm run build:native\n',
  );
  process.exit(0);
}

const compilerVar = process.env.CXX;
const missing = [];
if (compilerVar === undefined && onPath(['c++', 'g++', 'clang++']) === null) {
  missing.push('a C++ compiler');
}
if (onPath(['make', 'gmake']) === null) missing.push('make');
if (onPath(['python3', 'python']) === null && process.env.PYTHON === undefined) {
  missing.push('python3');
}
if (missing.length > 0 && optional && !ci) {
  skip(`not found on PATH: ${missing.join(', ')}`);
}

const require = createRequire(import.meta.url);
let gyp;
try {
  gyp = require.resolve('node-gyp/bin/node-gyp.js');
} catch {
  if (optional && !ci) skip('node-gyp is not installed');
  process.stderr.write('tsgi: node-gyp is not installed (npm install first)\n');
  process.exit(1);
}
const r = spawnSync(process.execPath, [gyp, 'rebuild'], {
  stdio: optional && !ci ? ['ignore', 'ignore', 'pipe'] : 'inherit',
  encoding: 'utf8',
});
if (r.status === 0) process.exit(0);
if (optional && !ci) {
  const lines = (r.stderr ?? '').split('\n').filter((l) => /error/i.test(l));
  skip(
    `node-gyp failed: ${(lines[0] ?? `exit status ${r.status}`).replace(/^gyp ERR! /, '').trim()}`,
  );
}
process.exit(r.status ?? 1);
