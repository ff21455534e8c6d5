// A fetch handler with no framework: (request) => Response.
//   npx tsgi serve examples/fetch/hello.mjs --interface fetch
export default async function hello(request) {
  const url = new URL(request.url);
  if (request.method === 'POST') {
    const text = await request.text();
    return Response.json({ path: url.pathname, received: text.length });
  }
  const headers = new Headers({ 'Content-Type': 'text/plain; charset=utf-8' });
  headers.append('Set-Cookie', 'visited=1; Path=/');
  headers.append('Set-Cookie', 'theme=light; Path=/');
  return new Response(`Hello from a fetch handler! You asked for ${url.pathname}\n`, { headers });
}
