/**
 * examples/php-fpm/express.mjs and hono.mjs (the README's "Talking to php-fpm and uWSGI"
 * examples): started as written, with PHP_FPM and PORT set, against a php-fpm this file
 * starts; exact status, body and cookies.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findPhpFpm, startPhpFpm } from '../support/backends.js';
import { ensureBuilt, ROOT } from '../support/build.js';
import { freePort, isCI, missingPeerMessage } from '../support/peers.js';
import { startChild, type Child } from '../support/spawn.js';

const bin = findPhpFpm();

function get(
  port: number,
  path: string,
): Promise<{ status: number; cookies: string[]; text: string }> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let text = '';
      res.setEncoding('latin1');
      res.on('data', (c: string) => (text += c));
      res.on('end', () =>
        resolve({ status: res.statusCode!, cookies: res.headers['set-cookie'] ?? [], text }),
      );
    })
      .on('error', reject)
      .end();
  });
}

it('the README shows the two examples exactly as the files run', () => {
  const readme = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Talking to php-fpm and uWSGI'));
  for (const file of ['express.mjs', 'hono.mjs']) {
    const code = readFileSync(join(ROOT, 'examples', 'php-fpm', file), 'utf8');
    expect(section).toContain('```js\n' + code + '```');
  }
});

describe.runIf(bin === null && isCI)('php-fpm', () => {
  it('is installed', () => {
    throw new Error(missingPeerMessage('php-fpm', 'php-fpm'));
  });
});

describe.runIf(bin !== null)('examples/php-fpm', () => {
  let dir: string;
  let fpm: Child;
  let address: string;
  beforeAll(async () => {
    await ensureBuilt();
    dir = mkdtempSync(join(tmpdir(), 'tsgi-php-examples-'));
    address = `127.0.0.1:${await freePort()}`;
    fpm = await startPhpFpm(bin!, dir, [{ name: 'examples', listen: address, children: 2 }]);
  }, 120000);
  afterAll(async () => {
    await fpm?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  for (const [file, robots] of [
    ['express.mjs', { status: 200, text: 'User-agent: *\nDisallow:\n' }],
    ['hono.mjs', { status: 404, text: '404 Not Found\n' }],
  ] as const) {
    describe(file, () => {
      let child: Child;
      let port: number;
      beforeAll(async () => {
        port = await freePort();
        child = startChild(process.execPath, [join(ROOT, 'examples', 'php-fpm', file)], {
          env: { ...process.env, PHP_FPM: address, PORT: String(port) },
        });
        for (;;) {
          if (child.stdout().includes('listening on')) break;
          const exited = await Promise.race([
            child.exited.then(() => true),
            new Promise((r) => setTimeout(() => r(false), 50)),
          ]);
          if (exited) throw new Error(`${file} exited: ${child.stderr()}`);
        }
      }, 30000);
      afterAll(async () => {
        await child?.stop();
      });

      it('its own route, the index script, PATH_INFO and cookies, the rest', async () => {
        expect(await get(port, '/health')).toEqual({ status: 200, cookies: [], text: 'ok\n' });
        expect(await get(port, '/?x=1')).toEqual({
          status: 200,
          cookies: [],
          text: 'Hello from PHP! GET /?x=1\n',
        });
        expect(await get(port, '/blog/post.php/2024/hello')).toEqual({
          status: 200,
          cookies: ['seen=1', 'theme=dark'],
          text: 'post /2024/hello via /blog/post.php\n',
        });
        expect(await get(port, '/robots.txt')).toMatchObject(robots);
      });
    });
  }
});
