/**
 * The node and fetch adapters on their own: a TSGI environ in, the gateway's Sink calls out
 * (lib/gateway/respond.ts runs the adapted app exactly as every protocol does). Exact status,
 * headers and body bytes; what the handler saw of the request; backpressure both ways; the
 * client going away; 204/304/HEAD; upgrade and CONNECT refused; validate() around both.
 */
import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { fromFetch } from '../../lib/adapters/fetch.js';
import { lightResponseClass, responseParts } from '../../lib/adapters/light-response.js';
import {
  fromNodeHandler,
  missingNodeInternals,
  type NodeHandler,
} from '../../lib/adapters/node.js';
import { cgiVariables } from '../../lib/codec/environ.js';
import { makeEnviron, sourcedEnviron } from '../../lib/gateway/environ.js';
import { errorStream } from '../../lib/gateway/errors.js';
import { BodyInput } from '../../lib/gateway/input.js';
import { respond, type Sink } from '../../lib/gateway/respond.js';
import { adapt } from '../../lib/server/app-loader.js';
import { createHttpServer } from '../../lib/protocol/http.js';
import type { App, Environ } from '../../lib/gateway/types.js';
import { validate } from '../../lib/gateway/validate.js';

type Call = (string | string[] | boolean | null)[];

/** The process's own Response, taken before fromFetch() installs the light one. */
const NativeResponse = globalThis.Response;
const LightResponse = lightResponseClass();

