// bench:e2e rows "scgi-canned" and "uwsgi-canned": the ceiling for any Node SCGI or uwsgi
// backend on node:net. Each connection is read until its request head is whole (the SCGI
// netstring, or the uwsgi 4-byte header and vars block; the GET body is empty), then one answer
// encoded once at start-up by tsgi's codec is written and the socket is closed, as tsgi does. No
// params are decoded, no environ is built, no app runs.
//   node canned-stream.mjs scgi=HOST:PORT uwsgi=HOST:PORT   (either or both)
import { createServer } from 'node:net';
import { tsCodec } from '../../dist/codec/index.js';

const body = Buffer.from('Hello, world!\n');
const headers = ['Content-Type', 'text/plain', 'Content-Length', String(body.length)];
const answers = {
  scgi: Buffer.concat([tsCodec.encodeHead('200 OK', headers, 'cgi'), body]),
  uwsgi: Buffer.concat([tsCodec.encodeHead('200 OK', headers, 'http'), body]),
};

/** Bytes of the request head in `buf`, or -1 while it is not whole. */
const headLength = {
  scgi(buf) {
    const colon = buf.indexOf(0x3a);
    if (colon < 0) return -1;
    const n = colon + 1 + Number(buf.toString('latin1', 0, colon)) + 1;
    return buf.length >= n ? n : -1;
  },
  uwsgi(buf) {
    if (buf.length < 4) return -1;
    const n = 4 + buf.readUInt16LE(1);
    return buf.length >= n ? n : -1;
  },
};

for (const arg of process.argv.slice(2)) {
  const [kind, addr] = arg.split('=');
  const answer = answers[kind];
  const complete = headLength[kind];
  if (answer === undefined || addr === undefined) throw new Error(`bad argument ${arg}`);
  const i = addr.lastIndexOf(':');
  createServer({ noDelay: true }, (socket) => {
    let buf = null;
    socket.on('data', (chunk) => {
      buf = buf === null ? chunk : Buffer.concat([buf, chunk]);
      if (complete(buf) < 0) return;
      socket.write(answer);
      if (socket.writableLength === 0) socket.destroy();
      else socket.end();
    });
    socket.on('error', () => {});
  }).listen(Number(addr.slice(i + 1)), addr.slice(0, i));
}
process.stderr.write('ready\n');
