/**
 * Front web servers for interop tests, started under a temporary prefix on 127.0.0.1 ports the
 * test picked, and stopped by pid by the test (Child.stop). Each starter waits until the server
 * accepts on its port, and fails with the server's own log when it exits first.
 */
import { chmodSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { findBinary, freePort } from './peers.js';
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
 * given log files. With `readyFile` (a pid file the server writes once its sockets are bound),
 * a port that accepts does not count before that file exists: another process may have taken
 * a port picked by freePort() before the server bound it, and the server then exits after its
 * bind retries while the test would talk to the other process.
 */
export async function waitUntilAccepting(
  child: Child,
  name: string,
  port: number,
  logs: string[] = [],
  readyFile?: string,
): Promise<Child> {
  for (;;) {
    if ((readyFile === undefined || existsSync(readyFile)) && (await accepts(port))) return child;
    const exited = await Promise.race([child.exited.then(() => true), tick(50).then(() => false)]);
    if (exited) throw new Error(`${name} did not start: ${child.stderr()}${readLogs(logs)}`);
  }
}

/** How a server says it could not bind a port it was given. */
const PORT_TAKEN = /Address already in use|EADDRINUSE/;

/**
 * Starts a server on `count` distinct ports from `pick` (freePort), and picks them all again
 * when the start failed because one was taken: freePort() only says a port was free a moment
 * ago, and a process running beside the test may bind it before the server does. Other
 * failures, and the last of `tries` port clashes, are thrown as they are.
 */
export async function startOnFreePorts<T>(
  count: number,
  start: (ports: number[]) => Promise<T>,
  pick: () => Promise<number> = freePort,
  tries = 5,
): Promise<{ started: T; ports: number[] }> {
  for (let attempt = 1; ; attempt++) {
    const ports: number[] = [];
    while (ports.length < count) {
      const p = await pick();
      if (!ports.includes(p)) ports.push(p);
    }
    try {
      return { started: await start(ports), ports };
    } catch (err) {
      if (attempt >= tries || !PORT_TAKEN.test(String(err))) throw err;
    }
  }
}

/** `user root;` when the tests run as root (nginx refuses to run workers as root otherwise). */
export const nginxUser =
  typeof process.getuid === 'function' && process.getuid() === 0 ? 'user root;' : '';

/**
 * A whole nginx.conf for {@link startNginx}: one worker in the foreground, logs and temp files
 * under the prefix, bodies up to 100 MiB, and the given upstream and server blocks.
 */
export function nginxHttpConf(servers: string, upstreams = ''): string {
  return `daemon off;
${nginxUser}
worker_processes 1;
pid nginx.pid;
error_log error.log info;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path tmp/client_body;
    fastcgi_temp_path tmp/fastcgi;
    proxy_temp_path tmp/proxy;
    uwsgi_temp_path tmp/uwsgi;
    scgi_temp_path tmp/scgi;
    client_max_body_size 100m;
${upstreams}
${servers}
}
`;
}

/**
 * Starts nginx with `conf` written to dir/nginx.conf (prefix dir, temp paths under dir/tmp) and
 * waits until it accepts on `port`. The conf must say `daemon off;` and `pid nginx.pid;`.
 */
export async function startNginx(dir: string, conf: string, port: number): Promise<Child> {
  const bin = findBinary('nginx');
  if (bin === null) throw new Error('nginx is not installed');
  mkdirSync(join(dir, 'tmp'), { recursive: true });
  writeFileSync(join(dir, 'nginx.conf'), conf);
  /* logs of an earlier attempt in this prefix (startOnFreePorts) would be read as this one's */
  rmSync(join(dir, 'startup.log'), { force: true });
  rmSync(join(dir, 'error.log'), { force: true });
  const child = startChild(bin, [
    '-p',
    dir,
    '-c',
    join(dir, 'nginx.conf'),
    '-e',
    join(dir, 'startup.log'),
  ]);
  return waitUntilAccepting(
    child,
    'nginx',
    port,
    [join(dir, 'startup.log'), join(dir, 'error.log')],
    /^pid nginx\.pid;$/m.test(conf) ? join(dir, 'nginx.pid') : undefined,
  );
}

const runningAsRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** nobody's primary group id, from /etc/passwd (its group's name differs between systems). */
function nobodyGroup(): string {
  try {
    const line = readFileSync('/etc/passwd', 'latin1')
      .split('\n')
      .find((l) => l.startsWith('nobody:'));
    const gid = line?.split(':')[3];
    if (gid !== undefined && /^[0-9]+$/.test(gid)) return `#${gid}`;
  } catch {
    /* no passwd file */
  }
  return 'nogroup';
}

/**
 * Where Apache's loadable modules are (mod_proxy.so and friends): Debian's and Red Hat's
 * locations. Null when none is found.
 */
export function apacheModuleDir(): string | null {
  for (const d of [
    '/usr/lib/apache2/modules',
    '/usr/lib64/httpd/modules',
    '/usr/lib/httpd/modules',
    '/usr/libexec/apache2',
  ]) {
    if (existsSync(join(d, 'mod_proxy.so'))) return d;
  }
  return null;
}

/** The Apache binary: `apache2` on Debian, `httpd` elsewhere. */
export function apacheBinary(): string | null {
  return findBinary('apache2') ?? findBinary('httpd');
}

/**
 * The modules every test Apache loads: the event MPM, access control, the proxy modules for
 * FastCGI, SCGI and uwsgi, CGI, and alias and setenvif (ScriptAlias, proxy-fcgi-pathinfo).
 */
