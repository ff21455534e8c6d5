/**
 * The request watchdog (--timeout, native): in a lone `tsgi serve` process (no master), a
 * request stuck in a busy loop gets a complete 504 answer written natively on its connection,
 * byte for byte per protocol (FastCGI, SCGI, uwsgi, HTTP), one log line, and the process exits with status 124. A request
 * that only waits past --timeout is answered 504 from JavaScript and the process stays.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../support/build.js';
import { FcgiClient, params } from '../support/fcgi-client.js';
import { isCI } from '../support/peers.js';
import { startTsgi, tick } from '../support/process-manager.js';
import { latin1, RawClient } from '../support/raw-client.js';
import { scgiRequest } from '../support/scgi-client.js';
import { startChild, type Child } from '../support/spawn.js';
import { uwsgiRequest } from '../support/uwsgi-client.js';
import { loadNativeBinding } from '../../lib/codec/native.js';

const APP = `
export default async function app(env, start) {
  if (env.PATH_INFO === '/loop') for (;;) {}
  if (env.PATH_INFO === '/wait') await new Promise((r) => setTimeout(r, 1500));
  start('200 OK', [['Content-Type', 'text/plain']]);
  return ['ok ' + process.pid];
}
`;

const BODY = 'Gateway Timeout\n';
const CGI_HEAD =
  'Status: 504 Gateway Timeout\r\nContent-Type: text/plain; charset=us-ascii\r\n' +
  'Content-Length: 16\r\n\r\n';
const HTTP_HEAD =
  'HTTP/1.1 504 Gateway Timeout\r\nContent-Type: text/plain; charset=us-ascii\r\n' +
  'Content-Length: 16\r\nConnection: close\r\n\r\n';

/** The FastCGI answer, framed here by hand: STDOUT(head+body, padded), STDOUT end, END_REQUEST. */
function fcgi504(id: number): Buffer {
  const content = latin1(CGI_HEAD + BODY);
  const pad = (8 - (content.length % 8)) % 8;
  const header = (type: number, len: number, padding: number) =>
    Buffer.from([1, type, id >> 8, id & 255, len >> 8, len & 255, padding, 0]);
  return Buffer.concat([
    header(6, content.length, pad),
    content,
    Buffer.alloc(pad),
    header(6, 0, 0),
    header(3, 8, 0),
    Buffer.alloc(8),
  ]);
}

const LINE =
  'tsgi: the event loop was blocked longer than --timeout 1s with requests in flight ' +
  '(a busy loop?): answered 1 of them 504 Gateway Timeout; exiting\n';

/** The addon has the watchdog (POSIX builds); CI=true requires it. */
const addon = loadNativeBinding() as { watchdogStart?: unknown } | null;
const hasWatchdog = typeof addon?.watchdogStart === 'function';
if (!hasWatchdog) {
  const why = 'the native addon with the request watchdog is not loaded: watchdog tests skipped';
  if (isCI) it('the request watchdog is built', () => expect.fail(why));
  else process.stderr.write(`\n*** ${why} ***\n\n`);
}

describe.skipIf(!hasWatchdog)('request watchdog in one process', () => {
  let cli = '';
  let dir = '';
  const children: Child[] = [];
  let n = 0;

  beforeAll(async () => {
    cli = await ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'tsgi-watchdog-'));
    writeFileSync(join(dir, 'app.mjs'), APP);
  });
  afterEach(async () => {
    for (const c of children.splice(0)) await c.stop();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  async function serve(protocol: string, json = false) {
    const sock = join(dir, `s${++n}.sock`);
    const args = [join(dir, 'app.mjs'), `--${protocol}`, `unix:${sock}`, '--timeout', '1'];
    let child: Child;
    if (json) {
      child = startChild(process.execPath, [cli, 'serve', ...args, '--log-format', 'json'], {
        cwd: dir,
      });
      await child.waitForStderr(/"event":"listening"/);
    } else child = await startTsgi(cli, args, { cwd: dir });
    children.push(child);
    return { child, sock };
  }

  it('FastCGI: STDOUT with a 504, END_REQUEST, on a kept connection; exits with status 124', async () => {
    const { child, sock } = await serve('fastcgi');
    const c = await FcgiClient.connect(sock);
    c.request(7, params('/loop'), '', { keepConn: true });
    await c.serverEnded();
    expect(Buffer.concat(c.chunks)).toEqual(fcgi504(7));
    expect(c.error).toBe(null);
    expect(await child.exited).toBe(124);
    expect(child.stderr().endsWith(LINE)).toBe(true);
  });

  it('SCGI: a Status: 504 head and body', async () => {
    const { child, sock } = await serve('scgi');
    const c = await RawClient.connect(sock);
    c.socket.write(scgiRequest(['REQUEST_METHOD', 'GET', 'PATH_INFO', '/loop']));
    await c.serverEnded();
    expect(Buffer.concat(c.chunks).toString('latin1')).toBe(CGI_HEAD + BODY);
    expect(await child.exited).toBe(124);
    expect(child.stderr().endsWith(LINE)).toBe(true);
  });

  it('uwsgi: an HTTP/1.1 504 head and body', async () => {
    const { child, sock } = await serve('uwsgi');
    const c = await RawClient.connect(sock);
    c.socket.write(uwsgiRequest(['REQUEST_METHOD', 'GET', 'PATH_INFO', '/loop']));
    await c.serverEnded();
    expect(Buffer.concat(c.chunks).toString('latin1')).toBe(HTTP_HEAD + BODY);
    expect(await child.exited).toBe(124);
  });

  it('HTTP: an HTTP/1.1 504 head and body', async () => {
    const { child, sock } = await serve('http');
    const c = await RawClient.connect(sock);
    c.socket.write(latin1('GET /loop HTTP/1.1\r\nHost: localhost\r\n\r\n'));
    await c.serverEnded();
    expect(Buffer.concat(c.chunks).toString('latin1')).toBe(HTTP_HEAD + BODY);
    expect(await child.exited).toBe(124);
    expect(child.stderr().endsWith(LINE)).toBe(true);
  });

  it('JSON logs: the line is one JSON object', async () => {
    const { child, sock } = await serve('fastcgi', true);
    const c = await FcgiClient.connect(sock);
    c.request(1, params('/loop'), '', { keepConn: false });
    await c.serverEnded();
    expect(await child.exited).toBe(124);
    const last = child.stderr().trimEnd().split('\n').pop()!;
    const entry = JSON.parse(last) as Record<string, unknown>;
    expect(entry).toMatchObject({
      level: 'error',
      pid: child.proc.pid,
      event: 'timeout-exit',
      msg: LINE.slice('tsgi: '.length, -1),
    });
    expect(entry.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
  });

  it('a request that only waits past --timeout gets its 504 from JavaScript; the process stays', async () => {
    const { child, sock } = await serve('fastcgi');
    const c = await FcgiClient.connect(sock);
    c.request(1, params('/wait'), '', { keepConn: true });
    const r = await c.reply(1);
    expect(r.stdout.toString('latin1')).toMatch(
      /^Status: 504 Gateway Timeout\r\n[^]*\r\n\r\nGateway Timeout\n$/,
    );
    await tick(1500);
    c.request(2, params('/'), '', { keepConn: true });
    const ok = await c.reply(2);
    expect(ok.stdout.toString('latin1')).toMatch(new RegExp(`\\r\\n\\r\\nok ${child.proc.pid}$`));
    expect(child.proc.exitCode).toBe(null);
  });
});
