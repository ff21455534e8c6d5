/**
 * Where tsgi-cgi-bridge is (native/bridge/tsgi-cgi-bridge.c): the CGI program of hosts that
 * run CGI programs only, which relays each request to a persistent tsgi process for the app
 * (docs/hosting.md). It is built beside the addon (binding.gyp) and shipped in prebuilds/.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The file name of the bridge executable. */
export const BRIDGE_NAME = 'tsgi-cgi-bridge';

/**
 * The absolute path of the bridge executable for this platform: the one built here
 * (build/Release), else the prebuilt one (prebuilds/PLATFORM-ARCH); null when there is none.
 */
export function bridgeBinary(): string | null {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  const roots = [root, join(root, '..')];
  for (const r of roots) {
    for (const p of [
      join(r, 'build', 'Release', BRIDGE_NAME),
      join(r, 'prebuilds', `${process.platform}-${process.arch}`, BRIDGE_NAME),
    ]) {
      if (existsSync(p)) return p;
    }
  }
  return null;
}
