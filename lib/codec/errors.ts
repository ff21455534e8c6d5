/**
 * The one formatter of codec error messages, used by both codecs (docs/codec.md has the table).
 * The native codec reports an error as a numeric code plus up to two numbers (or a header
 * index); `ERROR_CODES[n]` maps the native number to the code.
 */
import { CodecError, type ErrorCode, type ErrorEvent } from './types.js';

/** Native error numbers: index in this array (0 is "no error"). Keep in sync with native/core/errors.h. */
export const ERROR_CODES: readonly (ErrorCode | '')[] = [
  '',
  'FCGI_BAD_VERSION',
  'FCGI_RECORD_TOO_LARGE',
  'FCGI_BAD_REQUEST_ID',
  'FCGI_BAD_BEGIN',
  'FCGI_BAD_END',
  'FCGI_BAD_UNKNOWN_TYPE',
  'FCGI_BAD_PARAMS',
  'FCGI_PARAMS_TOO_LARGE',
  'FCGI_TOO_MANY_PARAMS',
  'SCGI_BAD_NETSTRING',
  'SCGI_HEADERS_TOO_LARGE',
  'SCGI_BAD_HEADERS',
  'SCGI_NO_CONTENT_LENGTH',
  'SCGI_BAD_CONTENT_LENGTH',
  'SCGI_NO_SCGI',
  'SCGI_TOO_MANY_PARAMS',
  'UWSGI_BAD_MODIFIER',
  'UWSGI_HEADERS_TOO_LARGE',
  'UWSGI_BAD_VARS',
  'UWSGI_BAD_CONTENT_LENGTH',
  'UWSGI_TOO_MANY_PARAMS',
  'HEAD_BAD_STATUS',
  'HEAD_BAD_NAME',
  'HEAD_BAD_VALUE',
  'ENCODE_NOT_LATIN1',
  'ENCODE_TOO_LARGE',
  'ENCODE_BAD_ARGUMENT',
];

/**
 * The exact message for `code`. `a` and `b` are the numbers the table in docs/codec.md names
 * (N/V/T first, M/I second); `name` is the header name for HEAD_BAD_NAME and HEAD_BAD_VALUE.
 * `variant` picks between the two messages of SCGI_BAD_NETSTRING (0: length, 1: terminator)
 * and of ENCODE_BAD_ARGUMENT (0: invalid argument, 1: headers, 2: pairs, 3: NUL in SCGI).
 */
export function errorMessage(code: ErrorCode, a = 0, b = 0, name = '', variant = 0): string {
  switch (code) {
    case 'FCGI_BAD_VERSION':
      return `unsupported FastCGI version ${a}`;
    case 'FCGI_RECORD_TOO_LARGE':
      return `record content length ${a} exceeds limit ${b}`;
    case 'FCGI_BAD_REQUEST_ID':
      return `record type ${a} with request id ${b}`;
    case 'FCGI_BAD_BEGIN':
      return `BEGIN_REQUEST content length ${a}, expected 8`;
    case 'FCGI_BAD_END':
      return `END_REQUEST content length ${a}, expected 8`;
    case 'FCGI_BAD_UNKNOWN_TYPE':
      return `UNKNOWN_TYPE content length ${a}, expected 8`;
    case 'FCGI_BAD_PARAMS':
      return 'malformed name-value pair';
    case 'FCGI_PARAMS_TOO_LARGE':
      return `params exceed ${b} bytes`;
    case 'FCGI_TOO_MANY_PARAMS':
    case 'SCGI_TOO_MANY_PARAMS':
    case 'UWSGI_TOO_MANY_PARAMS':
      return `more than ${b} params`;
    case 'SCGI_BAD_NETSTRING':
      return variant === 1 ? "netstring not terminated by ','" : 'malformed netstring length';
    case 'SCGI_HEADERS_TOO_LARGE':
      return `header block of ${a} bytes exceeds limit ${b}`;
    case 'SCGI_BAD_HEADERS':
      return 'malformed header block';
    case 'SCGI_NO_CONTENT_LENGTH':
      return 'first header is not CONTENT_LENGTH';
    case 'SCGI_BAD_CONTENT_LENGTH':
    case 'UWSGI_BAD_CONTENT_LENGTH':
      return 'invalid CONTENT_LENGTH';
    case 'SCGI_NO_SCGI':
      return 'missing SCGI=1 header';
    case 'UWSGI_BAD_MODIFIER':
      return `unsupported modifier1 ${a}`;
    case 'UWSGI_HEADERS_TOO_LARGE':
      return `vars block of ${a} bytes exceeds limit ${b}`;
    case 'UWSGI_BAD_VARS':
      return 'malformed vars block';
    case 'HEAD_BAD_STATUS':
      return 'invalid status line';
    case 'HEAD_BAD_NAME':
      return `invalid header name "${name}"`;
    case 'HEAD_BAD_VALUE':
      return `invalid value for header "${name}"`;
    case 'ENCODE_NOT_LATIN1':
      return 'not a latin-1 string';
    case 'ENCODE_TOO_LARGE':
      return variant === 1
        ? 'uwsgi vars block exceeds 65535 bytes'
        : 'record content exceeds 65535 bytes';
    case 'ENCODE_BAD_ARGUMENT':
      return variant === 1
        ? 'headers must be name/value pairs'
        : variant === 2
          ? 'pairs must be name/value pairs'
          : variant === 3
            ? 'NUL in SCGI header'
            : 'invalid argument';
  }
}

/** An error event for a parser. */
export function errorEvent(code: ErrorCode, a = 0, b = 0, variant = 0): ErrorEvent {
  return { type: 'error', code, message: errorMessage(code, a, b, '', variant) };
}

/** A thrown error for an encoder. */
export function codecError(code: ErrorCode, a = 0, b = 0, name = '', variant = 0): CodecError {
  return new CodecError(code, errorMessage(code, a, b, name, variant));
}
