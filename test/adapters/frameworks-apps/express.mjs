// The Express app of test/adapters/frameworks.test.ts: routing, JSON bodies, cookies, a redirect, an
// error handler, a streamed file download and express.static (Range requests).
// tsgi serve test/adapters/frameworks-apps/express.mjs --interface node
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import express from 'express';
import { downloadPath, publicDir, USERS } from './files.mjs';

const app = express();
app.use(express.json());

app.get('/', (_req, res) => res.type('text').send('Hello from Express\n'));
app.get('/users/:id', (req, res) => {
  const user = USERS[req.params.id];
  if (!user) return res.status(404).json({ error: 'no such user' });
  res.json(user);
});
app.post('/users', (req, res) => {
  res
    .status(201)
    .location('/users/3')
    .json({ created: req.body, type: req.get('content-type') });
});
app.get('/query', (req, res) =>
  res.json({ query: req.query, path: req.path, protocol: req.protocol, method: req.method }),
);
app.get('/login', (_req, res) => {
  res.cookie('session', 'abc123', { httpOnly: true, path: '/' });
  res.cookie('theme', 'dark', { path: '/' });
  res.redirect('/welcome');
});
app.get('/welcome', (req, res) =>
  res.type('text').send(`welcome, cookies: ${req.get('cookie') ?? 'none'}\n`),
);
app.post('/upload', (req, res) => {
  const hash = createHash('sha256');
  let size = 0;
  req.on('data', (d) => {
    hash.update(d);
    size += d.length;
  });
  req.on('end', () => res.json({ size, sha256: hash.digest('hex') }));
});
app.get('/download', (_req, res) => {
  res.attachment('download.bin');
  res.type('application/octet-stream');
  createReadStream(downloadPath()).pipe(res);
});
app.get('/boom', () => {
  throw new Error('boom');
});
app.use('/static', express.static(publicDir(), { maxAge: 0, etag: true }));

app.use((err, _req, res, _next) => {
  res.status(err.status ?? 500).json({ error: err.message, type: err.type ?? null });
});

export default app;
