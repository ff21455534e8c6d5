/**
 * The TSGI gateway: the interface types, the response runner every protocol shares, the
 * request body stream, and the validator middleware.
 */
export type { App, Body, Chunk, Environ, Headers, StartResponse, Write } from './types.js';
export { respond, chunkBytes, type Sink } from './respond.js';
export { BodyInput, contentLength } from './input.js';
export { makeEnviron, percentDecodeLatin1, requestPath, type EnvironExtras } from './environ.js';
export { errorStream, stderrStream } from './errors.js';
export { validate, checkEnviron, checkStartResponse, ValidationError } from './validate.js';
