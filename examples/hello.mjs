// The smallest TSGI app: `tsgi serve examples/hello.mjs` (HTTP on 127.0.0.1:8000), or behind
// nginx with `tsgi serve examples/hello.mjs --fastcgi 127.0.0.1:9000` (see examples/nginx/).
export default function hello(environ, startResponse) {
  const body = `Hello, world! You asked for ${environ.PATH_INFO || '/'}\n`;
  startResponse('200 OK', [['Content-Type', 'text/plain; charset=utf-8']]);
  return [body];
}
