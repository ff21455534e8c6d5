/**
 * Codec.encodeHeadText(): the bytes of encodeHead() followed by the body's latin-1 bytes, in
 * both codecs and both head styles, with the same errors in the same order (arguments, then
 * the body's characters, then the head). And the SCGI and uwsgi servers' use of it: a response
 * with a one-string body is the same on the wire as with a Buffer body, on both transports.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { tsCodec } from '../../lib/codec/ts/index.js';
import type { Codec, HeadStyle } from '../../lib/codec/types.js';
import type { App } from '../../lib/gateway/types.js';
import { describeEachCodec, native } from '../support/codecs.js';
import { anyText, headers, hex, latin1Text, outcome, status } from '../support/encoder-cases.js';
import { eachTransport, streamServers, TEXT, type StreamKind } from '../support/stream-suite.js';
import { SCGI, UWSGI } from '../support/stream-kinds.js';

const style = fc.constantFrom<HeadStyle>('cgi', 'http');

describeEachCodec('encodeHeadText', (codec: Codec) => {
  it('is encodeHead followed by the latin-1 bytes of the body', () => {
    fc.assert(
      fc.property(status, headers, latin1Text, style, (st, hs, b, sty) => {
        const expected = outcome(() => {
          const head = codec.encodeHead(st, hs, sty);
          return Buffer.concat([head, Buffer.from(b, 'latin1')]);
        });
        expect(outcome(() => codec.encodeHeadText(st, hs, b, sty))).toBe(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('writes both head styles exactly', () => {
    const hs = ['Content-Type', 'text/plain', 'X-A', '\xe9'];
    expect(Buffer.from(codec.encodeHeadText('200 OK', hs, 'caf\xe9\n', 'cgi'))).toEqual(
      Buffer.from(
        'Status: 200 OK\r\nContent-Type: text/plain\r\nX-A: \xe9\r\n\r\ncaf\xe9\n',
        'latin1',
      ),
    );
    expect(Buffer.from(codec.encodeHeadText('404 Gone', [], '', 'http'))).toEqual(
      Buffer.from('HTTP/1.1 404 Gone\r\n\r\n', 'latin1'),
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
      expect(() => codec.encodeHeadText(st, hs, 'caf\u20ac', 'cgi')).toThrow(
        'not a latin-1 string',
      );
    }
    expect(() => codec.encodeHeadText('200 OK', [], '\u20ac', 'other' as HeadStyle)).toThrow(
      'invalid argument',
    );
    expect(() =>
      codec.encodeHeadText('200 OK', [], new Uint8Array(1) as unknown as string, 'http'),
    ).toThrow('invalid argument');
  });
});

describe('encodeHeadText: the native and TypeScript codecs agree', () => {
  it.runIf(native.codec !== null)('on any arguments', () => {
    const n = native.codec!;
    fc.assert(
      fc.property(
        status,
        headers,
        anyText,
        fc.constantFrom<HeadStyle>('cgi', 'http', 'x' as HeadStyle),
        (st, hs, b, sty) => {
          expect(outcome(() => n.encodeHeadText(st, hs, b, sty))).toBe(
            outcome(() => tsCodec.encodeHeadText(st, hs, b, sty)),
          );
        },
      ),
      { numRuns: 500 },
    );
  });
});

for (const kind of [SCGI, UWSGI] as StreamKind[]) {
  eachTransport(`a ${kind.title} response with a one-string body`, (t, codec) => {
    const { start } = streamServers(kind, t, codec);

    /** The bytes the server answers one request for `/` with. */
    async function serve(app: App): Promise<Buffer> {
      const { exchange } = await start(app, { raw: true });
      const { c } = await exchange(kind.request(kind.params('/')));
      return Buffer.from(c.text(), 'latin1');
    }

    it('is the same on the wire as with a Buffer body, and a bad character gives a 500', async () => {
      for (const body of ['Hello, world!\n', '\xe9\xff\x00', 'y'.repeat(9000)]) {
        const text = await serve((_e, begin) => {
          begin('200 OK', TEXT);
          return [body];
        });
        const bytes = await serve((_e, begin) => {
          begin('200 OK', TEXT);
          return [Buffer.from(body, 'latin1')];
        });
        expect(text.toString('latin1')).toBe(
          `${kind.statusLine('200 OK')}\r\nContent-Type: text/plain\r\n` +
            `Content-Length: ${body.length}\r\n\r\n${body}`,
        );
        expect(hex(text)).toBe(hex(bytes));
      }
      const bad = await serve((_e, begin) => {
        begin('200 OK', TEXT);
        return ['\u20ac'];
      });
      expect(bad.toString('latin1')).toMatch(
        new RegExp(`^${kind.statusLine('500 Internal Server Error')}\r\n`),
      );
    });
  });
}
