/**
 * tsgi-cgi-bridge: the CGI program of hosts that run CGI programs only (Apache mod_cgi), which
 * relays each request to a persistent tsgi process for the app (docs/hosting.md).
 *
 * Two implementations of one protocol:
 * - the native executable (native/bridge/tsgi-cgi-bridge.c), built beside the addon
 *   (binding.gyp) and shipped in prebuilds/ for Linux and macOS: it starts in about a
 *   millisecond;
 * - {@link runBridge} here, run by dist/cgi-bridge.js, for a platform without the native one (no
 *   compiler, no prebuild): the same files beside the app, the same start of `tsgi serve`, the
 *   same FastCGI exchange, but each request pays a Node.js start (tens of milliseconds).
 *
 * {@link bridgeProgram} chooses: the native executable when there is one, else the Node.js one.
 *
 * The protocol, for APP (the entry file the kernel hands the bridge as its first argument):
 * - the socket is `.NAME.tsgi.sock` in APP's folder, the process's log `.NAME.tsgi.log`;
 * - when connecting fails, one bridge starts
 *   `tsgi serve --fastcgi unix:SOCKET --socket-mode 600 --idle-exit SECS APP` in a session of
 *   its own (output appended to the log) and waits for it to accept, while the others wait for
 *   the socket: the native bridge holds an exclusive lock on `.NAME.tsgi.lock` meanwhile, the
 *   Node.js one creates `.NAME.tsgi.starting` (holding its pid; Node.js has no file locks);
 * - the request goes as FastCGI request 1: BEGIN_REQUEST (responder), the whole CGI
 *   environment as PARAMS, stdin (CONTENT_LENGTH bytes, or to its end) as STDIN; STDOUT is
 *   copied to stdout as it comes, STDERR to stderr, until END_REQUEST.
 * - TSGI_BRIDGE_TSGI names the tsgi command to start (default: the native bridge runs `tsgi`
 *   from PATH, the Node.js one this package's own); TSGI_IDLE_EXIT the idle seconds (300).
 * - exit status 0 when an answer was relayed; else a `Status: 502` CGI answer and status 1.
 */
