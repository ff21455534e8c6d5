// bench:e2e rows "koa-tsgi-fastcgi" and "koa-own": a Koa hello world with the same body and
// Content-Type as every other row (set by name: Koa's ctx.type would add a charset).
import Koa from 'koa';

const app = new Koa();
const BODY = Buffer.from('Hello, world!\n');

app.use((ctx) => {
  ctx.set('Content-Type', 'text/plain');
  ctx.body = BODY;
});

export default app;
