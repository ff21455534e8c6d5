// bench:e2e rows "<framework>-own": a framework's hello world on its own server, as its docs
// start it (behind nginx proxy_pass): Express's and Koa's app.listen(), Fastify's listen(),
// @hono/node-server's serve(). Usage: node own-server.mjs express|koa|fastify|hono HOST:PORT
import { serve } from '@hono/node-server';

const [framework, address] = process.argv.slice(2);
const [host, port] = address.split(':');
const ready = () => process.stderr.write('ready\n');
const { default: app } = await import(`./${framework}-hello.mjs`);
switch (framework) {
  case 'express':
  case 'koa':
    app.listen(Number(port), host, ready);
    break;
  case 'fastify':
    await app.listen({ port: Number(port), host });
    ready();
    break;
  case 'hono':
    serve({ fetch: app.fetch, port: Number(port), hostname: host }, ready);
    break;
  default:
    throw new Error(`unknown framework ${framework}`);
}
