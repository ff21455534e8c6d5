// bench:e2e row "canned": the ceiling for any Node FastCGI backend. It reads only record
// headers (skipping content and padding) and, at each empty STDIN record, writes one answer
// encoded once at start-up by tsgi's codec (only the request id is patched in). No params are
// decoded, no environ is built, no app runs.
import { createServer } from 'node:net';
import { tsCodec } from '../../dist/codec/index.js';

const [host, port] = process.argv[2].split(':');
const body = Buffer.from('Hello, world!\n');
const answer = Buffer.from(
  tsCodec.fcgiResponse(
    1,
    '200 OK',
    ['Content-Type', 'text/plain', 'Content-Length', '14'],
    body,
    true,
  ),
);
/* offsets of the request id in each record of the answer */
const idOffsets = [];
for (let o = 0; o < answer.length;) {
  idOffsets.push(o + 2);
  o += 8 + answer.readUInt16BE(o + 4) + answer[o + 6];
}

function answerFor(id) {
  if (id === 1) return answer;
  const copy = Buffer.from(answer);
  for (const o of idOffsets) copy.writeUInt16BE(id, o);
  return copy;
}

createServer({ noDelay: true }, (socket) => {
  let header = Buffer.alloc(0);
  let skip = 0;
  socket.on('data', (chunk) => {
    let p = 0;
    while (p < chunk.length) {
      if (skip > 0) {
        const k = Math.min(skip, chunk.length - p);
        skip -= k;
        p += k;
        continue;
      }
      const need = 8 - header.length;
      const take = chunk.subarray(p, p + need);
      header = header.length === 0 && take.length === 8 ? take : Buffer.concat([header, take]);
      p += take.length;
      if (header.length < 8) break;
      const type = header[1];
      const id = header.readUInt16BE(2);
      const length = header.readUInt16BE(4);
      skip = length + header[6];
      header = Buffer.alloc(0);
      if (type === 5 && length === 0) socket.write(answerFor(id));
    }
  });
  socket.on('error', () => {});
}).listen(Number(port), host, () => process.stderr.write('ready\n'));
