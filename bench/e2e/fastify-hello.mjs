// bench:e2e rows "fastify-tsgi-fastcgi" and "fastify-own": a Fastify hello world with the same
// body and Content-Type as every other row. The instance is the export: tsgi's --interface
// node awaits ready() and serves its routing.
import Fastify from 'fastify';

const app = Fastify();
const BODY = Buffer.from('Hello, world!\n');

app.get('/', (_request, reply) => {
  reply.header('Content-Type', 'text/plain').send(BODY);
});

export default app;
