// bench:e2e rows "hono-tsgi-fastcgi" and "hono-own": a Hono hello world with the same body and
// Content-Type as every other row, served by tsgi's --interface fetch or @hono/node-server.
import { Hono } from 'hono';

const app = new Hono();
const BODY = 'Hello, world!\n';

app.get('/', (c) => c.body(BODY, 200, { 'Content-Type': 'text/plain' }));

export default app;
