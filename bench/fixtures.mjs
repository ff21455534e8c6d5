/**
 * Benchmark inputs, built from plain data with a small encoder of their own, so that the bytes
 * depend on neither codec under test (docs/codec.md describes the same wire formats).
 *
 * (a) an nginx-typical FastCGI request: BEGIN_REQUEST (id 1, RESPONDER, flags 0), one PARAMS
 *     record padded to 8 carrying nginx's default fastcgi_params plus SCRIPT_FILENAME and the
 *     headers of a browser navigation, the empty PARAMS record, the empty STDIN record;
 * (b) a response: status, 8 headers, a 1 KiB body, end of request;
 * (c) a 1 MiB body to frame as STDOUT records;
 * (d) the request of (a) as an SCGI request and as a uwsgi packet.
 */

/** FastCGI record types and roles used here (FastCGI 1.0). */
export const FCGI_BEGIN_REQUEST = 1;
export const FCGI_PARAMS = 4;
export const FCGI_STDIN = 5;
export const FCGI_STDOUT = 6;
export const FCGI_RESPONDER = 1;
/** BEGIN_REQUEST flag: keep the connection after the request. */
export const FCGI_KEEP_CONN = 1;

/**
 * nginx's conf/fastcgi_params in its order (a GET over https, so HTTPS is sent and the body
 * variables are empty), then SCRIPT_FILENAME as a typical `location ~ \.php$` block adds it,
 * then the request headers as nginx forwards them (HTTP_*, in the browser's order).
 */
export const REQUEST_PAIRS = Object.freeze([
  'QUERY_STRING',
  'page=2&sort=recent&tag=fastcgi',
  'REQUEST_METHOD',
  'GET',
  'CONTENT_TYPE',
  '',
  'CONTENT_LENGTH',
  '',
  'SCRIPT_NAME',
  '/index.php',
  'REQUEST_URI',
  '/articles/gateway-interfaces?page=2&sort=recent&tag=fastcgi',
  'DOCUMENT_URI',
  '/index.php',
  'DOCUMENT_ROOT',
  '/srv/www/example.org/public',
  'SERVER_PROTOCOL',
  'HTTP/1.1',
  'REQUEST_SCHEME',
  'https',
  'HTTPS',
  'on',
  'GATEWAY_INTERFACE',
  'CGI/1.1',
  'SERVER_SOFTWARE',
  'nginx/1.22.1',
  'REMOTE_ADDR',
  '203.0.113.57',
  'REMOTE_PORT',
  '52814',
  'SERVER_ADDR',
  '192.0.2.10',
  'SERVER_PORT',
  '443',
  'SERVER_NAME',
  'example.org',
  'REDIRECT_STATUS',
  '200',
  'SCRIPT_FILENAME',
  '/srv/www/example.org/public/index.php',
  'HTTP_HOST',
  'example.org',
  'HTTP_CONNECTION',
  'keep-alive',
  'HTTP_CACHE_CONTROL',
  'max-age=0',
  'HTTP_UPGRADE_INSECURE_REQUESTS',
  '1',
  'HTTP_USER_AGENT',
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) ' +
    'Chrome/124.0.0.0 Safari/537.36',
  'HTTP_ACCEPT',
  'text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,' +
    'image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7',
  'HTTP_SEC_FETCH_SITE',
  'same-origin',
  'HTTP_SEC_FETCH_MODE',
  'navigate',
  'HTTP_SEC_FETCH_USER',
  '?1',
  'HTTP_SEC_FETCH_DEST',
  'document',
  'HTTP_REFERER',
  'https://example.org/articles?page=1&sort=recent',
  'HTTP_ACCEPT_ENCODING',
  'gzip, deflate, br, zstd',
  'HTTP_ACCEPT_LANGUAGE',
  'en-GB,en;q=0.9,fr;q=0.8,de;q=0.7',
  'HTTP_COOKIE',
  'sessionid=6f1c0d9e8a7b4c3d2e1f0a9b8c7d6e5f; csrftoken=Zq3XvB9nK2mP7rT4wY8uE1iO5aS6dF0g; ' +
    'theme=dark; _ga=GA1.2.1234567890.1700000000; consent=analytics%3Dno%26ads%3Dno',
]);

/** (b): the response of one request. */
export const RESPONSE_STATUS = '200 OK';
export const RESPONSE_HEADERS = Object.freeze([
  'Content-Type',
  'text/html; charset=utf-8',
  'Content-Length',
  '1024',
  'Cache-Control',
  'private, no-cache',
  'Vary',
  'Accept-Encoding, Cookie',
  'ETag',
  'W/"400-5f2b1c9a"',
  'Set-Cookie',
  'sessionid=6f1c0d9e8a7b4c3d2e1f0a9b8c7d6e5f; Path=/; Secure; HttpOnly; SameSite=Lax',
  'X-Content-Type-Options',
  'nosniff',
  'X-Frame-Options',
  'DENY',
]);

/** Bytes of a latin-1 string. */
export function latin1(s) {
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c > 0xff) throw new Error('fixture string is not latin-1');
    out[i] = c;
  }
  return out;
}

