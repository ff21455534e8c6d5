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
