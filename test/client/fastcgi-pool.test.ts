/**
 * The FastCGI client's pool against a scripted backend (a node:net server using the codec):
 * the exact records the client sends, the retry after a kept connection was closed under a
 * request (php-fpm recycling a worker) and what it may send again, no retry on a fresh
 * connection; the queue timeout and aborts while queued, the read timeout counted from the
 * backend's last record, the idle timeout, ABORT_REQUEST from start()'s cancel(); a request
 * the backend ended before reading its body (no more STDIN but an empty record, the connection
 * kept).
 */
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterEach, describe, expect, it } from 'vitest';
import { codec, FCGI, type FcgiEvent } from '../../lib/codec/index.js';
import { ClientError, FastcgiClient } from '../../lib/index.js';

const servers: Server[] = [];
const clients: FastcgiClient[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const s of servers.splice(0)) await new Promise((r) => s.close(r));
});

interface Seen {
  connection: number;
  events: FcgiEvent[];
  /** Every byte the client sent on this connection. */
  raw: Buffer[];
}

/** [type, contentLength] of each record in `raw` (walking the 8-byte record headers). */
function records(raw: Buffer): [number, number][] {
  const out: [number, number][] = [];
  for (let o = 0; o + 8 <= raw.length;) {
    const length = raw.readUInt16BE(o + 4);
    out.push([raw[o + 1]!, length]);
    o += 8 + length + raw[o + 6]!;
  }
  return out;
}

/**
 * A backend that records every event per connection; `onRequest(conn, n, socket, id)` is
 * called at each complete request (STDIN ended) with the connection's number and its count.
 */
