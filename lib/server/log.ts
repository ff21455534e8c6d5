/**
 * The server's log: one line per event on stderr, as `tsgi: message` text (the default, for
 * people and for journald) or as one JSON object per line through pino (`--log-format json`,
 * for log shippers). Every event has a message; JSON lines also carry the event's fields
 * (`event`, `worker`, `pid`, ...). The access log (one line per request) goes through the same
 * logger with `event: "request"`.
 */
import process from 'node:process';
import { createRequire } from 'node:module';
import { Writable } from 'node:stream';
import type { pino as Pino } from 'pino';
import { stderrStream } from '../gateway/errors.js';
import type { LogFormat } from './config.js';

/** Fields of one access-log line. */
export interface RequestLogFields {
  method: string;
  /** SCRIPT_NAME + PATH_INFO. */
  path: string;
  query: string;
  /** The status code the app chose (0 when it failed before choosing one). */
  status: number;
  /** Body bytes the app produced. */
  bytes: number;
  /** From the app call to the end of the response, in milliseconds. */
  durationMs: number;
  remote?: string | undefined;
}

export type LogFields = Record<string, unknown>;

/** The log every part of the server writes to. */
export interface Logger {
  readonly format: LogFormat;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** One access-log line. */
  request(fields: RequestLogFields): void;
  /** Writes what is buffered (before the process exits). */
  flush(): void;
}

const require = createRequire(import.meta.url);

function textRequest(f: RequestLogFields): string {
  const target = f.query === '' ? f.path : `${f.path}?${f.query}`;
  const who = f.remote ? `${f.remote} ` : '';
  return `${who}"${f.method} ${target}" ${f.status} ${f.bytes} ${f.durationMs.toFixed(3)} ms`;
}

/**
 * A logger writing to stderr. `base` fields go on every JSON line (for example the worker
 * id); text lines are `tsgi: message` whatever the fields.
 */
export function createLogger(format: LogFormat, base: LogFields = {}): Logger {
  if (format === 'text') {
    const line = (msg: string): void => {
      process.stderr.write(`tsgi: ${msg}\n`);
    };
    return {
      format,
      info: line,
      warn: line,
      error: line,
      request: (f) => line(textRequest(f)),
      flush: () => {},
    };
  }
  /* required here, not imported: text logs (the default) never load pino */
  const { pino } = require('pino') as { pino: typeof Pino };
  const logger = pino(
    {
      base: { pid: process.pid, ...base },
      messageKey: 'msg',
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: 2, sync: true }),
  );
  return {
    format,
    info: (msg, fields = {}) => logger.info(fields, msg),
    warn: (msg, fields = {}) => logger.warn(fields, msg),
    error: (msg, fields = {}) => logger.error(fields, msg),
    request: (f) =>
      logger.info(
        {
          event: 'request',
          method: f.method,
          path: f.path,
          query: f.query,
          status: f.status,
          bytes: f.bytes,
          duration_ms: Math.round(f.durationMs * 1000) / 1000,
          ...(f.remote ? { remote: f.remote } : {}),
        },
        'request',
      ),
    flush: () => logger.flush(),
  };
}

/**
 * tsgi.errors for the protocols that have no error channel of their own (SCGI, uwsgi, HTTP):
 * with text logs the bytes go to stderr as the app wrote them; with JSON logs each write becomes
 * one `error` entry with `event: "app"` (a stack trace written at once stays one entry), so that
 * stderr keeps one JSON object per line.
 */
export function appErrors(log: Logger): Writable {
  if (log.format === 'text') return stderrStream();
  return new Writable({
    write(chunk: Buffer, _encoding, callback) {
      const text = chunk.toString('utf8').replace(/\r?\n$/, '');
      if (text !== '') log.error(text, { event: 'app' });
      callback();
    },
  });
}
