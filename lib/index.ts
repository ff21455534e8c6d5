/**
 * tsgi: the TypeScript Gateway Interface.
 */
export {
  codec,
  selectedCodec,
  tsCodec,
  loadNativeCodec,
  CodecError,
  DEFAULT_LIMITS,
  FCGI,
} from './codec/index.js';
export type {
  Codec,
  CodecName,
  ErrorCode,
  FcgiEvent,
  ScgiEvent,
  UwsgiEvent,
  Parser,
  Limits,
  HeadStyle,
} from './codec/index.js';
export { cgiVariables, type CgiVariables } from './codec/environ.js';
/** Every codec error code, in the native binding's numbering (index 0 is "no error"). */
export { ERROR_CODES } from './codec/errors.js';

/* The gateway interface, the servers and the listener helpers (docs/gateway.md). */
export type {
  App,
  Body,
  Chunk,
  Environ,
  Headers as ResponseHeaders,
  StartResponse,
  Write,
} from './gateway/types.js';
export { validate, ValidationError, checkEnviron } from './gateway/validate.js';
export { respond, type Sink } from './gateway/respond.js';
export {
  createFastcgiServer,
  FastcgiServer,
  type FastcgiListener,
  type FastcgiOptions,
} from './protocol/fastcgi.js';
export { createHttpServer, type HttpServer, type HttpOptions } from './protocol/http.js';
export { createScgiServer, type ScgiListener, type ScgiOptions } from './protocol/scgi.js';
export { createUwsgiServer, type UwsgiListener, type UwsgiOptions } from './protocol/uwsgi.js';
export {
  selectedTransport,
  nativeTransport,
  type TransportName,
  type TransportSelection,
} from './protocol/transport.js';
export { runCgi, type CgiIo } from './protocol/cgi.js';
export { cgiMain } from './command/cgi.js';
export {
  StreamGateway,
  type StreamListener,
  type StreamOptions,
  type StreamProtocol,
} from './protocol/scgi-uwsgi-connection.js';
export {
  parseAddress,
  formatAddress,
  listen,
  ListenError,
  type ListenAddress,
} from './server/listen.js';

/* Adapters: node:http request listeners and fetch handlers as TSGI apps (docs/interfaces.md). */
export { fromNodeHandler, type NodeHandler, type NodeAdapterOptions } from './adapters/node.js';
export { fromFetch, type FetchHandler, type FetchAdapterOptions } from './adapters/fetch.js';

/* Clients: FastCGI, SCGI and uwsgi requests to php-fpm, uWSGI or another tsgi, and proxies. */
export {
  createClient,
  FastcgiClient,
  ScgiClient,
  UwsgiClient,
  ClientError,
  errorStatus,
  parseHead,
  HeadError,
  type Client,
  type ClientOptions,
  type ClientProtocol,
  type ClientRequest,
  type ClientResponse,
  type ClientErrorCode,
  type BackendAddress,
  type RequestBody,
  type Receiver,
  type Started,
  type FastcgiClientOptions,
  type FastcgiValues,
  type StreamClientOptions,
  type UwsgiClientOptions,
  type ResponseHead,
  type SpoolOptions,
} from './client/index.js';
export {
  phpFpm,
  forward,
  locateScript,
  type Proxy,
  type ForwardOptions,
  type PhpFpmOptions,
  type ScriptLocation,
} from './client/proxy.js';
