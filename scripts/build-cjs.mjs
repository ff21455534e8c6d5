// The CommonJS build: dist/cjs/, for `require('tsgi')` on every supported Node (require(esm)
// only exists from Node 20.19/22.12). It converts the ESM that `npm run build:ts` wrote to
// dist/ file by file (same layout, same relative imports), so nothing in lib/ has to be
// written twice. `import.meta.url` becomes this file's own URL, computed from __filename, so
// code that finds files next to itself behaves the same in both builds. The .d.ts files are
// copied beside the .js files: under dist/cjs/package.json {"type": "commonjs"} TypeScript
// reads them as the types of CommonJS modules.
//
// Usage: node scripts/build-cjs.mjs [dist folder, default dist/]
import { build } from 'esbuild';
import { cpSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = process.argv[2] ? resolve(process.argv[2]) : join(root, 'dist');
const out = join(dist, 'cjs');
/* Entry points that make no sense as CommonJS: the CLI and the Node.js CGI bridge are ESM programs. */
const SKIP = new Set(['cli.js', 'cgi-bridge.js']);

if (!existsSync(join(dist, 'index.js'))) {
  console.error(`build:cjs: ${join(dist, 'index.js')} is missing; run \`npm run build:ts\` first`);
  process.exit(1);
}

function walk(dir) {
  const files = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) {
      if (path !== out) files.push(...walk(path));
    } else {
      files.push(path);
    }
  }
  return files;
}

rmSync(out, { recursive: true, force: true });
const all = walk(dist).map((f) => relative(dist, f));
const js = all.filter((f) => f.endsWith('.js') && !SKIP.has(f));
const dts = all.filter((f) => f.endsWith('.d.ts') && !SKIP.has(f.replace(/\.d\.ts$/, '.js')));

await build({
  entryPoints: js.map((f) => join(dist, f)),
  outdir: out,
  outbase: dist,
  format: 'cjs',
  platform: 'node',
  target: 'node18',
  bundle: false,
  sourcemap: true,
  logLevel: 'warning',
  define: { 'import.meta.url': '__tsgi_import_meta_url' },
  banner: {
    js: '"use strict";\nvar __tsgi_import_meta_url = require("node:url").pathToFileURL(__filename).href;',
  },
});

for (const f of dts) {
  mkdirSync(join(out, f, '..'), { recursive: true });
  cpSync(join(dist, f), join(out, f));
}
writeFileSync(join(out, 'package.json'), '{ "type": "commonjs" }\n');
console.log(`build:cjs: ${js.length} modules and ${dts.length} declaration files in dist/cjs/`);
