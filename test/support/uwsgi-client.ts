/**
 * uwsgi request bytes for tests, written here by hand (not with the codec under test): the
 * 4-byte header (modifier1, size u16 little-endian, modifier2) and the vars block.
 */
import { latin1 } from './raw-client.js';

function u16le(n: number): Buffer {
  return Buffer.from([n & 0xff, n >>> 8]);
}

/** The header and vars block of `pairs`, in order. */
export function uwsgiHead(pairs: readonly string[], modifier1 = 0, modifier2 = 0): Buffer {
  const parts: Buffer[] = [];
  for (const s of pairs) {
    const b = latin1(s);
    parts.push(u16le(b.length), b);
  }
  const vars = Buffer.concat(parts);
  return Buffer.concat([
    Buffer.from([modifier1]),
    u16le(vars.length),
    Buffer.from([modifier2]),
    vars,
  ]);
}

/**
 * A whole request: the head and the body. With a body, the first CONTENT_LENGTH of `pairs` gets
 * its length (one is added when there is none).
 */
export function uwsgiRequest(pairs: readonly string[], body: string | Buffer = ''): Buffer {
  const b = typeof body === 'string' ? latin1(body) : body;
  const all = [...pairs];
  if (b.length !== 0) {
    let i = 0;
    while (i < all.length && all[i] !== 'CONTENT_LENGTH') i += 2;
    if (i < all.length) all[i + 1] = String(b.length);
    else all.push('CONTENT_LENGTH', String(b.length));
  }
  return Buffer.concat([uwsgiHead(all), b]);
}

/** Splits a raw HTTP response into its status line, header lines and body. */
export function parseHttp(bytes: Buffer): { status: string; head: string[]; body: string } {
  const s = bytes.toString('latin1');
  const split = s.indexOf('\r\n\r\n');
  if (split === -1) throw new Error(`no header block in ${JSON.stringify(s.slice(0, 200))}`);
  const lines = s.slice(0, split).split('\r\n');
  return { status: lines[0]!, head: lines.slice(1), body: s.slice(split + 4) };
}
