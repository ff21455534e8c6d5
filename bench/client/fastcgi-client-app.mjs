// bench:client row "fastcgi-client": a node:http server answering from php-fpm through the npm
// package fastcgi-client, written as its README shows (request, pipe stdin, collect stdout),
// with the least head handling a proxy needs (split at the empty line, Status, headers).
// Args: PORT FPM_PORT SCRIPT_FILENAME
import { createServer } from 'node:http';
import fastcgiConnector from 'fastcgi-client';

const [port, fpmPort, script] = process.argv.slice(2);
const client = fastcgiConnector({ host: '127.0.0.1', port: Number(fpmPort) });
client.on('error', (e) => console.error(e));
client.on('ready', () => {
  createServer((req, res) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    client.request(
      {
        REQUEST_METHOD: req.method,
        SCRIPT_FILENAME: script,
        SCRIPT_NAME: q === -1 ? url : url.slice(0, q),
        QUERY_STRING: q === -1 ? '' : url.slice(q + 1),
        REQUEST_URI: url,
        SERVER_PROTOCOL: 'HTTP/1.1',
        GATEWAY_INTERFACE: 'CGI/1.1',
        REMOTE_ADDR: req.socket.remoteAddress,
        SERVER_NAME: '127.0.0.1',
        SERVER_PORT: String(port),
        CONTENT_LENGTH: req.headers['content-length'] ?? '',
        CONTENT_TYPE: req.headers['content-type'] ?? '',
      },
      (err, request) => {
        if (err) {
          res.writeHead(502).end();
          return;
        }
        const chunks = [];
        request.stdout.on('data', (c) => chunks.push(c));
        request.stderr.on('data', () => {});
        request.stdout.on('end', () => {
          const all = Buffer.concat(chunks);
          const split = all.indexOf('\r\n\r\n');
          const head = all.subarray(0, split).toString('latin1').split('\r\n');
          let status = 200;
          const headers = [];
          for (const line of head) {
            const colon = line.indexOf(':');
            const name = line.slice(0, colon);
            const value = line.slice(colon + 1).trim();
            if (name.toLowerCase() === 'status') status = Number(value.slice(0, 3));
            else headers.push(name, value);
          }
          res.writeHead(status, headers);
          res.end(all.subarray(split + 4));
        });
        req.pipe(request.stdin);
      },
    );
  }).listen(Number(port), '127.0.0.1', () => console.log('ready'));
});
