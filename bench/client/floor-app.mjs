// bench:client row "node-floor": the least a Node.js front can do per request, to show what
// node:http and the sockets cost by themselves. A node:http server and POOL kept FastCGI
// connections to php-fpm; BEGIN_REQUEST and the end of STDIN encoded once, the params of each
// request by tsgi's codec; the answer's records walked by hand up to END_REQUEST, the head cut
// at the first CRLFCRLF. No script lookup, no timeouts, no error handling: not a proxy to use.
// Args: PORT FPM_ADDRESS ROOT POOL
import { createServer } from 'node:http';
import { connect } from 'node:net';
import { codec, FCGI } from '../../dist/index.js';

const [port, address, root, pool] = process.argv.slice(2);
const colon = address.lastIndexOf(':');
const begin = Buffer.from(codec.fcgiBeginRequest(1, FCGI.RESPONDER, FCGI.KEEP_CONN));
const stdinEnd = Buffer.from(codec.fcgiStream(FCGI.STDIN, 1, new Uint8Array(0), true));
const idle = [];
const waiting = [];

function open() {
  const socket = connect(Number(address.slice(colon + 1)), address.slice(0, colon));
  socket.setNoDelay(true);
  const conn = { socket, held: null, res: null };
  socket.on('data', (chunk) => {
    const b = conn.held === null ? chunk : Buffer.concat([conn.held, chunk]);
    const stdout = [];
    for (let o = 0; ;) {
      if (o + 8 > b.length) {
        conn.held = b;
        return;
      }
      const type = b[o + 1];
      const end = o + 8 + b.readUInt16BE(o + 4);
      if (end + b[o + 6] > b.length) {
        conn.held = b;
        return;
      }
      if (type === FCGI.STDOUT) stdout.push(b.subarray(o + 8, end));
      o = end + b[o + 6];
      if (type === FCGI.END_REQUEST) break;
    }
    conn.held = null;
    const all = stdout.length === 1 ? stdout[0] : Buffer.concat(stdout);
    const split = all.indexOf('\r\n\r\n');
    const headers = [];
    for (const line of all.toString('latin1', 0, split).split('\r\n')) {
      const c = line.indexOf(':');
      headers.push(line.slice(0, c), line.slice(c + 1).trim());
    }
    const res = conn.res;
    conn.res = null;
    res.writeHead(200, headers);
    res.end(all.subarray(split + 4));
    const next = waiting.shift();
    if (next === undefined) idle.push(conn);
    else send(conn, next[0], next[1]);
  });
  idle.push(conn);
}

function send(conn, req, res) {
  conn.res = res;
  const url = req.url;
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  const params = codec.fcgiParams(1, [
    'REQUEST_METHOD',
    req.method,
    'SCRIPT_FILENAME',
    root + path,
    'SCRIPT_NAME',
    path,
    'REQUEST_URI',
    url,
    'QUERY_STRING',
    q === -1 ? '' : url.slice(q + 1),
    'SERVER_PROTOCOL',
    'HTTP/1.1',
    'GATEWAY_INTERFACE',
    'CGI/1.1',
    'REMOTE_ADDR',
    req.socket.remoteAddress,
    'SERVER_NAME',
    '127.0.0.1',
    'SERVER_PORT',
    port,
  ]);
  conn.socket.write(Buffer.concat([begin, params, stdinEnd]));
}

for (let i = 0; i < Number(pool); i++) open();
createServer((req, res) => {
  const conn = idle.pop();
  if (conn === undefined) waiting.push([req, res]);
  else send(conn, req, res);
}).listen(Number(port), '127.0.0.1', () => console.log('ready'));
