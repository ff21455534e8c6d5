#!/usr/bin/env node
// Ships tsgi-cgi-bridge (native/bridge, the CGI program of mod_cgi-only hosts) in prebuilds/
// beside the addon: copies the executable node-gyp built into prebuilds/PLATFORM-ARCH/, named
// as lib/server/bridge.ts looks for it in an installed package (on Linux tagged with the libc,
// as the addon's prebuilds are: tsgi-cgi-bridge.glibc, tsgi-cgi-bridge.musl). Run by prepack and
// the release workflow after the addon's prebuilds, and by the cross builds. The bridge is POSIX
// only: for Windows (binding.gyp builds none) it says so and succeeds.
//
// Usage: node scripts/prebuild-bridge.mjs [--root DIR] [--platform P] [--arch A] [--libc glibc|musl]
//                                         [--strip-bin STRIP]
//   --root       the package folder holding build/Release and prebuilds/ (default: this checkout)
//   --platform, --arch, --libc   the target (default: this machine's; --libc on Linux only)
//   --strip-bin  a strip program to run on the copy (a cross toolchain's)
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const checkout = fileURLToPath(new URL('..', import.meta.url));
const { values } = parseArgs({
  options: {
    root: { type: 'string' },
    platform: { type: 'string' },
    arch: { type: 'string' },
    libc: { type: 'string' },
    'strip-bin': { type: 'string' },
  },
});
/* the naming rule lives in lib/server/bridge.ts (built to dist/ before prebuilds are made) */
const { BRIDGE_NAME, libcTag, prebuiltBridgeName } = await import(
  new URL('../dist/server/bridge.js', import.meta.url).href
);

const root = resolve(values.root ?? checkout);
const platform = values.platform ?? process.platform;
const arch = values.arch ?? process.arch;
if (platform === 'win32') {
  process.stdout.write('tsgi: tsgi-cgi-bridge is POSIX only: no prebuild for win32\n');
  process.exit(0);
}
const libc = platform === 'linux' ? (values.libc ?? libcTag() ?? 'glibc') : null;
if (libc !== null && libc !== 'glibc' && libc !== 'musl') {
  process.stderr.write(`tsgi: --libc must be glibc or musl, not ${libc}\n`);
  process.exit(2);
}
const built = join(root, 'build', 'Release', BRIDGE_NAME);
if (!existsSync(built)) {
  process.stderr.write(`tsgi: no ${relative(root, built)} built; prebuilds ship no bridge\n`);
  process.exit(0);
}
const dir = join(root, 'prebuilds', `${platform}-${arch}`);
const out = join(dir, prebuiltBridgeName(libc));
mkdirSync(dir, { recursive: true });
copyFileSync(built, out);
chmodSync(out, 0o755);
if (values['strip-bin'] !== undefined) execFileSync(values['strip-bin'], [out]);
process.stdout.write(`tsgi: ${relative(root, out)}\n`);
