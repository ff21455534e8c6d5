/**
 * `tsgi request`: one request to a FastCGI, SCGI or uwsgi backend from the command line, like
 * cgi-fcgi or `curl -i`. Prints the status line, the headers as received (one per line,
 * repeats kept), an empty line and the body byte for byte; FastCGI STDERR goes to stderr. A
 * local redirect is printed as received, without a status line (see statusLine()).
 * This file parses the arguments and prints; the clients themselves are lib/client.
 *
 * Exit status: 0 when a response arrived (whatever its status), 1 on a connection, protocol or
 * timeout error, 2 for a usage error.
 */
import process from 'node:process';
import { Buffer } from 'node:buffer';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';
import type { Readable } from 'node:stream';
import { parseArgs } from 'node:util';
import { percentDecodeLatin1 } from '../gateway/environ.js';
import { VERSION } from '../version.js';
import { bufferBody } from '../client/common.js';
import { createClient, type ClientProtocol, type ClientResponse } from '../client/index.js';

/** The most `--data -` reads from stdin (1 GiB). */
const STDIN_LIMIT = 1024 * 1024 * 1024;

export const REQUEST_USAGE = `Usage: tsgi request ADDR [--fastcgi|--scgi|--uwsgi] [--param NAME=VALUE]...
                    [--root DIR] [-X METHOD] [--data FILE|-] [--timeout MS] PATH

Send one request to the FastCGI (default), SCGI or uwsgi backend at ADDR (HOST:PORT,
[IPV6]:PORT or unix:/path) and print the status line, the headers as received, an empty
line and the body byte for byte. A local redirect (Location: /path without Status) has no
status of its own: it is printed without a status line, and stderr says so.

PATH is the request path with an optional ?query. With --root, SCRIPT_FILENAME is DIR+PATH
(without the query) and DOCUMENT_ROOT is DIR: what php-fpm needs. --data sends FILE (or
stdin for -, read whole first) as the body, with its CONTENT_LENGTH. --param sets any
variable; the last one given wins.

Exit status: 0 when a response arrived, 1 on a connection, protocol or timeout error,
2 for a usage error.
`;

/** Runs `tsgi request ARGS`; resolves with the exit status. */
export async function requestMain(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        fastcgi: { type: 'boolean' },
        scgi: { type: 'boolean' },
        uwsgi: { type: 'boolean' },
        param: { type: 'string', multiple: true },
        root: { type: 'string' },
        method: { type: 'string', short: 'X' },
        data: { type: 'string' },
        timeout: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    return usage((err as Error).message);
  }
  const o = parsed.values;
  if (o.help) {
    process.stdout.write(REQUEST_USAGE);
    return 0;
  }
  if (parsed.positionals.length !== 2) return usage('expected ADDR and PATH');
  const [address, target] = parsed.positionals as [string, string];
  const picked = (['fastcgi', 'scgi', 'uwsgi'] as const).filter((p) => o[p]);
  if (picked.length > 1) return usage('give one of --fastcgi, --scgi, --uwsgi');
  const protocol: ClientProtocol = picked[0] ?? 'fastcgi';
  if (!target.startsWith('/')) return usage(`PATH must start with "/": ${target}`);
  const timeout = o.timeout === undefined ? 30000 : Number(o.timeout);
  if (!Number.isInteger(timeout) || timeout < 0) return usage('--timeout takes milliseconds');

  const q = target.indexOf('?');
  const path = q === -1 ? target : target.slice(0, q);
  const query = q === -1 ? '' : target.slice(q + 1);
  const method = o.method ?? (o.data !== undefined ? 'POST' : 'GET');
  const params: Record<string, string> = {
    GATEWAY_INTERFACE: 'CGI/1.1',
    SERVER_SOFTWARE: `tsgi/${VERSION}`,
    SERVER_PROTOCOL: 'HTTP/1.1',
    SERVER_NAME: 'localhost',
    SERVER_PORT: '80',
    REMOTE_ADDR: '127.0.0.1',
    REQUEST_METHOD: method,
    REQUEST_URI: target,
    QUERY_STRING: query,
    SCRIPT_NAME: '',
    PATH_INFO: percentDecodeLatin1(path),
  };
  if (o.root !== undefined) {
    const root = resolvePath(o.root);
    params.DOCUMENT_ROOT = root;
    params.SCRIPT_NAME = params.PATH_INFO!;
    params.PATH_INFO = '';
    params.SCRIPT_FILENAME = root + params.SCRIPT_NAME;
  }
  let body: Readable | Uint8Array | undefined;
  if (o.data !== undefined) {
    if (o.data === '-') {
      /* read whole, so that the backend gets a CONTENT_LENGTH (PHP reads no body without) */
      const data = await bufferBody(process.stdin, STDIN_LIMIT);
      params.CONTENT_LENGTH = String(data.length);
      body = data;
    } else {
      let size: number;
      try {
        size = (await stat(o.data)).size;
      } catch (err) {
        process.stderr.write(`tsgi request: ${(err as Error).message}\n`);
        return 1;
      }
      params.CONTENT_LENGTH = String(size);
      body = createReadStream(o.data);
    }
    params.CONTENT_TYPE = 'application/octet-stream';
  }
  for (const p of o.param ?? []) {
    const eq = p.indexOf('=');
    if (eq <= 0) return usage(`--param takes NAME=VALUE: ${p}`);
    params[p.slice(0, eq)] = p.slice(eq + 1);
  }

  let client;
  try {
    client = createClient({
      protocol,
      address,
      timeout,
      maxConcurrent: 1,
      keepAlive: false,
      stderr: (chunk) => process.stderr.write(chunk),
    });
  } catch (err) {
    return usage((err as Error).message);
  }
  try {
    const res = await client.request({ params, body });
    if (res.localRedirect) {
      const location = res.headers.find(([n]) => n.toLowerCase() === 'location')![1];
      process.stderr.write(
        `tsgi request: a local redirect to ${location} (no status of its own: ` +
          'a web server answers it by running the request again for that path)\n',
      );
    }
    const lines = statusLine(res) + res.headers.map(([n, v]) => `${n}: ${v}\r\n`).join('') + '\r\n';
    await write(Buffer.from(lines, 'latin1'));
    for await (const chunk of res.body) await write(chunk as Buffer);
    return 0;
  } catch (err) {
    process.stderr.write(`tsgi request: ${(err as Error).message}\n`);
    return 1;
  } finally {
    await client.close();
  }
}

/**
 * The first line printed: uwsgi's HTTP status line as received; for a CGI head its `Status:`
 * as received, or the one CGI gives a head without it (200 OK, or 302 Found for a redirect
 * to a URL). A local redirect (`Location: /path` without `Status:`) has no status of its
 * own, so no line: a web server never answers it as such, it runs the request again for that
 * path (as tsgi's proxy does).
 */
function statusLine(res: ClientResponse): string {
  if (res.localRedirect) return '';
  const text = `${res.status}${res.statusText === '' ? '' : ' ' + res.statusText}\r\n`;
  return (res.style === 'http' ? 'HTTP/1.1 ' : 'Status: ') + text;
}

function usage(message: string): number {
  process.stderr.write(`tsgi request: ${message}\nRun "tsgi request --help" for usage.\n`);
  return 2;
}

function write(b: Uint8Array): Promise<void> {
  return new Promise((resolve, reject) =>
    process.stdout.write(b, (err) => (err ? reject(err) : resolve())),
  );
}
