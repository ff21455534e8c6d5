/**
 * The TSGI interface (docs/gateway.md): what an application receives and what it gives back.
 * Python's WSGI (PEP 3333) with JavaScript types.
 */
import type { Readable, Writable } from 'node:stream';

/** One body chunk: bytes, or a string whose characters are all ≤ U+00FF (latin-1). */
export type Chunk = Uint8Array | string;

/** The legacy write() callable returned by startResponse. */
export type Write = (chunk: Chunk) => void;

/** Response headers: `[name, value]` pairs, latin-1 strings. */
export type Headers = [string, string][];

/**
 * startResponse(status, headers, excInfo?): `status` is `"200 OK"` (three digits, optionally a
 * space and a reason: `"200"` is a status too; lib/http/grammar.ts). A second call is legal only
 * with `excInfo` and only before the headers left.
 */
export type StartResponse = (status: string, headers: Headers, excInfo?: unknown) => Write;

/** The response body: a sync or async iterable of chunks, with an optional close(). */
export type Body = (Iterable<Chunk> | AsyncIterable<Chunk>) & {
  close?(): void | Promise<void>;
};

/** The request environ: CGI/1.1 variables (latin-1 strings) plus the `tsgi.*` keys. */
export interface Environ {
  [name: string]: unknown;
  REQUEST_METHOD: string;
  SCRIPT_NAME: string;
  PATH_INFO: string;
  QUERY_STRING: string;
  SERVER_NAME: string;
  SERVER_PORT: string;
  SERVER_PROTOCOL: string;
  CONTENT_TYPE?: string;
  CONTENT_LENGTH?: string;
  REMOTE_ADDR?: string;
  /** [1, 0] */
  'tsgi.version': readonly [number, number];
  /** "http" or "https" */
  'tsgi.url_scheme': string;
  /** The request body; EOF at CONTENT_LENGTH or at the protocol's end of body. */
  'tsgi.input': Readable;
  /** Diagnostics: FastCGI STDERR, or the server's log. */
  'tsgi.errors': Writable;
  'tsgi.multithread': boolean;
  'tsgi.multiprocess': boolean;
  'tsgi.run_once': boolean;
  /** "fastcgi", "http", "scgi", "uwsgi" or "cgi". */
  'tsgi.protocol': string;
  /** Aborts when the peer goes away, on FastCGI ABORT_REQUEST, or on a timeout. */
  'tsgi.signal': AbortSignal;
  /** FastCGI FILTER role only: the file to filter (the DATA stream). */
  'tsgi.data'?: Readable;
}

/** A TSGI application. */
export type App = (environ: Environ, startResponse: StartResponse) => Body | Promise<Body>;
