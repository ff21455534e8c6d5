// bench:client row "tsgi-proxy": a node:http server whose only handler is tsgi's phpFpm proxy
// (a pool of kept FastCGI connections). Args: PORT FPM_ADDRESS ROOT POOL
import { createServer } from 'node:http';
import { phpFpm } from '../../dist/index.js';

const [port, address, root, pool] = process.argv.slice(2);
const php = phpFpm({ address, root, maxConcurrent: Number(pool) });
createServer(php.node).listen(Number(port), '127.0.0.1', () => console.log('ready'));