export const APACHE_MODULES = [
  'mpm_event',
  'authz_core',
  'alias',
  'setenvif',
  'proxy',
  'proxy_fcgi',
  'proxy_scgi',
  'proxy_uwsgi',
  'cgi',
];

/**
 * Starts Apache in the foreground (`-X`: one process, which stops with it) with `conf` as its
 * site configuration: dir/httpd.conf gets a prelude first (ServerRoot, PidFile, ErrorLog
 * dir/error.log, Mutex and runtime files under dir, LoadModule lines for
 * {@link APACHE_MODULES} from the module directory, and User nobody with its group when the
 * tests run as root, because Apache refuses to serve as root). `conf` says Listen and the rest. Waits
 * until Apache accepts on `port`. `extra`: more modules to load (mod_fcgid: "fcgid"), and the
 * PATH Apache passes on to its CGI scripts and FastCGI processes.
 */
export async function startApache(
  dir: string,
  conf: string,
  port: number,
  extra: { modules?: readonly string[]; path?: string } = {},
): Promise<Child> {
  const bin = apacheBinary();
  if (bin === null) throw new Error('apache2 is not installed');
  const modules = apacheModuleDir();
  if (modules === null) throw new Error('the Apache module directory was not found');
  /* Apache's children run as nobody when we are root: they must reach dir */
  if (runningAsRoot) chmodSync(dir, 0o755);
  const prelude = [
    `ServerRoot "${dir}"`,
    `DefaultRuntimeDir "${dir}"`,
    `PidFile "${join(dir, 'apache.pid')}"`,
    `ErrorLog "${join(dir, 'error.log')}"`,
    'LogLevel warn',
    `Mutex file:${dir} default`,
    `ScoreBoardFile "${join(dir, 'scoreboard')}"`,
    'ServerName localhost',
    ...[...APACHE_MODULES, ...(extra.modules ?? [])].map(
      (m) => `LoadModule ${m}_module "${join(modules, `mod_${m}.so`)}"`,
    ),
    ...(runningAsRoot ? ['User nobody', `Group "${nobodyGroup()}"`] : []),
    '',
  ].join('\n');
  writeFileSync(join(dir, 'httpd.conf'), `${prelude}\n${conf}`);
  const child = startChild(bin, ['-X', '-f', join(dir, 'httpd.conf')], {
    /* Apache passes its PATH on to every backend and CGI script */
    env: { PATH: extra.path ?? '/usr/local/bin:/usr/bin:/bin', LANG: 'C' },
  });
  return waitUntilAccepting(
    child,
    'apache2',
    port,
    [join(dir, 'error.log')],
    join(dir, 'apache.pid'),
  );
}

/**
 * Starts lighttpd in the foreground (`-D`) with `conf` written to dir/lighttpd.conf and waits
 * until it accepts on `port`. FastCGI, SCGI and proxy are built into Debian's lighttpd;
 * mod_cgi is loaded from its module directory by name (`server.modules += ("mod_cgi")`).
 */
export async function startLighttpd(dir: string, conf: string, port: number): Promise<Child> {
  const bin = findBinary('lighttpd');
  if (bin === null) throw new Error('lighttpd is not installed');
  writeFileSync(join(dir, 'lighttpd.conf'), conf);
  rmSync(join(dir, 'error.log'), { force: true });
  const child = startChild(bin, ['-D', '-f', join(dir, 'lighttpd.conf')]);
  return waitUntilAccepting(child, 'lighttpd', port, [join(dir, 'error.log')]);
}

/**
 * nginx's stock scgi_params as Debian ships it, one `NAME value` each (nginx sends
 * CONTENT_LENGTH first by itself).
 */
export const NGINX_SCGI_PARAMS: readonly string[] = [
  'REQUEST_METHOD $request_method',
  'REQUEST_URI $request_uri',
  'QUERY_STRING $query_string',
  'CONTENT_TYPE $content_type',
  'DOCUMENT_URI $document_uri',
  'DOCUMENT_ROOT $document_root',
  'SCGI 1',
  'SERVER_PROTOCOL $server_protocol',
  'REQUEST_SCHEME $scheme',
  'HTTPS $https if_not_empty',
  'REMOTE_ADDR $remote_addr',
  'REMOTE_PORT $remote_port',
  'SERVER_PORT $server_port',
  'SERVER_NAME $server_name',
];

/** nginx's stock uwsgi_params as Debian ships it, one `NAME value` each. */
export const NGINX_UWSGI_PARAMS: readonly string[] = [
  'QUERY_STRING $query_string',
  'REQUEST_METHOD $request_method',
  'CONTENT_TYPE $content_type',
  'CONTENT_LENGTH $content_length',
  'REQUEST_URI $request_uri',
  'PATH_INFO $document_uri',
  'DOCUMENT_ROOT $document_root',
  'SERVER_PROTOCOL $server_protocol',
  'REQUEST_SCHEME $scheme',
  'HTTPS $https if_not_empty',
  'REMOTE_ADDR $remote_addr',
  'REMOTE_PORT $remote_port',
  'SERVER_PORT $server_port',
  'SERVER_NAME $server_name',
];

/** `list` as `PREFIX_param NAME value;` lines, indented for a location block. */
export function nginxParams(prefix: string, list: readonly string[]): string {
  return list.map((p) => `            ${prefix}_param ${p};`).join('\n');
}
