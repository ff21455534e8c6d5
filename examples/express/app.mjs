// An Express app served by tsgi, unchanged:
//   npx tsgi serve examples/express/app.mjs --interface node
// (HTTP on 127.0.0.1:8000; add `--fastcgi 127.0.0.1:9000` to serve nginx, see examples/nginx/).
// The default export is the Express app itself: it is a node:http request listener.
import express from 'express';

const app = express();
app.use(express.json());

app.get('/', (req, res) => {
  res.type('text').send(`Hello from Express! You are ${req.ip} over ${req.protocol}.\n`);
});

app.post('/api/echo', (req, res) => {
  res.status(201).json({ youSent: req.body });
});

app.get('/api/stream', (_req, res) => {
  res.type('text');
  let n = 0;
  const timer = setInterval(() => {
    res.write(`tick ${++n}\n`);
    if (n === 3) {
      clearInterval(timer);
      res.end();
    }
  }, 100);
  res.on('close', () => clearInterval(timer)); // the client went away
});

app.use((err, _req, res, _next) => {
  res.status(err.status ?? 500).json({ error: err.message });
});

export default app;
