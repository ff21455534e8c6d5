/**
 * tsgi: the TypeScript Gateway Interface.
 */
export {
  codec,
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
export {
  parseAddress,
  formatAddress,
  listen,
  ListenError,
  type ListenAddress,
} from './server/listen.js';
