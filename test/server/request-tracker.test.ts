/**
 * The request tracker (lib/server/request-tracker.ts): the TSGI middleware behind --stats,
 * --max-requests, the access log and --timeout, run through the real gateway (respond()) with
 * a recording sink. Timeouts are fired by calling the sweep with a clock past the deadline.
 */
import { describe, expect, it } from 'vitest';
import { cgiVariables } from '../../lib/codec/environ.js';
import { makeEnviron } from '../../lib/gateway/environ.js';
import { errorStream } from '../../lib/gateway/errors.js';
import { BodyInput } from '../../lib/gateway/input.js';
import { respond } from '../../lib/gateway/respond.js';
import type { App, Body, Environ } from '../../lib/gateway/types.js';
import type { Logger, RequestLogFields } from '../../lib/server/log.js';
import { RequestTracker } from '../../lib/server/request-tracker.js';
import { recordingSink, TEXT, type Call } from '../support/gateway-sink.js';

const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
const LATER = () => performance.now() + 60_000;

/** A logger that records lines. */
function recorder() {
  const requests: RequestLogFields[] = [];
  const lines: string[] = [];
  const log: Logger = {
    format: 'text',
    info: (m) => void lines.push(m),
    warn: (m) => void lines.push(m),
    error: (m) => void lines.push(m),
    request: (f) => void requests.push(f),
    flush: () => {},
  };
  return { log, requests, lines };
}

function harness(path = '/x', signalAs: 'lazy' | 'value' = 'lazy') {
  const controller = new AbortController();
  const { calls, sink } = recordingSink(controller);
  const env = makeEnviron(
    cgiVariables([
      'REQUEST_METHOD',
      'GET',
      'SCRIPT_NAME',
      '/app',
      'PATH_INFO',
      path,
      'QUERY_STRING',
      'a=1',
      'SERVER_NAME',
      'example.org',
      'SERVER_PORT',
      '80',
      'REMOTE_ADDR',
      '10.1.2.3',
    ]),
    {
      protocol: 'test',
      input: new BodyInput(0),
      errors: errorStream(() => {}),
      signal: signalAs === 'lazy' ? () => controller.signal : controller.signal,
    },
  );
  return { calls, env, controller, sink };
}

describe('RequestTracker: counting', () => {
  it('counts a synchronous array response without changing it (Content-Length stays)', async () => {
    const rec = recorder();
    const t = new RequestTracker({ accessLog: rec.log });
    const listener = { requests: 0 };
    const h = harness();
    const app = t.wrap((_e, start) => {
      start('200 OK', TEXT);
      return ['hel', 'lo'];
    }, listener);
    respond(app, h.env, h.sink);
    expect(t.counters.inFlight).toBe(1);
    await tick();
    expect(h.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain', 'Content-Length', '5'], 'hello', true],
    ]);
    expect(t.counters).toMatchObject({ requests: 1, inFlight: 0 });
    expect(t.counters.maxMs).toBeGreaterThanOrEqual(0);
    expect(t.counters.totalMs).toBe(t.counters.maxMs);
    expect(listener.requests).toBe(1);
    expect(rec.requests).toEqual([
      {
        method: 'GET',
        path: '/app/x',
        query: 'a=1',
        status: 200,
        bytes: 5,
        durationMs: rec.requests[0]!.durationMs,
        remote: '10.1.2.3',
      },
    ]);
  });

  it('finishes a streamed body when the gateway closes it, and calls the app close() once', async () => {
    const t = new RequestTracker({ accessLog: recorder().log });
    const h = harness();
    let closed = 0;
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => (release = r));
    const app: App = async (_e, start) => {
      start('200 OK', TEXT);
      const gen = (async function* () {
        yield 'a';
        await gate;
        yield 'bc';
      })();
      return Object.assign(gen, { close: () => void closed++ }) as Body;
    };
    const done = respond(t.wrap(app), h.env, h.sink);
    await tick(5);
    expect(t.counters).toMatchObject({ requests: 0, inFlight: 1 });
    release();
    await done;
    expect(h.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain'], 'a', false],
      ['write', 'bc'],
      ['end'],
    ]);
    expect(closed).toBe(1);
    expect(t.counters).toMatchObject({ requests: 1, inFlight: 0 });
  });

  it('counts an app that throws as a finished 500, and the legacy write() bytes', async () => {
    const rec = recorder();
    const t = new RequestTracker({ accessLog: rec.log });
    const h1 = harness();
    await respond(
      t.wrap(() => {
        throw new Error('boom');
      }),
      h1.env,
      h1.sink,
    );
    const h2 = harness();
    await respond(
      t.wrap((_e, start) => {
        const write = start('201 Created', TEXT);
        write('abc');
        return [];
      }),
      h2.env,
      h2.sink,
    );
    await tick();
    expect(h1.calls[0]![1]).toBe('500 Internal Server Error');
    expect(rec.requests.map((r) => [r.status, r.bytes])).toEqual([
      [500, 0],
      [201, 3],
    ]);
    expect(t.counters).toMatchObject({ requests: 2, inFlight: 0 });
  });

  it('calls onFinish after every request (the --max-requests check)', async () => {
    const seen: number[] = [];
    const t = new RequestTracker({ onFinish: (c) => seen.push(c.requests) });
    const app = t.wrap((_e, start) => {
      start('204 No Content', []);
      return [];
    });
    for (let i = 0; i < 3; i++) {
      const h = harness();
      await respond(app, h.env, h.sink);
    }
    await tick();
    expect(seen).toEqual([1, 2, 3]);
  });
});

