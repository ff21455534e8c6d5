/**
 * The request matrix every front server runs against tsgi, over every gateway protocol it
 * speaks: the same requests, byte-exact expected answers, and — where the front server makes a
 * difference — the rule for that server, written down here once.
 *
 * A test file starts its front server with one location per {@link MatrixTarget} (a
 * one-segment mount such as /scgi in front of the app of test/support/matrix-app.ts) and calls
 * {@link describeMatrix}: one vitest `describe` per target, one `it` per case.
 *
 * What the servers do differently (each rule is asserted by a case below):
 * - Chunked request bodies: nginx and lighttpd buffer them and send CONTENT_LENGTH; Apache's
 *   mod_proxy_fcgi and mod_cgi stream them without CONTENT_LENGTH (tsgi reads to the end of
 *   the body); Apache's mod_proxy_scgi and mod_proxy_uwsgi answer 411 Length Required
 *   themselves.
 * - Repeated headers: nginx 1.22 sends one variable per header line, which tsgi joins with
 *   ", " ("; " for Cookie); Apache joins them itself with ", " (Cookie too); lighttpd joins
 *   them itself with ", " ("; " for Cookie).
 * - X-Foo-Bar and X_Foo_Bar both map to HTTP_X_FOO_BAR: nginx and Apache drop header names
 *   with "_"; lighttpd sends both variables (mod_cgi: both in the environment), which tsgi
 *   joins in arrival order: the later never replaces the earlier.
 * - Paths: see {@link expectedEnviron}.
 */
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { connect, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import { describe, expect, it } from 'vitest';
import { listen } from '../../lib/server/listen.js';
import { mountApp, parseMount } from '../../lib/server/mount.js';
import { protocolByFlag, type ProtocolServer } from '../../lib/server/protocols.js';
import { ROOT } from './build.js';
import {
  DOWNLOAD_CHUNK,
  DOWNLOAD_CHUNKS,
  downloadChunk,
  ENVIRON_KEYS,
  matrixApp,
} from './matrix-app.js';
import { freePort, isCI } from './peers.js';
import type { Child } from './spawn.js';

export type FrontServer = 'nginx' | 'apache' | 'lighttpd';
export type GatewayProtocol = 'fastcgi' | 'scgi' | 'uwsgi' | 'cgi';

/** One way a front server reaches tsgi. */
export interface MatrixTarget {
  /** What the test is called: "mod_proxy_fcgi, enablereuse=on". */
  name: string;
  server: FrontServer;
  protocol: GatewayProtocol;
  /** The one-segment prefix the app is mounted at: "/scgi". */
  mount: string;
  /** tsgi serves this row with `--mount` = `mount` (see lib/server/mount.ts). */
  tsgiMount?: boolean;
}

/**
 * What a protocol still waits for, or null when tsgi speaks it: FastCGI, SCGI and uwsgi need
 * their entry in lib/server/protocols.ts (`tsgi serve --scgi`), CGI needs lib/protocol/cgi.ts
 * (`tsgi cgi APP`).
 */
export function missingProtocol(p: GatewayProtocol): string | null {
  if (p === 'cgi') {
    return existsSync(join(ROOT, 'lib/protocol/cgi.ts')) ? null : 'lib/protocol/cgi.ts (tsgi cgi)';
  }
  return protocolByFlag(p) ? null : `--${p} in lib/server/protocols.ts`;
}

/** In-process tsgi servers of the matrix app, one per protocol, on 127.0.0.1 port 0. */
export interface MatrixGateways {
  /** The port of the server for `protocol` (copy 0, 1, … when several were asked). */
  port(protocol: GatewayProtocol, copy?: number): number;
  /** Connections that server accepted so far. */
  connections(protocol: GatewayProtocol, copy?: number): number;
  stop(): Promise<void>;
}

/**
 * Starts {@link MatrixGateways} for the listed protocols (FastCGI, SCGI, uwsgi): `copies`
 * servers of each (default 1), for front servers that must not share one backend between two
 * configurations.
 */
export async function serveMatrix(
  protocols: readonly GatewayProtocol[],
  options: {
    copies?: number;
    /** `--mount` prefixes by server, keyed "protocol#copy" ("scgi#1"). */
    mounts?: Record<string, string>;
  } = {},
): Promise<MatrixGateways> {
  const servers = new Map<string, { server: ProtocolServer; accepted: number }>();
  const copies = options.copies ?? 1;
  for (const p of new Set(protocols)) {
    const protocol = protocolByFlag(p);
    if (protocol === undefined) continue;
    for (let i = 0; i < copies; i++) {
      const mount = options.mounts?.[`${p}#${i}`];
      const app = mount === undefined ? matrixApp : mountApp(matrixApp, parseMount(mount)!);
      const entry = { server: protocol.create(app, {}), accepted: 0 };
      entry.server.on('connection', () => entry.accepted++);
      await listen(entry.server, { type: 'tcp', host: '127.0.0.1', port: 0 });
      servers.set(`${p}#${i}`, entry);
    }
  }
  const get = (p: string) => {
    const e = servers.get(p);
    if (e === undefined) throw new Error(`no matrix server for ${p}`);
    return e;
  };
  return {
    port: (p, copy = 0) => (get(`${p}#${copy}`).server.address() as AddressInfo).port,
    connections: (p, copy = 0) => get(`${p}#${copy}`).accepted,
    async stop() {
      await Promise.all([...servers.values()].map((e) => e.server.drain()));
    },
  };
}

/** Bundles test/support/matrix-app.ts into dir/matrix-app.mjs for `tsgi serve` and `tsgi cgi`. */
export function writeMatrixApp(dir: string): string {
  const outfile = join(dir, 'matrix-app.mjs');
  buildSync({
    entryPoints: [join(ROOT, 'test/support/matrix-app.ts')],
    outfile,
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node18',
    logLevel: 'error',
  });
  return outfile;
}

/**
 * Writes dir/cgi-bin/matrix.mjs, the CGI program of the matrix: examples/apache/tsgi.mjs with
 * the built CLI and `app` in it. Its `#!/usr/bin/env -S tsgi cgi` line makes the kernel run
 * `tsgi cgi` on the module itself, no shell in between (a `#!/bin/sh` wrapper keeps only one of
 * two values of a variable).
 */
export function writeCgiScript(dir: string, cli: string, app: string): string {
  const example = readFileSync(join(ROOT, 'examples/apache/tsgi.mjs'), 'utf8');
  const text = example
    .replace(
      '#!/usr/bin/env -S tsgi cgi',
      `#!/usr/bin/env -S ${JSON.stringify(process.execPath)} ${JSON.stringify(cli)} cgi`,
    )
    .replace("'/srv/app/app.mjs'", JSON.stringify(app));
  if (text === example || text.includes('/srv/app/')) {
    throw new Error('examples/apache/tsgi.mjs no longer has the lines writeCgiScript replaces');
  }
  const bin = join(dir, 'cgi-bin');
  mkdirSync(bin, { recursive: true });
  const script = join(bin, 'matrix.mjs');
  writeFileSync(script, text);
  chmodSync(script, 0o755);
  return script;
}

/** An HTTP response as it came off the wire (chunked framing removed). */
export interface Reply {
  status: number;
  /** Header lines in order, names as sent. */
  headers: [string, string][];
  body: Buffer;
}

/** The value of the only header named `name` (case-insensitive); fails on repeats. */
export function header(reply: Reply, name: string): string | undefined {
  const found = reply.headers.filter(([n]) => n.toLowerCase() === name.toLowerCase());
  if (found.length > 1) throw new Error(`${found.length} ${name} headers`);
  return found[0]?.[1];
}

function dechunk(data: Buffer): Buffer {
  const parts: Buffer[] = [];
  let p = 0;
  for (;;) {
    const eol = data.indexOf('\r\n', p);
    if (eol === -1) throw new Error('chunked body cut before its last chunk');
    const size = parseInt(data.subarray(p, eol).toString('latin1'), 16);
    if (!Number.isFinite(size)) throw new Error('bad chunk size');
    if (size === 0) return Buffer.concat(parts);
    parts.push(data.subarray(eol + 2, eol + 2 + size));
    p = eol + 2 + size + 2;
  }
}

function parseReply(data: Buffer): Reply {
  const end = data.indexOf('\r\n\r\n');
  if (end === -1)
    throw new Error(`no complete response head: ${JSON.stringify(data.toString('latin1'))}`);
  const [statusLine, ...lines] = data.subarray(0, end).toString('latin1').split('\r\n');
  const m = /^HTTP\/1\.[01] ([0-9]{3})/.exec(statusLine!);
  if (m === null) throw new Error(`bad status line ${JSON.stringify(statusLine)}`);
  const headers = lines.map((l): [string, string] => {
    const colon = l.indexOf(':');
    return [l.slice(0, colon), l.slice(colon + 1).trim()];
  });
  const reply: Reply = { status: Number(m[1]), headers, body: data.subarray(end + 4) };
  if (header(reply, 'transfer-encoding')?.toLowerCase() === 'chunked') {
    reply.body = dechunk(reply.body);
  }
  const length = header(reply, 'content-length');
  if (length !== undefined && Number(length) !== reply.body.length) {
    throw new Error(`Content-Length ${length} but ${reply.body.length} bytes`);
  }
  return reply;
}

/** What to send: the request target as latin-1 (raw bytes allowed) and extra header lines. */
export interface Exchange {
  method?: string;
  target: string;
  headers?: [string, string][];
  /** A body sent with Content-Length. */
  body?: Buffer;
  /** A body sent with Transfer-Encoding: chunked, one chunk per part, a pause between. */
  chunks?: Buffer[];
}

/**
 * One HTTP/1.1 exchange over a fresh connection (Connection: close), bytes as given: raw bytes
 * ≥ 0x80 and repeated headers reach the server exactly. Host is "tsgi.test".
 */
export function exchange(port: number, x: Exchange): Promise<Reply> {
  const lines = [`${x.method ?? 'GET'} ${x.target} HTTP/1.1`, 'Host: tsgi.test'];
  for (const [n, v] of x.headers ?? []) lines.push(`${n}: ${v}`);
  if (x.body) lines.push(`Content-Length: ${x.body.length}`);
  if (x.chunks) lines.push('Transfer-Encoding: chunked');
  lines.push('Connection: close', '', '');
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1');
    const parts: Buffer[] = [];
    s.on('data', (d: Buffer) => parts.push(d));
    /* a server that answers early (411) may reset while we still send: keep what came */
    s.on('error', (err) => (parts.length ? undefined : reject(err)));
    s.on('close', () => {
      try {
        resolve(parseReply(Buffer.concat(parts)));
      } catch (err) {
        reject(err as Error);
      }
    });
    s.write(Buffer.from(lines.join('\r\n'), 'latin1'));
    if (x.body) s.write(x.body);
    if (x.chunks) {
      const chunks = x.chunks;
      void (async () => {
        for (const c of chunks) {
          if (s.destroyed) return;
          s.write(`${c.length.toString(16)}\r\n`);
          s.write(c);
          s.write('\r\n');
          await new Promise((r) => setTimeout(r, 5));
        }
        if (!s.destroyed) s.write('0\r\n\r\n');
      })();
    }
  });
}

