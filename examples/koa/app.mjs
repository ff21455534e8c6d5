// A Koa app served by tsgi, unchanged:
//   npx tsgi serve examples/koa/app.mjs --interface node
// The default export is the Koa instance: tsgi serves its app.callback() (exporting
// app.callback() yourself works too).
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import Koa from 'koa';

const app = new Koa();
const router = new Router();

router.get('/', (ctx) => {
  ctx.body = `Hello from Koa! You are ${ctx.ip} over ${ctx.protocol}.\n`;
});

router.post('/api/echo', (ctx) => {
  ctx.status = 201;
  ctx.body = { youSent: ctx.request.body };
});

app.use(bodyParser());
app.use(router.routes()).use(router.allowedMethods());

export default app;
