/**
 * The two one-request-at-a-time protocols as {@link StreamKind}s for the shared stream suite
 * (stream-suite.ts): how to make the server, how a request is written (with nginx's stock
 * params) and how the response's status line looks.
 */
import { createScgiServer } from '../../lib/protocol/scgi.js';
import { createUwsgiServer } from '../../lib/protocol/uwsgi.js';
import { nginxScgiParams, nginxUwsgiParams } from './nginx-params.js';
import { scgiRequest } from './scgi-client.js';
import type { StreamKind } from './stream-suite.js';
import { uwsgiRequest } from './uwsgi-client.js';

export const SCGI: StreamKind = {
  name: 'scgi',
  title: 'SCGI',
  create: (app, o) => createScgiServer(app, o),
  request: scgiRequest,
  params: nginxScgiParams,
  statusLine: (s) => `Status: ${s}`,
};

export const UWSGI: StreamKind = {
  name: 'uwsgi',
  title: 'uwsgi',
  create: (app, o) => createUwsgiServer(app, o),
  request: uwsgiRequest,
  params: nginxUwsgiParams,
  statusLine: (s) => `HTTP/1.1 ${s}`,
};
