#!/usr/bin/env node
// Ships tsgi-cgi-bridge (native/bridge, the CGI program of mod_cgi-only hosts) in prebuilds/
// beside the addon: copies the executable node-gyp built for this platform into
// prebuilds/PLATFORM-ARCH/, where lib/server/bridge.ts finds it in an installed package. Run by
// prepack after the addon's prebuilds; says so and succeeds when there is no bridge (Windows).
import { chmodSync, copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const built = join(root, 'build', 'Release', 'tsgi-cgi-bridge');
if (!existsSync(built)) {
  process.stderr.write('tsgi: no tsgi-cgi-bridge built for this platform; prebuilds ship none\n');
  process.exit(0);
}
const dir = join(root, 'prebuilds', `${process.platform}-${process.arch}`);
mkdirSync(dir, { recursive: true });
copyFileSync(built, join(dir, 'tsgi-cgi-bridge'));
chmodSync(join(dir, 'tsgi-cgi-bridge'), 0o755);
process.stdout.write(
  `tsgi: ${join('prebuilds', `${process.platform}-${process.arch}`, 'tsgi-cgi-bridge')}\n`,
);