export const sha256 = (b: Uint8Array | string) => createHash('sha256').update(b).digest('hex');
const hex = (s: string) => Buffer.from(s, 'latin1').toString('hex');
const text = (r: Reply) => r.body.toString('latin1');

/** Every byte from 0x80 to 0xFF, as latin-1 characters. */
export const HIGH = Array.from({ length: 128 }, (_, i) => String.fromCharCode(0x80 + i)).join('');

/** Deterministic bytes for the uploads. */
function pattern(length: number, seed: number): Buffer {
  const b = Buffer.alloc(length);
  for (let i = 0; i < length; i++) b[i] = (i * 31 + seed + (i >> 10)) & 0xff;
  return b;
}
const UPLOAD = pattern(1024 * 1024, 7);
const CHUNKS = [pattern(10, 1), pattern(100_000, 2), pattern(65_536, 3), pattern(1, 4)];
const CHUNKED = Buffer.concat(CHUNKS);
const DOWNLOAD_SHA = (() => {
  const h = createHash('sha256');
  for (let i = 0; i < DOWNLOAD_CHUNKS; i++) h.update(downloadChunk(i));
  return h.digest('hex');
})();

/**
 * The environ of the reference request `GET {mount}/environ/a%20b/%C3%A9?x=1&y=%41+z`
 * (Host: tsgi.test, no body) that tsgi gives the app behind each server:
 * - SCRIPT_NAME is the mount and PATH_INFO the rest, decoded (the UTF-8 bytes of "é" as two
 *   latin-1 characters), whatever the server sent: nginx's stock scgi_params and uwsgi_params
 *   send no SCRIPT_NAME (the configurations add `*_param SCRIPT_NAME /mount`), and
 *   uwsgi_params' PATH_INFO is the whole path (the configuration sends the rest after it: the
 *   last one wins); lighttpd splits at its prefix; Apache's mod_proxy_fcgi
 *   needs `proxy-fcgi-pathinfo=unescape`, mod_proxy_uwsgi splits itself, mod_cgi splits at
 *   the script.
 * - Except Apache's mod_proxy_scgi: it sends the whole decoded path as SCRIPT_NAME and no
 *   PATH_INFO (`proxy-scgi-pathinfo` would add a percent-encoded PATH_INFO and a wrong
 *   SCRIPT_NAME), so the app sees SCRIPT_NAME = the whole path and PATH_INFO "" — unless
 *   tsgi runs with `--mount` (the row's tsgiMount), which splits the path at the mount.
 * - CONTENT_LENGTH (no body): nginx sends "" over FastCGI and uwsgi, "0" over SCGI (the SCGI
 *   module writes it itself); Apache sends none over FastCGI, uwsgi and CGI, "0" over SCGI
 *   (required there); lighttpd always sends "0".
 */
