/**
 * The codec contract shared by the native (C++ behind N-API) and the pure TypeScript codec.
 *
 * Both implementations must produce identical events and identical bytes for the same input,
 * whatever the chunking of that input. docs/codec.md is the normative description of every
 * rule (emission points, check order, exact error messages); this file holds the types.
 */

import type { CgiVariables } from './environ.js';

/** Which implementation is active. */
export type CodecName = 'native' | 'ts';

/** Limits given by the caller. A length field beyond them is an error before any allocation. */
export interface Limits {
  /**
   * Bytes of params held at once: for FastCGI the sum over all unfinished PARAMS streams of a
   * connection, for SCGI the netstring header block, for uwsgi the vars block. Default 131072.
   */
  maxParamsBytes: number;
  /** Name-value pairs in one params block (also GET_VALUES and GET_VALUES_RESULT). Default 1000. */
  maxPairs: number;
  /** Largest FastCGI record contentLength accepted (at most 65535). Default 65535. */
  maxRecordBody: number;
}

/** The limits used when the caller gives none. */
export const DEFAULT_LIMITS: Readonly<Limits> = Object.freeze({
  maxParamsBytes: 131072,
  maxPairs: 1000,
  maxRecordBody: 65535,
});

/** `limits` with every limit it leaves out taken from {@link DEFAULT_LIMITS}. */
export function resolveLimits(limits?: Partial<Limits>): Limits {
  return {
    maxParamsBytes: limits?.maxParamsBytes ?? DEFAULT_LIMITS.maxParamsBytes,
    maxPairs: limits?.maxPairs ?? DEFAULT_LIMITS.maxPairs,
    maxRecordBody: limits?.maxRecordBody ?? DEFAULT_LIMITS.maxRecordBody,
  };
}

/** Every error code a codec can report. */
export type ErrorCode =
  | 'FCGI_BAD_VERSION'
  | 'FCGI_RECORD_TOO_LARGE'
  | 'FCGI_BAD_REQUEST_ID'
  | 'FCGI_BAD_BEGIN'
  | 'FCGI_BAD_END'
  | 'FCGI_BAD_UNKNOWN_TYPE'
  | 'FCGI_BAD_PARAMS'
  | 'FCGI_PARAMS_TOO_LARGE'
  | 'FCGI_TOO_MANY_PARAMS'
  | 'SCGI_BAD_NETSTRING'
  | 'SCGI_HEADERS_TOO_LARGE'
  | 'SCGI_BAD_HEADERS'
  | 'SCGI_NO_CONTENT_LENGTH'
  | 'SCGI_BAD_CONTENT_LENGTH'
  | 'SCGI_NO_SCGI'
  | 'SCGI_TOO_MANY_PARAMS'
  | 'UWSGI_BAD_MODIFIER'
  | 'UWSGI_HEADERS_TOO_LARGE'
  | 'UWSGI_BAD_VARS'
  | 'UWSGI_BAD_CONTENT_LENGTH'
  | 'UWSGI_TOO_MANY_PARAMS'
  | 'HEAD_BAD_STATUS'
  | 'HEAD_BAD_NAME'
  | 'HEAD_BAD_VALUE'
  | 'ENCODE_NOT_LATIN1'
  | 'ENCODE_TOO_LARGE'
  | 'ENCODE_BAD_ARGUMENT';

/** An error as a value: a stable code and a human message (exact texts in docs/codec.md). */
export class CodecError extends Error {
  /** The stable, machine-readable code. */
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string) {
    super(message);
    this.name = 'CodecError';
    this.code = code;
  }
}

/** The error event a parser emits once, as its last event; afterwards push() returns []. */
export interface ErrorEvent {
  type: 'error';
  code: ErrorCode;
  message: string;
}

/** FastCGI record types (FastCGI 1.0). */
export const FCGI = Object.freeze({
  VERSION_1: 1,
  BEGIN_REQUEST: 1,
  ABORT_REQUEST: 2,
  END_REQUEST: 3,
  PARAMS: 4,
  STDIN: 5,
  STDOUT: 6,
  STDERR: 7,
  DATA: 8,
  GET_VALUES: 9,
  GET_VALUES_RESULT: 10,
  UNKNOWN_TYPE: 11,
  RESPONDER: 1,
  AUTHORIZER: 2,
  FILTER: 3,
  KEEP_CONN: 1,
  REQUEST_COMPLETE: 0,
  CANT_MPX_CONN: 1,
  OVERLOADED: 2,
  UNKNOWN_ROLE: 3,
});

/** The stream record types whose content is passed on as bytes. */
export type FcgiStreamType = 'stdin' | 'data' | 'stdout' | 'stderr';