/** Concatenate byte arrays. */
export function concat(parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** A 1 KiB HTML-looking body (printable ASCII, deterministic). */
function htmlBody(size) {
  const line = '<p class="entry">tsgi frames this paragraph as FastCGI STDOUT.</p>\n';
  let s = '<!doctype html>\n<html><body>\n';
  while (s.length < size) s += line;
  return latin1(s.slice(0, size));
}

/** Deterministic pseudo-random bytes (xorshift32), like a compressed or binary payload. */
function noiseBody(size) {
  const out = new Uint8Array(size);
  let x = 0x9e3779b9;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

export const RESPONSE_BODY = htmlBody(1024);
export const BODY_1MIB = noiseBody(1024 * 1024);

/** One FastCGI record, padded to a multiple of 8 (content ≤ 65535 bytes). */
export function fcgiRecord(type, requestId, content) {
  const len = content.length;
  if (len > 0xffff) throw new Error('record content too large');
  const pad = (8 - (len % 8)) % 8;
  const out = new Uint8Array(8 + len + pad);
  out[0] = 1;
  out[1] = type;
  out[2] = requestId >> 8;
  out[3] = requestId & 0xff;
  out[4] = len >> 8;
  out[5] = len & 0xff;
  out[6] = pad;
  out.set(content, 8);
  return out;
}

/** A FastCGI name-value length: one byte up to 127, else four bytes with the top bit set. */
function fcgiLength(n) {
  if (n < 0x80) return Uint8Array.of(n);
  return Uint8Array.of(0x80 | (n >>> 24), (n >>> 16) & 0xff, (n >>> 8) & 0xff, n & 0xff);
}

/** The PARAMS stream content of flat pairs. */
export function fcgiPairs(pairs) {
  const parts = [];
  for (let i = 0; i < pairs.length; i += 2) {
    const name = latin1(pairs[i]);
    const value = latin1(pairs[i + 1]);
    parts.push(fcgiLength(name.length), fcgiLength(value.length), name, value);
  }
  return concat(parts);
}

/**
 * (a) BEGIN_REQUEST (with `flags`, e.g. FCGI_KEEP_CONN), one PARAMS record, the empty PARAMS
 * record, the empty STDIN record.
 */
export function buildFcgiRequest(pairs, requestId = 1, flags = 0) {
  const begin = new Uint8Array(8);
  begin[1] = FCGI_RESPONDER;
  begin[2] = flags;
  return concat([
    fcgiRecord(FCGI_BEGIN_REQUEST, requestId, begin),
    fcgiRecord(FCGI_PARAMS, requestId, fcgiPairs(pairs)),
    fcgiRecord(FCGI_PARAMS, requestId, new Uint8Array(0)),
    fcgiRecord(FCGI_STDIN, requestId, new Uint8Array(0)),
  ]);
}

/**
 * (d) An SCGI request head: CONTENT_LENGTH first (its value, or "0" when empty, as SCGI requires
 * digits), SCGI=1, then the other pairs, in one netstring.
 */
export function buildScgiRequest(pairs) {
  const block = latin1(
    scgiPairs(pairs)
      .map((s) => s + '\0')
      .join(''),
  );
  return concat([latin1(`${block.length}:`), block, latin1(',')]);
}

/** The pairs of an SCGI request in wire order: CONTENT_LENGTH, SCGI, then the others. */
export function scgiPairs(pairs) {
  let contentLength = '0';
  const rest = [];
  for (let i = 0; i < pairs.length; i += 2) {
    if (pairs[i] === 'CONTENT_LENGTH') {
      if (pairs[i + 1] !== '') contentLength = pairs[i + 1];
    } else if (pairs[i] !== 'SCGI') {
      rest.push(pairs[i], pairs[i + 1]);
    }
  }
  return ['CONTENT_LENGTH', contentLength, 'SCGI', '1', ...rest];
}

/** (d) A uwsgi packet head: modifier1 0, vars size (u16 LE), modifier2 0, then the vars. */
export function buildUwsgiRequest(pairs) {
  const parts = [];
  for (const s of pairs) {
    const b = latin1(s);
    parts.push(Uint8Array.of(b.length & 0xff, b.length >> 8), b);
  }
  const vars = concat(parts);
  if (vars.length > 0xffff) throw new Error('uwsgi vars block too large');
  return concat([Uint8Array.of(0, vars.length & 0xff, vars.length >> 8, 0), vars]);
}

/** STDOUT records carrying `data` (at most 65528 bytes each), and with `end` the empty record. */
export function buildStdout(requestId, data, end) {
  const parts = [];
  for (let at = 0; at < data.length; at += 65528) {
    parts.push(fcgiRecord(FCGI_STDOUT, requestId, data.subarray(at, at + 65528)));
  }
  if (end) parts.push(fcgiRecord(FCGI_STDOUT, requestId, new Uint8Array(0)));
  return concat(parts);
}

/** (b) expected: `Status:` head and body as one STDOUT stream, its end, END_REQUEST(0, 0). */
export function buildResponse(requestId, status, headers, body) {
  let head = `Status: ${status}\r\n`;
  for (let i = 0; i < headers.length; i += 2) head += `${headers[i]}: ${headers[i + 1]}\r\n`;
  head += '\r\n';
  return concat([
    buildStdout(requestId, concat([latin1(head), body]), true),
    fcgiRecord(3, requestId, new Uint8Array(8)),
  ]);
}

/** The inputs of every case. */
export const FCGI_REQUEST = buildFcgiRequest(REQUEST_PAIRS);
export const SCGI_REQUEST = buildScgiRequest(REQUEST_PAIRS);
export const UWSGI_REQUEST = buildUwsgiRequest(REQUEST_PAIRS);

/** The bytes the encoders must produce, to check both codecs before timing them. */
export const EXPECTED_RESPONSE = buildResponse(1, RESPONSE_STATUS, RESPONSE_HEADERS, RESPONSE_BODY);
export const EXPECTED_STREAM_1MIB = buildStdout(1, BODY_1MIB, true);
