/**
 * The protocols `tsgi serve` can listen with. Each entry gives its command-line flag, the name
 * shown in logs and help, and how to make a server for an app; the command builds its options,
 * its help text and its listeners from this table.
 */
import type { Server, Socket } from 'node:net';
import type { Writable } from 'node:stream';
import type { App } from '../gateway/types.js';
import type { ConnectionLimits } from '../protocol/socket.js';
import { createFastcgiServer } from '../protocol/fastcgi.js';
import { createHttpServer } from '../protocol/http.js';
import { createScgiServer } from '../protocol/scgi.js';
import { createUwsgiServer } from '../protocol/uwsgi.js';
import type { DrainOptions } from '../protocol/socket.js';

/** A listening server of any protocol, with a graceful stop. */
export interface ProtocolServer extends Server {
  /**
   * Stops accepting, lets running requests finish, then closes every connection; with
   * keepIdle, idle connections stay open until closeIdle() (see ConnectionGateway.drain).
   */
  drain(options?: DrainOptions): Promise<void>;
  /** Closes the connections that hold no request now. */
  closeIdle(): void;
  /** True when no request is running. */
  readonly idle: boolean;
  /** Serves a connection handed over by another process (the gateway protocols). */
  adopt?(socket: Socket): void;
}

/** Options every protocol server takes from the command. */
export interface ServeOptions {
  /** Sets tsgi.multiprocess (true under a master with workers). */
  multiprocess?: boolean;
  /** Where the server's own messages go (default: stderr, one `tsgi: ` line each). */
  log?: (line: string) => void;
  /**
   * tsgi.errors of every request for the protocols without an error channel (SCGI, uwsgi,
   * HTTP; FastCGI sends it to the web server as STDERR records). Default: stderr.
   */
  errors?: Writable;
  /** HTTP: how long an idle keep-alive connection stays open, in ms (default: node's, 5000). */
  httpKeepAliveMs?: number;
  /** FastCGI, SCGI, uwsgi: deadlines and caps of connections (the rest: defaults). */
  connectionLimits?: Partial<ConnectionLimits>;
}

export interface Protocol {
  /** The flag without dashes (`--fastcgi ADDR`), also the name in logs' machine form. */
  readonly flag: string;
  /** The name for people: "FastCGI". */
  readonly title: string;
  /** One line for `tsgi --help`. */
  readonly help: string;
  create(app: App, options: ServeOptions): ProtocolServer;
}

/** What every gateway-protocol server takes of the command's options. */
const gatewayOptions = (o: ServeOptions) => ({
  multiprocess: o.multiprocess ?? false,
  log: o.log,
  connectionLimits: o.connectionLimits,
});

export const PROTOCOLS: readonly Protocol[] = [
  {
    flag: 'fastcgi',
    title: 'FastCGI',
    help: 'serve FastCGI on ADDR (repeatable)',
    /* tsgi.errors goes to the web server as STDERR records */
    create: (app, o) => createFastcgiServer(app, gatewayOptions(o)),
  },
  {
    flag: 'scgi',
    title: 'SCGI',
    help: 'serve SCGI on ADDR (repeatable)',
    create: (app, o) => createScgiServer(app, { ...gatewayOptions(o), errors: o.errors }),
  },
  {
    flag: 'uwsgi',
    title: 'uwsgi',
    help: 'serve uwsgi on ADDR (repeatable)',
    create: (app, o) => createUwsgiServer(app, { ...gatewayOptions(o), errors: o.errors }),
  },
  {
    flag: 'http',
    title: 'HTTP',
    help: 'serve HTTP on ADDR (repeatable)',
    create: (app, o) =>
      createHttpServer(app, {
        multiprocess: o.multiprocess ?? false,
        errors: o.errors,
        keepAliveTimeout: o.httpKeepAliveMs,
      }),
  },
];

/** The protocol with this flag, or undefined. */
export function protocolByFlag(flag: string): Protocol | undefined {
  return PROTOCOLS.find((p) => p.flag === flag);
}