export function expectedEnviron(
  t: MatrixTarget,
): Record<(typeof ENVIRON_KEYS)[number], string | null> {
  const path = '/environ/a b/\xc3\xa9';
  const apacheScgi = t.server === 'apache' && t.protocol === 'scgi' && t.tsgiMount !== true;
  let contentLength: string | null;
  if (t.protocol === 'scgi' || t.server === 'lighttpd') contentLength = '0';
  else if (t.server === 'nginx') contentLength = '';
  else contentLength = null;
  return {
    REQUEST_METHOD: 'GET',
    SCRIPT_NAME: apacheScgi ? t.mount + path : t.mount,
    PATH_INFO: apacheScgi ? '' : path,
    QUERY_STRING: 'x=1&y=%41+z',
    CONTENT_LENGTH: contentLength,
    SERVER_PROTOCOL: 'HTTP/1.1',
    HTTP_HOST: 'tsgi.test',
    'tsgi.url_scheme': 'http',
    'tsgi.protocol': t.protocol,
  };
}

/** What the app reads from a chunked upload, or the status the server answers itself. */
function expectedChunked(t: MatrixTarget): { status: 411 } | { contentLength: string | null } {
  if (t.server === 'apache' && (t.protocol === 'scgi' || t.protocol === 'uwsgi')) {
    return { status: 411 };
  }
  /* mod_proxy_fcgi and mod_cgi stream the body as it comes; tsgi reads to STDIN's or stdin's end */
  if (t.server === 'apache') return { contentLength: null };
  return { contentLength: String(CHUNKED.length) };
}