const latin1 = (b: Uint8Array): string => Buffer.from(b).toString('latin1');
const tick = (ms = 0) => new Promise((r) => setTimeout(r, ms));
const DATE = /^[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT$/;

interface HarnessOptions {
  /** The request body (CONTENT_LENGTH must be among the pairs, or HTTP_TRANSFER_ENCODING). */
  input?: BodyInput;
  /**
   * The environ a protocol server gives tsgi's own node adapter: no tsgi.input or tsgi.signal,
   * which the adapter takes from the request's source.
   */
  lean?: boolean;
  /** The sink's ready(): null when the peer keeps up. */
  ready?: () => Promise<void> | null;
  /** Called when the sink receives body bytes (head with body, or write). */
  onBytes?: (text: string) => void;
}

/** A request environ and a sink that records what the gateway sends. */
function harness(pairs: string[] = [], opts: HarnessOptions = {}) {
  const calls: Call[] = [];
  const errors: string[] = [];
  const controller = new AbortController();
  const sink: Sink = {
    head: (status, headers, body, last) => {
      calls.push(['head', status, headers, body === null ? null : latin1(body), last]);
      if (body !== null) opts.onBytes?.(latin1(body));
    },
    write: (chunk) => {
      calls.push(['write', latin1(chunk)]);
      opts.onBytes?.(latin1(chunk));
    },
    end: () => calls.push(['end']),
    ready: opts.ready ?? (() => null),
    cut: () => calls.push(['cut']),
    get aborted() {
      return controller.signal.aborted;
    },
    signal: controller.signal,
  };
  const vars = () =>
    cgiVariables([
      'REQUEST_METHOD',
      'GET',
      'REQUEST_URI',
      '/',
      'SERVER_NAME',
      'example.org',
      'SERVER_PORT',
      '8080',
      'SERVER_ADDR',
      '127.0.0.1',
      'SERVER_PROTOCOL',
      'HTTP/1.1',
      'REMOTE_ADDR',
      '192.0.2.7',
      'REMOTE_PORT',
      '40001',
      'HTTP_HOST',
      'example.org:8080',
      ...pairs,
    ]);
  const input = opts.input ?? new BodyInput(0);
  const errorsStream = errorStream((b) => errors.push(latin1(b)));
  const env = opts.lean
    ? sourcedEnviron(
        vars(),
        'test',
        false,
        {
          makeInput: () => input,
          makeErrors: () => errorsStream,
          makeSignal: () => controller.signal,
        },
        undefined,
        errorsStream,
        undefined,
        true,
      )
    : makeEnviron(vars(), {
        protocol: 'test',
        input,
        errors: errorsStream,
        signal: controller.signal,
      });
  const run = async (app: App) => {
    await respond(app, env, sink);
    return calls;
  };
  return { calls, errors, env, controller, run };
}

/** Status, headers (Date values replaced by "DATE" once checked) and body of recorded calls. */
function response(calls: Call[]) {
  const head = calls.find((c) => c[0] === 'head');
  if (head === undefined) throw new Error(`no head in ${JSON.stringify(calls)}`);
  const headers = [...(head[2] as string[])];
  for (let i = 0; i < headers.length; i += 2) {
    if (headers[i]!.toLowerCase() === 'date') {
      expect(headers[i + 1]).toMatch(DATE);
      headers[i + 1] = 'DATE';
    }
  }
  let body = '';
  let ended = false;
  let cut = false;
  for (const c of calls) {
    if (c[0] === 'head') {
      if (c[3] !== null) body += c[3] as string;
      if (c[4] === true) ended = true;
    } else if (c[0] === 'write') body += c[1] as string;
    else if (c[0] === 'end') ended = true;
    else if (c[0] === 'cut') cut = true;
  }
  return { status: head[1] as string, headers, body, ended, cut };
}

/** What a node handler saw of its request. */
interface Seen {
  req: IncomingMessage;
  res: ServerResponse;
}

function capture(handler: (req: IncomingMessage, res: ServerResponse) => void) {
  const seen: Seen[] = [];
  const app = fromNodeHandler((req, res) => {
    seen.push({ req, res });
    handler(req, res);
  });
  return { seen, app };
}

const hello: NodeHandler = (_req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.end('hello');
};

describe('fromNodeHandler on this Node', () => {
  it("finds every node internal it relies on (the Node version matrix's first check)", () => {
    expect(missingNodeInternals()).toEqual([]);
  });
});

describe('fromNodeHandler: the request node:http builds', () => {
  it('carries method, url, version, headers, rawHeaders and the client addresses', async () => {
    const { seen, app } = capture(hello);
    const h = harness([
      'REQUEST_METHOD',
      'DELETE',
      'REQUEST_URI',
      '/a/b%20c?x=1&y=%C3%A9',
      'QUERY_STRING',
      'x=1&y=%C3%A9',
      'HTTP_ACCEPT',
      'text/html',
      'HTTP_X_FORWARDED_FOR',
      '10.0.0.1',
      'HTTP_COOKIE',
      'a=1',
      'HTTP_COOKIE',
      'b=2',
      'HTTP_USER_AGENT',
      'agent/1.0 (caf\xe9)',
      'HTTP_DNT',
      '1',
    ]);
    await h.run(app);
    const { req } = seen[0]!;
    expect(req.method).toBe('DELETE');
    expect(req.url).toBe('/a/b%20c?x=1&y=%C3%A9');
    expect(req.httpVersion).toBe('1.1');
    expect(req.rawHeaders).toEqual([
      'Host',
      'example.org:8080',
      'Accept',
      'text/html',
      'X-Forwarded-For',
      '10.0.0.1',
      'Cookie',
      'a=1; b=2',
      'User-Agent',
      'agent/1.0 (caf\xe9)',
      'Dnt',
      '1',
    ]);
    expect(req.headers).toEqual({
      host: 'example.org:8080',
      accept: 'text/html',
      'x-forwarded-for': '10.0.0.1',
      cookie: 'a=1; b=2',
      'user-agent': 'agent/1.0 (caf\xe9)',
      dnt: '1',
    });
    expect(req.socket.remoteAddress).toBe('192.0.2.7');
    expect(req.socket.remotePort).toBe(40001);
    expect(req.socket.remoteFamily).toBe('IPv4');
    expect(req.socket.localAddress).toBe('127.0.0.1');
    expect(req.socket.localPort).toBe(8080);
    expect((req.socket as { encrypted?: boolean }).encrypted).toBeUndefined();
    expect(response(h.calls)).toEqual({
      status: '200 OK',
      headers: ['Content-Type', 'text/plain', 'Date', 'DATE', 'Content-Length', '5'],
      body: 'hello',
      ended: true,
      cut: false,
    });
  });

  it('marks the socket encrypted for HTTPS requests, and takes the version from SERVER_PROTOCOL', async () => {
    const { seen, app } = capture(hello);
    await harness(['HTTPS', 'on', 'SERVER_PROTOCOL', 'HTTP/2.0', 'REMOTE_PORT', '40002']).run(app);
    await harness(['SERVER_PROTOCOL', 'HTTP/1.0', 'REMOTE_PORT', '40003']).run(app);
    expect((seen[0]!.req.socket as { encrypted?: boolean }).encrypted).toBe(true);
    expect(seen[0]!.req.httpVersion).toBe('2.0');
    expect([seen[0]!.req.httpVersionMajor, seen[0]!.req.httpVersionMinor]).toEqual([2, 0]);
    expect((seen[1]!.req.socket as { encrypted?: boolean }).encrypted).toBeUndefined();
    expect(seen[1]!.req.httpVersion).toBe('1.0');
  });

  it('percent-encodes raw bytes of REQUEST_URI that node would refuse', async () => {
    const { seen, app } = capture(hello);
    await harness(['REQUEST_URI', '/caf\xe9 x?q=\xff']).run(app);
    expect(seen[0]!.req.url).toBe('/caf%E9%20x?q=%FF');
  });

  it('gives req.url below the mount point (SCRIPT_NAME) when one was configured', async () => {
    const { seen, app } = capture(hello);
    const cases: [string[], string][] = [
      /* mounted at /app: SCRIPT_NAME stripped */
      [['SCRIPT_NAME', '/app', 'PATH_INFO', '/x', 'REQUEST_URI', '/app/x?q=1'], '/x?q=1'],
      /* nginx's stock fastcgi_params: the whole path in SCRIPT_NAME, PATH_INFO empty */
      [['SCRIPT_NAME', '/index.php', 'REQUEST_URI', '/index.php?a=b'], '/index.php?a=b'],
      /* the mount written with escapes in REQUEST_URI: rebuilt from PATH_INFO */
      [
        [
          'SCRIPT_NAME',
          '/my app',
          'PATH_INFO',
          '/50% off?',
          'REQUEST_URI',
          '/my%20app/50%25%20off%3F?a=b',
          'QUERY_STRING',
          'a=b',
        ],
        '/50%25%20off%3F?a=b',
      ],
      /* no REQUEST_URI at all */
      [
        ['SCRIPT_NAME', '', 'PATH_INFO', '/p q', 'QUERY_STRING', 'z=1', 'REQUEST_URI', ''],
        '/p%20q?z=1',
      ],
    ];
    for (const [pairs] of cases) await harness(pairs).run(app);
    expect(seen.map((s) => s.req.url)).toEqual(cases.map(([, url]) => url));
    /* under CGI, SCRIPT_NAME is the script: always stripped */
    const cgi = harness([
      'SCRIPT_NAME',
      '/cgi-bin/app.mjs',
      'PATH_INFO',
      '',
      'REQUEST_URI',
      '/cgi-bin/app.mjs?x',
    ]);
    (cgi.env as Record<string, unknown>)['tsgi.protocol'] = 'cgi';
    await cgi.run(app);
    expect(seen[4]!.req.url).toBe('/?x');
  });

  it('reuses the in-memory socket for the same client connection only', async () => {
    const { seen, app } = capture(hello);
    /* the next request on a connection comes with I/O: after the ticks that finish this one */
    await harness(['REMOTE_PORT', '5000']).run(app);
    await tick();
    await harness(['REMOTE_PORT', '5000']).run(app);
    await tick();
    await harness(['REMOTE_PORT', '5001']).run(app);
    expect(seen[1]!.req.socket).toBe(seen[0]!.req.socket);
    expect(seen[2]!.req.socket).not.toBe(seen[0]!.req.socket);
    expect(seen[2]!.req.socket.remotePort).toBe(5001);
  });

  it('keeps one socket per client connection: interleaved connections, another host, a limit', async () => {
    const { seen, app } = capture(hello);
    const ports = ['5000', '5001', '5000', '5001'];
    for (const port of ports) {
      await harness(['REMOTE_PORT', port]).run(app);
      await tick();
    }
    await harness(['REMOTE_PORT', '5000', 'REMOTE_ADDR', '192.0.2.8']).run(app);
    const socket = (i: number) => seen[i]!.req.socket;
    expect(socket(2)).toBe(socket(0));
    expect(socket(3)).toBe(socket(1));
    expect(socket(1)).not.toBe(socket(0));
    expect(socket(4)).not.toBe(socket(0));
    expect(socket(4).remoteAddress).toBe('192.0.2.8');

    /* maxIdleConnections: 1 keeps the socket of one client connection only */
    const limited: Seen[] = [];
    const one = fromNodeHandler(
      (req, res) => {
        limited.push({ req, res });
        hello(req, res);
      },
      { maxIdleConnections: 1 },
    );
    for (const port of ['7000', '7001', '7000', '7000']) {
      await harness(['REMOTE_PORT', port]).run(one);
      await tick();
    }
    const kept = (i: number) => limited[i]!.req.socket;
    expect(kept(2)).not.toBe(kept(0));
    expect(kept(3)).toBe(kept(2));
  });

  it('gives a request its own socket while another of the same client connection runs', async () => {
    let held: ServerResponse | null = null;
    const { seen, app } = capture((req, res) => {
      if (req.headers['x-hold'] === undefined) hello(req, res);
      else held = res;
    });
    await harness(['REMOTE_PORT', '6000']).run(app);
    await tick();
    /* on the kept socket, answered later */
    const second = harness(['REMOTE_PORT', '6000', 'HTTP_X_HOLD', '1']).run(app);
    await tick();
    await harness(['REMOTE_PORT', '6000']).run(app);
    await tick();
    const socket = (i: number) => seen[i]!.req.socket;
    expect(socket(1)).toBe(socket(0));
    expect(socket(2)).not.toBe(socket(1));
    (held as ServerResponse | null)!.end('late');
    await second;
    await tick();
    await harness(['REMOTE_PORT', '6000']).run(app);
    expect([socket(1), socket(2)]).toContain(socket(3));
  });

  for (const lean of [false, true]) {
    it(`streams a Content-Length body to the handler${lean ? ' (lean environ)' : ''}`, async () => {
      const input = new BodyInput(11);
      const { seen, app } = capture((req, res) => {
        let body = '';
        req.setEncoding('latin1');
        req.on('data', (d: string) => (body += d));
        req.on('end', () => {
          res.setHeader('Content-Type', 'text/plain');
          res.end(`${req.headers['content-type']} ${req.headers['content-length']} ${body}`);
        });
      });
      const h = harness(
        [
          'REQUEST_METHOD',
          'POST',
          'CONTENT_TYPE',
          'application/x-www-form-urlencoded',
          'CONTENT_LENGTH',
          '11',
        ],
        { input, lean },
      );
      const done = h.run(app);
      input.feed(Buffer.from('hello '));
      await tick(5);
      input.feed(Buffer.from('world'));
      await done;
      expect(response(h.calls).body).toBe('application/x-www-form-urlencoded 11 hello world');
      expect(seen[0]!.req.rawHeaders.slice(2)).toEqual([
        'Content-Type',
        'application/x-www-form-urlencoded',
        'Content-Length',
        '11',
      ]);
    });
  }

  it('re-chunks a body that came without a length (Transfer-Encoding: chunked)', async () => {
    const input = new BodyInput(-1);
    const { seen, app } = capture((req, res) => {
      const parts: Buffer[] = [];
      req.on('data', (d: Buffer) => parts.push(d));
      req.on('end', () => {
        res.setHeader('Content-Type', 'text/plain');
        res.end(Buffer.concat(parts));
      });
    });
    const h = harness(
      ['REQUEST_METHOD', 'PUT', 'CONTENT_LENGTH', '', 'HTTP_TRANSFER_ENCODING', 'chunked'],
      { input },
    );
    const done = h.run(app);
    input.feed(Buffer.from('abc'));
    await tick(2);
    input.feed(Buffer.alloc(70000, 0x78));
    input.finish();
    await done;
    expect(response(h.calls).body).toBe('abc' + 'x'.repeat(70000));
    expect(seen[0]!.req.headers['transfer-encoding']).toBe('chunked');
    expect(seen[0]!.req.headers['content-length']).toBeUndefined();
  });

  it('holds the request body back while the handler does not read (backpressure)', async () => {
    const input = new BodyInput(4 * 1024 * 1024);
    let startReading: () => void = () => {};
    const { app } = capture((req, res) => {
      startReading = () => {
        const hash = createHash('sha256');
        let n = 0;
        req.on('data', (d: Buffer) => {
          hash.update(d);
          n += d.length;
        });
        req.on('end', () => {
          res.setHeader('Content-Type', 'text/plain');
          res.end(`${n} ${hash.digest('hex')}`);
        });
      };
    });
    const h = harness(['REQUEST_METHOD', 'POST', 'CONTENT_LENGTH', String(4 * 1024 * 1024)], {
      input,
    });
    const done = h.run(app);
    const chunk = Buffer.alloc(16 * 1024, 0x61);
    let fed = 0;
    while (input.feed(chunk)) {
      fed += chunk.length;
      await tick();
      if (fed > 2 * 1024 * 1024) break;
    }
    fed += chunk.length;
    /* node's request buffer, the in-memory socket and tsgi.input's own buffer: far from 4 MiB */
    expect(fed).toBeLessThan(512 * 1024);
    const wanted = new Promise<void>((r) => (input.onWant = r));
    startReading();
    await wanted;
    const expected = createHash('sha256');
    expected.update(Buffer.alloc(fed, 0x61));
    while (fed < 4 * 1024 * 1024) {
      if (!input.feed(chunk)) await new Promise<void>((r) => (input.onWant = r));
      expected.update(chunk);
      fed += chunk.length;
    }
    await done;
    expect(response(h.calls).body).toBe(`${4 * 1024 * 1024} ${expected.digest('hex')}`);
  });

  it('answers 400, with the reason on tsgi.errors, to a header value node would refuse', async () => {
    const { seen, app } = capture(hello);
    const h = harness(['HTTP_X_BAD', 'a\x01b']);
    await h.run(app);
    expect(seen).toHaveLength(0);
    const text = '400 Bad Request: a control character in the X-Bad header\n';
    expect(response(h.calls)).toEqual({
      status: '400 Bad Request',
      headers: ['Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(text.length)],
      body: text,
      ended: true,
      cut: false,
    });
    expect(h.errors.join('')).toBe(
      'tsgi: refused the request: a control character in the X-Bad header\n',
    );
    /* HTAB and obs-text are field content */
    await harness(['HTTP_X_OK', 'a\tb\xe9']).run(app);
    expect(seen[0]!.req.headers['x-ok']).toBe('a\tb\xe9');
  });

  it("checks each request's header values, whatever the requests before it sent", async () => {
    const { seen, app } = capture(hello);
    /* the same app: a value passed before, then a bad one in the same place, then good again */
    await harness(['HTTP_X_V', 'plain', 'HTTP_X_W', 'w']).run(app);
    const bad = harness(['HTTP_X_V', 'pla\x7fin', 'HTTP_X_W', 'w']);
    await bad.run(app);
    expect(response(bad.calls).status).toBe('400 Bad Request');
    expect(bad.errors.join('')).toBe(
      'tsgi: refused the request: a control character in the X-V header\n',
    );
    const later = harness(['HTTP_X_V', 'plain', 'HTTP_X_W', 'w\nx']);
    await later.run(app);
    expect(response(later.calls).status).toBe('400 Bad Request');
    await harness(['HTTP_X_V', 'plain', 'HTTP_X_W', 'w']).run(app);
    expect(seen.map((s) => s.req.headers['x-v'])).toEqual(['plain', 'plain']);
  });

  it("gives each response its own headers when node's head repeats the one before", async () => {
    let n = 0;
    const app = fromNodeHandler((_req, res) => {
      res.setHeader('Content-Type', 'text/plain');
      res.setHeader('X-N', n++ === 2 ? 'two' : 'same');
      res.sendDate = false;
      res.end('hi');
    });
    /* a middleware that changes the pairs it is given, in place */
    const changing: App = (env, startResponse) =>
      app(env, (status, headers, excInfo) => {
        for (const h of headers) if (h[0] === 'X-N') h[1] = 'changed';
        return startResponse(status, headers, excInfo);
      });
    const heads: unknown[] = [];
    for (const which of [changing, app, app, app]) {
      const h = harness();
      await h.run(which);
      heads.push(response(h.calls).headers);
    }
    const expected = (x: string) => ['Content-Type', 'text/plain', 'X-N', x, 'Content-Length', '2'];
    expect(heads).toEqual([
      expected('changed'),
      expected('same'),
      expected('two'),
      expected('same'),
    ]);
  });

  it('answers 501 to protocol upgrades and CONNECT without calling the handler', async () => {
    const { seen, app } = capture(hello);
    const ws = harness(['HTTP_CONNECTION', 'keep-alive, Upgrade', 'HTTP_UPGRADE', 'websocket']);
    await ws.run(app);
    const text =
      '501 Not Implemented: protocol upgrades (Upgrade: websocket) cannot be served through ' +
      'the TSGI interface: the gateway protocols do not hand over the client connection\n';
    expect(response(ws.calls)).toEqual({
      status: '501 Not Implemented',
      headers: ['Content-Type', 'text/plain; charset=utf-8', 'Content-Length', String(text.length)],
      body: text,
      ended: true,
      cut: false,
    });
    const connect = harness(['REQUEST_METHOD', 'CONNECT', 'REQUEST_URI', 'example.org:443']);
    await connect.run(app);
    expect(response(connect.calls).status).toBe('501 Not Implemented');
    expect(response(connect.calls).body).toBe(
      '501 Not Implemented: CONNECT requests (tunnels) cannot be served through the TSGI interface\n',
    );
    /* an Upgrade header without "Connection: upgrade" is not an upgrade request */
    await harness(['HTTP_UPGRADE', 'h2c']).run(app);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.req.headers.upgrade).toBe('h2c');
  });
});

describe('the request headers an environ carries', () => {
  /* nginx sends CONTENT_TYPE and CONTENT_LENGTH empty for a request without them */
  const pairs = [
    'CONTENT_TYPE',
    '',
    'CONTENT_LENGTH',
    '',
    'HTTP_X_EMPTY',
    '',
    'CONTENT_OTHER',
    'x',
    'HTTPX',
    'y',
  ];

  it('fromNodeHandler: no empty Content-Type or Content-Length, an empty HTTP_* kept', async () => {
    const { seen, app } = capture(hello);
    await harness(pairs).run(app);
    expect(seen[0]!.req.rawHeaders).toEqual(['Host', 'example.org:8080', 'X-Empty', '']);
  });

  it('fromFetch: the same headers', async () => {
    let seen: Request | null = null;
    await harness(pairs).run(
      fromFetch((request) => {
        seen = request;
        return new Response('');
      }),
    );
    expect([...(seen as unknown as Request).headers]).toEqual([
      ['host', 'example.org:8080'],
      ['x-empty', ''],
    ]);
  });
});

describe('the request headers of environs whose variables change from one request to the next', () => {
  /* The header names are kept by each variable's place in the last environ: a variable at a
   * place where another stood before, or a place that now holds no header, must be read anew. */
  const requests: [string[], string[]][] = [
    [
      ['HTTP_X_A', '1', 'HTTP_X_B', '2', 'CONTENT_TYPE', ''],
      ['X-A', '1', 'X-B', '2'],
    ],
    [
      ['HTTP_X_B', '2', 'CONTENT_TYPE', 'text/plain', 'HTTP_X_A', '1'],
      ['X-B', '2', 'Content-Type', 'text/plain', 'X-A', '1'],
    ],
    [
      ['SCRIPT_NAME', '', 'HTTP_X_C', '3', 'CONTENT_TYPE', ''],
      ['X-C', '3'],
    ],
    [
      ['HTTP_X_C', '3', 'PATH_INFO', '', 'CONTENT_LENGTH', '0'],
      ['X-C', '3', 'Content-Length', '0'],
    ],
    [
      ['HTTP_X_C', '4', 'HTTP_X_D', '', 'HTTP_X_B', '5'],
      ['X-C', '4', 'X-D', '', 'X-B', '5'],
    ],
  ];

  it('fromNodeHandler: rawHeaders of each request are its own', async () => {
    const { seen, app } = capture(hello);
    for (const [pairs] of requests) await harness(pairs).run(app);
    expect(seen.map((s) => s.req.rawHeaders)).toEqual(
      requests.map(([, raw]) => ['Host', 'example.org:8080', ...raw]),
    );
  });

  it("fromNodeHandler: no header of the client's connection, no framing header that does not frame the body", async () => {
    const { seen, app } = capture(hello);
    const cases: [string[], string[]][] = [
      [
        [
          'HTTP_CONNECTION',
          'keep-alive',
          'HTTP_X_A',
          '1',
          'HTTP_KEEP_ALIVE',
          'timeout=5',
          'CONTENT_LENGTH',
          '0',
          'HTTP_TRANSFER_ENCODING',
          'chunked',
        ],
        ['X-A', '1', 'Content-Length', '0'],
      ],
      [
        ['CONTENT_LENGTH', '12x', 'HTTP_X_B', '2', 'HTTP_CONNECTION', 'close'],
        ['X-B', '2'],
      ],
      [
        ['HTTP_X_B', '2', 'HTTP_CONNECTION', 'close', 'HTTP_KEEP_ALIVE', 'x'],
        ['X-B', '2'],
      ],
    ];
    for (const [pairs] of cases) await harness(pairs).run(app);
    expect(seen.map((s) => s.req.rawHeaders)).toEqual(
      cases.map(([, raw]) => ['Host', 'example.org:8080', ...raw]),
    );
  });

  it('fromFetch: the headers of each request are its own', async () => {
    const seen: [string, string][][] = [];
    const app = fromFetch((request) => {
      seen.push([...request.headers]);
      return new Response('');
    });
    for (const [pairs] of requests) await harness(pairs).run(app);
    const lower = (raw: string[]): [string, string][] => {
      const out: [string, string][] = [];
      for (let i = 0; i < raw.length; i += 2) out.push([raw[i]!.toLowerCase(), raw[i + 1]!]);
      return out.sort((a, b) => (a[0] < b[0] ? -1 : 1));
    };
    expect(seen).toEqual(requests.map(([, raw]) => lower(['Host', 'example.org:8080', ...raw])));
  });
});

describe('fromNodeHandler: the response', () => {
  it('passes writeHead, setHeader and repeated Set-Cookie; drops node framing headers', async () => {
    const app = fromNodeHandler((_req, res) => {
      res.setHeader('Set-Cookie', ['a=1; Path=/', 'b=2; HttpOnly']);
      res.setHeader('X-Custom', 'one');
      res.writeHead(201, 'Made It', { 'Content-Type': 'application/json', 'X-Other': 'two' });
      res.end('{"ok":true}');
    });
    const h = harness();
    await h.run(app);
    expect(response(h.calls)).toEqual({
      status: '201 Made It',
      headers: [
        'Set-Cookie',
        'a=1; Path=/',
        'Set-Cookie',
        'b=2; HttpOnly',
        'X-Custom',
        'one',
        'Content-Type',
        'application/json',
        'X-Other',
        'two',
        'Date',
        'DATE',
        'Content-Length',
        '11',
      ],
      body: '{"ok":true}',
      ended: true,
      cut: false,
    });
    expect(h.errors).toEqual([]);
  });

  it('streams writes as they happen, after flushHeaders, and decodes node chunking', async () => {
    let seenByPeer: () => void = () => {};
    const firstArrived = new Promise<void>((r) => (seenByPeer = r));
    const app = fromNodeHandler((_req, res) => {
      res.setHeader('Content-Type', 'text/event-stream');
      res.flushHeaders();
      res.write('data: one\n\n');
      void firstArrived.then(() => {
        res.write('data: two\n\n');
        res.end();
      });
    });
    const h = harness([], { onBytes: () => seenByPeer() });
    await h.run(app);
    expect(h.calls.map((c) => c[0])).toEqual(['head', 'write', 'end']);
    expect(response(h.calls)).toEqual({
      status: '200 OK',
      headers: ['Content-Type', 'text/event-stream', 'Date', 'DATE'],
      body: 'data: one\n\ndata: two\n\n',
      ended: true,
      cut: false,
    });
    expect(h.calls[0]![3]).toBe('data: one\n\n');
  });

  it('sends a response complete at once as one array (the gateway adds Content-Length)', async () => {
    const app = fromNodeHandler((_req, res) => {
      res.setHeader('Content-Type', 'text/plain');
      res.write('a');
      res.write(Buffer.from('b'));
      res.end('c');
    });
    const h = harness();
    await h.run(app);
    expect(h.calls).toEqual([
      [
        'head',
        '200 OK',
        [
          'Content-Type',
          'text/plain',
          'Date',
          (h.calls[0]![2] as string[])[3]!,
          'Content-Length',
          '3',
        ],
        'abc',
        true,
      ],
    ]);
  });

  it('waits for the peer before letting node write more (response backpressure)', async () => {
    let open: () => void = () => {};
    let gate: Promise<void> | null = new Promise<void>((r) => (open = r));
    let writes = 0;
    let drains = 0;
    const chunk = Buffer.alloc(64 * 1024, 0x62);
    const total = 64;
    const app = fromNodeHandler((_req, res) => {
      res.setHeader('Content-Type', 'application/octet-stream');
      const more = (): void => {
        while (writes < total) {
          writes++;
          if (!res.write(chunk)) {
            res.once('drain', () => {
              drains++;
              more();
            });
            return;
          }
        }
        res.end();
      };
      more();
    });
    let received = 0;
    const h = harness([], {
      ready: () => gate,
      onBytes: (t) => (received += t.length),
    });
    const done = h.run(app);
    await tick(30);
    /* the peer took one chunk and is not ready: node is told to wait */
    expect(received).toBe(chunk.length);
    expect(writes).toBeLessThanOrEqual(2);
    gate = null;
    open();
    await done;
    expect(received).toBe(total * chunk.length);
    expect(drains).toBeGreaterThan(0);
    expect(response(h.calls).ended).toBe(true);
  });

  it('sends 204 and 304 without a body, and HEAD without a body', async () => {
    for (const code of [204, 304]) {
      const h = harness();
      await h.run(
        fromNodeHandler((_req, res) => {
          res.writeHead(code, { ETag: '"x"' });
          res.end();
        }),
      );
      expect(response(h.calls)).toEqual({
        status: code === 204 ? '204 No Content' : '304 Not Modified',
        headers: ['ETag', '"x"', 'Date', 'DATE'],
        body: '',
        ended: true,
        cut: false,
      });
    }
    const head = harness(['REQUEST_METHOD', 'HEAD']);
    let method = '';
    await head.run(
      fromNodeHandler((req, res) => {
        method = req.method!;
        res.setHeader('Content-Type', 'text/plain');
        res.end('hello'); /* node drops the body of a HEAD response, and adds no length */
      }),
    );
    expect(method).toBe('HEAD');
    expect(response(head.calls)).toEqual({
      status: '200 OK',
      headers: ['Content-Type', 'text/plain', 'Date', 'DATE'],
      body: '',
      ended: true,
      cut: false,
    });
  });

  it('drops interim 1xx responses and trailers', async () => {
    const app = fromNodeHandler((_req, res) => {
      res.writeEarlyHints({ link: '</style.css>; rel=preload' });
      res.writeHead(200, { 'Content-Type': 'text/plain', Trailer: 'X-Sum' });
      res.write('body');
      res.addTrailers({ 'X-Sum': '42' });
      res.end();
    });
    const h = harness();
    await h.run(app);
    const r = response(h.calls);
    expect(r.status).toBe('200 OK');
    expect(r.body).toBe('body');
    /* "Trailer" is hop-by-hop: the gateway drops it and says so */
    expect(r.headers).toEqual([
      'Content-Type',
      'text/plain',
      'Date',
      'DATE',
      'Content-Length',
      '4',
    ]);
    expect(h.errors.join('')).toContain('dropped hop-by-hop header "Trailer"');
  });

  it('gives a body without a Content-Type the default type', async () => {
    const h = harness();
    await h.run(fromNodeHandler((_req, res) => res.end('raw')));
    expect(response(h.calls).headers).toEqual([
      'Date',
      'DATE',
      'Content-Length',
      '3',
      'Content-Type',
      'application/octet-stream',
    ]);
    const custom = harness();
    await custom.run(
      fromNodeHandler((_req, res) => res.end('raw'), { defaultContentType: 'text/plain' }),
    );
    expect(response(custom.calls).headers).toContain('text/plain');
  });

  it('answers 500 when the handler throws or rejects, with the error on tsgi.errors', async () => {
    for (const handler of [
      () => {
        throw new Error('sync failure');
      },
      async () => {
        await tick(1);
        throw new Error('async failure');
      },
    ]) {
      const h = harness();
      await h.run(fromNodeHandler(handler as NodeHandler));
      expect(response(h.calls)).toEqual({
        status: '500 Internal Server Error',
        headers: [
          'Content-Type',
          'text/plain; charset=us-ascii',
          'Content-Length',
          '22',
          'Date',
          'DATE',
        ],
        body: 'Internal Server Error\n',
        ended: true,
        cut: false,
      });
      expect(h.errors.join('')).toMatch(/tsgi: error in the node handler: Error: (a?sync) failure/);
    }
  });

  it('cuts the response when the handler fails after the head left', async () => {
    const h = harness();
    await h.run(
      fromNodeHandler((_req, res) => {
        res.setHeader('Content-Type', 'text/plain');
        res.write('partial');
        setTimeout(() => res.destroy(new Error('gone wrong')), 5);
      }),
    );
    const r = response(h.calls);
    expect(r.body).toBe('partial');
    expect(r.cut).toBe(true);
    expect(r.ended).toBe(false);
  });

  it('cuts a response that ends short of its Content-Length', async () => {
    const h = harness();
    await h.run(
      fromNodeHandler((_req, res) => {
        res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '10' });
        res.write('12345');
        setTimeout(() => res.end(), 2);
      }),
    );
    const r = response(h.calls);
    expect(r.body).toBe('12345');
    expect(r.cut).toBe(true);
    expect(h.errors.join('')).toContain('5 bytes short of its Content-Length');
  });

  for (const lean of [false, true]) {
    it(`emits res "close" (not finished) and req "close" when the client goes away${lean ? ' (lean environ)' : ''}`, async () => {
      const events: string[] = [];
      let handlerRan: () => void = () => {};
      const ran = new Promise<void>((r) => (handlerRan = r));
      const app = fromNodeHandler((req, res) => {
        res.on('close', () => events.push(`res close finished=${res.writableFinished}`));
        req.on('close', () => events.push('req close'));
        handlerRan(); /* and never answers */
      });
      const h = harness([], { lean });
      const done = h.run(app);
      await ran;
      await tick(5);
      expect(events).toEqual([]);
      h.controller.abort();
      await done;
      await tick(5);
      expect(events.sort()).toEqual(['req close', 'res close finished=false']);
      expect(h.calls).toEqual([]);
    });
  }

  for (const lean of [false, true]) {
    it(`stops a streaming handler when the client goes away mid-body${lean ? ' (lean environ)' : ''}`, async () => {
      let closed = false;
      let writes = 0;
      const h = harness([], { lean, onBytes: () => writes === 3 && h.controller.abort() });
      await h.run(
        fromNodeHandler((_req, res) => {
          res.setHeader('Content-Type', 'text/plain');
          res.on('close', () => (closed = true));
          const timer = setInterval(() => {
            if (closed) {
              clearInterval(timer);
              return;
            }
            writes++;
            res.write(`line ${writes}\n`);
          }, 2);
        }),
      );
      await tick(20);
      expect(closed).toBe(true);
      expect(writes).toBeLessThan(6);
    });
  }

  it('emits res "close" after "finish" on a normal end too, as node:http does', async () => {
    const events: string[] = [];
    const h = harness();
    await h.run(
      fromNodeHandler((_req, res) => {
        res.on('finish', () => events.push('finish'));
        res.on('close', () => events.push(`close finished=${res.writableFinished}`));
        res.setHeader('Content-Type', 'text/plain');
        res.end('x');
      }),
    );
    await tick(5);
    expect(events).toEqual(['finish', 'close finished=true']);
  });

  it('runs under validate(), composes with TSGI middleware', async () => {
    const withHeader =
      (inner: App): App =>
      (env, start) =>
        inner(env, (status, headers, exc) => start(status, [...headers, ['X-Mw', '1']], exc));
    const h = harness(['REQUEST_URI', '/x']);
    await h.run(validate(withHeader(fromNodeHandler(hello))));
    expect(response(h.calls)).toEqual({
      status: '200 OK',
      headers: ['Content-Type', 'text/plain', 'Date', 'DATE', 'Content-Length', '5', 'X-Mw', '1'],
      body: 'hello',
      ended: true,
      cut: false,
    });
    const streaming = harness();
    await streaming.run(
      validate(
        fromNodeHandler((_req, res) => {
          res.setHeader('Content-Type', 'text/plain');
          res.write('a');
          setTimeout(() => res.end('b'), 2);
        }),
      ),
    );
    expect(response(streaming.calls).body).toBe('ab');
    expect(streaming.errors).toEqual([]);
  });
});

