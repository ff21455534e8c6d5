// A Fastify app served by tsgi, unchanged:
//   npx tsgi serve examples/fastify/app.mjs --interface node
// The default export is the Fastify instance: tsgi awaits its ready() once at start-up, then
// serves its request listener, `fastify.routing` (documented in Fastify's Server reference).
// Exporting it yourself works too:
//   await app.ready(); export default app.routing;
// or, with Fastify's serverFactory option, export the handler it is given:
//   let handler;
//   const app = Fastify({ serverFactory: (h) => { handler = h; return http.createServer(h); } });
//   await app.ready(); export default handler;
import Fastify from 'fastify';

const app = Fastify({ logger: false, trustProxy: false });

app.get('/', async (request, reply) =>
  reply
    .type('text/plain; charset=utf-8')
    .send(`Hello from Fastify! You are ${request.ip} over ${request.protocol}.\n`),
);

app.post('/api/echo', async (request, reply) => {
  reply.code(201);
  return { youSent: request.body };
});

export default app;