/**
 * Events of the FastCGI parser. The parser is symmetric: it decodes what a web server sends
 * (begin, params, stdin, data, abort, getValues) and what an application sends (stdout,
 * stderr, end, getValuesResult, unknownType), so that servers and clients share it.
 *
 * `pairs` is a flat array of latin-1 strings: [name0, value0, name1, value1, ...].
 * Stream `data` is a view of the input chunk where possible; it is valid until the caller
 * reuses that chunk.
 */
export type FcgiEvent =
  | { type: 'begin'; requestId: number; role: number; flags: number }
  | { type: 'params'; requestId: number; pairs: string[] }
  | { type: FcgiStreamType; requestId: number; data: Uint8Array }
  | { type: 'stdinEnd' | 'dataEnd' | 'stdoutEnd' | 'stderrEnd'; requestId: number }
  | { type: 'abort'; requestId: number }
  | { type: 'end'; requestId: number; appStatus: number; protocolStatus: number }
  | { type: 'getValues'; names: string[] }
  | { type: 'getValuesResult'; pairs: string[] }
  | { type: 'unknownType'; recordType: number }
  | { type: 'unknown'; requestId: number; recordType: number }
  | ErrorEvent;

/**
 * The events of {@link FcgiParser.pushVars}: those of push(), except that a params event comes
 * as `vars`, the CGI variables its pairs make (`cgiVariables(pairs)`, lib/codec/environ.ts).
 */
export type FcgiVarsEvent =
  Exclude<FcgiEvent, { type: 'params' }> | { type: 'vars'; requestId: number; vars: CgiVariables };

/** The FastCGI parser. */
export interface FcgiParser extends Parser<FcgiEvent> {
  /**
   * push() for an application server: params events come as `vars` events (see
   * {@link FcgiVarsEvent}). The native codec builds the variables straight from the params
   * block, without the pairs array; both codecs give equal variables, keys in the same order.
   */
  pushVars(chunk: Uint8Array): FcgiVarsEvent[];
}

/** Events of the SCGI parser (one request per connection; bytes after the body are ignored). */
export type ScgiEvent =
  | { type: 'params'; pairs: string[]; contentLength: number }
  | { type: 'body'; data: Uint8Array }
  | { type: 'bodyEnd' }
  | ErrorEvent;

/** Events of the uwsgi parser (requests follow each other on a kept-alive connection). */
export type UwsgiEvent =
  | {
      type: 'params';
      pairs: string[];
      modifier1: number;
      modifier2: number;
      contentLength: number;
    }
  | { type: 'body'; data: Uint8Array }
  | { type: 'bodyEnd' }
  | ErrorEvent;

/**
 * The events of {@link ScgiParser.pushVars}: those of push(), except that a params event comes
 * as `vars`, the CGI variables its pairs make (`cgiVariables(pairs)`, lib/codec/environ.ts).
 */
export type ScgiVarsEvent =
  | Exclude<ScgiEvent, { type: 'params' }>
  | { type: 'vars'; vars: CgiVariables; contentLength: number };

/** The events of {@link UwsgiParser.pushVars}: as {@link ScgiVarsEvent}, for uwsgi. */
export type UwsgiVarsEvent =
  | Exclude<UwsgiEvent, { type: 'params' }>
  | {
      type: 'vars';
      vars: CgiVariables;
      modifier1: number;
      modifier2: number;
      contentLength: number;
    };

/** An incremental parser: feed it any chunking of the byte stream. */
export interface Parser<E> {
  /**
   * Consume one chunk and return the events it completes, in order. After an error event
   * (always the last of its array) the parser is dead and returns [] for every later call.
   */
  push(chunk: Uint8Array): E[];
  /**
   * Drops what the parser holds (an unfinished header block, a native parser's memory) at
   * once rather than when it is garbage-collected; push() returns [] afterwards. A server
   * calls it when the connection closes.
   */
  close(): void;
}

/** The SCGI parser. */
export interface ScgiParser extends Parser<ScgiEvent> {
  /**
   * push() for an application server: params events come as `vars` events (see
   * {@link ScgiVarsEvent}); as {@link FcgiParser.pushVars}, both codecs give equal variables.
   */
  pushVars(chunk: Uint8Array): ScgiVarsEvent[];
}

/** The uwsgi parser. */
export interface UwsgiParser extends Parser<UwsgiEvent> {
  /** push() for an application server: params events come as `vars` events. */
  pushVars(chunk: Uint8Array): UwsgiVarsEvent[];
}

