/**
 * Front web servers for interop tests, started under a temporary prefix on 127.0.0.1 ports the
 * test picked, and stopped by pid by the test (Child.stop). Each starter waits until the server
 * accepts on its port, and fails with the server's own log when it exits first.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { findBinary } from './peers.js';
import { startChild, type Child } from './spawn.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** True once something accepts on 127.0.0.1:port. */
export function accepts(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.on('error', () => resolve(false));
  });
}

function readLogs(files: string[]): string {
  let log = '';
  for (const f of files) {
    try {
      log += readFileSync(f, 'utf8');
    } catch {
      /* no log */
    }
  }
  return log;
}

/**
 * Waits until `child` accepts on `port`; when it exits first, throws with its stderr and the
 * given log files.
 */
export async function waitUntilAccepting(
  child: Child,
  name: string,
  port: number,
  logs: string[] = [],
): Promise<Child> {
  for (;;) {
    if (await accepts(port)) return child;
    const exited = await Promise.race([child.exited.then(() => true), tick(50).then(() => false)]);
    if (exited) throw new Error(`${name} did not start: ${child.stderr()}${readLogs(logs)}`);
  }
}

/** `user root;` when the tests run as root (nginx refuses to run workers as root otherwise). */
export const nginxUser =
  typeof process.getuid === 'function' && process.getuid() === 0 ? 'user root;' : '';

/**
 * Starts nginx with `conf` written to dir/nginx.conf (prefix dir, temp paths under dir/tmp) and
 * waits until it accepts on `port`. The conf must say `daemon off;` and `pid nginx.pid;`.
 */
export async function startNginx(dir: string, conf: string, port: number): Promise<Child> {
  const bin = findBinary('nginx');
  if (bin === null) throw new Error('nginx is not installed');
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = startChild(bin, [
    '-p',
    dir,
    '-c',
    join(dir, 'nginx.conf'),
    '-e',
    join(dir, 'startup.log'),
  ]);
  return waitUntilAccepting(child, 'nginx', port, [
    join(dir, 'startup.log'),
    join(dir, 'error.log'),
  ]);
}
