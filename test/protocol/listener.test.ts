/**
 * Listening sockets bound by the addon (lib/protocol/listener.ts), and a protocol server that
 * listens on them with the native transport: address(), the unix socket file, errors and
 * close() as net.Server gives them.
 */
import { connect } from 'node:net';
import { existsSync, lstatSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { bindFdNow, socketCalls } from '../../lib/protocol/listener.js';
import { createScgiServer } from '../../lib/protocol/scgi.js';
import type { App } from '../../lib/gateway/types.js';
import { serverTransport, nativeTransport } from '../../lib/protocol/transport.js';
import { freePort } from '../support/peers.js';

const dir = mkdtempSync(join(tmpdir(), 'tsgi-listener-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const calls = socketCalls();
const d = calls === null ? describe.skip : describe;
if (calls === null && process.env.CI === 'true') throw new Error('the addon has no socket calls');

function exchange(target: { port: number } | { path: string }, bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = 'path' in target ? connect(target.path) : connect(target.port, '127.0.0.1');
    let out = '';
    s.on('data', (b) => (out += b.toString('latin1')));
    s.on('end', () => resolve(out));
    s.on('error', reject);
    s.end(bytes);
  });
}

const REQUEST = '24:CONTENT_LENGTH\x000\x00SCGI\x001\x00,';

d('listening sockets bound by the addon', () => {
  it('binds a TCP port, listening, that then refuses a second bind with EADDRINUSE', async () => {
    const port = await freePort();
    const a = bindFdNow(calls!, { host: '127.0.0.1', port });
    try {
      expect(calls!.localAddress(a.fd)).toEqual(['127.0.0.1', port, 4]);
      expect(() => bindFdNow(calls!, { host: '127.0.0.1', port })).toThrow(
        expect.objectContaining({ code: 'EADDRINUSE', syscall: 'listen' }),
      );
    } finally {
      a.close();
    }
    bindFdNow(calls!, { host: '127.0.0.1', port }).close();
  });

  it('binds IPv6 and reports it as such', async () => {
    const port = await freePort();
    let b;
    try {
      b = bindFdNow(calls!, { host: '::1', port });
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL') return;
      throw err;
    }
    expect(calls!.localAddress(b.fd)).toEqual(['::1', port, 6]);
    b.close();
  });

  it('removes the unix socket file it made on close, but not a file put there since', () => {
    const path = join(dir, 'a.sock');
    const a = bindFdNow(calls!, { path });
    expect(lstatSync(path).isSocket()).toBe(true);
    expect(calls!.localAddress(a.fd)).toBeUndefined();
    a.close();
    expect(existsSync(path)).toBe(false);
    const b = bindFdNow(calls!, { path });
    rmSync(path);
    writeFileSync(path, 'not a socket');
    b.close();
    expect(readText(path)).toBe('not a socket');
    rmSync(path);
  });

  it('refuses a path that exists (EADDRINUSE) and one too long for a unix socket', () => {
    const path = join(dir, 'file');
    writeFileSync(path, 'x');
    expect(() => bindFdNow(calls!, { path })).toThrow(
      expect.objectContaining({ code: 'EADDRINUSE' }),
    );
    expect(() => bindFdNow(calls!, { path: join(dir, 'x'.repeat(200)) })).toThrow(
      expect.objectContaining({ code: 'ENAMETOOLONG' }),
    );
    expect(readText(path)).toBe('x');
  });
});

function readText(path: string): string {
  return readFileSync(path, 'utf8');
}

const n = nativeTransport.available ? describe : describe.skip;
n('a protocol server on the native transport listens on its own socket', () => {
  const app: App = (_environ, start) => {
    start('200 OK', [['Content-Type', 'text/plain']]);
    return ['hi'];
  };

  it('answers on TCP, reports address(), emits close once closed and frees the port', async () => {
    const port = await freePort();
    const server = createScgiServer(app, { transport: 'native' });
    await new Promise<void>((r) => server.listen(port, '127.0.0.1', r));
    expect(serverTransport(server)).toBe('native');
    expect(server.listening).toBe(true);
    expect(server.address()).toEqual({ address: '127.0.0.1', family: 'IPv4', port });
    expect(await exchange({ port }, REQUEST)).toBe(
      'Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi',
    );
    await new Promise<void>((r, j) => server.close((e) => (e ? j(e) : r())));
    expect(server.listening).toBe(false);
    expect(server.address()).toBeNull();
    bindFdNow(calls!, { host: '127.0.0.1', port }).close();
  });

  it('serves a unix socket path and removes the file on close', async () => {
    const path = join(dir, 'served.sock');
    const server = createScgiServer(app, { transport: 'native' });
    await new Promise<void>((r) => server.listen(path, r));
    expect(server.address()).toBe(path);
    expect(await exchange({ path }, REQUEST)).toContain('\r\n\r\nhi');
    await new Promise<void>((r) => server.close(() => r()));
    expect(existsSync(path)).toBe(false);
  });

  it("emits 'error' EADDRINUSE for a taken port, and close() then says it is not running", async () => {
    const port = await freePort();
    const taken = bindFdNow(calls!, { host: '127.0.0.1', port });
    const server = createScgiServer(app, { transport: 'native' });
    const err = await new Promise<NodeJS.ErrnoException>((r) => {
      server.once('error', r);
      server.listen(port, '127.0.0.1');
    });
    taken.close();
    expect(err.code).toBe('EADDRINUSE');
    expect(server.listening).toBe(false);
    const closeErr = await new Promise<Error | undefined>((r) => server.close(r));
    expect((closeErr as NodeJS.ErrnoException).code).toBe('ERR_SERVER_NOT_RUNNING');
  });
});
