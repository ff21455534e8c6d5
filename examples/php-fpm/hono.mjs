// A Hono app that serves PHP through php-fpm:
//   PHP_FPM=127.0.0.1:9000 PORT=3000 node examples/php-fpm/hono.mjs
// Routes of its own first, then every other request goes to php-fpm (404 when it names no
// script under ./www).
import { serve } from '@hono/node-server';
import { Hono } from 'hono';
import { fileURLToPath } from 'node:url';
import { phpFpm } from 'tsgi';

const root = fileURLToPath(new URL('./www', import.meta.url));
const php = phpFpm({ address: process.env.PHP_FPM ?? '127.0.0.1:9000', root });

const app = new Hono();
app.get('/health', (c) => c.text('ok\n'));
app.all('*', (c) => php.fetch(c.req.raw));

const server = serve(
  { fetch: app.fetch, port: Number(process.env.PORT ?? 3000), hostname: '127.0.0.1' },
  (info) => console.log(`listening on http://127.0.0.1:${info.port}`),
);
process.on('SIGTERM', () => server.close(() => php.close()));