describe('RequestTracker: counting only (--stats, --max-requests)', () => {
  it('counts sync arrays, async apps, streamed bodies and errors, keeping the bodies as they are', async () => {
    const t = new RequestTracker({});
    const listener = { requests: 0 };
    const heads: Call[] = [];
    const apps: App[] = [
      (_e, start) => {
        start('200 OK', TEXT);
        return ['x'];
      },
      async (_e, start) => {
        start('200 OK', TEXT);
        return ['y'];
      },
      (_e, start) => {
        start('200 OK', TEXT);
        return (function* () {
          yield 'z';
        })();
      },
      () => {
        throw new Error('sync failure');
      },
      async () => {
        throw new Error('async failure');
      },
    ];
    for (const app of apps) {
      const h = harness();
      await respond(t.wrap(app, listener), h.env, h.sink);
      heads.push(h.calls[0]!);
    }
    await tick();
    /* arrays still get their Content-Length: the body reached the gateway unchanged */
    expect(heads.map((c) => [c[1], c[2]])).toEqual([
      ['200 OK', ['Content-Type', 'text/plain', 'Content-Length', '1']],
      ['200 OK', ['Content-Type', 'text/plain', 'Content-Length', '1']],
      ['200 OK', ['Content-Type', 'text/plain']],
      [
        '500 Internal Server Error',
        ['Content-Type', 'text/plain; charset=us-ascii', 'Content-Length', '22'],
      ],
      [
        '500 Internal Server Error',
        ['Content-Type', 'text/plain; charset=us-ascii', 'Content-Length', '22'],
      ],
    ]);
    expect(t.counters).toMatchObject({ requests: 5, inFlight: 0 });
    expect(listener.requests).toBe(5);
  });
});

