/**
 * A recording sink for the gateway's tests: what respond() sends to the protocol (head, write,
 * end, cut), the environ's error output, and the 500 answer the gateway gives a failing app.
 */
import { cgiVariables } from '../../lib/codec/environ.js';
import { makeEnviron } from '../../lib/gateway/environ.js';
import { errorStream } from '../../lib/gateway/errors.js';
import { BodyInput } from '../../lib/gateway/input.js';
import { respond, type Sink } from '../../lib/gateway/respond.js';
import type { App } from '../../lib/gateway/types.js';

export type Call = (string | string[] | boolean | null)[];

export const latin1 = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

/** A sink that records each call the gateway makes, aborted through `controller`. */
export function recordingSink(
  controller: AbortController,
  ready: () => Promise<void> | null = () => null,
): { calls: Call[]; sink: Sink } {
  const calls: Call[] = [];
  const sink: Sink = {
    head: (status, headers, body, last) =>
      calls.push(['head', status, headers, body === null ? null : latin1(body), last]),
    write: (chunk) => calls.push(['write', latin1(chunk)]),
    end: () => calls.push(['end']),
    ready,
    cut: () => calls.push(['cut']),
    get aborted() {
      return controller.signal.aborted;
    },
    signal: controller.signal,
  };
  return { calls, sink };
}

/** A GET environ and a recording sink, and the environ's error output. */
export function harness(pairs: string[] = [], opts: { ready?: () => Promise<void> | null } = {}) {
  const errors: string[] = [];
  const controller = new AbortController();
  const { calls, sink } = recordingSink(controller, opts.ready);
  const env = makeEnviron(
    cgiVariables([
      'REQUEST_METHOD',
      'GET',
      'SERVER_NAME',
      'example.org',
      'SERVER_PORT',
      '80',
      'SERVER_PROTOCOL',
      'HTTP/1.1',
      'REQUEST_URI',
      '/',
      ...pairs,
    ]),
    {
      protocol: 'test',
      input: new BodyInput(0),
      errors: errorStream((b) => errors.push(latin1(b))),
      signal: controller.signal,
    },
  );
  const run = async (app: App) => {
    await respond(app, env, sink);
    return calls;
  };
  return { calls, errors, env, controller, run, sink };
}

export const TEXT: [string, string][] = [['Content-Type', 'text/plain']];
export const ERROR_500: Call = [
  'head',
  '500 Internal Server Error',
  ['Content-Type', 'text/plain; charset=us-ascii', 'Content-Length', '22'],
  'Internal Server Error\n',
  true,
];
