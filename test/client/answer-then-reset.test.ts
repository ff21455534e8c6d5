/**
 * A backend that answers and then resets the connection while the client is still sending the
 * request body (what a backend that closes with the body unread does: its kernel sends RST,
 * not FIN). The answer reaches our receive queue ahead of the reset; it is delivered whole,
 * whether the client's next body write meets the reset first or its next read does. A reset
 * before any answer, or one that cuts an answer short, still fails the request.
 *
 * The backend is a raw node:net server that answers the first bytes it reads and then calls
 * resetAndDestroy() (SO_LINGER 0). A gate orders the rest: the client's body yields its next
 * chunk only once the reset was sent, so the write that follows runs before the client's loop
 * has polled the connection again. Last, the connection itself (BackendSocket): a reader that
 * pauses it keeps what is left readable until it resumes.
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { text } from 'node:stream/consumers';
import { afterEach, describe, expect, it } from 'vitest';
import { BackendSocket } from '../../lib/client/common.js';
import { createClient, type Client, type ClientProtocol } from '../../lib/index.js';

const BODY = 'too large\n';

/** The CGI head and body every backend answers with (the uwsgi one as uWSGI sends it). */
function answer(protocol: ClientProtocol, head: string, body: string): Buffer {
  if (protocol === 'uwsgi') return Buffer.from(`HTTP/1.1 ${head}${body}`, 'latin1');
  const cgi = Buffer.from(`Status: ${head}${body}`, 'latin1');
  if (protocol === 'scgi') return cgi;
  /* FastCGI: STDOUT, its end, END_REQUEST (request id 1, status 0, REQUEST_COMPLETE) */
  const record = (type: number, content: Buffer) =>
    Buffer.concat([
      Buffer.from([1, type, 0, 1, content.length >> 8, content.length & 0xff, 0, 0]),
      content,
    ]);
  return Buffer.concat([record(6, cgi), record(6, Buffer.alloc(0)), record(3, Buffer.alloc(8))]);
}

const HEAD_413 = '413 Payload Too Large\r\nContent-Type: text/plain\r\n\r\n';

/** A promise and its resolve. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { opened, open };
}

let server: Server | null = null;
let client: Client | null = null;
const sockets = new Set<Socket>();
/** Lets a body that waits for the end of the test finish. */
let testEnded = gate();

afterEach(async () => {
  testEnded.open();
  testEnded = gate();
  await client?.close();
  client = null;
  for (const s of sockets) s.destroy();
  sockets.clear();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = null;
});

/**
 * Starts a backend that writes `reply` (when given) at the first bytes of a connection, then
 * resets it (at once, or once `resetWhen` resolves) and opens `reset`; and a client of
 * `protocol` to it.
 */