async function backend(
  onRequest: (conn: number, n: number, socket: Socket, id: number) => void,
  onEvent?: (conn: number, n: number, socket: Socket, ev: FcgiEvent) => void,
): Promise<{ address: string; seen: Seen[]; sockets: Socket[] }> {
  const seen: Seen[] = [];
  const sockets: Socket[] = [];
  const server = createServer((socket) => {
    sockets.push(socket);
    const record: Seen = { connection: sockets.length, events: [], raw: [] };
    seen.push(record);
    const parser = codec.createFcgiParser();
    let n = 0;
    socket.on('data', (chunk) => {
      record.raw.push(chunk);
      for (const ev of parser.push(chunk)) {
        record.events.push(ev.type === 'stdin' ? { ...ev, data: Buffer.from(ev.data) } : ev);
        if (ev.type === 'begin') n++;
        onEvent?.(record.connection, n, socket, ev);
        if (socket.destroyed) return;
        if (ev.type === 'stdinEnd') onRequest(record.connection, n, socket, ev.requestId);
      }
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return { address: `127.0.0.1:${(server.address() as AddressInfo).port}`, seen, sockets };
}

const answer = (socket: Socket, id: number, text: string) =>
  socket.write(
    codec.fcgiResponse(id, '200 OK', ['Content-Type', 'text/plain'], Buffer.from(text), true),
  );

async function text(res: { body: AsyncIterable<unknown> }): Promise<string> {
  let s = '';
  for await (const c of res.body) s += String(c);
  return s;
}

it('sends BEGIN_REQUEST (id 1, KEEP_CONN), PARAMS, STDIN in records of at most 65535 bytes', async () => {
  const b = await backend((_c, _n, socket, id) => answer(socket, id, 'ok'));
  const c = new FastcgiClient({ address: b.address });
  clients.push(c);
  const body = Buffer.alloc(200000, 7);
  const res = await c.request({
    params: { REQUEST_METHOD: 'POST', CONTENT_LENGTH: String(body.length) },
    body,
  });
  expect(await text(res)).toBe('ok');
  const events = b.seen[0]!.events;
  expect(events.slice(0, 2)).toEqual([
    { type: 'begin', requestId: 1, role: FCGI.RESPONDER, flags: FCGI.KEEP_CONN },
    { type: 'params', requestId: 1, pairs: ['REQUEST_METHOD', 'POST', 'CONTENT_LENGTH', '200000'] },
  ]);
  const stdin = events.flatMap((e) => (e.type === 'stdin' ? [e.data as Buffer] : []));
  expect(
    records(Buffer.concat(b.seen[0]!.raw))
      .filter(([type]) => type === FCGI.STDIN)
      .map(([, length]) => length),
  ).toEqual([65528, 65528, 65528, 3416, 0]);
  expect(Buffer.concat(stdin).equals(body)).toBe(true);
  expect(events.at(-1)).toEqual({ type: 'stdinEnd', requestId: 1 });
});

it('a kept connection closed under a request (worker recycled): sent again once on a new one', async () => {
  /* connection 1 answers its first request and drops the second without a byte */
  const b = await backend((conn, n, socket, id) => {
    if (conn === 1 && n === 2) socket.destroy();
    else answer(socket, id, `conn ${conn} request ${n}`);
  });
  const c = new FastcgiClient({ address: b.address });
  clients.push(c);
  expect(await text(await c.request({ params: { A: '1' } }))).toBe('conn 1 request 1');
  expect(await text(await c.request({ params: { A: '2' } }))).toBe('conn 2 request 1');
  expect(b.seen.map((s) => s.events.filter((e) => e.type === 'begin').length)).toEqual([2, 1]);
});

it('a new connection closed under a request is not retried: ECONNRESET', async () => {
  const b = await backend((_conn, _n, socket) => socket.destroy());
  const c = new FastcgiClient({ address: b.address });
  clients.push(c);
  const err = await c.request({ params: { A: '1' } }).catch((e: unknown) => e);
  expect((err as ClientError).code).toBe('ECONNRESET');
  expect(b.seen.length).toBe(1);
});

it('a reused connection dropped twice: the retry happens once, then ECONNRESET', async () => {
  const b = await backend((conn, n, socket, id) => {
    if (conn === 1 && n === 1) answer(socket, id, 'first');
    else socket.destroy();
  });
  const c = new FastcgiClient({ address: b.address });
  clients.push(c);
  expect(await text(await c.request({ params: { A: '1' } }))).toBe('first');
  const err = await c.request({ params: { A: '2' } }).catch((e: unknown) => e);
  expect((err as ClientError).code).toBe('ECONNRESET');
  expect(b.seen.length).toBe(2);
});

it('a malformed record is EPROTO and closes only that connection', async () => {
  const b = await backend((_conn, _n, socket) =>
    socket.write(Buffer.from('HTTP/1.1 200 OK\r\n\r\n')),
  );
  const c = new FastcgiClient({ address: b.address });
  clients.push(c);
  const err = await c.request({ params: { A: '1' } }).catch((e: unknown) => e);
  expect((err as ClientError).code).toBe('EPROTO');
  expect(c.connections).toBe(0);
});

it('a response head over 64 KiB is EPROTO', async () => {
  const b = await backend((_conn, _n, socket, id) =>
    socket.write(codec.fcgiStream(FCGI.STDOUT, id, Buffer.alloc(70000, 65), false)),
  );
  const c = new FastcgiClient({ address: b.address });
  clients.push(c);
  const err = await c.request({ params: { A: '1' } }).catch((e: unknown) => e);
  expect((err as ClientError).code).toBe('EPROTO');
});

/** The STDIN bytes a connection of the backend received. */
const stdinOf = (seen: Seen) =>
  Buffer.concat(
    seen.events.flatMap((e) => (e.type === 'stdin' ? [e.data as Buffer] : [])),
  ).toString();

/** A streamed body of two chunks, the first read only after the connection was dropped. */
const lateBodies = {
  'an async generator': () =>
    (async function* () {
      await sleep(50);
      yield Buffer.from('aaa');
      yield Buffer.from('bbb');
    })(),
  'a Readable': () => {
    const r = new Readable({ read() {} });
    setTimeout(() => {
      r.push('aaa');
      r.push('bbb');
      r.push(null);
    }, 50);
    return r;
  },
};

it.each(Object.keys(lateBodies) as (keyof typeof lateBodies)[])(
  'a kept connection dropped before any byte of a streamed body (%s) went out: the retry sends the whole body',
  async (kind) => {
    /* connection 1 answers its first request and drops the second at its BEGIN_REQUEST */
    const b = await backend(
      (conn, n, socket, id) => answer(socket, id, `conn ${conn} request ${n}`),
      (conn, n, socket, ev) => {
        if (conn === 1 && n === 2 && ev.type === 'begin') socket.destroy();
      },
    );
    const c = new FastcgiClient({ address: b.address });
    clients.push(c);
    expect(await text(await c.request({ params: { A: '1' } }))).toBe('conn 1 request 1');
    const res = await c.request({
      params: { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '6' },
      body: lateBodies[kind](),
    });
    expect(await text(res)).toBe('conn 2 request 1');
    expect(stdinOf(b.seen[1]!)).toBe('aaabbb');
  },
);

it('a kept connection dropped after part of a streamed body went out: ECONNRESET, never sent again', async () => {
  /* connection 1 answers its first request and drops the second at its first STDIN bytes */
  const b = await backend(
    (conn, n, socket, id) => answer(socket, id, `conn ${conn} request ${n}`),
    (conn, n, socket, ev) => {
      if (conn === 1 && n === 2 && ev.type === 'stdin') socket.destroy();
    },
  );
  const c = new FastcgiClient({ address: b.address });
  clients.push(c);
  expect(await text(await c.request({ params: { A: '1' } }))).toBe('conn 1 request 1');
  const body = (async function* () {
    yield Buffer.from('aaa');
    await sleep(100);
    yield Buffer.from('bbb');
  })();
  const err = await c
    .request({ params: { REQUEST_METHOD: 'POST', CONTENT_LENGTH: '6' }, body })
    .catch((e: unknown) => e);
  expect((err as ClientError).code).toBe('ECONNRESET');
  expect((err as ClientError).message).toContain(
    'after part of the streamed request body was sent: it cannot be sent again',
  );
  expect(b.seen.length).toBe(1);
});

it('a kept connection dropped under a request with a whole body: sent again, the same bytes', async () => {
  const b = await backend(
    (conn, n, socket, id) => answer(socket, id, `conn ${conn} request ${n}`),
    (conn, n, socket, ev) => {
      if (conn === 1 && n === 2 && ev.type === 'stdin') socket.destroy();
    },
  );
  const c = new FastcgiClient({ address: b.address });
  clients.push(c);
  expect(await text(await c.request({ params: { A: '1' } }))).toBe('conn 1 request 1');
  const res = await c.request({ params: { CONTENT_LENGTH: '6' }, body: 'aaabbb' });
  expect(await text(res)).toBe('conn 2 request 1');
  expect(stdinOf(b.seen[1]!)).toBe('aaabbb');
});

describe('timeouts, the queue and aborts', () => {
  it('a request waiting in the queue past queueTimeout is ETIMEDOUT; the next one still runs', async () => {
    /* the first request holds the only slot for 400 ms; the second may wait 100 ms */
    const b = await backend((_conn, n, socket, id) => {
      if (n === 1) setTimeout(() => answer(socket, id, 'first'), 400);
      else answer(socket, id, `request ${n}`);
    });
    const c = new FastcgiClient({ address: b.address, maxConcurrent: 1, queueTimeout: 100 });
    clients.push(c);
    const first = c.request({ params: { A: '1' } });
    await sleep(20);
    const err = await c.request({ params: { A: '2' } }).catch((e: unknown) => e);
    expect([(err as ClientError).code, (err as ClientError).message]).toEqual([
      'ETIMEDOUT',
      'waited 100 ms in the queue for a free connection',
    ]);
    expect(c.load).toEqual({ active: 1, waiting: 0 });
    expect(await text(await first)).toBe('first');
    expect(await text(await c.request({ params: { A: '3' } }))).toBe('request 2');
  });

  it('a queued request aborted by its signal leaves the queue; the others keep their turn', async () => {
    const sockets: Socket[] = [];
    const b = await backend((_conn, n, socket, id) => {
      if (n === 1) sockets.push(socket);
      else answer(socket, id, `request ${n}`);
    });
    const c = new FastcgiClient({ address: b.address, maxConcurrent: 1 });
    clients.push(c);
    const first = c.request({ params: { A: '1' } });
    await sleep(20);
    const controller = new AbortController();
    const aborted = c.request({ params: { A: '2' }, signal: controller.signal });
    const third = c.request({ params: { A: '3' } });
    expect(c.load).toEqual({ active: 1, waiting: 2 });
    controller.abort();
    expect(((await aborted.catch((e: unknown) => e)) as ClientError).code).toBe('ABORT_ERR');
    expect(c.load).toEqual({ active: 1, waiting: 1 });
    answer(sockets[0]!, 1, 'request 1');
    expect(await text(await first)).toBe('request 1');
    expect(await text(await third)).toBe('request 2');
    /* the aborted request never reached the backend */
    expect(
      b.seen[0]!.events.filter((e) => e.type === 'params').map(
        (e) => (e as { pairs: string[] }).pairs,
      ),
    ).toEqual([
      ['A', '1'],
      ['A', '3'],
    ]);
  });

  it('the read timeout counts from the last thing the backend sent, not from the request', async () => {
    /* a body in 8 pieces 60 ms apart (480 ms) with readTimeout 200: never silent for 200 ms */
    const b = await backend(async (_conn, _n, socket, id) => {
      socket.write(
        codec.fcgiStream(FCGI.STDOUT, id, Buffer.from('Content-Type: text/plain\r\n\r\n'), false),
      );
      for (let i = 0; i < 8; i++) {
        await sleep(60);
        socket.write(codec.fcgiStream(FCGI.STDOUT, id, Buffer.from(String(i)), false));
      }
      socket.write(codec.fcgiStream(FCGI.STDOUT, id, new Uint8Array(0), true));
      socket.write(codec.fcgiEndRequest(id, 0, FCGI.REQUEST_COMPLETE));
    });
    const c = new FastcgiClient({ address: b.address, readTimeout: 200 });
    clients.push(c);
    expect(await text(await c.request({ params: { A: '1' } }))).toBe('01234567');
  });

  it('a backend silent past readTimeout after the head: the body fails with ETIMEDOUT and ABORT_REQUEST goes out', async () => {
    const b = await backend((_conn, _n, socket, id) => {
      socket.write(
        codec.fcgiStream(FCGI.STDOUT, id, Buffer.from('Status: 200 OK\r\n\r\nsome'), false),
      );
    });
    const c = new FastcgiClient({ address: b.address, readTimeout: 150 });
    clients.push(c);
    const res = await c.request({ params: { A: '1' } });
    const err = await text(res).catch((e: unknown) => e);
    expect([(err as ClientError).code, (err as ClientError).message]).toEqual([
      'ETIMEDOUT',
      'the backend sent nothing for 150 ms',
    ]);
    await sleep(20);
    expect(b.seen[0]!.events.at(-1)).toEqual({ type: 'abort', requestId: 1 });
  });

  it('an idle connection is closed after idleTimeout, a busy one is not', async () => {
    const b = await backend((_conn, n, socket, id) => {
      if (n === 1) answer(socket, id, 'quick');
      else setTimeout(() => answer(socket, id, 'slow'), 300);
    });
    const c = new FastcgiClient({ address: b.address, idleTimeout: 100 });
    clients.push(c);
    expect(await text(await c.request({ params: { A: '1' } }))).toBe('quick');
    expect(c.connections).toBe(1);
    await sleep(60);
    /* reused before its idle time ran out, then busy for longer than idleTimeout */
    expect(await text(await c.request({ params: { A: '2' } }))).toBe('slow');
    expect([c.connections, b.seen.length]).toEqual([1, 1]);
    await sleep(250);
    expect(c.connections).toBe(0);
  });

  it('start(): cancel() before the head sends ABORT_REQUEST; the connection serves the next request after END_REQUEST', async () => {
    const b = await backend(
      (_conn, n, socket, id) => {
        if (n > 1) answer(socket, id, `request ${n}`);
      },
      (_conn, _n, socket, ev) => {
        if (ev.type === 'abort')
          socket.write(codec.fcgiEndRequest(ev.requestId, 0, FCGI.REQUEST_COMPLETE));
      },
    );
    const c = new FastcgiClient({ address: b.address });
    clients.push(c);
    const outcome: unknown[] = [];
    const started = c.start(['A', '1'], null, undefined, {
      onResponse: (res) => outcome.push(res.status),
      onError: (err) => outcome.push((err as ClientError).code),
    });
    await sleep(30);
    started.cancel();
    expect(outcome).toEqual(['ABORT_ERR']);
    await sleep(30);
    expect(b.seen[0]!.events.map((e) => e.type)).toEqual(['begin', 'params', 'stdinEnd', 'abort']);
    expect(await text(await c.request({ params: { A: '2' } }))).toBe('request 2');
    expect([c.connections, b.seen.length]).toEqual([1, 1]);
  });

  it('an answer that came whole: its body is a stream all the same', async () => {
    const b = await backend((_conn, _n, socket, id) => answer(socket, id, 'whole'));
    const c = new FastcgiClient({ address: b.address });
    clients.push(c);
    const res = await c.request({ params: { A: '1' } });
    expect([res.status, res.headers, await text(res), await text(res)]).toEqual([
      200,
      [['Content-Type', 'text/plain']],
      'whole',
      '',
    ]);
  });
});

it('a malformed record right after a complete answer: that answer is delivered, the connection closed', async () => {
  const b = await backend((conn, n, socket, id) => {
    if (conn === 1) {
      socket.write(
        Buffer.concat([
          codec.fcgiResponse(id, '200 OK', ['Content-Type', 'text/plain'], Buffer.from('ok'), true),
          Buffer.from('HTTP/1.1 200 OK\r\n\r\n'),
        ]),
      );
    } else answer(socket, id, `conn ${conn} request ${n}`);
  });
  const c = new FastcgiClient({ address: b.address });
  clients.push(c);
  expect(await text(await c.request({ params: { A: '1' } }))).toBe('ok');
  expect(c.connections).toBe(0);
  expect(await text(await c.request({ params: { A: '2' } }))).toBe('conn 2 request 1');
  expect(b.seen.length).toBe(2);
});

describe('a backend that ends a request before reading its body', () => {
  it('no more STDIN for it but an empty record, before the next request on the kept connection', async () => {
    /* request 1 is answered and ended at its first body record; request 2 when complete */
    const { address, seen } = await backend(
      (_conn, n, socket, id) => {
        if (n === 2) answer(socket, id, 'second');
      },
      (_conn, n, socket, ev) => {
        if (
          n === 1 &&
          ev.type === 'stdin' &&
          seen[0]!.events.filter((e) => e.type === 'stdin').length === 1
        ) {
          answer(socket, ev.requestId, 'refused');
        }
      },
    );
    const client = new FastcgiClient({ address });
    clients.push(client);
    /* a body that never ends by itself */
    const body = new Readable({
      read() {
        setTimeout(() => this.push(Buffer.alloc(4096, 0x61)), 2);
      },
    });
    const first = await client.request({ params: { REQUEST_METHOD: 'POST' }, body });
    expect(await text(first)).toBe('refused');
    const second = await client.request({ params: { REQUEST_METHOD: 'GET' } });
    expect(await text(second)).toBe('second');
    expect(seen.length).toBe(1);
    /* on the wire: request 1's STDIN, one empty STDIN record, then request 2 */
    const types = seen[0]!.events.map((e) => e.type);
    const begins = types.flatMap((t, i) => (t === 'begin' ? [i] : []));
    expect(begins.length).toBe(2);
    const between = types.slice(types.indexOf('stdin'), begins[1]);
    expect(between.filter((t) => t !== 'stdin')).toEqual(['stdinEnd']);
    expect(between[between.length - 1]).toBe('stdinEnd');
    expect(types.slice(begins[1])).toEqual(['begin', 'params', 'stdinEnd']);
  });
});
