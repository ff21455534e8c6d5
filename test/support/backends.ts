/**
 * Real backends for the client tests and bench:client: php-fpm (Debian php-fpm) and uWSGI
 * (uwsgi-core + the python3 plugin), started with their own configuration in a temporary
 * directory, listening on 127.0.0.1 ports and unix sockets the caller picked, stopped by pid.
 */
import { existsSync, readdirSync, writeFileSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { accepts } from './frontends.js';
import { findBinary } from './peers.js';
import { startChild, type Child } from './spawn.js';

const tick = (ms: number) => new Promise((r) => setTimeout(r, ms));
const asRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** php-fpm's binary: `php-fpm`, or Debian's versioned `php-fpm8.2` (the newest found). */
export function findPhpFpm(): string | null {
  const plain = findBinary('php-fpm');
  if (plain !== null) return plain;
  const versioned = new Set<string>();
  for (const d of [...(process.env.PATH ?? '').split(delimiter), '/usr/sbin', '/usr/local/sbin']) {
    try {
      for (const f of readdirSync(d)) if (/^php-fpm[0-9.]+$/.test(f)) versioned.add(f);
    } catch {
      /* no such directory */
    }
  }
  const newest = [...versioned].sort((a, b) => b.localeCompare(a, 'en', { numeric: true }))[0];
  return newest === undefined ? null : findBinary(newest);
}

/** One php-fpm pool: where it listens and its process manager settings. */
export interface PhpPool {
  name: string;
  /** `127.0.0.1:PORT` or an absolute unix socket path. */
  listen: string;
  /** pm = static with this many children (default 2). */
  children?: number;
  /** pm.max_requests (default 0: never recycled). */
  maxRequests?: number;
}

/** True once `listen` (HOST:PORT or a socket path) accepts. */
async function listening(listen: string): Promise<boolean> {
  if (listen.startsWith('/')) {
    if (!existsSync(listen)) return false;
    const { connect } = await import('node:net');
    return new Promise((resolve) => {
      const s = connect(listen);
      s.on('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.on('error', () => resolve(false));
    });
  }
  return accepts(Number(listen.slice(listen.lastIndexOf(':') + 1)));
}

/** Starts php-fpm (in the foreground, logs in `dir`) with `pools`; resolves once all accept. */
export async function startPhpFpm(bin: string, dir: string, pools: PhpPool[]): Promise<Child> {
  const conf = join(dir, 'php-fpm.conf');
  const lines = [
    '[global]',
    `pid = ${join(dir, 'php-fpm.pid')}`,
    `error_log = ${join(dir, 'php-fpm.log')}`,
    'daemonize = no',
  ];
  for (const p of pools) {
    lines.push(
      `[${p.name}]`,
      `listen = ${p.listen}`,
      ...(asRoot ? ['user = root', 'group = root'] : []),
      'pm = static',
      `pm.max_children = ${p.children ?? 2}`,
      `pm.max_requests = ${p.maxRequests ?? 0}`,
      'php_admin_value[default_charset] = ""',
      'php_admin_flag[expose_php] = off',
      'php_admin_value[post_max_size] = 64M',
      'php_admin_value[upload_max_filesize] = 64M',
      'php_admin_flag[log_errors] = on',
      'php_admin_flag[display_errors] = off',
      'php_admin_value[output_buffering] = 0',
    );
  }
  writeFileSync(conf, lines.join('\n') + '\n');
  const child = startChild(bin, [
    '--nodaemonize',
    '--fpm-config',
    conf,
    ...(asRoot ? ['--allow-to-run-as-root'] : []),
  ]);
  for (;;) {
    let all = true;
    for (const p of pools) if (!(await listening(p.listen))) all = false;
    if (all && existsSync(join(dir, 'php-fpm.pid'))) return child;
    const exited = await Promise.race([child.exited.then(() => true), tick(50).then(() => false)]);
    if (exited) throw new Error(`php-fpm did not start: ${child.stderr()}`);
  }
}

/** uWSGI's binary (`uwsgi`, or Debian's `uwsgi-core`). */
export function findUwsgi(): string | null {
  return findBinary('uwsgi') ?? findBinary('uwsgi-core');
}

/**
 * Starts uWSGI with the python3 plugin running `wsgiFile`, one process, speaking uwsgi on
 * `uwsgiPort` and FastCGI on `fastcgiPort` (127.0.0.1).
 */
export async function startUwsgi(
  bin: string,
  wsgiFile: string,
  uwsgiPort: number,
  fastcgiPort: number,
): Promise<Child> {
  const child = startChild(bin, [
    '--plugin',
    'python3',
    '--uwsgi-socket',
    `127.0.0.1:${uwsgiPort}`,
    '--fastcgi-socket',
    `127.0.0.1:${fastcgiPort}`,
    '--wsgi-file',
    wsgiFile,
    '--processes',
    '1',
    '--need-app',
    '--disable-logging',
    '--die-on-term',
  ]);
  for (;;) {
    if ((await accepts(uwsgiPort)) && (await accepts(fastcgiPort))) return child;
    const exited = await Promise.race([child.exited.then(() => true), tick(50).then(() => false)]);
    if (exited) throw new Error(`uWSGI did not start: ${child.stderr()}`);
  }
}
