/**
 * The client side of FastCGI, SCGI and uwsgi: talk to php-fpm, uWSGI or another tsgi from
 * Node (docs in the README, "Talking to php-fpm and uWSGI").
 */
import { FastcgiClient, type FastcgiClientOptions } from './fastcgi.js';
import { ScgiClient, UwsgiClient, type UwsgiClientOptions } from './scgi-uwsgi.js';
import type { ClientRequest, ClientResponse } from './common.js';

export { FastcgiClient, type FastcgiClientOptions, type FastcgiValues } from './fastcgi.js';
export {
  ScgiClient,
  UwsgiClient,
  type StreamClientOptions,
  type UwsgiClientOptions,
} from './scgi-uwsgi.js';
export {
  backendAddress,
  type BackendAddress,
  type ClientRequest,
  type ClientResponse,
  type CommonOptions,
  type Receiver,
  type RequestBody,
  type Started,
} from './common.js';
export { ClientError, errorStatus, type ClientErrorCode } from './errors.js';
export type { SpoolOptions } from './spool.js';
export { parseHead, findHeadEnd, HeadError, type ResponseHead } from './head.js';

/** The protocols a client speaks. */
export type ClientProtocol = 'fastcgi' | 'scgi' | 'uwsgi';

/** What every client offers. */
export interface Client {
  /** Sends a request; resolves once the response head arrived. */
  request(req: ClientRequest): Promise<ClientResponse>;
  /** Refuses new requests and closes idle connections; running requests finish. */
  close(): Promise<void>;
}

/** Options of {@link createClient}: the protocol (default FastCGI) and that client's options. */
export type ClientOptions = { protocol?: ClientProtocol } & FastcgiClientOptions &
  UwsgiClientOptions;

/** A client for `options.protocol` (default `fastcgi`). */
export function createClient(options: ClientOptions): Client {
  switch (options.protocol ?? 'fastcgi') {
    case 'fastcgi':
      return new FastcgiClient(options);
    case 'scgi':
      return new ScgiClient(options);
    case 'uwsgi':
      return new UwsgiClient(options);
    default:
      throw new TypeError(`unknown protocol "${String(options.protocol)}": fastcgi, scgi or uwsgi`);
  }
}
