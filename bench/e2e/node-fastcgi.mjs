// bench:e2e row "node-fastcgi": the same hello world on the npm package node-fastcgi.
import { createRequire } from 'node:module';

const fcgi = createRequire(import.meta.url)('node-fastcgi');
const [host, port] = process.argv[2].split(':');
fcgi
  .createServer((_req, res) => {
    res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '14' });
    res.end('Hello, world!\n');
  })
  .listen(Number(port), host, () => process.stderr.write('ready\n'));