async function backend(
  protocol: ClientProtocol,
  reply: Buffer | null,
  reset: { open: () => void },
  resetWhen: Promise<void> | null = null,
): Promise<Client> {
  server = createServer((socket) => {
    sockets.add(socket);
    socket.once('data', async () => {
      if (reply !== null) socket.write(reply);
      if (resetWhen !== null) await resetWhen;
      socket.resetAndDestroy();
      reset.open();
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  client = createClient({
    protocol,
    address: `127.0.0.1:${(server.address() as AddressInfo).port}`,
    stderr: () => {},
  });
  return client;
}

const PARAMS = {
  REQUEST_METHOD: 'POST',
  SCRIPT_FILENAME: '/upload',
  CONTENT_TYPE: 'application/octet-stream',
  CONTENT_LENGTH: String(2 * 1024 * 1024),
};

/** A 2 MiB body: 1 KiB, then (once `next` resolves) the rest in 64 KiB chunks. */
async function* upload(next: Promise<void>): AsyncGenerator<Uint8Array> {
  yield Buffer.alloc(1024, 0x61);
  await next;
  for (let n = 1024; n < 2 * 1024 * 1024; n += 64 * 1024) {
    yield Buffer.alloc(Math.min(64 * 1024, 2 * 1024 * 1024 - n), 0x61);
  }
}

for (const protocol of ['fastcgi', 'scgi', 'uwsgi'] as const) {
  describe(`${protocol} client, a backend that answers then resets the connection`, () => {
    it('a body write that meets the reset before the answer was read: the whole answer', async () => {
      const reset = gate();
      const c = await backend(protocol, answer(protocol, HEAD_413, BODY), reset);
      const res = await c.request({ params: PARAMS, body: upload(reset.opened) });
      expect([res.status, res.statusText, res.headers, await text(res.body)]).toEqual([
        413,
        'Payload Too Large',
        [['Content-Type', 'text/plain']],
        BODY,
      ]);
    });

    it('a reset read after the answer, with no body write under way: the whole answer', async () => {
      const reset = gate();
      const headRead = gate();
      const c = await backend(protocol, answer(protocol, HEAD_413, BODY), reset, headRead.opened);
      /* the body stops after 1 KiB until the test ends: only a read meets the reset, which
       * comes once the answer was read (a reset read with the answer would read as a close) */
      const res = await c.request({ params: PARAMS, body: upload(testEnded.opened) });
      headRead.open();
      await reset.opened;
      expect([res.status, await text(res.body)]).toEqual([413, BODY]);
    });

    it('a reset before any answer: ECONNRESET', async () => {
      const reset = gate();
      const c = await backend(protocol, null, reset);
      await expect(c.request({ params: PARAMS, body: upload(reset.opened) })).rejects.toMatchObject(
        { code: 'ECONNRESET' },
      );
    });
  });
}

for (const protocol of ['scgi', 'uwsgi'] as const) {
  describe(`${protocol} client, a reset inside an answer with a Content-Length`, () => {
    it('fewer body bytes than Content-Length: the body fails with ECONNRESET', async () => {
      const reset = gate();
      const head = '200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n';
      const c = await backend(protocol, answer(protocol, head, BODY), reset);
      const res = await c.request({ params: PARAMS, body: upload(reset.opened) });
      expect(res.status).toBe(200);
      await expect(text(res.body)).rejects.toMatchObject({
        code: 'ECONNRESET',
        message: `the backend reset the connection ${BODY.length} bytes into a body of 100`,
      });
    });

    it('as many body bytes as Content-Length: the whole answer', async () => {
      const reset = gate();
      const head = `200 OK\r\nContent-Type: text/plain\r\nContent-Length: ${BODY.length}\r\n\r\n`;
      const c = await backend(protocol, answer(protocol, head, BODY), reset);
      const res = await c.request({ params: PARAMS, body: upload(reset.opened) });
      expect([res.status, await text(res.body)]).toEqual([200, BODY]);
    });
  });
}

describe('BackendSocket, a write that meets the reset while its reader pauses it', () => {
  it('is not destroyed until the reader resumes and has read what was left', async () => {
    const paused = gate();
    const reset = gate();
    server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.once('data', async () => {
        socket.write('a'.repeat(10));
        await paused.opened;
        /* read by the client only once it resumes */
        socket.write('b'.repeat(10));
        socket.resetAndDestroy();
        reset.open();
      });
    });
    await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
    const socket = new BackendSocket();
    const events: string[] = [];
    socket.on('data', (chunk: Buffer) => {
      events.push(`data ${chunk.toString()}`);
      if (events.length > 1) return;
      socket.pause();
      paused.open();
    });
    socket.on('error', (err: NodeJS.ErrnoException) =>
      events.push(`error ${err.syscall} ${err.code}`),
    );
    const closed = new Promise((r) => socket.once('close', r));
    socket.connect((server!.address() as AddressInfo).port, '127.0.0.1');
    socket.write('request');
    await reset.opened;
    socket.write('more of the body');
    for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
    expect([socket.destroyed, events]).toEqual([false, ['data aaaaaaaaaa']]);
    socket.resume();
    await closed;
    expect(events).toEqual(['data aaaaaaaaaa', 'data bbbbbbbbbb', 'error write ECONNRESET']);
  });
});
