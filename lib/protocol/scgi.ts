/**
 * The SCGI application side over any stream socket (TCP, unix, an inherited fd).
 *
 * SCGI (Neil Schemenauer's protocol.txt): one request per connection. The request is a
 * netstring `<length>:<header block>,` whose header block is `name NUL value NUL` pairs,
 * CONTENT_LENGTH first and `SCGI` = `1` somewhere (lighttpd sends it last), then exactly
 * CONTENT_LENGTH body bytes; bytes after the body are ignored. The reply is CGI style
 * (`Status: 200 OK`, headers, an empty line, the body), ended by closing the connection —
 * an `HTTP/1.1` status line is refused by Apache's mod_proxy_scgi.
 *
 * A missing or non-numeric CONTENT_LENGTH, a missing SCGI=1, a bad netstring or a header block
 * over `limits.maxParamsBytes`: the connection is closed with a logged reason (the codec's
 * message and code); a connection that sends nothing is closed quietly. The rest (body
 * backpressure, abort, drain) is shared with uwsgi: see lib/protocol/scgi-uwsgi-connection.ts.
 */
import type { App } from '../gateway/types.js';
import {
  createStreamServer,
  type StreamListener,
  type StreamOptions,
  type StreamProtocol,
} from './scgi-uwsgi-connection.js';

/** Options of {@link createScgiServer}. */
export type ScgiOptions = StreamOptions;

/** A net.Server speaking SCGI, with drain() for a graceful stop. */
export type ScgiListener = StreamListener;

/** SCGI as the shared stream machinery sees it. */
export const SCGI: StreamProtocol = Object.freeze<StreamProtocol>({
  name: 'scgi',
  title: 'SCGI',
  headStyle: 'cgi',
  createParser: (codec, limits) => codec.createScgiParser(limits),
});

/** A net.Server for SCGI; bind it with lib/server/listen.ts or server.listen(). */
export function createScgiServer(app: App, options: ScgiOptions = {}): ScgiListener {
  return createStreamServer(SCGI, app, options, false);
}
