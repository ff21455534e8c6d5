/** BodyInput (lib/gateway/input.ts), the request body as tsgi.input. */
import { describe, expect, it } from 'vitest';
import { BodyInput } from '../../lib/gateway/input.js';

describe('BodyInput (tsgi.input)', () => {
  const readAll = async (input: BodyInput) => {
    const parts: Buffer[] = [];
    for await (const c of input) parts.push(c as Buffer);
    return Buffer.concat(parts).toString('latin1');
  };

  it('ends at CONTENT_LENGTH and drops later bytes', async () => {
    const input = new BodyInput(5);
    expect(input.feed(Buffer.from('abc'))).toBe(true);
    input.feed(Buffer.from('defgh'));
    expect(input.complete).toBe(true);
    input.feed(Buffer.from('ignored'));
    expect(await readAll(input)).toBe('abcde');
  });

  it('ends at the end of body when the length is unknown (chunked upload)', async () => {
    const input = new BodyInput(-1);
    input.feed(Buffer.from('chunk1'));
    input.feed(Buffer.from('chunk2'));
    input.finish();
    expect(await readAll(input)).toBe('chunk1chunk2');
  });

  it('is empty for a zero length', async () => {
    expect(await readAll(new BodyInput(0))).toBe('');
  });

  it('closes prematurely when the body ends short of CONTENT_LENGTH, or on abort', async () => {
    const short = new BodyInput(10);
    short.feed(Buffer.from('abc'));
    short.finish();
    await expect(readAll(short)).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
    const aborted = new BodyInput(-1);
    aborted.abort();
    await expect(readAll(aborted)).rejects.toMatchObject({ code: 'ERR_STREAM_PREMATURE_CLOSE' });
    /* Nobody listening: no uncaught error. */
    const unread = new BodyInput(10);
    unread.abort();
    await new Promise((r) => setTimeout(r, 1));
    expect(unread.destroyed).toBe(true);
  });

  it('reports backpressure and asks for more when the reader drains', async () => {
    const input = new BodyInput(-1);
    let wants = 0;
    input.onWant = () => wants++;
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    const accepted: boolean[] = [];
    for (let i = 0; i < 5; i++) accepted.push(input.feed(chunk));
    expect(accepted).toEqual([true, true, true, false, false]);
    expect(input.blocked).toBe(true);
    expect(wants).toBe(0);
    input.read();
    await new Promise((r) => setImmediate(r));
    expect(wants).toBe(1);
    expect(input.blocked).toBe(false);
  });
});
