// bench:e2e row "node:http": the same hello world on plain node:http (behind nginx proxy_pass).
import { createServer } from 'node:http';

const [host, port] = process.argv[2].split(':');
createServer((_req, res) => {
  res.writeHead(200, { 'Content-Type': 'text/plain', 'Content-Length': '14' });
  res.end('Hello, world!\n');
}).listen(Number(port), host, () => process.stderr.write('ready\n'));
