/**
 * CGI variables from decoded params: the first step of every environ, shared by both codecs
 * (strings are materialised in TypeScript; see docs/codec.md).
 *
 * Rules:
 * - HTTP_CONTENT_LENGTH and HTTP_CONTENT_TYPE are dropped (PEP 3333: CONTENT_LENGTH and
 *   CONTENT_TYPE carry them), and so is HTTP_PROXY (httpoxy).
 * - A repeated HTTP_* variable is joined in arrival order with ", " (HTTP_COOKIE with "; "), so
 *   that two header names mapping to one variable never silently replace each other.
 * - Any other repeated variable: the last one wins (as php-fpm does).
 */

/** CGI variables: names and values are latin-1 strings. */
export type CgiVariables = Record<string, string>;

/** Build the CGI variables of one request from a flat `[name, value, …]` array. */
export function cgiVariables(pairs: readonly string[]): CgiVariables {
  const vars: CgiVariables = Object.create(null) as CgiVariables;
  for (let i = 0; i + 1 < pairs.length; i += 2) {
    const name = pairs[i]!;
    const value = pairs[i + 1]!;
    if (name.length > 5 && name.charCodeAt(0) === 72 /* H */ && name.startsWith('HTTP_')) {
      if (name === 'HTTP_CONTENT_LENGTH' || name === 'HTTP_CONTENT_TYPE' || name === 'HTTP_PROXY') {
        continue;
      }
      const prev = vars[name];
      if (prev !== undefined) {
        vars[name] = prev + (name === 'HTTP_COOKIE' ? '; ' : ', ') + value;
        continue;
      }
    }
    vars[name] = value;
  }
  return vars;
}
