/**
 * Makes sure dist/ (the `tsgi` bin, dist/cli.js) is built from the current lib/ before a test
 * spawns it: rebuilt with `tsc -p tsconfig.build.json` when any lib/ file is newer. A lock
 * directory keeps parallel test files from building at the same time.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, mkdirSync, readdirSync, rmdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const CLI = join(ROOT, 'dist', 'cli.js');

function newest(dir: string): number {
  let t = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    t = Math.max(t, e.isDirectory() ? newest(p) : statSync(p).mtimeMs);
  }
  return t;
}

function upToDate(): boolean {
  try {
    return statSync(CLI).mtimeMs >= newest(join(ROOT, 'lib'));
  } catch {
    return false;
  }
}

export async function ensureBuilt(): Promise<string> {
  const lock = join(ROOT, 'dist.build-lock');
  for (;;) {
    if (upToDate()) return CLI;
    try {
      mkdirSync(lock);
    } catch {
      await new Promise((r) => setTimeout(r, 200));
      continue;
    }
    try {
      if (!upToDate()) {
        try {
          execFileSync(
            process.execPath,
            [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.build.json'],
            {
              cwd: ROOT,
              stdio: 'pipe',
            },
          );
        } catch (err) {
          /* tsc emits even with type errors elsewhere; only a missing bin is fatal */
          try {
            statSync(CLI);
          } catch {
            throw err;
          }
        }
        /* as `npm run build:ts`: the Node.js CGI bridge is a #! interpreter, so executable */
        chmodSync(join(ROOT, 'dist', 'cgi-bridge.js'), 0o755);
      }
      return CLI;
    } finally {
      rmdirSync(lock);
    }
  }
}
