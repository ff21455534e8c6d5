// The Fastify app of test/adapters/frameworks.test.ts (the default export is the instance: tsgi
// detects it, awaits ready() and serves fastify.routing).
// tsgi serve test/adapters/frameworks-apps/fastify.mjs --interface node
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import Fastify from 'fastify';
import { downloadPath, USERS } from './files.mjs';

const app = Fastify({ logger: false });

app.addContentTypeParser('application/octet-stream', (_req, payload, done) => done(null, payload));

app.get('/', async (_req, reply) =>
  reply.type('text/plain; charset=utf-8').send('Hello from Fastify\n'),
);
app.get('/users/:id', async (req, reply) => {
  const user = USERS[req.params.id];
  if (!user) return reply.code(404).send({ error: 'no such user' });
  return user;
});
app.post('/users', async (req, reply) => {
  reply.code(201).header('Location', '/users/3');
  return { created: req.body, type: req.headers['content-type'] };
});
app.get('/query', async (req) => ({
  query: req.query,
  path: req.url.split('?')[0],
  protocol: req.protocol,
  method: req.method,
}));
app.get('/login', async (_req, reply) => {
  reply.header('set-cookie', ['session=abc123; Path=/; HttpOnly', 'theme=dark; Path=/']);
  return reply.redirect('/welcome');
});
app.get('/welcome', async (req, reply) =>
  reply
    .type('text/plain; charset=utf-8')
    .send(`welcome, cookies: ${req.headers.cookie ?? 'none'}\n`),
);
app.post('/upload', async (req) => {
  const hash = createHash('sha256');
  let size = 0;
  for await (const d of req.body) {
    hash.update(d);
    size += d.length;
  }
  return { size, sha256: hash.digest('hex') };
});
app.get('/download', async (_req, reply) => {
  reply.header('Content-Disposition', 'attachment; filename="download.bin"');
  reply.type('application/octet-stream');
  return reply.send(createReadStream(downloadPath()));
});
app.get('/boom', async () => {
  throw new Error('boom');
});

app.setErrorHandler((err, _req, reply) => {
  reply.code(err.statusCode ?? 500).send({ error: err.message });
});

export default app;
