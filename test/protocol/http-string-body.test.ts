/**
 * tsgi's HTTP listener (lib/protocol/http.ts) sending a short string body: the gateway hands
 * it over as a latin-1 string (Sink#headText), and the bytes on the wire are those latin-1
 * bytes, with the Content-Length the gateway counted; a character above U+00FF is refused
 * before anything is written.
 */
import { connect, type AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { createHttpServer, type HttpServer } from '../../lib/protocol/http.js';
import type { App } from '../../lib/gateway/types.js';

let server: HttpServer | null = null;
afterEach(async () => {
  const s = server;
  server = null;
  if (s !== null) await new Promise<void>((r) => s.close(() => r()));
});

/** One request on a fresh connection; the raw response bytes once the server closed it. */
async function exchange(app: App, errors?: Writable): Promise<Buffer> {
  const s = createHttpServer(app, errors ? { errors } : {});
  server = s;
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const { port } = s.address() as AddressInfo;
  return new Promise((resolve, reject) => {
    const c = connect(port, '127.0.0.1');
    const got: Buffer[] = [];
    c.on('data', (d: Buffer) => got.push(d));
    c.on('error', reject);
    c.on('close', () => resolve(Buffer.concat(got)));
    c.write('GET / HTTP/1.1\r\nHost: example.org\r\nConnection: close\r\n\r\n');
  });
}

describe('HTTP listener, string bodies', () => {
  it('sends a latin-1 string body as its latin-1 bytes, head and body in order', async () => {
    const raw = await exchange((_env, start) => {
      start('200 OK', [['Content-Type', 'text/plain; charset=iso-8859-1']]);
      return ['caf\xe9 \xff'];
    });
    const text = raw.toString('latin1');
    const split = text.indexOf('\r\n\r\n');
    expect(text.slice(0, text.indexOf('\r\n'))).toBe('HTTP/1.1 200 OK');
    const head = text.slice(0, split).split('\r\n').slice(1);
    expect(head).toContain('Content-Type: text/plain; charset=iso-8859-1');
    expect(head).toContain('Content-Length: 6');
    expect(raw.subarray(split + 4)).toEqual(Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xff]));
  });

  it('keeps the reason phrase the app gave', async () => {
    const raw = await exchange((_env, start) => {
      start('201 Made It', [['Content-Type', 'text/plain']]);
      return ['ok'];
    });
    const text = raw.toString('latin1');
    expect(text.slice(0, text.indexOf('\r\n'))).toBe('HTTP/1.1 201 Made It');
    expect(text.endsWith('\r\n\r\nok')).toBe(true);
  });

  it('answers 500 for a character above U+00FF, nothing of the body written', async () => {
    const logged: string[] = [];
    const errors = new Writable({
      write(chunk: Buffer, _enc, done) {
        logged.push(chunk.toString('latin1'));
        done();
      },
    });
    const raw = await exchange((_env, start) => {
      start('200 OK', [['Content-Type', 'text/plain']]);
      return ['caf\u0101'];
    }, errors);
    const text = raw.toString('latin1');
    const split = text.indexOf('\r\n\r\n');
    expect(text.slice(0, text.indexOf('\r\n'))).toBe('HTTP/1.1 500 Internal Server Error');
    expect(text.slice(0, split).split('\r\n')).toContain('Content-Length: 22');
    expect(text.slice(split + 4)).toBe('Internal Server Error\n');
    expect(logged.join('')).toMatch(
      /^tsgi: error in application: TypeError: body chunk is not a latin-1 string \(a character is above U\+00FF\)\n/,
    );
  });
});
