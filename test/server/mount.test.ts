/**
 * `--mount PREFIX` (lib/server/mount.ts): the request path (SCRIPT_NAME + PATH_INFO) is split
 * again at PREFIX whatever the front server sent; other paths get 404. The Apache
 * mod_proxy_scgi row of test/interop/apache.test.ts shows it behind the server that needs it.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Environ } from '../../lib/gateway/types.js';
import { mountApp, parseMount } from '../../lib/server/mount.js';
import { ensureBuilt } from '../support/build.js';
import { freePort } from '../support/peers.js';
import { httpGet, startTsgi } from '../support/process-manager.js';
import type { Child } from '../support/spawn.js';

describe('parseMount', () => {
  it('keeps the prefix in the environ form, without trailing slashes', () => {
    expect(parseMount('/app')).toBe('/app');
    expect(parseMount('/app/')).toBe('/app');
    expect(parseMount('/a/b//')).toBe('/a/b');
    expect(parseMount('/café')).toBe('/caf\xc3\xa9');
    expect(parseMount('/')).toBeNull();
  });

  it('refuses what cannot be a path prefix', () => {
    expect(() => parseMount('app')).toThrow('"app" must start with "/"');
    expect(() => parseMount('/a?b')).toThrow('without "?", "#" or control characters');
    expect(() => parseMount('/a\nb')).toThrow('without "?", "#" or control characters');
    expect(() => parseMount('/a//b')).toThrow('must not hold empty, "." or ".." segments');
    expect(() => parseMount('/a/./b')).toThrow('must not hold empty, "." or ".." segments');
    expect(() => parseMount('/..')).toThrow('must not hold empty, "." or ".." segments');
  });
});

describe('mountApp', () => {
  const seen: [string, string][] = [];
  const app = mountApp((env, start) => {
    seen.push([env.SCRIPT_NAME, env.PATH_INFO]);
    start('200 OK', [['Content-Type', 'text/plain']]);
    return ['ok'];
  }, '/app');
  const call = (scriptName: string, pathInfo: string) => {
    let status = '';
    let headers: [string, string][] = [];
    const body = app({ SCRIPT_NAME: scriptName, PATH_INFO: pathInfo } as Environ, (s, h) => {
      status = s;
      headers = h;
      return () => {};
    }) as string[];
    return { status, headers, body: Buffer.concat(body.map((b) => Buffer.from(b))).toString() };
  };

  it('splits the path at the prefix whatever SCRIPT_NAME and PATH_INFO said', () => {
    seen.length = 0;
    /* nginx scgi_params / uwsgi_params: no SCRIPT_NAME */
    expect(call('', '/app/x/y').status).toBe('200 OK');
    /* Apache mod_proxy_scgi: the whole path in SCRIPT_NAME */
    expect(call('/app/x/y', '').status).toBe('200 OK');
    /* already right */
    expect(call('/app', '/x/y').status).toBe('200 OK');
    expect(call('/app', '').status).toBe('200 OK');
    expect(call('', '/app/').status).toBe('200 OK');
    expect(seen).toEqual([
      ['/app', '/x/y'],
      ['/app', '/x/y'],
      ['/app', '/x/y'],
      ['/app', ''],
      ['/app', '/'],
    ]);
  });

  it('answers 404 outside the prefix, without calling the app', () => {
    seen.length = 0;
    for (const [s, p] of [
      ['', '/apple'],
      ['', '/other/app'],
      ['', '/'],
      ['/ap', ''],
    ] as const) {
      expect(call(s, p)).toEqual({
        status: '404 Not Found',
        headers: [
          ['Content-Type', 'text/plain; charset=us-ascii'],
          ['Content-Length', '10'],
        ],
        body: 'Not Found\n',
      });
    }
    expect(seen).toEqual([]);
  });
});

describe('tsgi serve --mount', () => {
  let cli = '';
  const dir = mkdtempSync(join(tmpdir(), 'tsgi-mount-'));
  const children: Child[] = [];
  beforeAll(async () => {
    cli = await ensureBuilt();
    writeFileSync(
      join(dir, 'app.mjs'),
      `export default (env, start) => {
  start('200 OK', [['Content-Type', 'text/plain; charset=latin1']]);
  return [JSON.stringify([env.SCRIPT_NAME, env.PATH_INFO, env.QUERY_STRING])];
};`,
    );
  });
  afterEach(async () => {
    for (const c of children.splice(0)) await c.stop();
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  for (const workers of [[], ['--workers', '1']]) {
    it(`${workers.length === 0 ? 'one process' : 'a master'}: SCRIPT_NAME is the prefix`, async () => {
      const port = await freePort();
      const c = await startTsgi(
        cli,
        ['app.mjs', '--http', `127.0.0.1:${port}`, '--mount', '/café/', ...workers],
        { cwd: dir },
      );
      children.push(c);
      const get = async (path: string) => {
        const r = await httpGet(port, path);
        return [r.status, r.body];
      };
      expect(await get('/caf%C3%A9/a%20b/c?q=1')).toEqual([
        200,
        JSON.stringify(['/caf\xc3\xa9', '/a b/c', 'q=1']),
      ]);
      expect(await get('/caf%C3%A9')).toEqual([200, JSON.stringify(['/caf\xc3\xa9', '', ''])]);
      expect(await get('/caf%C3%A9s')).toEqual([404, 'Not Found\n']);
      expect(await get('/')).toEqual([404, 'Not Found\n']);
    });
  }
});
