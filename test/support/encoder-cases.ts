/**
 * What the tests of the codecs' head-and-string-body encoders (fcgiResponseText,
 * encodeHeadText) share: an encoder call's outcome as one comparable string, and fast-check
 * arbitraries for statuses, header lists and bodies, good and bad.
 */
import fc from 'fast-check';

export const hex = (b: Uint8Array): string => Buffer.from(b).toString('hex');

/** The result of an encoder call: its bytes, or its error code and message. */
export function outcome(f: () => Uint8Array): string {
  try {
    return hex(f());
  } catch (err) {
    const e = err as { code?: string; message: string };
    return `${e.code ?? 'no code'}: ${e.message}`;
  }
}

/** Strings of latin-1 characters (U+0000–U+00FF). */
export const latin1Text = fc.string({
  unit: fc.integer({ min: 0, max: 255 }).map((c) => String.fromCharCode(c)),
  maxLength: 300,
});
/** Latin-1 strings and any strings. */
export const anyText = fc.oneof(latin1Text, fc.string({ maxLength: 20 }));
const headerName = fc.oneof(
  fc.constantFrom('Content-Type', 'X-A', 'Set-Cookie', 'Bad Name', ''),
  fc.string({ maxLength: 8 }),
);
const headerValue = fc.oneof(fc.constantFrom('text/plain', 'a\r\nb', '\xe9'), fc.string());
/** Flat header lists of up to four pairs, valid and not. */
export const headers = fc
  .array(fc.tuple(headerName, headerValue), { maxLength: 4 })
  .map((hs) => hs.flat());
/** Status lines, valid and not. */
export const status = fc.constantFrom('200 OK', '404 Not Found', '20 OK', '599 \xff', '200 \u0100');
