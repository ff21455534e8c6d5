/**
 * The response head a FastCGI, SCGI or uwsgi application sends, parsed as CGI defines it
 * (RFC 3875 §6): header lines up to the first empty line, `Status: 404 Not Found` giving the
 * status, a `Location:` without `Status:` meaning a redirect (302; a local one when the value
 * is a path, `/…` but not `//host…`), lines ended by CRLF or by a bare LF, a value running from the first colon to the
 * end of the line (colons inside it kept), repeated headers kept in order. A head that starts
 * with an HTTP status line (`HTTP/1.1 200 OK`, what uWSGI answers over uwsgi) is accepted too.
 */
import { STATUS_READ as STATUS, TOKEN as NAME } from '../http/grammar.js';

/** A parsed response head. */
export interface ResponseHead {
  /** The status code (200 when the application sent neither `Status:` nor `Location:`). */
  status: number;
  /** The reason phrase ("" when the application gave none). */
  statusText: string;
  /**
   * The headers as received, in order, repeats kept (`Set-Cookie` three times stays three
   * entries); `Status:` and an HTTP status line are not in the list.
   */
  headers: [string, string][];
  /**
   * True for a `Location:` whose value is a path (`/…`, not `//host…`) and that came without
   * `Status:`: a local redirect (RFC 3875 §6.2.2), which a server answers by running the
   * request again for that path.
   */
  localRedirect: boolean;
  /** How the head started: `cgi` (header lines) or `http` (an `HTTP/1.x` status line). */
  style: 'cgi' | 'http';
}

/** Why a head cannot be parsed; the client reports it as a protocol error. */
export class HeadError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'HeadError';
  }
}

const HTTP_LINE = /^HTTP\/[0-9]\.[0-9] ([1-9][0-9][0-9])(?: (.*))?$/;

const isBlank = (c: number): boolean => c === 32 || c === 9;

/** The reason phrases used when a redirect or a default status has none of its own. */
const REASONS: Record<number, string> = { 200: 'OK', 302: 'Found' };

/**
 * Finds the end of the head in `buf` (latin-1 bytes): returns [headEnd, bodyStart] or null
 * while the empty line has not arrived. The empty line may be CRLF or LF, after lines ended
 * either way.
 */
export function findHeadEnd(buf: Uint8Array): [number, number] | null {
  const n = buf.length;
  /* a head that is empty from the start: the first line is the empty one */
  if (n >= 1 && buf[0] === 10) return [0, 1];
  if (n >= 2 && buf[0] === 13 && buf[1] === 10) return [0, 2];
  for (let i = buf.indexOf(10); i !== -1 && i + 1 < n; i = buf.indexOf(10, i + 1)) {
    const c = buf[i + 1];
    if (c === 10) return [i + 1, i + 2];
    if (c === 13 && i + 2 < n && buf[i + 2] === 10) return [i + 1, i + 3];
  }
  return null;
}

/** Parses a head (the bytes before the empty line, as a latin-1 string). */
export function parseHead(text: string): ResponseHead {
  const headers: [string, string][] = [];
  let status = -1;
  let statusText = '';
  let style: 'cgi' | 'http' = 'cgi';
  let location: string | undefined;
  const n = text.length;
  for (let start = 0, first = true; start < n; first = false) {
    /* one line: [start, end), its LF (if any) at eol, one CR before it left out */
    let eol = text.indexOf('\n', start);
    if (eol === -1) eol = n;
    const end = eol > start && text.charCodeAt(eol - 1) === 13 ? eol - 1 : eol;
    const from = start;
    start = eol + 1;
    if (first && text.startsWith('HTTP/', from)) {
      const line = text.slice(from, end);
      const m = HTTP_LINE.exec(line);
      if (m === null) throw new HeadError(`bad status line ${JSON.stringify(line)}`);
      status = Number(m[1]);
      statusText = m[2] ?? '';
      style = 'http';
      continue;
    }
    const c0 = text.charCodeAt(from);
    if (c0 === 32 || c0 === 9) {
      throw new HeadError(`folded header line ${JSON.stringify(text.slice(from, end))}`);
    }
    const colon = text.indexOf(':', from);
    if (colon <= from || colon >= end) {
      throw new HeadError(`header line without a name ${JSON.stringify(text.slice(from, end))}`);
    }
    const name = text.slice(from, colon);
    if (!NAME.test(name)) throw new HeadError(`bad header name ${JSON.stringify(name)}`);
    /* the value from the colon to the end of the line, spaces and tabs around it left out */
    let vs = colon + 1;
    let ve = end;
    while (vs < ve && isBlank(text.charCodeAt(vs))) vs++;
    while (ve > vs && isBlank(text.charCodeAt(ve - 1))) ve--;
    const value = text.slice(vs, ve);
    if (style === 'cgi' && name.length === 6 && name.toLowerCase() === 'status') {
      const m = STATUS.exec(value);
      if (m === null) throw new HeadError(`bad Status header ${JSON.stringify(value)}`);
      status = Number(m[1]);
      statusText = m[2] ?? '';
      continue;
    }
    if (name.length === 8 && location === undefined && name.toLowerCase() === 'location') {
      location = value;
    }
    headers.push([name, value]);
  }
  let localRedirect = false;
  if (status === -1) {
    if (location !== undefined) {
      status = 302;
      /* `//host/path` is a network-path reference: a redirect for the client */
      localRedirect = location.charCodeAt(0) === 47 && location.charCodeAt(1) !== 47;
    } else {
      status = 200;
    }
    statusText = REASONS[status]!;
  }
  return { status, statusText, headers, localRedirect, style };
}
