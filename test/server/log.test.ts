/**
 * The server's log (lib/server/log.ts): `--log-format json` writes one JSON object per line
 * (pino), `--access-log` adds one line per request (method, path, query, status, bytes,
 * duration), `--no-access-log` turns it off again; text stays `tsgi: ...` lines.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilt } from '../support/build.js';
import { freePort } from '../support/peers.js';
import { httpGet, startTsgi, waitFor } from '../support/process-manager.js';
import { selectedTransport } from '../../lib/protocol/transport.js';
import { RawClient } from '../support/raw-client.js';
import type { Child } from '../support/spawn.js';

let cli = '';
const dir = mkdtempSync(join(tmpdir(), 'tsgi-logs-'));
const children: Child[] = [];
beforeAll(async () => {
  cli = await ensureBuilt();
  writeFileSync(
    join(dir, 'app.mjs'),
    `export default (env, start) => { start('201 Created', [['Content-Type', 'text/plain']]); return ['12345']; };`,
  );
  writeFileSync(
    join(dir, 'throws.mjs'),
    `export default (env) => { throw new Error('app failed on ' + env.PATH_INFO); };`,
  );
});
afterEach(async () => {
  for (const c of children.splice(0)) await c.stop();
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The JSON lines printed so far. */
const jsonLines = (c: Child): Record<string, unknown>[] =>
  c
    .stderr()
    .split('\n')
    .filter((l) => l !== '')
    .map((l) => JSON.parse(l) as Record<string, unknown>);

describe('logs', () => {
  for (const workers of [[], ['--workers', '1']]) {
    const mode = workers.length === 0 ? 'one process' : 'a master';
    it(`${mode}: --log-format json, one object per line, with the access log`, async () => {
      const port = await freePort();
      const child = startTsgi(
        cli,
        [
          'app.mjs',
          '--http',
          `127.0.0.1:${port}`,
          '--log-format',
          'json',
          '--access-log',
          ...workers,
        ],
        { cwd: dir, lines: 0 },
      );
      const c = await child;
      children.push(c);
      await waitFor('the listening line', () =>
        jsonLines(c).some((l) => l.event === 'listening') ? true : undefined,
      );
      expect((await httpGet(port, '/some/path?x=1')).status).toBe(201);
      const request = await waitFor('the request line', () =>
        jsonLines(c).find((l) => l.event === 'request'),
      );
      expect(request).toMatchObject({
        level: 'info',
        msg: 'request',
        method: 'GET',
        path: '/some/path',
        query: 'x=1',
        status: 201,
        bytes: 5,
        remote: '127.0.0.1',
      });
      expect(typeof request.duration_ms).toBe('number');
      expect(typeof request.time).toBe('string');
      const listening = jsonLines(c).find((l) => l.event === 'listening')!;
      expect(listening).toMatchObject({
        level: 'info',
        protocol: 'http',
        address: `127.0.0.1:${port}`,
      });
      expect(listening.msg).toMatch(/^serving app\.mjs over HTTP on 127\.0\.0\.1:[0-9]+ \(/);
      if (workers.length > 0) {
        expect(request.worker).toBe(1);
        expect(request.pid).not.toBe(c.proc.pid);
      } else {
        expect(request.pid).toBe(c.proc.pid);
      }
      await c.stop();
      expect(jsonLines(c).at(-1)).toMatchObject({
        level: 'info',
        msg: 'stopped',
        event: 'stopped',
      });
    });
  }

  it('json: protocol messages and tsgi.errors are JSON entries too, nothing else on stderr', async () => {
    const http = await freePort();
    const scgi = await freePort();
    const c = await startTsgi(
      cli,
      [
        'throws.mjs',
        '--http',
        `127.0.0.1:${http}`,
        '--scgi',
        `127.0.0.1:${scgi}`,
        '--log-format',
        'json',
      ],
      { cwd: dir, lines: 0 },
    );
    children.push(c);
    await waitFor('two listening lines', () =>
      jsonLines(c).filter((l) => l.event === 'listening').length === 2 ? true : undefined,
    );
    /* the gateway protocols name their connection transport (HTTP is node:http's) */
    const listening = jsonLines(c).filter((l) => l.event === 'listening');
    expect(listening.find((l) => l.protocol === 'scgi')!.msg).toMatch(
      new RegExp(
        `^serving throws\\.mjs over SCGI on .* \\((native|ts) codec, ${selectedTransport().name} transport\\)$`,
      ),
    );
    expect(listening.find((l) => l.protocol === 'http')!.msg).toMatch(/ \((native|ts) codec\)$/);
    expect((await httpGet(http, '/here')).status).toBe(500);
    const app = await waitFor('the app error', () => jsonLines(c).find((l) => l.event === 'app'));
    expect(app).toMatchObject({ level: 'error', event: 'app', pid: c.proc.pid });
    expect(app.msg).toContain('Error: app failed on /here');
    /* a netstring whose length is not digits: SCGI closes the connection with a reason */
    const client = await RawClient.connect(scgi);
    client.write('x9:CONTENT_LENGTH\x000\x00,');
    await client.serverEnded();
    const protocol = await waitFor('the SCGI message', () =>
      jsonLines(c).find((l) => l.event === 'protocol'),
    );
    expect(protocol).toMatchObject({ level: 'warn', event: 'protocol', protocol: 'scgi' });
    expect(protocol.msg).toMatch(/^closing SCGI connection from 127\.0\.0\.1:[0-9]+: /);
    await c.stop();
    /* jsonLines() throws on any line that is not one JSON object */
    expect(jsonLines(c).at(-1)).toMatchObject({ event: 'stopped' });
  });

  it('text: the access line; --no-access-log turns it off', async () => {
    const port = await freePort();
    const on = await startTsgi(cli, ['app.mjs', '--http', `127.0.0.1:${port}`, '--access-log'], {
      cwd: dir,
    });
    children.push(on);
    await httpGet(port, '/a?b');
    await on.waitForStderr(/tsgi: 127\.0\.0\.1 "GET \/a\?b" 201 5 [0-9]+\.[0-9]{3} ms\n/);
    await on.stop();
    const port2 = await freePort();
    writeFileSync(join(dir, 'tsgi.config.json'), JSON.stringify({ accessLog: true }));
    try {
      const off = await startTsgi(
        cli,
        ['app.mjs', '--http', `127.0.0.1:${port2}`, '--no-access-log'],
        { cwd: dir },
      );
      children.push(off);
      await httpGet(port2, '/a');
      await off.stop();
      expect(off.stderr()).not.toContain('"GET');
    } finally {
      rmSync(join(dir, 'tsgi.config.json'));
    }
  });
});
