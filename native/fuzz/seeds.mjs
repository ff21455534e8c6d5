// Writes the seed corpora of the fuzzers: small valid inputs of each protocol, each behind a
// few different control prefixes (see parser_harness.h and encode_fuzz.cc for the layouts).
// Usage: node native/fuzz/seeds.mjs <corpus-root>   (creates <root>/<fuzzer>/seed-*)
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const root = process.argv[2];
if (!root) {
  console.error('usage: node seeds.mjs <corpus-root>');
  process.exit(2);
}

const b = (...parts) =>
  Buffer.concat(parts.map((p) => (Buffer.isBuffer(p) ? p : Buffer.from(p, 'latin1'))));

// ---- FastCGI ----
const record = (type, id, content = Buffer.alloc(0), pad = (8 - (content.length % 8)) % 8) => {
  const h = Buffer.alloc(8);
  h[0] = 1;
  h[1] = type;
  h.writeUInt16BE(id, 2);
  h.writeUInt16BE(content.length, 4);
  h[6] = pad;
  return b(h, content, Buffer.alloc(pad));
};
const fcgiLen = (n) => {
  if (n < 0x80) return Buffer.from([n]);
  const l = Buffer.alloc(4);
  l.writeUInt32BE((n | 0x80000000) >>> 0);
  return l;
};
const fcgiPairs = (pairs) =>
  b(...pairs.flatMap(([n, v]) => [fcgiLen(n.length), fcgiLen(v.length), n, v]));
const begin = (id, role = 1, flags = 0) =>
  record(1, id, Buffer.from([role >> 8, role & 255, flags, 0, 0, 0, 0, 0]));
const end = (id, app = 0, proto = 0) => {
  const c = Buffer.alloc(8);
  c.writeUInt32BE(app);
  c[4] = proto;
  return record(3, id, c);
};

// nginx-like: a handful of fastcgi_params and browser headers, one long value (4-byte length).
const nginxParams = [
  ['QUERY_STRING', 'a=1&b=2'],
  ['REQUEST_METHOD', 'POST'],
  ['CONTENT_TYPE', 'application/x-www-form-urlencoded'],
  ['CONTENT_LENGTH', '5'],
  ['SCRIPT_NAME', '/index.php'],
  ['REQUEST_URI', '/index.php?a=1&b=2'],
  ['DOCUMENT_URI', '/index.php'],
  ['DOCUMENT_ROOT', '/var/www/html'],
  ['SERVER_PROTOCOL', 'HTTP/1.1'],
  ['REQUEST_SCHEME', 'http'],
  ['GATEWAY_INTERFACE', 'CGI/1.1'],
  ['SERVER_SOFTWARE', 'nginx/1.24.0'],
  ['REMOTE_ADDR', '127.0.0.1'],
  ['REMOTE_PORT', '51234'],
  ['SERVER_ADDR', '127.0.0.1'],
  ['SERVER_PORT', '80'],
  ['SERVER_NAME', 'localhost'],
  ['REDIRECT_STATUS', '200'],
  ['HTTP_HOST', 'localhost'],
  ['HTTP_USER_AGENT', 'Mozilla/5.0 (X11; Linux x86_64) ' + 'x'.repeat(120)],
  ['HTTP_ACCEPT', 'text/html,*/*;q=0.8'],
  ['HTTP_COOKIE', ''],
];
const nginxBlock = fcgiPairs(nginxParams);
const fcgiSeeds = [
  b(begin(1), record(4, 1, nginxBlock), record(4, 1), record(5, 1, b('hello')), record(5, 1)),
  // params split across records mid-pair, padding of odd lengths, a DATA stream
  b(
    begin(1, 2, 1),
    record(4, 1, nginxBlock.subarray(0, 37), 3),
    record(4, 1, nginxBlock.subarray(37), 255),
    record(4, 1),
    record(5, 1),
    record(8, 1, b('data!')),
    record(8, 1),
  ),
  // multiplexed requests, abort, a second BEGIN dropping an unfinished stream
  b(
    begin(1),
    begin(2),
    record(4, 2, fcgiPairs([['A', 'B']])),
    record(4, 1, fcgiPairs([['X', 'y']])),
    record(2, 1),
    begin(2),
    record(4, 2),
    record(5, 2, b('z')),
    record(5, 2),
  ),
  // management records and unknown types
  b(
    record(
      9,
      0,
      fcgiPairs([
        ['FCGI_MAX_CONNS', ''],
        ['FCGI_MAX_REQS', ''],
        ['FCGI_MPXS_CONNS', ''],
      ]),
    ),
    record(10, 0, fcgiPairs([['FCGI_MPXS_CONNS', '1']])),
    record(11, 0, Buffer.from([200, 0, 0, 0, 0, 0, 0, 0])),
    record(9, 0),
    record(42, 7, b('???')),
  ),
  // the response side
  b(
    record(6, 1, b('Status: 200 OK\r\nContent-Type: text/plain\r\n\r\nhi')),
    record(7, 1, b('warning')),
    record(7, 1),
    record(6, 1),
    end(1, 0, 0),
  ),
];

