/**
 * `tsgi request` (the built CLI): the status line, the headers as received and the body byte
 * for byte, against php-fpm (FastCGI, --root) and tsgi's own SCGI and uwsgi servers; exit
 * status 1 on a connection error, 2 on a usage error.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { AddressInfo, Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createScgiServer, createUwsgiServer, type App } from '../../lib/index.js';
import { listen } from '../../lib/server/listen.js';
import { findPhpFpm, startPhpFpm } from '../support/backends.js';
import { ensureBuilt } from '../support/build.js';
import { freePort, isCI, missingPeerMessage } from '../support/peers.js';
import type { Child } from '../support/spawn.js';

const PHP_ROOT = join(import.meta.dirname, '..', 'client', 'php');
const bin = findPhpFpm();
let cli: string;
let dir: string;

interface Run {
  code: number;
  stdout: Buffer;
  stderr: string;
}

function run(args: string[], input?: Buffer): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [cli, 'request', ...args],
      { encoding: 'buffer', maxBuffer: 64 * 1024 * 1024 },
      (err, stdout, stderr) =>
        resolve({
          code: err === null ? 0 : Number((err as { code?: number }).code ?? -1),
          stdout,
          stderr: stderr.toString(),
        }),
    );
    child.stdin!.end(input);
  });
}

beforeAll(async () => {
  cli = await ensureBuilt();
  dir = mkdtempSync(join(tmpdir(), 'tsgi-request-'));
}, 120000);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('usage and connection errors', () => {
  it('a refused connection exits 1 with the reason on stderr', async () => {
    const port = await freePort();
    const r = await run([`127.0.0.1:${port}`, '/x']);
    expect([r.code, r.stdout.length]).toEqual([1, 0]);
    expect(r.stderr).toContain(`cannot connect to 127.0.0.1:${port}`);
  });

  it.each([
    [['127.0.0.1:1'], 'expected ADDR and PATH'],
    [['127.0.0.1:1', 'x'], 'PATH must start with "/"'],
    [['127.0.0.1:1', '--scgi', '--uwsgi', '/'], 'give one of'],
    [['127.0.0.1:1', '--param', 'NOEQUALS', '/'], '--param takes NAME=VALUE'],
    [['nonsense', '/'], 'bad backend address'],
  ])('%j exits 2', async (args, message) => {
    const r = await run(args);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(message);
  });
});

describe('against tsgi SCGI and uwsgi servers', () => {
  const servers: Server[] = [];
  const app: App = async (env, start) => {
    const chunks: Buffer[] = [];
    for await (const c of env['tsgi.input']) chunks.push(c as Buffer);
    start('202 Accepted', [
      ['Content-Type', 'application/octet-stream'],
      ['X-Seen', `${env.REQUEST_METHOD} ${env.PATH_INFO} ${env.QUERY_STRING} ${env.HTTP_X_A}`],
      ['X-Rep', '1'],
      ['X-Rep', '2'],
    ]);
    return [Buffer.from([0, 13, 10, 255]), Buffer.concat(chunks)];
  };
  afterAll(async () => {
    for (const s of servers) await new Promise((r) => s.close(r));
  });

  for (const protocol of ['scgi', 'uwsgi'] as const) {
    it(`--${protocol}: -X, --param, --data FILE; output byte for byte`, async () => {
      const server =
        protocol === 'scgi'
          ? createScgiServer(app, { log: () => {} })
          : createUwsgiServer(app, { log: () => {} });
      await listen(server, { type: 'tcp', host: '127.0.0.1', port: 0 });
      servers.push(server);
      const file = join(dir, `${protocol}.bin`);
      writeFileSync(file, Buffer.from([1, 2, 3, 0, 200]));
      const r = await run([
        `127.0.0.1:${(server.address() as AddressInfo).port}`,
        `--${protocol}`,
        '-X',
        'PUT',
        '--param',
        'HTTP_X_A=b=c',
        '--data',
        file,
        '/p%41th?q=1',
      ]);
      expect([r.code, r.stderr]).toEqual([0, '']);
      const head =
        (protocol === 'scgi' ? 'Status: ' : 'HTTP/1.1 ') +
        '202 Accepted\r\nContent-Type: application/octet-stream\r\n' +
        'X-Seen: PUT /pAth q=1 b=c\r\nX-Rep: 1\r\nX-Rep: 2\r\nContent-Length: 9\r\n\r\n';
      expect(
        r.stdout.equals(
          Buffer.concat([Buffer.from(head), Buffer.from([0, 13, 10, 255, 1, 2, 3, 0, 200])]),
        ),
      ).toBe(true);
    });
  }
});

describe.runIf(bin === null && isCI)('php-fpm', () => {
  it('is installed', () => {
    throw new Error(missingPeerMessage('php-fpm', 'php-fpm'));
  });
});

describe.runIf(bin !== null)('against php-fpm', () => {
  let fpm: Child;
  let address: string;
  beforeAll(async () => {
    address = `127.0.0.1:${await freePort()}`;
    fpm = await startPhpFpm(bin!, dir, [{ name: 'cli', listen: address, children: 2 }]);
  }, 30000);
  afterAll(async () => {
    await fpm?.stop();
  });

  it('--root: binary output byte for byte after the head', async () => {
    const r = await run([address, '--root', PHP_ROOT, '/binary.php']);
    const all = Buffer.alloc(256);
    for (let i = 0; i < 256; i++) all[i] = i;
    expect(r.code).toBe(0);
    expect(
      r.stdout.equals(
        Buffer.concat([
          Buffer.from('Status: 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n'),
          ...Array(1024).fill(all),
        ]),
      ),
    ).toBe(true);
  });

  it('repeated Set-Cookie lines as received', async () => {
    const r = await run([address, '--root', PHP_ROOT, '/cookies.php']);
    expect(r.stdout.toString()).toBe(
      'Status: 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nSet-Cookie: c=3\r\n' +
        'X-Colon: a:b: c\r\nContent-type: text/html\r\n\r\nthree cookies\n',
    );
  });

  it('--data - reads stdin whole and sends its CONTENT_LENGTH', async () => {
    const body = Buffer.alloc(300000, 0x5a);
    const r = await run([address, '--root', PHP_ROOT, '--data', '-', '/upload.php'], body);
    const { createHash } = await import('node:crypto');
    expect(r.stdout.toString()).toContain(
      `\r\n\r\n${body.length} ${createHash('sha256').update(body).digest('hex')} ${body.length}\n`,
    );
  });

  it('a local redirect (Location: /path, no Status) is printed as received, without a status line', async () => {
    const r = await run([address, '--root', PHP_ROOT, '/redirect.php']);
    expect([r.code, r.stdout.toString()]).toEqual([
      0,
      'Location: /info.php/after?from=redirect\r\nSet-Cookie: lost=1\r\n' +
        'Content-type: text/html\r\n\r\nnot sent\n',
    ]);
    expect(r.stderr).toBe(
      'tsgi request: a local redirect to /info.php/after?from=redirect (no status of its own: ' +
        'a web server answers it by running the request again for that path)\n',
    );
  });

  it('a redirect for the client: the Status received, or the 302 CGI gives a URL without one', async () => {
    const withStatus = await run([address, '--root', PHP_ROOT, '/redirect.php?client=1']);
    expect([withStatus.code, withStatus.stderr, withStatus.stdout.toString()]).toEqual([
      0,
      '',
      'Status: 302 Found\r\nLocation: /info.php/after?from=redirect\r\n' +
        'Set-Cookie: lost=1\r\nContent-type: text/html\r\n\r\nnot sent\n',
    ]);
    const url = await run([address, '--root', PHP_ROOT, '/redirect.php?to=http://example.com/x']);
    expect([url.code, url.stderr, url.stdout.toString()]).toEqual([
      0,
      '',
      'Status: 302 Found\r\nLocation: http://example.com/x\r\n' +
        'Set-Cookie: lost=1\r\nContent-type: text/html\r\n\r\nnot sent\n',
    ]);
  });

  it('FastCGI stderr goes to stderr; a 404 is still exit 0', async () => {
    const r = await run([address, '--root', PHP_ROOT, '/missing.php']);
    expect([r.code, r.stdout.toString().split('\r\n')[0]]).toEqual([0, 'Status: 404 Not Found']);
    expect(r.stderr).toContain('Primary script unknown');
  });
});
