// A Hono app served by tsgi through the fetch interface:
//   npx tsgi serve examples/hono/app.mjs --interface fetch
// The default export is the Hono app: tsgi calls its fetch(request, environ), so `c.env` is
// the TSGI environ (REMOTE_ADDR, SERVER_NAME, ...).
import { Hono } from 'hono';

const app = new Hono();

app.get('/', (c) => c.text(`Hello from Hono! You are ${c.env.REMOTE_ADDR} at ${c.req.url}\n`));

app.post('/api/echo', async (c) => c.json({ youSent: await c.req.json() }, 201));

app.get('/api/events', (c) => {
  // A server-sent event stream; request.signal aborts when the client goes away.
  const signal = c.req.raw.signal;
  const body = new ReadableStream({
    async start(controller) {
      for (let n = 1; n <= 3 && !signal.aborted; n++) {
        controller.enqueue(new TextEncoder().encode(`data: tick ${n}\n\n`));
        await new Promise((r) => setTimeout(r, 100));
      }
      controller.close();
    },
  });
  return new Response(body, { headers: { 'Content-Type': 'text/event-stream' } });
});

export default app;
