/**
 * The uwsgi application side over any stream socket (TCP, unix, an inherited fd).
 *
 * uwsgi (uWSGI's Protocol.rst): a 4-byte header `modifier1, datasize (u16 little-endian),
 * modifier2`, the vars block (`u16 LE key size, key, u16 LE value size, value` repeated, at
 * most 65535 bytes on the wire, bounded here by `limits.maxParamsBytes`), then the body:
 * CONTENT_LENGTH bytes, none when CONTENT_LENGTH is absent or empty (nginx buffers a chunked
 * request body for uwsgi_pass and sends its length; Apache's mod_proxy_uwsgi answers 411 to
 * a chunked request itself). Only modifier1 0 (a WSGI-style request) is served: any other
 * closes the connection with a logged reason, as uWSGI does. The reply is a raw HTTP response
 * head (`HTTP/1.1 200 OK`) and the body — a CGI-style reply is refused by Apache.
 *
 * The response ends with the connection, as with uWSGI itself: nginx (whose uwsgi module never
 * reuses a connection) and lighttpd accept either, but Apache's mod_proxy_uwsgi reads the
 * response until the connection closes, whatever its Content-Length. With `keepAlive`, a
 * connection the peer keeps open serves several requests in sequence (see
 * lib/protocol/scgi-uwsgi-connection.ts for when a response leaves it open).
 */
import type { App } from '../gateway/types.js';
import {
  createStreamServer,
  type StreamListener,
  type StreamOptions,
  type StreamProtocol,
} from './scgi-uwsgi-connection.js';

/** Options of {@link createUwsgiServer}. */
export interface UwsgiOptions extends StreamOptions {
  /**
   * Serve further requests on a connection after a response whose end the peer can tell
   * (Content-Length, or no body). Off by default: every response then ends its connection,
   * which every web server understands (Apache's mod_proxy_uwsgi needs it).
   */
  keepAlive?: boolean;
}

/** A net.Server speaking uwsgi, with drain() for a graceful stop. */
export type UwsgiListener = StreamListener;

/** uwsgi as the shared stream machinery sees it. */
export const UWSGI: StreamProtocol = Object.freeze<StreamProtocol>({
  name: 'uwsgi',
  title: 'uwsgi',
  headStyle: 'http',
  createParser: (codec, limits) => codec.createUwsgiParser(limits),
});

/** A net.Server for uwsgi; bind it with lib/server/listen.ts or server.listen(). */
export function createUwsgiServer(app: App, options: UwsgiOptions = {}): UwsgiListener {
  return createStreamServer(UWSGI, app, options, options.keepAlive ?? false);
}