// ---- SCGI ----
const scgi = (pairs, body = '') => {
  const block = b(...pairs.flatMap(([n, v]) => [n, '\0', v, '\0']));
  return b(`${block.length}:`, block, ',', body);
};
const scgiSeeds = [
  scgi(
    [
      ['CONTENT_LENGTH', '5'],
      ['SCGI', '1'],
      ['REQUEST_METHOD', 'POST'],
      ['REQUEST_URI', '/x?y=1'],
      ['HTTP_HOST', 'localhost'],
    ],
    'hello',
  ),
  scgi([
    ['CONTENT_LENGTH', '0'],
    ['REQUEST_METHOD', 'GET'],
    ['', ''],
    ['SCGI', '1'],
  ]),
  scgi(
    [
      ['CONTENT_LENGTH', '000000000000003'],
      ['SCGI', '1'],
    ],
    'abcdef',
  ),
];

// ---- uwsgi ----
const uwsgi = (pairs, body = '', m1 = 0, m2 = 0) => {
  const vars = b(
    ...pairs.flatMap(([n, v]) => {
      const nl = Buffer.alloc(2);
      nl.writeUInt16LE(Buffer.byteLength(n, 'latin1'));
      const vl = Buffer.alloc(2);
      vl.writeUInt16LE(Buffer.byteLength(v, 'latin1'));
      return [nl, n, vl, v];
    }),
  );
  const h = Buffer.from([m1, vars.length & 255, vars.length >> 8, m2]);
  return b(h, vars, body);
};
const uwsgiSeeds = [
  uwsgi(
    [
      ['REQUEST_METHOD', 'POST'],
      ['REQUEST_URI', '/x'],
      ['CONTENT_LENGTH', '4'],
      ['HTTP_HOST', 'localhost'],
    ],
    'body',
  ),
  // two requests on one connection, the second with an empty CONTENT_LENGTH
  b(
    uwsgi([['PATH_INFO', '/a']], '', 0, 0),
    uwsgi(
      [
        ['CONTENT_LENGTH', ''],
        ['A', 'b'],
      ],
      '',
      0,
      5,
    ),
  ),
  uwsgi(
    [
      ['CONTENT_LENGTH', '1'],
      ['CONTENT_LENGTH', 'x'],
    ],
    'Z',
  ),
];

// Control prefixes: [chunking, limits, event capacity].
const prefixes = [
  [0, 0, 0], // one byte at a time, default limits, 1 event slot
  [0x05, 0, 1], // chunks of 2
  [0x1d, 0, 3], // chunks of 8
  [0x02, 0, 2], // random 0-16
  [0x03, 0x40, 0], // random, small limits
  [0x07, 0xe5, 3],
];

const write = (name, seeds, withPrefix = true) => {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  let i = 0;
  for (const seed of seeds) {
    for (const p of withPrefix ? prefixes : [[]]) {
      writeFileSync(join(dir, `seed-${String(i++).padStart(3, '0')}`), b(Buffer.from(p), seed));
    }
  }
};
write('fastcgi', fcgiSeeds);
write('scgi', scgiSeeds);
write('uwsgi', uwsgiSeeds);

// ---- encoders: [op + 6 * wide, options, ...operation bytes, strings] ----
const strs = (...list) => b(...list.map((s) => b(Buffer.from([s.length]), s)));
const wstrs = (...list) =>
  b(
    ...list.map((s) => {
      const u = Buffer.alloc(s.length * 2);
      for (let i = 0; i < s.length; i++) u.writeUInt16LE(s.charCodeAt(i), i * 2);
      return b(Buffer.from([s.length]), u);
    }),
  );
const headList = [
  '200 OK',
  'Content-Type',
  'text/html; charset=utf-8',
  'X-A',
  '',
  'Set-Cookie',
  'a=b',
];
const pairList = ['REQUEST_METHOD', 'GET', 'CONTENT_LENGTH', '12', 'HTTP_X', 'é'.repeat(130)];
write(
  'encode',
  [
    b(Buffer.from([0, 0]), strs(...headList)),
    b(Buffer.from([0, 1]), strs('404 Not Found', 'X', 'y')),
    b(Buffer.from([6, 0]), wstrs(...headList, 'X-Wide', '\u0100')),
    b(Buffer.from([1, 1, 1, 0]), strs(...pairList)),
    b(Buffer.from([7, 1, 1, 0]), wstrs(...pairList)),
    b(Buffer.from([2, 1]), strs('FCGI_MAX_CONNS', 'FCGI_MPXS_CONNS')),
    b(Buffer.from([2, 0]), strs('FCGI_MPXS_CONNS', '1')),
    b(Buffer.from([3, 1, 1, 0, 40]), strs(...headList)),
    b(Buffer.from([3, 3, 1, 0, 0, 0, 1]), strs('200', 'A', 'b')), // body of 65536 bytes
    b(Buffer.from([4, 0, 0, 0, 0, 0, 0, 0, 12]), strs('REQUEST_METHOD', 'POST', 'SCGI', '1')),
    b(Buffer.from([10, 0, 0, 0, 0, 0, 0, 0, 0]), wstrs('A\u0000', 'b')),
    b(Buffer.from([5, 0, 0]), strs('REQUEST_METHOD', 'GET', 'CONTENT_LENGTH', '3')),
    b(Buffer.from([5, 0x80, 5, 7]), strs('X', 'y')),
  ],
  false,
);
