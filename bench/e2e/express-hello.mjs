// bench:e2e rows "express-tsgi-fastcgi", "express-tsgi-http" and "express-own": an Express hello world with
// the same body and Content-Type as every other row. res.send() runs (ETag, Content-Length);
// the Content-Type is set with node's setHeader because Express's own setters add a charset.
import express from 'express';

const app = express();
const BODY = Buffer.from('Hello, world!\n');

app.get('/', (_req, res) => {
  res.setHeader('Content-Type', 'text/plain');
  res.send(BODY);
});

export default app;
