// The Hono app of test/adapters/frameworks.test.ts (the default export is the Hono instance: tsgi
// serves its fetch()).
// tsgi serve test/adapters/frameworks-apps/hono.mjs --interface fetch
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { Readable } from 'node:stream';
import { Hono } from 'hono';
import { getCookie, setCookie } from 'hono/cookie';
import { downloadPath, USERS } from './files.mjs';

const app = new Hono();

app.get('/', (c) => c.text('Hello from Hono\n'));
app.get('/users/:id', (c) => {
  const user = USERS[c.req.param('id')];
  if (!user) return c.json({ error: 'no such user' }, 404);
  return c.json(user);
});
app.post('/users', async (c) => {
  let body;
  try {
    body = await c.req.json();
  } catch (err) {
    return c.json({ error: err.message }, 400);
  }
  c.header('Location', '/users/3');
  return c.json({ created: body, type: c.req.header('content-type') }, 201);
});
app.get('/query', (c) => {
  const url = new URL(c.req.url);
  return c.json({
    query: Object.fromEntries(url.searchParams),
    path: url.pathname,
    protocol: url.protocol.slice(0, -1),
    method: c.req.method,
  });
});
app.get('/login', (c) => {
  setCookie(c, 'session', 'abc123', { path: '/', httpOnly: true });
  setCookie(c, 'theme', 'dark', { path: '/' });
  return c.redirect('/welcome');
});
app.get('/welcome', (c) =>
  c.text(`welcome, cookies: ${c.req.header('cookie') ?? 'none'} (${getCookie(c, 'theme')})\n`),
);
app.post('/upload', async (c) => {
  const hash = createHash('sha256');
  let size = 0;
  for await (const d of c.req.raw.body ?? []) {
    hash.update(d);
    size += d.length;
  }
  return c.json({ size, sha256: hash.digest('hex') });
});
app.get('/download', () => {
  const stream = Readable.toWeb(createReadStream(downloadPath()));
  return new Response(stream, {
    headers: {
      'Content-Type': 'application/octet-stream',
      'Content-Disposition': 'attachment; filename="download.bin"',
    },
  });
});
app.get('/boom', () => {
  throw new Error('boom');
});
app.onError((err, c) => c.json({ error: err.message }, 500));

export default app;