describe('fromNodeHandler against node:http itself', () => {
  /**
   * Runs `handler` on a real node:http server for a raw HTTP/1.1 request; `client` may cut the
   * connection. Resolves once `settled` says the handler's side is over.
   */
  async function onNodeHttp(
    raw: string,
    handler: (req: IncomingMessage, res: ServerResponse, done: () => void) => void,
    cut = false,
  ): Promise<void> {
    let finish: () => void = () => {};
    const over = new Promise<void>((r) => (finish = r));
    const server = createServer((req, res) => handler(req, res, finish));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    socket.on('error', () => {});
    socket.on('data', () => {});
    socket.write(raw);
    if (cut) setTimeout(() => socket.destroy(), 30);
    await over;
    socket.destroy();
    await new Promise<void>((r) => server.close(() => r()));
  }

  /* after Host: example.org:8080, the harness's first header */
  const LINES: [string, string][] = [
    ['Content-Type', 'text/plain'],
    ['Content-Length', '0'],
    ['Cookie', 'a=1; b=2'],
    ['Set-Cookie', 'c=3'],
    ['Accept', 'text/html, application/json'],
    ['X-Forwarded-For', '10.0.0.1, 10.0.0.2'],
    ['User-Agent', 'agent/1.0'],
    ['Authorization', 'Basic Zm9vOmJhcg=='],
  ];
  /* the same header lines as CGI variables, in the same order */
  const PAIRS = LINES.flatMap(([name, value]) => [
    name.startsWith('Content-')
      ? name.toUpperCase().replace('-', '_')
      : 'HTTP_' + name.toUpperCase().replace(/-/g, '_'),
    value,
  ]);

  it('builds req.headers, rawHeaders and headersDistinct exactly as node:http does', async () => {
    const shape = (req: IncomingMessage) => ({
      method: req.method,
      url: req.url,
      httpVersion: req.httpVersion,
      headers: { ...req.headers },
      rawHeaders: req.rawHeaders,
      distinct: { ...req.headersDistinct },
      complete: req.complete,
    });
    let direct: unknown = null;
    await onNodeHttp(
      `POST /p?q=1 HTTP/1.1\r\nHost: example.org:8080\r\n${LINES.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`,
      (req, res, done) => {
        direct = shape(req);
        res.end();
        done();
      },
    );
    let adapted: unknown = null;
    const { app } = capture((req, res) => {
      adapted = shape(req);
      res.end();
    });
    await harness(['REQUEST_METHOD', 'POST', 'REQUEST_URI', '/p?q=1', ...PAIRS]).run(app);
    expect(adapted).toEqual(direct);
    expect((direct as { headers: Record<string, unknown> }).headers['set-cookie']).toEqual(['c=3']);
  });

  it("emits node:http's events in node:http's order: finish, res close, req end/close", async () => {
    const record = (
      req: IncomingMessage,
      res: ServerResponse,
      events: string[],
      done: () => void,
    ) => {
      res.on('finish', () => events.push('res finish'));
      res.on('close', () => {
        events.push(`res close finished=${res.writableFinished}`);
      });
      req.on('end', () => events.push('req end'));
      req.on('close', () => {
        events.push('req close');
        setTimeout(done, 10);
      });
    };
    for (const body of ['', 'hello']) {
      const direct: string[] = [];
      const adapted: string[] = [];
      const handler =
        (events: string[]) => (req: IncomingMessage, res: ServerResponse, done: () => void) => {
          record(req, res, events, done);
          const answer = () => {
            res.setHeader('Content-Type', 'text/plain');
            res.end('ok');
          };
          if (body === '') answer();
          else {
            req.on('data', (d: Buffer) => events.push(`req data ${d.length}`));
            req.on('end', answer);
          }
        };
      await onNodeHttp(
        `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
        handler(direct),
      );
      const input = new BodyInput(body.length);
      let over: () => void = () => {};
      const settled = new Promise<void>((r) => (over = r));
      const h = harness(['REQUEST_METHOD', 'POST', 'CONTENT_LENGTH', String(body.length)], {
        input,
      });
      const done = h.run(fromNodeHandler((req, res) => handler(adapted)(req, res, over)));
      if (body !== '') {
        input.feed(Buffer.from(body));
      }
      await done;
      await settled;
      expect(adapted).toEqual(direct);
      expect(direct.indexOf('res finish')).toBeLessThan(direct.indexOf('req close'));
    }
  });

  for (const lean of [false, true]) {
    it(`emits req "aborted", req "close" and res "close" as node:http does when the client goes away${lean ? ' (lean environ)' : ''}`, async () => {
      const handler =
        (events: string[]) => (req: IncomingMessage, res: ServerResponse, done: () => void) => {
          req.on('aborted', () => events.push(`req aborted`));
          req.on('error', (e: Error & { code?: string }) =>
            events.push(`req error ${e.message} ${e.code}`),
          );
          req.on('close', () => events.push('req close'));
          res.on('close', () => {
            events.push(`res close finished=${res.writableFinished}`);
            setTimeout(done, 10);
          });
          /* reads the body that never completes, never answers */
          req.on('data', () => {});
        };
      const direct: string[] = [];
      await onNodeHttp(
        'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc',
        handler(direct),
        true,
      );
      const adapted: string[] = [];
      let over: () => void = () => {};
      const settled = new Promise<void>((r) => (over = r));
      const input = new BodyInput(100);
      const h = harness(['REQUEST_METHOD', 'POST', 'CONTENT_LENGTH', '100'], { input, lean });
      const done = h.run(fromNodeHandler((req, res) => handler(adapted)(req, res, over)));
      input.feed(Buffer.from('abc'));
      await tick(30);
      h.controller.abort();
      await done;
      await settled;
      expect(adapted).toEqual(direct);
      expect(direct).toContain('req aborted');
    });
  }

  it('res.write() returns false past the socket buffer and "drain" comes once the peer took it', async () => {
    let open: () => void = () => {};
    let gate: Promise<void> | null = new Promise<void>((r) => (open = r));
    const events: string[] = [];
    const chunk = Buffer.alloc(20 * 1024, 0x63);
    let res!: ServerResponse;
    const app = fromNodeHandler((_req, r) => {
      res = r;
      r.setHeader('Content-Type', 'application/octet-stream');
      r.on('drain', () => events.push('drain'));
      events.push(`write ${r.write(chunk)}`); /* 20 KiB: more than a socket's 16 KiB */
    });
    const h = harness([], { ready: () => gate });
    const done = h.run(app);
    await tick(10);
    /* the gateway took the first chunk (with the head) and the peer is slow */
    expect(events).toEqual(['write false', 'drain']);
    events.push(`write ${res.write('small')}`);
    events.push(`write ${res.write(chunk)}`);
    await tick(10);
    expect(events).toEqual(['write false', 'drain', 'write true', 'write false']);
    expect(res.writableNeedDrain).toBe(true);
    gate = null;
    open();
    await tick(10);
    expect(events).toEqual(['write false', 'drain', 'write true', 'write false', 'drain']);
    expect(res.writableNeedDrain).toBe(false);
    res.end();
    await done;
    expect(response(h.calls).body).toBe(
      chunk.toString('latin1') + 'small' + chunk.toString('latin1'),
    );
  });
});

describe("tsgi's HTTP listener with a node handler", () => {
  /** Sends `raw` to a createHttpServer(app) and gives back everything it answered. */
  async function exchange(app: App, raw: string, errors: string[] = []): Promise<string> {
    const server = createHttpServer(app, { errors: errorStream((b) => errors.push(latin1(b))) });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const socket = connect((server.address() as AddressInfo).port, '127.0.0.1');
    let text = '';
    socket.on('data', (d: Buffer) => (text += d.toString('latin1')));
    socket.write(raw);
    await new Promise<void>((r) => socket.on('close', () => r()));
    await server.drain();
    return text;
  }

  it("gives the handler node:http's own req and res, over the client's socket", async () => {
    let socketClass = '';
    let remote = '';
    const app = fromNodeHandler((req, res) => {
      socketClass = req.socket.constructor.name;
      remote = `${req.socket.remoteAddress}`;
      res.setHeader('Content-Type', 'text/plain');
      res.end(`${req.method} ${req.url} ${req.headers['x-a']}`);
    });
    const text = await exchange(
      app,
      'GET /p?q=1 HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nConnection: close\r\n\r\n',
    );
    expect(socketClass).toBe('Socket');
    expect(remote).toBe('127.0.0.1');
    expect(text.replace(/Date: [^\r]*\r\n/, '')).toBe(
      'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n' +
        'Content-Length: 12\r\n\r\nGET /p?q=1 1',
    );
  });

  it('answers 500 when the handler throws, 501 to upgrades and CONNECT', async () => {
    const errors: string[] = [];
    const app = fromNodeHandler(() => {
      throw new Error('boom');
    });
    const text = await exchange(
      app,
      'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n',
      errors,
    );
    expect(text).toMatch(/^HTTP\/1\.1 500 Internal Server Error\r\n/);
    expect(text.endsWith('\r\n\r\nInternal Server Error\n')).toBe(true);
    expect(errors.join('')).toMatch(/^tsgi: error in the node handler: Error: boom\n/);
    const upgrade = await exchange(
      fromNodeHandler(hello),
      'GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n',
    );
    const reason =
      '501 Not Implemented: protocol upgrades (Upgrade: websocket) cannot be served through ' +
      'the TSGI interface: the gateway protocols do not hand over the client connection\n';
    expect(upgrade).toBe(
      'HTTP/1.1 501 Not Implemented\r\nContent-Type: text/plain; charset=utf-8\r\n' +
        `Content-Length: ${reason.length}\r\nConnection: close\r\n\r\n${reason}`,
    );
    const tunnel = await exchange(
      fromNodeHandler(hello),
      'CONNECT example.org:443 HTTP/1.1\r\nHost: example.org:443\r\n\r\n',
    );
    expect(tunnel).toMatch(/^HTTP\/1\.1 501 Not Implemented\r\n[^]*CONNECT requests \(tunnels\)/);
  });
});

/* ------------------------------------------------------------------------------------------ */

describe('fromFetch', () => {
  it('makes a real Request: url, method, headers; sends status, headers and body', async () => {
    let seen: Request | null = null;
    let seenEnv: Environ | null = null;
    const app = fromFetch((request, env) => {
      seen = request;
      seenEnv = env;
      return new Response('hello', { status: 201, headers: { 'X-A': 'b' } });
    });
    const h = harness([
      'REQUEST_URI',
      '/p/q?x=1',
      'HTTP_ACCEPT',
      'text/html',
      'HTTP_X_REQUEST_ID',
      'abc',
    ]);
    await h.run(app);
    const req = seen as unknown as Request;
    expect(req).toBeInstanceOf(Request);
    expect(req.url).toBe('http://example.org:8080/p/q?x=1');
    expect(req.method).toBe('GET');
    expect([...req.headers]).toEqual([
      ['accept', 'text/html'],
      ['host', 'example.org:8080'],
      ['x-request-id', 'abc'],
    ]);
    expect(seenEnv).toBe(h.env);
    expect(response(h.calls)).toEqual({
      status: '201 Created',
      headers: ['content-type', 'text/plain;charset=UTF-8', 'x-a', 'b', 'Content-Length', '5'],
      body: 'hello',
      ended: true,
      cut: false,
    });
  });

  it('gives a Request whose other members make the real one: body, signal, clone()', async () => {
    const input = new BodyInput(5);
    const seen: unknown[] = [];
    const app = fromFetch(async (request) => {
      seen.push(request instanceof Request, request.method, request.headers.get('x-a'));
      const copy = new Request(request.clone());
      seen.push(request.bodyUsed, await request.text(), request.bodyUsed);
      seen.push(request.signal instanceof AbortSignal, request.signal.aborted);
      seen.push(copy.url, copy.method, copy.headers.get('x-a'), await copy.text());
      return new Response('ok');
    });
    const h = harness(
      ['REQUEST_METHOD', 'PUT', 'CONTENT_LENGTH', '5', 'HTTP_X_A', '1', 'REQUEST_URI', '/u'],
      { input },
    );
    const done = h.run(app);
    input.feed(Buffer.from('hello'));
    await done;
    expect(seen).toEqual([
      true,
      'PUT',
      '1',
      false,
      'hello',
      true,
      true,
      false,
      'http://example.org:8080/u',
      'PUT',
      '1',
      'hello',
    ]);
    expect(response(h.calls).body).toBe('ok');
  });

  it('builds the URL from the scheme and SERVER_NAME when there is no Host', async () => {
    let url = '';
    const app = fromFetch((request) => {
      url = request.url;
      return new Response(null, { status: 204 });
    });
    const h = harness(['HTTPS', 'on', 'SERVER_PORT', '443', 'REQUEST_URI', '/s']);
    delete (h.env as Record<string, unknown>).HTTP_HOST;
    await h.run(app);
    expect(url).toBe('https://example.org/s');
    expect(response(h.calls)).toMatchObject({ status: '204 No Content', headers: [], body: '' });
  });

  it('keeps every Set-Cookie', async () => {
    const h = harness();
    await h.run(
      fromFetch(() => {
        const headers = new Headers({ 'Content-Type': 'text/plain' });
        headers.append('Set-Cookie', 'a=1; Path=/');
        headers.append('Set-Cookie', 'b=2, with comma; HttpOnly');
        return new Response('ok', { headers });
      }),
    );
    expect(response(h.calls).headers).toEqual([
      'content-type',
      'text/plain',
      'set-cookie',
      'a=1; Path=/',
      'set-cookie',
      'b=2, with comma; HttpOnly',
      'Content-Length',
      '2',
    ]);
  });

  it('streams the request body with backpressure', async () => {
    const size = 2 * 1024 * 1024;
    const input = new BodyInput(size);
    let read: () => void = () => {};
    const app = fromFetch(
      (request) =>
        new Promise<Response>((resolve) => {
          read = () =>
            void request.arrayBuffer().then((b) => {
              const hash = createHash('sha256').update(Buffer.from(b)).digest('hex');
              resolve(new Response(`${b.byteLength} ${hash}`));
            });
        }),
    );
    const h = harness(['REQUEST_METHOD', 'POST', 'CONTENT_LENGTH', String(size)], { input });
    const done = h.run(app);
    const chunk = Buffer.alloc(16 * 1024, 0x63);
    let fed = 0;
    while (input.feed(chunk)) {
      fed += chunk.length;
      await tick();
      if (fed >= size) break;
    }
    fed += chunk.length;
    expect(fed).toBeLessThan(256 * 1024);
    read();
    while (fed < size) {
      if (!input.feed(chunk)) await new Promise<void>((r) => (input.onWant = r));
      fed += chunk.length;
    }
    await done;
    const expected = createHash('sha256').update(Buffer.alloc(size, 0x63)).digest('hex');
    expect(response(h.calls).body).toBe(`${size} ${expected}`);
  });

  it('aborts request.signal when the client goes away, and cancels the body stream', async () => {
    let aborted = false;
    let cancelled = false;
    let pulls = 0;
    const h = harness([], { onBytes: () => h.controller.abort() });
    await h.run(
      fromFetch((request) => {
        request.signal.addEventListener('abort', () => (aborted = true));
        const stream = new ReadableStream<Uint8Array>({
          async pull(controller) {
            pulls++;
            await tick(1);
            controller.enqueue(new TextEncoder().encode(`event ${pulls}\n`));
          },
          cancel() {
            cancelled = true;
          },
        });
        return new Response(stream, { headers: { 'Content-Type': 'text/event-stream' } });
      }),
    );
    await tick(5);
    expect(aborted).toBe(true);
    expect(cancelled).toBe(true);
    expect(pulls).toBeLessThan(5);
    expect(response(h.calls).body).toBe('event 1\n');
  });

  it('pulls the response stream only as fast as the peer takes it', async () => {
    let open: () => void = () => {};
    let gate: Promise<void> | null = new Promise<void>((r) => (open = r));
    let pulls = 0;
    const h = harness([], { ready: () => gate });
    const done = h.run(
      fromFetch(
        () =>
          new Response(
            new ReadableStream<Uint8Array>(
              {
                pull(controller) {
                  pulls++;
                  if (pulls > 20) controller.close();
                  else controller.enqueue(new Uint8Array(1000).fill(0x64));
                },
              },
              { highWaterMark: 0 },
            ),
            { headers: { 'Content-Type': 'application/octet-stream' } },
          ),
      ),
    );
    await tick(20);
    expect(pulls).toBeLessThanOrEqual(3);
    gate = null;
    open();
    await done;
    expect(response(h.calls).body).toBe('d'.repeat(20000));
  });

  it('sends a light Response from its parts exactly as the same real Response', async () => {
    const cases: [string[], ConstructorParameters<typeof Response>][] = [
      [[], ['hello', { status: 201, headers: { 'X-A': 'b' } }]],
      [
        [],
        [
          'grüße',
          {
            statusText: 'Fine',
            headers: [
              ['Set-Cookie', 'a=1'],
              ['X-Z', '1'],
              ['Set-Cookie', 'b=2'],
              ['x-z', '2'],
            ],
          },
        ],
      ],
      [[], [Buffer.from([0, 1, 255]), { status: 404 }]],
      [[], [new Uint8Array(0)]],
      [[], [null, { status: 302, headers: { Location: '/there' } }]],
      [[], ['', { headers: { 'Content-Type': 'text/html' } }]],
      [
        ['REQUEST_METHOD', 'HEAD'],
        ['body', { headers: { 'Content-Length': '4' } }],
      ],
      [[], [null, { status: 204 }]],
    ];
    for (const [pairs, args] of cases) {
      const light = harness(pairs);
      let parts: unknown = null;
      await light.run(
        fromFetch(() => {
          const r = new LightResponse(...args);
          parts = responseParts(r);
          return r;
        }),
      );
      expect(parts).not.toBeNull();
      const real = harness(pairs);
      await real.run(fromFetch(() => new NativeResponse(...args)));
      expect(light.calls).toEqual(real.calls);
    }
    const h = harness();
    await h.run(
      fromFetch(
        () =>
          new LightResponse('grüße', {
            headers: [
              ['Set-Cookie', 'a=1'],
              ['X-Z', '1'],
              ['x-z', '2'],
            ],
          }),
      ),
    );
    expect(h.calls).toEqual([
      [
        'head',
        '200 OK',
        [
          'content-type',
          'text/plain;charset=UTF-8',
          'x-z',
          '1, 2',
          'set-cookie',
          'a=1',
          'Content-Length',
          '7',
        ],
        'gr\xc3\xbc\xc3\x9fe',
        true,
      ],
    ]);
  });

  it('sends HEAD, 204 and 304 without a body', async () => {
    const head = harness(['REQUEST_METHOD', 'HEAD']);
    await head.run(fromFetch(() => new Response('body', { headers: { 'Content-Length': '4' } })));
    expect(response(head.calls)).toEqual({
      status: '200 OK',
      headers: ['content-length', '4', 'content-type', 'text/plain;charset=UTF-8'],
      body: '',
      ended: true,
      cut: false,
    });
    const notModified = harness();
    await notModified.run(fromFetch(() => new Response(null, { status: 304 })));
    expect(response(notModified.calls)).toMatchObject({ status: '304 Not Modified', body: '' });
  });

  it('refuses CONNECT, TRACE and upgrades with 501, a bad Host with 400', async () => {
    const app = fromFetch(() => new Response('never'));
    for (const [pairs, body] of [
      [
        ['REQUEST_METHOD', 'TRACE'],
        '501 Not Implemented: TRACE requests cannot be made into a fetch Request\n',
      ],
      [
        ['HTTP_CONNECTION', 'Upgrade', 'HTTP_UPGRADE', 'websocket'],
        '501 Not Implemented: protocol upgrades (Upgrade: websocket) cannot be served through the TSGI interface: the gateway protocols do not hand over the client connection\n',
      ],
      [
        ['HTTP_HOST', 'bad host'],
        '400 Bad Request: the Host header and request target do not make a URL\n',
      ],
    ] as [string[], string][]) {
      const h = harness(pairs);
      await h.run(app);
      expect(response(h.calls).body).toBe(body);
    }
  });

  it('gives a body without a Content-Type the default type; UTF-8 for string chunks', async () => {
    const h = harness();
    await h.run(
      fromFetch(
        () =>
          new Response(
            new ReadableStream<unknown>({
              start(c) {
                c.enqueue('caf\u00e9 \u2713');
                c.close();
              },
            }) as ReadableStream<Uint8Array>,
          ),
      ),
    );
    const r = response(h.calls);
    expect(r.headers).toEqual(['content-type', 'application/octet-stream', 'Content-Length', '9']);
    expect(Buffer.from(r.body, 'latin1').toString('utf8')).toBe('caf\u00e9 \u2713');
  });

  it('answers 500 when the handler throws or returns no Response', async () => {
    for (const handler of [
      () => {
        throw new Error('fetch failure');
      },
      () => 'not a response' as unknown as Response,
    ]) {
      const h = harness();
      await h.run(fromFetch(handler));
      expect(response(h.calls).status).toBe('500 Internal Server Error');
      expect(h.errors.join('')).toMatch(/fetch failure|returned a string, not a Response/);
    }
  });

  it('runs under validate()', async () => {
    const h = harness(['REQUEST_METHOD', 'POST', 'CONTENT_LENGTH', '3'], {
      input: (() => {
        const i = new BodyInput(3);
        i.feed(Buffer.from('abc'));
        return i;
      })(),
    });
    await h.run(
      validate(
        fromFetch(async (request) => new Response(`got ${await request.text()}`, { status: 202 })),
      ),
    );
    expect(response(h.calls)).toMatchObject({ status: '202 Accepted', body: 'got abc' });
    expect(h.errors).toEqual([]);
  });
});

/* ------------------------------------------------------------------------------------------ */

describe('adapt(): what --interface node|fetch accepts', () => {
  it('serves an Express app, seeing HTTPS through req.protocol and req.secure', async () => {
    const { default: express } = await import('express');
    const app = express();
    app.get('/where', (req, res) => {
      res.json({ protocol: req.protocol, secure: req.secure, ip: req.ip, host: req.hostname });
    });
    const served = await adapt(app, 'node');
    const h = harness(['HTTPS', 'on', 'REQUEST_URI', '/where']);
    await h.run(served);
    expect(JSON.parse(response(h.calls).body)).toEqual({
      protocol: 'https',
      secure: true,
      ip: '192.0.2.7',
      host: 'example.org',
    });
  });

  it('recognises a Koa app by callback()/use(), and serves callback()', async () => {
    let calls = 0;
    const koaLike = {
      use: () => koaLike,
      callback: () => {
        calls++;
        return hello;
      },
    };
    const served = await adapt(koaLike, 'node');
    const h = harness();
    await h.run(served);
    await harness().run(served);
    expect(response(h.calls).body).toBe('hello');
    expect(calls).toBe(1);
  });

  it('recognises a Fastify instance, awaits ready() once, and serves routing', async () => {
    const order: string[] = [];
    const fastifyLike = {
      inject: () => undefined,
      ready: async () => {
        await tick(1);
        order.push('ready');
      },
      routing: (req: IncomingMessage, res: ServerResponse) => {
        order.push(`routing ${req.url}`);
        hello(req, res);
      },
    };
    const served = await adapt(fastifyLike, 'node');
    expect(order).toEqual(['ready']);
    await harness(['REQUEST_URI', '/r']).run(served);
    expect(order).toEqual(['ready', 'routing /r']);
  });

  it('takes an object with fetch() for the fetch interface, called with this = the object', async () => {
    const router = {
      greeting: 'from the router',
      fetch(this: { greeting: string }, request: Request, env: Environ) {
        return new Response(`${this.greeting} ${new URL(request.url).pathname} ${env.REMOTE_ADDR}`);
      },
    };
    const h = harness(['REQUEST_URI', '/x']);
    await h.run(await adapt(router, 'fetch'));
    expect(response(h.calls).body).toBe('from the router /x 192.0.2.7');
  });

  it('names what it wanted when the export does not fit', async () => {
    await expect(
      adapt({ listen() {} }, 'node', 'the export "default" of "app.mjs"'),
    ).rejects.toThrow(
      /^the export "default" of "app\.mjs" is an object \(Object\), not a \(req, res\) request listener, a Koa app or a Fastify instance$/,
    );
    await expect(adapt('text', 'fetch')).rejects.toThrow(
      'the app is a string, not a (request) => Response function or an object with a fetch() method',
    );
    await expect(adapt({}, 'tsgi')).rejects.toThrow(
      /^the app is an object \(Object\), not an app function$/,
    );
    const failing = {
      inject() {},
      routing() {},
      ready: () => Promise.reject(new Error('plugin broke')),
    };
    await expect(adapt(failing, 'node')).rejects.toThrow(
      'the app is a Fastify instance whose ready() failed: plugin broke',
    );
  });
});
