/**
 * The errors of the FastCGI, SCGI and uwsgi clients, each with a stable code, and the HTTP
 * status a proxy answers for it (what nginx answers for the same upstream failure).
 */

/**
 * Why a request failed:
 * - `ECONNREFUSED`, `ENOENT`, `ECONNRESET`, `EPIPE`: the backend cannot be reached or dropped
 *   the connection before its response was complete (502);
 * - `EPROTO`: the backend broke the protocol (a malformed record or response head) (502);
 * - `ETIMEDOUT`: the connect, read or total timeout passed (504);
 * - `OVERLOADED`, `CANT_MPX_CONN`: the FastCGI application refused the request in its
 *   END_REQUEST (503); `UNKNOWN_ROLE` (502);
 * - `EQUEUEFULL`: every connection is busy and the queue is full (503);
 * - `EBODYTOOLARGE`: an SCGI or uwsgi request body of unknown length is over the buffer limit
 *   (413);
 * - `ECLOSED`: the client was closed (502);
 * - `ABORT_ERR`: the caller's signal aborted the request.
 */
export type ClientErrorCode =
  | 'ECONNREFUSED'
  | 'ENOENT'
  | 'ECONNRESET'
  | 'EPIPE'
  | 'EPROTO'
  | 'ETIMEDOUT'
  | 'OVERLOADED'
  | 'CANT_MPX_CONN'
  | 'UNKNOWN_ROLE'
  | 'EQUEUEFULL'
  | 'EBODYTOOLARGE'
  | 'ECLOSED'
  | 'ABORT_ERR';

/** A request that failed, with a stable code (see {@link ClientErrorCode}). */
export class ClientError extends Error {
  readonly code: ClientErrorCode;
  constructor(code: ClientErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'ClientError';
    this.code = code;
  }
}

const STATUS: Record<ClientErrorCode, number> = {
  ECONNREFUSED: 502,
  ENOENT: 502,
  ECONNRESET: 502,
  EPIPE: 502,
  EPROTO: 502,
  ETIMEDOUT: 504,
  OVERLOADED: 503,
  CANT_MPX_CONN: 503,
  UNKNOWN_ROLE: 502,
  EQUEUEFULL: 503,
  EBODYTOOLARGE: 413,
  ECLOSED: 502,
  ABORT_ERR: 499,
};

/** The HTTP status a proxy answers for a failed request (502 for anything unexpected). */
export function errorStatus(err: unknown): number {
  if (err instanceof ClientError) return STATUS[err.code];
  return 502;
}

/** A socket error as a ClientError (the system code kept when it is one of ours). */
export function socketError(err: NodeJS.ErrnoException, what: string): ClientError {
  const code = err.code;
  const known: ClientErrorCode =
    code === 'ECONNREFUSED' || code === 'ENOENT' || code === 'EPIPE' || code === 'ETIMEDOUT'
      ? code
      : 'ECONNRESET';
  return new ClientError(known, `${what}: ${err.message}`, { cause: err });
}
