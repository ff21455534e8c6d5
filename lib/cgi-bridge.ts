#!/usr/bin/env node
/**
 * tsgi-cgi-bridge in Node.js: the bridge of a platform without the native executable (see
 * lib/server/bridge.ts). Used, like the native one, as the interpreter of the app's entry file,
 * so the kernel runs `cgi-bridge.js /path/app.cgi [ARGS]` (the ARGS mod_cgi adds for a query
 * without "=" are ignored).
 */
import process from 'node:process';
import { fileURLToPath } from 'node:url';
import { rawEnviron, runBridge } from './server/bridge.js';

const app = process.argv[2];
if (app === undefined) {
  process.stderr.write(
    "usage: cgi-bridge.js APP (as the #! interpreter of the app's entry file)\n",
  );
  process.exit(2);
}
const tsgi = process.env.TSGI_BRIDGE_TSGI;
const status = await runBridge(app, {
  environ: rawEnviron(),
  stdin: process.stdin,
  stdout: process.stdout,
  stderr: process.stderr,
  tsgi:
    tsgi !== undefined && tsgi !== ''
      ? [tsgi]
      : [process.execPath, fileURLToPath(new URL('./cli.js', import.meta.url))],
  idleExit: process.env.TSGI_IDLE_EXIT || '300',
});
process.exitCode = status;
