/**
 * The pure TypeScript codec: byte-identical to the native codec (docs/codec.md), used where no
 * native binary loads or when `TSGI_CODEC=ts`.
 */
import type { Codec } from '../types.js';
import {
  createFcgiParser,
  fcgiAbortRequest,
  fcgiBeginRequest,
  fcgiEndRequest,
  fcgiGetValues,
  fcgiGetValuesResult,
  fcgiParams,
  fcgiResponse,
  fcgiResponseText,
  fcgiStream,
  fcgiUnknownType,
} from './fastcgi.js';
import { encodeHead, encodeHeadText } from './head.js';
import { createScgiParser, scgiRequest } from './scgi.js';
import { createUwsgiParser, uwsgiRequest } from './uwsgi.js';

/** The TypeScript implementation of {@link Codec}. */
export const tsCodec: Codec = Object.freeze({
  name: 'ts' as const,
  createFcgiParser,
  createScgiParser,
  createUwsgiParser,
  encodeHead,
  encodeHeadText,
  fcgiStream,
  fcgiResponse,
  fcgiResponseText,
  fcgiEndRequest,
  fcgiBeginRequest,
  fcgiAbortRequest,
  fcgiParams,
  fcgiGetValues,
  fcgiGetValuesResult,
  fcgiUnknownType,
  scgiRequest,
  uwsgiRequest,
});
