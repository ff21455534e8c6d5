// bench:e2e row "express-node-http": bench/e2e/express-hello.mjs on plain node:http (behind
// nginx proxy_pass), the baseline of "express-tsgi-fastcgi".
import { createServer } from 'node:http';
import app from './express-hello.mjs';

const [host, port] = process.argv[2].split(':');
createServer(app).listen(Number(port), host, () => process.stderr.write('ready\n'));
