/**
 * The codec and the transport are chosen at their first use, not when tsgi is imported: a bad
 * TSGI_CODEC or TSGI_TRANSPORT never makes the import throw; creating a FastCGI, SCGI or uwsgi
 * server (which needs them) throws the setting's message, and a server given its codec and
 * transport does not look at the environment's choice of codec.
 */
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ensureBuilt, ROOT } from '../support/build.js';

const CODEC_MESSAGE = 'TSGI_CODEC must be "ts" or "native", not "bogus"';
const TRANSPORT_MESSAGE = 'TSGI_TRANSPORT must be "native" or "node", not "bogus"';

/**
 * Runs `body` (an async function body with `tsgi`, the package's ESM entry, imported before it)
 * in a new Node process with `env`; resolves with its stdout lines, or the import's error.
 */
function run(env: Record<string, string>, body: string): { status: number | null; out: string[] } {
  const index = pathToFileURL(join(ROOT, 'dist', 'index.js')).href;
  const source = `
let tsgi;
try {
  tsgi = await import(${JSON.stringify(index)});
} catch (err) {
  console.log('import threw: ' + err.message);
  process.exit(3);
}
console.log('imported');
const attempt = (what, fn) => {
  try {
    const s = fn();
    console.log(what + ': ok');
    s?.close?.();
  } catch (err) {
    console.log(what + ': ' + err.message);
  }
};
${body}`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', source], {
    env: { ...process.env, TSGI_CODEC: '', TSGI_TRANSPORT: '', TSGI_NATIVE_PATH: '', ...env },
    encoding: 'utf8',
  });
  return { status: r.status, out: r.stdout.trim().split('\n') };
}

const SERVERS = `
const app = () => {};
attempt('fastcgi', () => tsgi.createFastcgiServer(app));
attempt('scgi', () => tsgi.createScgiServer(app));
attempt('uwsgi', () => tsgi.createUwsgiServer(app));
attempt('http', () => tsgi.createHttpServer(app));
`;

describe('codec and transport selection', () => {
  it('a bad TSGI_CODEC and TSGI_TRANSPORT: the import does not throw, creating a server does', async () => {
    await ensureBuilt();
    const r = run(
      { TSGI_CODEC: 'bogus', TSGI_TRANSPORT: 'bogus' },
      `${SERVERS}
attempt('codec.name', () => console.log(tsgi.codec.name));
attempt('selectedCodec', () => tsgi.selectedCodec());
console.log('transport problem: ' + tsgi.selectedTransport().problem?.message);`,
    );
    expect(r).toEqual({
      status: 0,
      out: [
        'imported',
        `fastcgi: ${CODEC_MESSAGE}`,
        `scgi: ${CODEC_MESSAGE}`,
        `uwsgi: ${CODEC_MESSAGE}`,
        /* HTTP uses neither the codec nor the transport */
        'http: ok',
        `codec.name: ${CODEC_MESSAGE}`,
        `selectedCodec: ${CODEC_MESSAGE}`,
        `transport problem: ${TRANSPORT_MESSAGE}`,
      ],
    });
  });

  it('a bad TSGI_TRANSPORT alone: the servers that need a transport throw its message', async () => {
    await ensureBuilt();
    const r = run(
      { TSGI_CODEC: 'ts', TSGI_TRANSPORT: 'bogus' },
      `${SERVERS}
console.log('codec: ' + tsgi.selectedCodec().name);`,
    );
    expect(r).toEqual({
      status: 0,
      out: [
        'imported',
        `fastcgi: ${TRANSPORT_MESSAGE}`,
        `scgi: ${TRANSPORT_MESSAGE}`,
        `uwsgi: ${TRANSPORT_MESSAGE}`,
        'http: ok',
        'codec: ts',
      ],
    });
  });

  it('a server given its codec and transport ignores a bad TSGI_CODEC; nothing is chosen at import', async () => {
    await ensureBuilt();
    const r = run(
      { TSGI_CODEC: 'bogus' },
      `attempt('fastcgi', () => tsgi.createFastcgiServer(() => {}, { codec: tsgi.tsCodec, transport: 'node' }));
attempt('scgi', () => tsgi.createScgiServer(() => {}, { codec: tsgi.tsCodec, transport: 'node' }));
process.env.TSGI_CODEC = 'ts';
console.log('chosen at first use: ' + tsgi.selectedCodec().name);`,
    );
    expect(r).toEqual({
      status: 0,
      out: ['imported', 'fastcgi: ok', 'scgi: ok', 'chosen at first use: ts'],
    });
  });
});