import process from 'node:process';
import { Buffer } from 'node:buffer';
import { spawn } from 'node:child_process';
import {
  closeSync,
  existsSync,
  openSync,
  readFileSync,
  realpathSync,
  statSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { connect, type Socket } from 'node:net';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { isMusl } from '../codec/native.js';
import { createFcgiParser, fcgiBeginRequest, fcgiParams, fcgiStream } from '../codec/ts/fastcgi.js';

/** The file name of the native bridge executable. */
export const BRIDGE_NAME = 'tsgi-cgi-bridge';

/** The Node.js bridge program (dist/, from lib/cgi-bridge.ts), relative to the package root. */
export const NODE_BRIDGE = join('dist', 'cgi-bridge.js');

/** The package roots this module may sit under (dist/server, dist/cjs/server, lib/server). */
function packageRoots(): string[] {
  const root = fileURLToPath(new URL('../..', import.meta.url));
  return [root, join(root, '..')];
}

/**
 * The libc tag of this Linux (node-gyp-build's): "musl" when Node.js runs on musl, else
 * "glibc"; null elsewhere.
 */
export function libcTag(): 'glibc' | 'musl' | null {
  if (process.platform !== 'linux') return null;
  return isMusl() ? 'musl' : 'glibc';
}

/**
 * The file name of the native bridge in prebuilds/PLATFORM-ARCH/: tagged with the libc on
 * Linux (`tsgi-cgi-bridge.glibc`, `tsgi-cgi-bridge.musl`), as the addon's prebuilds are.
 */
export function prebuiltBridgeName(libc: 'glibc' | 'musl' | null = libcTag()): string {
  return libc === null ? BRIDGE_NAME : `${BRIDGE_NAME}.${libc}`;
}

/**
 * The absolute path of the native bridge executable for this platform: the one built here
 * (build/Release), else the prebuilt one (prebuilds/PLATFORM-ARCH); null when there is none.
 * `roots`: the package roots to look in (default: this package's).
 */
export function bridgeBinary(roots: readonly string[] = packageRoots()): string | null {
  for (const r of roots) {
    for (const p of [
      join(r, 'build', 'Release', BRIDGE_NAME),
      join(r, 'prebuilds', `${process.platform}-${process.arch}`, prebuiltBridgeName()),
    ]) {
      if (existsSync(p)) return p;
    }
  }
  return null;
}

/** The bridge program to name in an entry file's first line. */
export interface BridgeProgram {
  /** Its absolute path. */
  path: string;
  /** True for the native executable; false for the Node.js one (a Node.js start per request). */
  native: boolean;
}

/**
 * The bridge for this platform: the native executable when one is built or prebuilt, else the
 * Node.js program (dist/cgi-bridge.js); null when neither is there (dist/ not built).
 * `roots`: the package roots to look in (default: this package's).
 */
export function bridgeProgram(roots: readonly string[] = packageRoots()): BridgeProgram | null {
  const binary = bridgeBinary(roots);
  if (binary !== null) return { path: binary, native: true };
  for (const r of roots) {
    const p = join(r, NODE_BRIDGE);
    if (existsSync(p)) return { path: p, native: false };
  }
  return null;
}

/** The files of one app's persistent process, beside its entry file. */
export interface BridgeFiles {
  socket: string;
  log: string;
  /** The native bridge's lock (flock). */
  lock: string;
  /** The Node.js bridge's start marker (created exclusively, holds its pid). */
  starting: string;
}

/** The files the bridge uses for the entry file `app` (an absolute, resolved path). */
export function bridgeFiles(app: string): BridgeFiles {
  const dir = dirname(app);
  const name = basename(app);
  return {
    socket: join(dir, `.${name}.tsgi.sock`),
    log: join(dir, `.${name}.tsgi.log`),
    lock: join(dir, `.${name}.tsgi.lock`),
    starting: join(dir, `.${name}.tsgi.starting`),
  };
}

/** How long a started process may take to accept (its app loads meanwhile). */
const START_WAIT_MS = 30_000;
/** A start marker older than this is left from a bridge that died. */
const STALE_START_MS = START_WAIT_MS + 5_000;
const POLL_MS = 10;

/** What {@link runBridge} reads and writes. */
export interface BridgeIo {
  /** The CGI environment: name → raw bytes of the value (latin-1 string). */
  environ: [string, string][];
  stdin: NodeJS.ReadableStream;
  stdout: NodeJS.WritableStream;
  stderr: NodeJS.WritableStream;
  /** The tsgi command to start: program and leading arguments. */
  tsgi: string[];
  /** --idle-exit of the started process, in seconds (as text). */
  idleExit: string;
}

class BridgeFailure extends Error {}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tryConnect(path: string): Promise<Socket | null> {
  return new Promise((resolve) => {
    const s = connect({ path });
    s.once('connect', () => {
      s.removeAllListeners('error');
      resolve(s);
    });
    s.once('error', () => resolve(null));
  });
}

/** True when the process `pid` exists (signal 0). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Takes the start marker: true when this bridge created it; a stale one is removed first. */
function takeStart(path: string): boolean {
  for (let i = 0; i < 2; i++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    let stale: boolean;
    try {
      const pid = Number(readFileSync(path, 'latin1'));
      const age = Date.now() - statSync(path).mtimeMs;
      stale = age > STALE_START_MS || (pid > 0 && !alive(pid));
    } catch {
      stale = false; /* it just went: the next round sees */
    }
    if (!stale) return false;
    try {
      unlinkSync(path);
    } catch {
      /* another bridge removed it */
    }
  }
  return false;
}

/** Starts `tsgi serve` for `app` on the socket, detached, its output appended to the log. */
function startServer(app: string, files: BridgeFiles, io: BridgeIo): void {
  const log = openSync(files.log, 'a', 0o600);
  try {
    const [program, ...args] = io.tsgi;
    const child = spawn(
      program!,
      [
        ...args,
        'serve',
        '--fastcgi',
        `unix:${files.socket}`,
        '--socket-mode',
        '600',
        '--idle-exit',
        io.idleExit,
        app,
      ],
      { detached: true, stdio: ['ignore', log, log] },
    );
    child.on('error', (err) => {
      writeSync(log, `tsgi-cgi-bridge: cannot run ${program}: ${err.message}\n`);
    });
    child.unref();
  } finally {
    closeSync(log);
  }
}

/** A connection to the app's process, started first when none answers. */
async function connectOrStart(app: string, io: BridgeIo): Promise<Socket> {
  const files = bridgeFiles(app);
  const first = await tryConnect(files.socket);
  if (first !== null) return first;
  const end = Date.now() + START_WAIT_MS;
  let mine = false;
  try {
    while (Date.now() < end) {
      if (!mine && takeStart(files.starting)) {
        mine = true;
        /* another bridge may have started it meanwhile */
        const again = await tryConnect(files.socket);
        if (again !== null) return again;
        try {
          unlinkSync(files.socket); /* a socket left by a process that is gone */
        } catch {
          /* none */
        }
        startServer(app, files, io);
      }
      await sleep(POLL_MS);
      const s = await tryConnect(files.socket);
      if (s !== null) return s;
    }
  } finally {
    if (mine) {
      try {
        unlinkSync(files.starting);
      } catch {
        /* gone */
      }
    }
  }
  throw new BridgeFailure('the tsgi process did not start (see its log beside the app)');
}

/** Writes `data` to the socket, resolving once it is taken (or rejecting when it is closed). */
function send(socket: Socket, data: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    socket.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

/** Sends the request: BEGIN_REQUEST, PARAMS, STDIN (CONTENT_LENGTH bytes, or to its end). */
async function sendRequest(socket: Socket, io: BridgeIo): Promise<void> {
  const pairs: string[] = [];
  for (const [k, v] of io.environ) pairs.push(k, v);
  await send(socket, Buffer.concat([fcgiBeginRequest(1, 1, 0), fcgiParams(1, pairs)]));
  const cl = io.environ.find(([k]) => k === 'CONTENT_LENGTH')?.[1] ?? '';
  let left = cl === '' ? -1 : Number.parseInt(cl, 10) || 0;
  if (left !== 0) {
    for await (const c of io.stdin) {
      let chunk = typeof c === 'string' ? Buffer.from(c, 'latin1') : (c as Buffer);
      if (left >= 0 && chunk.length > left) chunk = chunk.subarray(0, left);
      if (chunk.length > 0) await send(socket, fcgiStream(5, 1, chunk, false));
      if (left >= 0) {
        left -= chunk.length;
        if (left === 0) break;
      }
    }
  }
  await send(socket, fcgiStream(5, 1, new Uint8Array(0), true));
}

/** Copies the answer's STDOUT and STDERR until END_REQUEST; true when END_REQUEST came. */
function relayAnswer(socket: Socket, io: BridgeIo): Promise<{ ended: boolean; answered: boolean }> {
  return new Promise((resolve) => {
    const parser = createFcgiParser();
    let answered = false;
    let done = false;
    const finish = (ended: boolean): void => {
      if (done) return;
      done = true;
      socket.destroy();
      resolve({ ended, answered });
    };
    socket.on('data', (c: Buffer) => {
      for (const e of parser.push(c)) {
        if (e.type === 'stdout' && e.data.length > 0) {
          answered = true;
          if (!io.stdout.write(e.data)) {
            socket.pause();
            io.stdout.once('drain', () => socket.resume());
          }
        } else if (e.type === 'stderr' && e.data.length > 0) {
          io.stderr.write(e.data);
        } else if (e.type === 'end') {
          finish(true);
          return;
        } else if (e.type === 'error') {
          finish(false);
          return;
        }
      }
    });
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
    io.stdout.on('error', () => finish(false)); /* the web server stopped reading */
  });
}

const BAD_GATEWAY = 'Status: 502 Bad Gateway\r\nContent-Type: text/plain\r\n\r\nBad Gateway\n';

/**
 * The Node.js bridge: relays one CGI request for the entry file `appArg` to the app's
 * persistent process (started when none answers); resolves with the exit status.
 */
export async function runBridge(appArg: string, io: BridgeIo): Promise<number> {
  let app = appArg;
  const fail = (what: string): number => {
    io.stderr.write(`tsgi-cgi-bridge: ${app}: ${what}\n`);
    io.stdout.write(BAD_GATEWAY);
    return 1;
  };
  try {
    app = realpathSync(appArg);
  } catch (err) {
    return fail(`cannot find the app: ${(err as Error).message}`);
  }
  let socket: Socket;
  try {
    socket = await connectOrStart(app, io);
  } catch (err) {
    return fail((err as Error).message);
  }
  /* a connection reset is read as the end of the answer below */
  socket.on('error', () => {});
  const answer = relayAnswer(socket, io);
  try {
    await sendRequest(socket, io);
  } catch {
    /* the process closed the connection: the answer, if any, tells */
  }
  const { ended, answered } = await answer;
  if (ended) return 0;
  if (!answered) return fail('the tsgi process closed the connection without an answer');
  return 1;
}

/**
 * The CGI environment of this process as raw bytes (latin-1 strings): /proc/self/environ on
 * Linux (process.env decodes values as UTF-8, which would alter other bytes), else
 * process.env with each value's UTF-8 bytes.
 */
export function rawEnviron(): [string, string][] {
  try {
    const raw = readFileSync('/proc/self/environ', 'latin1');
    const out: [string, string][] = [];
    for (const entry of raw.split('\0')) {
      const eq = entry.indexOf('=');
      if (eq > 0) out.push([entry.slice(0, eq), entry.slice(eq + 1)]);
    }
    return out;
  } catch {
    return Object.entries(process.env)
      .filter((e): e is [string, string] => e[1] !== undefined)
      .map(([k, v]) => [
        Buffer.from(k, 'utf8').toString('latin1'),
        Buffer.from(v, 'utf8').toString('latin1'),
      ]);
  }
}
