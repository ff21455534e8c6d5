/**
 * The HTTP grammar every layer checks: header names (tokens), field values, and the response
 * status. The codecs (lib/codec/ts/head.ts, lib/codec/native.ts, and native/core/head.cc, which
 * keeps the same classes in C++), the gateway's validate(), the HTTP server, the adapters and the
 * client all test against these, so a head one layer accepts is one every layer accepts.
 *
 * The status: three digits, the first 1-9, then optionally one space and a reason phrase. The
 * reason phrase is optional ("200" is a status, as is "200 OK" and "200 "), as in RFC 9112's
 * status-line (the reason may be empty) and as nginx, Apache and php-fpm read a CGI `Status:`
 * header. docs/gateway.md, "The status", says why.
 */

/** RFC 9110 token (a header name, a method): one or more tchar. */
export const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/** A field value: only \t, 0x20-0x7E and 0x80-0xFF (RFC 9110 field-content, obs-text). */
export const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/** The first character a field value may not hold (the negation of {@link FIELD_VALUE}). */
export const FIELD_VALUE_BAD = /[^\t\x20-\x7e\x80-\xff]/;

/**
 * A response status: group 1 the three-digit code (first digit 1-9), group 2 the reason phrase
 * (field-value characters) when a space follows the code, undefined when the status is the code
 * alone.
 */
export const STATUS = /^([1-9][0-9][0-9])(?: ([\t\x20-\x7e\x80-\xff]*))?$/;

/**
 * A `Status:` header value read from a peer (a CGI, FastCGI or SCGI response): the code, then
 * optionally spaces or tabs and any reason. Reading is lenient where writing is strict, as
 * nginx reads it: group 1 the code, group 2 the reason when there is one.
 */
export const STATUS_READ = /^([1-9][0-9][0-9])(?:[ \t]+(.*))?$/;

/** Whether `name` is a token (a valid header name or method). */
export function isToken(name: string): boolean {
  return TOKEN.test(name);
}

/** Whether `value` holds only field-value characters. */
export function isFieldValue(value: string): boolean {
  return FIELD_VALUE.test(value);
}

/** Whether `status` is a valid response status ("200", "200 OK", "404 Not Found"). */
export function isStatus(status: string): boolean {
  return STATUS.test(status);
}
