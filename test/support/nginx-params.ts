/**
 * The params nginx sends with its stock scgi_params and uwsgi_params files (nginx 1.22), for a
 * request to `uri`: neither file sends SCRIPT_NAME; uwsgi_params sends PATH_INFO
 * ($document_uri), scgi_params DOCUMENT_URI. nginx puts CONTENT_LENGTH first for SCGI itself
 * (see scgiRequest).
 */
import { percentDecoded } from './raw-client.js';

/** What both files send after the request line's variables. */
function server(): string[] {
  return [
    'DOCUMENT_ROOT',
    '/usr/share/nginx/html',
    'SERVER_PROTOCOL',
    'HTTP/1.1',
    'REQUEST_SCHEME',
    'http',
    'HTTPS',
    '',
    'REMOTE_ADDR',
    '127.0.0.1',
    'REMOTE_PORT',
    '50000',
    'SERVER_PORT',
    '8080',
    'SERVER_NAME',
    'localhost',
  ];
}

function split(uri: string): { path: string; query: string } {
  const q = uri.indexOf('?');
  return q === -1
    ? { path: percentDecoded(uri), query: '' }
    : { path: percentDecoded(uri.slice(0, q)), query: uri.slice(q + 1) };
}

/** include scgi_params; */
export function nginxScgiParams(uri: string, method = 'GET', extra: string[] = []): string[] {
  const { path, query } = split(uri);
  // prettier-ignore
  return [
    'REQUEST_METHOD', method, 'REQUEST_URI', uri, 'QUERY_STRING', query, 'CONTENT_TYPE', '',
    'DOCUMENT_URI', path, ...server(), ...extra,
  ];
}

/** include uwsgi_params; (CONTENT_LENGTH is "" without a body: $content_length) */
export function nginxUwsgiParams(uri: string, method = 'GET', extra: string[] = []): string[] {
  const { path, query } = split(uri);
  // prettier-ignore
  return [
    'QUERY_STRING', query, 'REQUEST_METHOD', method, 'CONTENT_TYPE', '', 'CONTENT_LENGTH', '',
    'REQUEST_URI', uri, 'PATH_INFO', path, ...server(), ...extra,
  ];
}