/** How a response header block starts: `Status: ...` (FastCGI, SCGI, CGI) or `HTTP/1.1 ...` (uwsgi). */
export type HeadStyle = 'cgi' | 'http';

/**
 * The codec: parsers and encoders. Every encoder throws a {@link CodecError} on bad input
 * (the native side returns the error as a value and the TypeScript wrapper throws it).
 */
export interface Codec {
  /** `native` or `ts`. */
  readonly name: CodecName;

  /** A FastCGI record parser (either side of the connection). */
  createFcgiParser(limits?: Partial<Limits>): FcgiParser;
  /** An SCGI request parser. */
  createScgiParser(limits?: Partial<Limits>): ScgiParser;
  /** A uwsgi request parser. */
  createUwsgiParser(limits?: Partial<Limits>): UwsgiParser;

  /**
   * The response header block: the status line (`Status: 200 OK` or `HTTP/1.1 200 OK`), one
   * `Name: value` line per header, and the empty line, all CRLF. `headers` is flat:
   * [name0, value0, name1, value1, ...].
   */
  encodeHead(status: string, headers: readonly string[], style: HeadStyle): Uint8Array;

  /**
   * {@link Codec.encodeHead} followed by the latin-1 bytes of `body`, in one buffer (a whole
   * SCGI or uwsgi response with a string body). ENCODE_NOT_LATIN1 for a character above
   * U+00FF in `body`, checked after the argument checks (`style`, `body` a string) and before
   * the head. The native codec writes the string straight into the output: no Buffer is made.
   */
  encodeHeadText(
    status: string,
    headers: readonly string[],
    body: string,
    style: HeadStyle,
  ): Uint8Array;

  /**
   * Frames `data` as records of `type` (STDOUT, STDERR, STDIN, DATA or PARAMS) for `requestId`:
   * records of at most 65528 content bytes, each padded with zero bytes to a multiple of 8.
   * Empty `data` gives no record. With `end`, the empty record that ends the stream follows.
   */
  fcgiStream(type: number, requestId: number, data: Uint8Array, end: boolean): Uint8Array;

  /**
   * A whole FastCGI response in one buffer: STDOUT records carrying the header block followed
   * by `body` (one stream, split as in {@link Codec.fcgiStream}), and with `end` the empty STDOUT
   * record and END_REQUEST(appStatus 0, REQUEST_COMPLETE).
   */
  fcgiResponse(
    requestId: number,
    status: string,
    headers: readonly string[],
    body: Uint8Array,
    end: boolean,
  ): Uint8Array;

  /**
   * {@link Codec.fcgiResponse} with the body given as a latin-1 string: the same bytes as
   * fcgiResponse with the string's bytes. ENCODE_NOT_LATIN1 for a character above U+00FF in
   * `body`, checked after the argument checks (requestId, `body` a string) and before the
   * rest. The native codec writes the string straight into the output: no Buffer is made.
   */
  fcgiResponseText(
    requestId: number,
    status: string,
    headers: readonly string[],
    body: string,
    end: boolean,
  ): Uint8Array;

  /** END_REQUEST (16 bytes). */
  fcgiEndRequest(requestId: number, appStatus: number, protocolStatus: number): Uint8Array;
  /** BEGIN_REQUEST (16 bytes). */
  fcgiBeginRequest(requestId: number, role: number, flags: number): Uint8Array;
  /** ABORT_REQUEST (8 bytes). */
  fcgiAbortRequest(requestId: number): Uint8Array;
  /** PARAMS records carrying `pairs` (split as in fcgiStream), then the empty PARAMS record. */
  fcgiParams(requestId: number, pairs: readonly string[]): Uint8Array;
  /** One GET_VALUES record (request id 0) asking for `names`. */
  fcgiGetValues(names: readonly string[]): Uint8Array;
  /** One GET_VALUES_RESULT record (request id 0) with `pairs`. */
  fcgiGetValuesResult(pairs: readonly string[]): Uint8Array;
  /** One UNKNOWN_TYPE record (request id 0) naming `recordType`. */
  fcgiUnknownType(recordType: number): Uint8Array;

  /**
   * An SCGI request head: the netstring whose header block starts `CONTENT_LENGTH` =
   * `contentLength`, then `SCGI` = `1`, then `pairs` (any CONTENT_LENGTH or SCGI in `pairs` is
   * left out). The body is sent after it by the caller.
   */
  scgiRequest(pairs: readonly string[], contentLength: number): Uint8Array;

  /** A uwsgi request head: the 4-byte header and the vars block (the body follows). */
  uwsgiRequest(pairs: readonly string[], modifier1: number, modifier2: number): Uint8Array;
}