/** HTTP_X_MULTI and HTTP_COOKIE after `X-Multi: a`, `X-Multi: b`, `Cookie: a=1`, `Cookie: b=2`. */
function expectedRepeats(t: MatrixTarget): { multi: string; cookie: string } {
  return { multi: 'a, b', cookie: t.server === 'apache' ? 'a=1, b=2' : 'a=1; b=2' };
}

/** HTTP_X_FOO_BAR after `X-Foo-Bar: dash` then `X_Foo_Bar: under`. */
function expectedFooBar(t: MatrixTarget): string {
  return t.server === 'lighttpd' ? 'dash, under' : 'dash';
}

type Case = [name: string, run: (t: MatrixTarget, port: number) => Promise<void>];

const CASES: Case[] = [
  [
    'GET with a query string',
    async (t, port) => {
      const r = await exchange(port, { target: `${t.mount}/query?a=1&b=%20x&c&d=%2F+/` });
      expect([r.status, header(r, 'content-type'), text(r)]).toEqual([
        200,
        'text/plain',
        'a=1&b=%20x&c&d=%2F+/',
      ]);
    },
  ],
  [
    'POST 1 MiB',
    async (t, port) => {
      const r = await exchange(port, { method: 'POST', target: `${t.mount}/upload`, body: UPLOAD });
      expect([r.status, JSON.parse(text(r))]).toEqual([
        200,
        { contentLength: String(UPLOAD.length), length: UPLOAD.length, sha256: sha256(UPLOAD) },
      ]);
    },
  ],
  [
    'chunked POST',
    async (t, port) => {
      const r = await exchange(port, {
        method: 'POST',
        target: `${t.mount}/upload`,
        chunks: CHUNKS,
      });
      const want = expectedChunked(t);
      if ('status' in want) {
        expect(r.status).toBe(want.status);
        return;
      }
      expect([r.status, JSON.parse(text(r))]).toEqual([
        200,
        { contentLength: want.contentLength, length: CHUNKED.length, sha256: sha256(CHUNKED) },
      ]);
    },
  ],
  [
    'bytes 0x80-0xFF in the path, the query and a header value',
    async (t, port) => {
      const r = await exchange(port, {
        target: `${t.mount}/bytes/${HIGH}%41%ff?q=${HIGH}%ff`,
        headers: [['X-High', HIGH]],
      });
      expect([r.status, JSON.parse(text(r))]).toEqual([
        200,
        { path: hex(`/bytes/${HIGH}A\xff`), query: hex(`q=${HIGH}%ff`), header: hex(HIGH) },
      ]);
    },
  ],
  [
    'repeated headers and X-Foo-Bar against X_Foo_Bar',
    async (t, port) => {
      const r = await exchange(port, {
        target: `${t.mount}/headers`,
        headers: [
          ['X-Multi', 'a'],
          ['X-Foo-Bar', 'dash'],
          ['Cookie', 'a=1'],
          ['X-Multi', 'b'],
          ['X_Foo_Bar', 'under'],
          ['Cookie', 'b=2'],
        ],
      });
      expect([r.status, JSON.parse(text(r))]).toEqual([
        200,
        { ...expectedRepeats(t), fooBar: expectedFooBar(t) },
      ]);
    },
  ],
  [
    'a redirect',
    async (t, port) => {
      const r = await exchange(port, { target: `${t.mount}/redirect` });
      expect([r.status, header(r, 'location')]).toEqual([302, 'http://elsewhere.example/target']);
    },
  ],
  [
    'a 404 from the app',
    async (t, port) => {
      const r = await exchange(port, { target: `${t.mount}/missing` });
      expect([r.status, header(r, 'content-type'), text(r)]).toEqual([
        404,
        'text/plain',
        'no route /missing',
      ]);
    },
  ],
  [
    'an app error',
    async (t, port) => {
      const r = await exchange(port, { target: `${t.mount}/error` });
      expect([r.status, header(r, 'content-type'), text(r)]).toEqual([
        500,
        'text/plain; charset=us-ascii',
        'Internal Server Error\n',
      ]);
    },
  ],
  [
    'a 10 MiB streamed download',
    async (t, port) => {
      const r = await exchange(port, { target: `${t.mount}/download` });
      expect([r.status, header(r, 'content-type'), r.body.length, sha256(r.body)]).toEqual([
        200,
        'application/octet-stream',
        DOWNLOAD_CHUNK * DOWNLOAD_CHUNKS,
        DOWNLOAD_SHA,
      ]);
    },
  ],
  [
    'the environ of a reference request',
    async (t, port) => {
      const r = await exchange(port, { target: `${t.mount}/environ/a%20b/%C3%A9?x=1&y=%41+z` });
      expect([r.status, JSON.parse(text(r))]).toEqual([200, expectedEnviron(t)]);
    },
  ],
];

