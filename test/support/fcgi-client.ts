/**
 * A small FastCGI web-server side for tests: sends records built by the codec's encoders and
 * parses what comes back with the codec's parser, keeping the raw bytes too.
 */
import { codec, FCGI, type FcgiEvent } from '../../lib/codec/index.js';
import { openSocket, RawClient } from './raw-client.js';

export interface FcgiReply {
  stdout: Buffer;
  stderr: Buffer;
  appStatus: number;
  protocolStatus: number;
}

export class FcgiClient extends RawClient {
  readonly events: FcgiEvent[] = [];
  private readonly parser = codec.createFcgiParser();

  protected override received(chunk: Buffer): void {
    super.received(chunk);
    for (const ev of this.parser.push(chunk)) {
      if (ev.type === 'stdout' || ev.type === 'stderr') {
        this.events.push({ ...ev, data: Buffer.from(ev.data) });
      } else this.events.push(ev);
    }
  }

  /** Connects to a TCP port on 127.0.0.1 or to a unix socket path (closes on the server's FIN). */
  static override connect(target: number | string): Promise<FcgiClient> {
    return openSocket(target, false).then((socket) => new FcgiClient(socket));
  }

  /** BEGIN_REQUEST and the PARAMS stream. */
  begin(id: number, pairs: string[], opts: { role?: number; keepConn?: boolean } = {}): void {
    this.write(codec.fcgiBeginRequest(id, opts.role ?? FCGI.RESPONDER, opts.keepConn ? 1 : 0));
    this.write(codec.fcgiParams(id, pairs));
  }

  /** STDIN (or another stream) records; `end` adds the empty record. */
  stream(id: number, data: Uint8Array | string, end: boolean, type: number = FCGI.STDIN): boolean {
    const bytes = typeof data === 'string' ? Buffer.from(data, 'latin1') : data;
    return this.write(codec.fcgiStream(type, id, bytes, end));
  }

  /** A whole request: BEGIN, PARAMS, STDIN (body then the empty record). */
  request(
    id: number,
    pairs: string[],
    body: Uint8Array | string = '',
    opts: { role?: number; keepConn?: boolean } = {},
  ): void {
    this.begin(id, pairs, opts);
    this.stream(id, body, true);
  }

  /** Waits for END_REQUEST of `id` and gathers its STDOUT and STDERR. */
  async reply(id: number): Promise<FcgiReply> {
    const end = await this.until(
      () => this.events.find((e) => e.type === 'end' && e.requestId === id),
      `END_REQUEST ${id}`,
    );
    return this.collect(id, end as Extract<FcgiEvent, { type: 'end' }>);
  }

  private collect(id: number, end: Extract<FcgiEvent, { type: 'end' }>): FcgiReply {
    const part = (type: 'stdout' | 'stderr') =>
      Buffer.concat(
        this.events
          .filter((e) => e.type === type && e.requestId === id)
          .map((e) => (e as { data: Uint8Array }).data),
      );
    return {
      stdout: part('stdout'),
      stderr: part('stderr'),
      appStatus: end.appStatus,
      protocolStatus: end.protocolStatus,
    };
  }
}

/** Splits a CGI-style response into its head lines and body. */
export function parseCgi(stdout: Buffer): { head: string[]; body: string } {
  const s = stdout.toString('latin1');
  const split = s.indexOf('\r\n\r\n');
  if (split === -1) throw new Error(`no header block in ${JSON.stringify(s)}`);
  return { head: s.slice(0, split).split('\r\n'), body: s.slice(split + 4) };
}

/** Params a web server would send for a simple request. */
export function params(uri: string, extra: string[] = [], method = 'GET'): string[] {
  const q = uri.indexOf('?');
  return [
    'REQUEST_METHOD',
    method,
    'REQUEST_URI',
    uri,
    'QUERY_STRING',
    q === -1 ? '' : uri.slice(q + 1),
    'SCRIPT_NAME',
    '',
    'SERVER_NAME',
    'test.local',
    'SERVER_PORT',
    '80',
    'SERVER_PROTOCOL',
    'HTTP/1.1',
    'REMOTE_ADDR',
    '127.0.0.1',
    ...extra,
  ];
}
