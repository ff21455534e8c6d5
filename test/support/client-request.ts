/** What the client tests share: reading a response body whole, and a request's variables. */
import type { Readable } from 'node:stream';

/** Every byte of a response body. */
export async function bytes(body: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const c of body) chunks.push(c as Buffer);
  return Buffer.concat(chunks);
}

/** A POST to /echo?x=1 with X-Test: yes, plus `extra`. */
export function echoParams(extra: Record<string, string> = {}): Record<string, string> {
  return {
    REQUEST_METHOD: 'POST',
    SCRIPT_NAME: '',
    PATH_INFO: '/echo',
    QUERY_STRING: 'x=1',
    SERVER_NAME: 'localhost',
    SERVER_PORT: '80',
    SERVER_PROTOCOL: 'HTTP/1.1',
    HTTP_X_TEST: 'yes',
    ...extra,
  };
}