/**
 * One `describe` per target, one `it` per case of the matrix, against 127.0.0.1:port(). A
 * target whose protocol tsgi does not speak yet ({@link missingProtocol}) is skipped with a
 * loud message, and fails under CI=true.
 */
export function describeMatrix(targets: readonly MatrixTarget[], port: () => number): void {
  for (const t of targets) {
    const missing = missingProtocol(t.protocol);
    if (missing !== null) {
      console.warn(`\n!!!!! ${t.name}: the matrix is SKIPPED until tsgi has ${missing} !!!!!\n`);
      if (isCI) {
        it(`${t.name} (${t.mount})`, () => {
          throw new Error(`${t.name} needs ${missing}`);
        });
      }
      continue;
    }
    describe(`${t.name} (${t.mount})`, () => {
      for (const [name, run] of CASES) it(name, () => run(t, port()));
    });
  }
}

/** The targets whose protocol tsgi speaks. */
export const ready = (targets: readonly MatrixTarget[]) =>
  targets.filter((t) => missingProtocol(t.protocol) === null);

/** Expects `GET {mount}/query?via={mount}` to answer 200 with the query, through each mount. */
export async function expectQueries(port: number, mounts: readonly string[]): Promise<void> {
  for (const mount of mounts) {
    const r = await exchange(port, { target: `${mount}/query?via=${mount}` });
    expect([mount, r.status, r.body.toString('latin1')]).toEqual([mount, 200, `via=${mount}`]);
  }
}

