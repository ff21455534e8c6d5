// The Koa app of test/adapters/frameworks.test.ts (the default export is the Koa instance: tsgi detects
// it and serves app.callback()).
// tsgi serve test/adapters/frameworks-apps/koa.mjs --interface node
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { bodyParser } from '@koa/bodyparser';
import Router from '@koa/router';
import Koa from 'koa';
import { downloadPath, USERS } from './files.mjs';

const app = new Koa();
const router = new Router();

app.use(async (ctx, next) => {
  try {
    await next();
  } catch (err) {
    ctx.status = err.status ?? 500;
    ctx.body = { error: err.message };
  }
});
app.use(async (ctx, next) => {
  if (ctx.path === '/upload') return next();
  return bodyParser()(ctx, next);
});

router.get('/', (ctx) => {
  ctx.body = 'Hello from Koa\n';
});
router.get('/users/:id', (ctx) => {
  const user = USERS[ctx.params.id];
  if (!user) {
    ctx.status = 404;
    ctx.body = { error: 'no such user' };
    return;
  }
  ctx.body = user;
});
router.post('/users', (ctx) => {
  ctx.status = 201;
  ctx.set('Location', '/users/3');
  ctx.body = { created: ctx.request.body, type: ctx.get('content-type') };
});
router.get('/query', (ctx) => {
  ctx.body = { query: ctx.query, path: ctx.path, protocol: ctx.protocol, method: ctx.method };
});
router.get('/login', (ctx) => {
  ctx.cookies.set('session', 'abc123', { httpOnly: true });
  ctx.cookies.set('theme', 'dark', { httpOnly: false });
  ctx.redirect('/welcome');
});
router.get('/welcome', (ctx) => {
  ctx.body = `welcome, cookies: ${ctx.get('cookie') || 'none'}\n`;
});
router.post('/upload', async (ctx) => {
  const hash = createHash('sha256');
  let size = 0;
  for await (const d of ctx.req) {
    hash.update(d);
    size += d.length;
  }
  ctx.body = { size, sha256: hash.digest('hex') };
});
router.get('/download', (ctx) => {
  ctx.attachment('download.bin');
  ctx.type = 'application/octet-stream';
  ctx.body = createReadStream(downloadPath());
});
router.get('/boom', () => {
  throw new Error('boom');
});

app.use(router.routes()).use(router.allowedMethods());

export default app;
