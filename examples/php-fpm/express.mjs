// An Express app that serves PHP through php-fpm and its own routes beside it:
//   PHP_FPM=127.0.0.1:9000 PORT=3000 node examples/php-fpm/express.mjs
// (PHP_FPM may be unix:/run/php/php8.2-fpm.sock). Scripts are looked up under ./www; a path
// that names no script falls through to the next middleware (here: static files, then 404).
import express from 'express';
import { fileURLToPath } from 'node:url';
import { phpFpm } from 'tsgi';

const root = fileURLToPath(new URL('./www', import.meta.url));
const php = phpFpm({ address: process.env.PHP_FPM ?? '127.0.0.1:9000', root });

const app = express();
app.get('/health', (_req, res) => res.type('text').send('ok\n'));
app.use(php.node); // before any body parser: php-fpm reads the request body itself
app.use(express.static(root));

const server = app.listen(Number(process.env.PORT ?? 3000), '127.0.0.1', () =>
  console.log(`listening on http://127.0.0.1:${server.address().port}`),
);
process.on('SIGTERM', () => server.close(() => php.close()));
