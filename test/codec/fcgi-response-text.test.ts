/**
 * Codec.fcgiResponseText(): the bytes of fcgiResponse() with the body's latin-1 bytes, in both
 * codecs, and the same errors in the same order (arguments, then the body's characters, then
 * the head). And the gateway's use of it: a FastCGI response with a one-string body is the
 * same on the wire as with a Buffer body.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tsCodec } from '../../lib/codec/ts/index.js';
import type { Codec } from '../../lib/codec/types.js';
import { FastcgiServer } from '../../lib/protocol/fastcgi.js';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { App } from '../../lib/gateway/types.js';
import { describeEachCodec, native } from '../support/codecs.js';
import { anyText, headers, hex, latin1Text, outcome, status } from '../support/encoder-cases.js';

describeEachCodec('fcgiResponseText', (codec: Codec) => {
  it('is fcgiResponse with the latin-1 bytes of the body', () => {
    fc.assert(
      fc.property(
        fc.nat(65535),
        status,
        headers,
        latin1Text,
        fc.boolean(),
        (id, st, hs, b, end) => {
          expect(outcome(() => codec.fcgiResponseText(id, st, hs, b, end))).toBe(
            outcome(() => codec.fcgiResponse(id, st, hs, Buffer.from(b, 'latin1'), end)),
          );
        },
      ),
      { numRuns: 300 },
    );
  });

  it('frames a long body in records of at most 65528 bytes', () => {
    const body = 'x'.repeat(70000);
    expect(hex(codec.fcgiResponseText(3, '200 OK', ['A', 'b'], body, true))).toBe(
      hex(codec.fcgiResponse(3, '200 OK', ['A', 'b'], Buffer.from(body, 'latin1'), true)),
    );
  });

  it('refuses a body character above U+00FF before looking at the head', () => {
    for (const [st, hs] of [
      ['200 OK', ['Content-Type', 'text/plain']],
      ['bad status', ['Bad Name', 'x']],
      [7, []],
      ['200 OK', ['odd']],
      ['200 OK', ['A', 9]],
    ] as [string, string[]][]) {
      expect(() => codec.fcgiResponseText(1, st, hs, 'caf\u20ac', false)).toThrow(
        'not a latin-1 string',
      );
    }
    expect(() => codec.fcgiResponseText(70000, '200 OK', [], '\u20ac', false)).toThrow(
      'invalid argument',
    );
    expect(() =>
      codec.fcgiResponseText(1, '200 OK', [], new Uint8Array(1) as unknown as string, false),
    ).toThrow('invalid argument');
  });
});

describe('fcgiResponseText: the native and TypeScript codecs agree', () => {
  it.runIf(native.codec !== null)('on any arguments', () => {
    const n = native.codec!;
    fc.assert(
      fc.property(
        fc.oneof(fc.nat(65535), fc.constantFrom(-1, 65536, 1.5)),
        status,
        headers,
        anyText,
        fc.boolean(),
        (id, st, hs, b, end) => {
          expect(outcome(() => n.fcgiResponseText(id, st, hs, b, end))).toBe(
            outcome(() => tsCodec.fcgiResponseText(id, st, hs, b, end)),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});

describe('a FastCGI response with a one-string body', () => {
  /** The bytes the server writes for one request to `app`. */
  function serve(app: App): Buffer {
    const out: Buffer[] = [];
    const socket = Object.assign(new EventEmitter(), {
      writableNeedDrain: false,
      write: (b: Uint8Array) => out.push(Buffer.from(b)) > 0,
      pause: () => {},
      resume: () => {},
      end: () => {},
      destroy: () => {},
      remoteAddress: '127.0.0.1',
      remotePort: 1,
      localAddress: '127.0.0.1',
      localPort: 9000,
    });
    new FastcgiServer(app, { log: () => {} }).handle(socket as unknown as Socket);
    socket.emit(
      'data',
      Buffer.concat([
        tsCodec.fcgiBeginRequest(1, 1, 1),
        tsCodec.fcgiParams(1, ['REQUEST_METHOD', 'GET', 'SERVER_NAME', 'h', 'SERVER_PORT', '80']),
        tsCodec.fcgiStream(5, 1, new Uint8Array(0), true),
      ]),
    );
    return Buffer.concat(out);
  }

  it('is the same on the wire as with a Buffer body, and a bad character gives a 500', () => {
    for (const body of ['Hello, world!\n', '\xe9\xff\x00', 'y'.repeat(9000)]) {
      const text = serve((_e, start) => {
        start('200 OK', [['Content-Type', 'text/plain']]);
        return [body];
      });
      const bytes = serve((_e, start) => {
        start('200 OK', [['Content-Type', 'text/plain']]);
        return [Buffer.from(body, 'latin1')];
      });
      expect(text.toString('hex')).toBe(bytes.toString('hex'));
    }
    const bad = serve((_e, start) => {
      start('200 OK', [['Content-Type', 'text/plain']]);
      return ['\u20ac'];
    });
    expect(bad.toString('latin1')).toContain('Status: 500 Internal Server Error');
  });
});