describe('RequestTracker: --timeout', () => {
  it('answers 504 for an app still waiting, aborts tsgi.signal with a TimeoutError, closes the late body', async () => {
    const rec = recorder();
    const t = new RequestTracker({ timeoutMs: 1000, log: rec.log, accessLog: rec.log });
    const h = harness('/wait');
    let signal: AbortSignal | null = null;
    let resolveApp: (b: Body) => void = () => {};
    let lateClosed = 0;
    const app: App = (env: Environ) => {
      signal = env['tsgi.signal'];
      return new Promise<Body>((r) => (resolveApp = r));
    };
    const done = respond(t.wrap(app), h.env, h.sink);
    await tick();
    expect(signal!.aborted).toBe(false);
    t.sweep(LATER());
    await done;
    expect(h.calls).toEqual([
      [
        'head',
        '504 Gateway Timeout',
        ['Content-Type', 'text/plain; charset=us-ascii', 'Content-Length', '16'],
        'Gateway Timeout\n',
        true,
      ],
    ]);
    expect(signal!.aborted).toBe(true);
    expect((signal!.reason as Error).name).toBe('TimeoutError');
    expect(rec.lines).toEqual(['request GET /app/wait ran longer than the timeout (1s): 504']);
    resolveApp(Object.assign(['late'], { close: () => void lateClosed++ }));
    await tick();
    expect(lateClosed).toBe(1);
    expect(h.calls.length).toBe(1);
    expect(t.counters).toMatchObject({ requests: 1, inFlight: 0 });
    expect(rec.requests.map((r) => [r.status, r.bytes])).toEqual([[504, 16]]);
  });

  it('replaces the response chosen but not sent yet (startResponse called, no byte out)', async () => {
    const t = new RequestTracker({ timeoutMs: 1000 });
    const h = harness();
    const done = respond(
      t.wrap(async (_e, start) => {
        start('200 OK', TEXT);
        await new Promise(() => {});
        return [];
      }),
      h.env,
      h.sink,
    );
    await tick();
    t.sweep(LATER());
    await done;
    expect(h.calls[0]!.slice(0, 2)).toEqual(['head', '504 Gateway Timeout']);
  });

  it('cuts a response whose head already left (legacy write), as a broken response', async () => {
    const t = new RequestTracker({ timeoutMs: 1000 });
    const h = harness();
    const done = respond(
      t.wrap(async (_e, start) => {
        start('200 OK', TEXT)('partial');
        await new Promise(() => {});
        return [];
      }),
      h.env,
      h.sink,
    );
    await tick();
    t.sweep(LATER());
    await done;
    expect(h.calls).toEqual([
      ['head', '200 OK', ['Content-Type', 'text/plain'], 'partial', false],
      ['cut'],
    ]);
  });

  it('ends an async body that stalls: 504 before the first chunk, cut after one; the generator is ended', async () => {
    for (const first of [false, true]) {
      const t = new RequestTracker({ timeoutMs: 1000 });
      const h = harness();
      let finallyRan = false;
      let closed = 0;
      const app: App = (_e, start) => {
        start('200 OK', TEXT);
        const gen = (async function* () {
          try {
            if (first) yield 'first';
            await new Promise((r) => setTimeout(r, 50));
            yield 'never';
          } finally {
            finallyRan = true;
          }
        })();
        return Object.assign(gen, { close: () => void closed++ }) as Body;
      };
      const done = respond(t.wrap(app), h.env, h.sink);
      await tick(5);
      t.sweep(LATER());
      await done;
      await tick(80);
      if (first) {
        expect(h.calls).toEqual([
          ['head', '200 OK', ['Content-Type', 'text/plain'], 'first', false],
          ['cut'],
        ]);
      } else {
        expect(h.calls).toEqual([
          [
            'head',
            '504 Gateway Timeout',
            ['Content-Type', 'text/plain; charset=us-ascii'],
            'Gateway Timeout\n',
            false,
          ],
          ['end'],
        ]);
      }
      expect(closed).toBe(1);
      expect(finallyRan).toBe(true);
      expect(t.counters).toMatchObject({ requests: 1, inFlight: 0 });
    }
  });

  it('leaves requests younger than the timeout alone', async () => {
    const t = new RequestTracker({ timeoutMs: 60_000 });
    const h = harness();
    let finish: () => void = () => {};
    const done = respond(
      t.wrap(async (_e, start) => {
        await new Promise<void>((r) => (finish = r));
        start('200 OK', TEXT);
        return ['ok'];
      }),
      h.env,
      h.sink,
    );
    await tick();
    t.sweep();
    finish();
    await done;
    expect(h.calls[0]!.slice(0, 2)).toEqual(['head', '200 OK']);
  });

  it('keeps following the protocol signal (peer gone) through the replaced tsgi.signal', async () => {
    const t = new RequestTracker({ timeoutMs: 60_000 });
    const h = harness();
    let signal: AbortSignal | null = null;
    const done = respond(
      t.wrap(async (env) => {
        signal = env['tsgi.signal'];
        await new Promise((r) => signal!.addEventListener('abort', r));
        return [];
      }),
      h.env,
      h.sink,
    );
    await tick();
    h.controller.abort(new Error('peer gone'));
    await done;
    expect((signal!.reason as Error).message).toBe('peer gone');
  });
  describe.each(['lazy', 'value'] as const)('tsgi.signal given as %s', (signalAs) => {
    /** An app that reads tsgi.signal (before or after the timeout) and waits for its abort. */
    async function aborted(readAfterTimeout: boolean, peerGone: boolean): Promise<Error> {
      const t = new RequestTracker({ timeoutMs: 60_000 });
      const h = harness('/x', signalAs);
      let env: Environ | null = null;
      const done = respond(
        t.wrap(async (e) => {
          env = e;
          if (!readAfterTimeout) e['tsgi.signal'].addEventListener('abort', () => {});
          await tick(20);
          return [];
        }),
        h.env,
        h.sink,
      );
      await tick();
      if (peerGone) h.controller.abort(new Error('peer gone'));
      else t.sweep(LATER());
      const signal = env!['tsgi.signal'];
      await done;
      expect(signal.aborted).toBe(true);
      expect(Object.keys(env!)).toContain('tsgi.signal');
      return signal.reason as Error;
    }

    it('aborts with a TimeoutError, read before the timeout or after', async () => {
      expect((await aborted(false, false)).name).toBe('TimeoutError');
      expect((await aborted(true, false)).name).toBe('TimeoutError');
    });

    it('follows the protocol signal, read before the peer went away or after', async () => {
      expect((await aborted(false, true)).message).toBe('peer gone');
      expect((await aborted(true, true)).message).toBe('peer gone');
    });
  });
});