/** How a test runs one example configuration of examples/. */
export interface Example {
  /** The file, relative to the repository. */
  file: string;
  /** Ports written in the file ("8080"): each becomes a free port, in every place. */
  ports: string[];
  /** Other replacements ([text or pattern, replacement], every occurrence) in a temp dir. */
  edits: (dir: string) => [string | RegExp, string][];
  /** Starts the front server with the edited text in `dir`, waiting on the first port. */
  start: (dir: string, conf: string, port: number) => Promise<Child>;
  /** Stops it (default: Child.stop). */
  stop?: (child: Child) => Promise<void>;
}

/**
 * Starts an example configuration as written (ports and the given paths changed), runs `check`
 * with its ports, and always stops the server and removes its temp dir.
 */
export async function runExample(
  example: Example,
  check: (ports: number[]) => Promise<void>,
): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tsgi-example-'));
  const ports: number[] = [];
  let conf = readFileSync(join(ROOT, example.file), 'utf8');
  for (const p of example.ports) {
    ports.push(await freePort());
    conf = conf.replaceAll(p, String(ports.at(-1)));
  }
  for (const [from, to] of example.edits(dir)) {
    conf = typeof from === 'string' ? conf.replaceAll(from, to) : conf.replace(from, to);
  }
  const child = await example.start(dir, conf, ports[0]!);
  try {
    await check(ports);
  } finally {
    await (example.stop ?? ((c) => c.stop()))(child);
    rmSync(dir, { recursive: true, force: true });
  }
}
