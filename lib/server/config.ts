/**
 * The options of `tsgi serve`: one table (OPTIONS) gives every option its flag, its config-file
 * key, its type, its parser and validator, its default and its help line, so the command line,
 * the config file (tsgi.config.json or tsgi.config.mjs), `tsgi --help` and the README's option
 * table (written by `npm run docs:options`) cannot drift apart. A new option is one entry
 * there, plus its field in ServeConfig.
 *
 * Precedence: built-in defaults < config file < command line. The listener flags (--fastcgi,
 * --http, ... from the PROTOCOLS table) form one group: any listener on the command line
 * replaces every listener of the config file, so `tsgi serve --http :8001` never also binds
 * the sockets the config file names.
 */
import process from 'node:process';
import { existsSync, readFileSync } from 'node:fs';
import { availableParallelism, cpus } from 'node:os';
import { basename, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parse as parseJsonc, ParseErrorCode, type ParseError } from 'jsonc-parser';
import { parseAllowList } from './allow.js';
import { parseMount } from './mount.js';
import { INTERFACES, syntaxErrorLine, type AppInterface } from './app-loader.js';
import { ListenError, parseAddress, type ListenAddress } from './listen.js';
import { PROTOCOLS } from './protocols.js';
import { CONNECTION_LIMITS, type ConnectionLimits } from '../protocol/socket.js';
import { ArgsError, nearest, parseOptions, type OptionShape } from './args.js';

/** A wrong option value or a broken config file; the message is for the user (exit 2). */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}

type Kind = 'string' | 'strings' | 'boolean';

/** Turns a value typed on the command line or read from a config file into the config's. */
type Parse<T> = (where: string, key: string, v: unknown) => T;

/** What every option declares: how it is typed and what `tsgi --help` says of it. */
interface OptionText {
  /** Flag without dashes. */
  flag: string;
  /** Key in the config file (default: camelCase of the flag). */
  key?: string;
  kind: Kind;
  /** Placeholder in the help ("SECS"). */
  arg?: string;
  help: string;
  /** Only on the command line (not a config-file key). */
  cliOnly?: boolean;
}

/** One option of `tsgi serve`, declared once: flag, config key, type, parser, default, help. */
interface OptionSpec extends OptionText {
  key: string;
  /** The ServeConfig field the option sets, and its value when the option is not given. */
  field?: keyof ServeConfig;
  default?: unknown;
  /** Stores a given value (`where`: "command line" or the config file's name). */
  set: (config: ServeConfig, where: string, v: unknown) => void;
}

const camel = (flag: string): string =>
  flag.replace(/-([a-z])/g, (_m, c: string) => c.toUpperCase());

/** An option that sets its own ServeConfig field. */
function option<F extends keyof ServeConfig>(
  spec: OptionText & { field: F; default: ServeConfig[F]; parse: Parse<ServeConfig[F]> },
): OptionSpec {
  const { parse, ...rest } = spec;
  const key = spec.key ?? camel(spec.flag);
  return {
    ...rest,
    key,
    set: (config, where, v) => {
      config[spec.field] = parse(where, key, v);
    },
  };
}

/** A FastCGI, SCGI and uwsgi deadline or cap: one entry of ServeConfig.connectionLimits. */
function limit(
  spec: OptionText & { limit: keyof ConnectionLimits; parse: Parse<number> },
): OptionSpec {
  const { parse, limit: entry, ...rest } = spec;
  const key = spec.key ?? camel(spec.flag);
  return {
    ...rest,
    key,
    set: (config, where, v) => {
      config.connectionLimits[entry] = parse(where, key, v);
    },
  };
}

/** An option that acts on other options' fields. */
function action(
  spec: OptionText & { set: (config: ServeConfig, where: string, v: unknown) => void },
): OptionSpec {
  return { ...spec, key: spec.key ?? camel(spec.flag) };
}

/** Every option except the listener flags, in help order. */
const OPTIONS: readonly OptionSpec[] = [
  option({
    flag: 'factory',
    kind: 'boolean',
    help: 'the export is a factory: call it once at start-up (it may be async) and serve the app it returns',
    field: 'factory',
    default: false,
    parse: bool,
  }),
  option({
    flag: 'interface',
    kind: 'string',
    arg: 'NAME',
    help: `what the export is: ${INTERFACES.join(', ')} (default: detected: an Express, Koa or Fastify app is node, an object with fetch() is fetch, another function is tsgi)`,
    field: 'interface',
    default: null,
    parse: appInterface,
  }),
  option({
    flag: 'mount',
    kind: 'string',
    arg: 'PREFIX',
    help: 'serve the app under PREFIX: SCRIPT_NAME becomes PREFIX and PATH_INFO the rest of the path, whatever the front server sent (nginx scgi_params/uwsgi_params send no SCRIPT_NAME, Apache mod_proxy_scgi the whole path); other paths get 404',
    field: 'mount',
    default: null,
    parse: mountPrefix,
  }),
  option({
    flag: 'workers',
    kind: 'string',
    arg: 'N',
    help: 'run a master and N worker processes sharing every listener ("auto": one per CPU); without it, one process serves alone',
    field: 'workers',
    default: null,
    parse: workerCount,
  }),
  option({
    flag: 'timeout',
    kind: 'string',
    arg: 'SECS',
    help: 'abort a request running longer (504; tsgi.signal aborts); a request stuck in a busy loop gets a 504 written by the native watchdog, then the process exits with status 124 (a worker is replaced at once) (default: off)',
    field: 'timeoutMs',
    default: 0,
    parse: seconds,
  }),
  option({
    flag: 'max-requests',
    kind: 'string',
    arg: 'N',
    help: 'recycle a worker after about N requests (needs a master: implies --workers 1)',
    field: 'maxRequests',
    default: 0,
    parse: count,
  }),
  option({
    flag: 'max-requests-jitter',
    kind: 'string',
    arg: 'N',
    help: "add a random 0..N to each worker's --max-requests so workers do not recycle together (default: N/10)",
    field: 'maxRequestsJitter',
    /* -1: a tenth of --max-requests, worked out once both are known */
    default: -1,
    parse: count,
  }),
  option({
    flag: 'max-rss',
    kind: 'string',
    arg: 'MB',
    help: 'recycle a worker whose resident memory exceeds MB megabytes, checked after requests and every 20 ms; it retires at once when another worker serves (implies --workers 1). In a process a web server spawned (default there: 512) no master starts: its watchdog thread answers the requests in flight 500 and ends the process above MB',
    field: 'maxRssBytes',
    default: 0,
    parse: (where, key, v) => megabytes(where, key, v, false),
  }),
  option({
    flag: 'graceful-timeout',
    kind: 'string',
    arg: 'SECS',
    help: "on SIGINT/SIGTERM, and for a worker being retired, wait this long for running requests (default 30); a retiring worker hands its kept connections to the others, and closes what is still idle at this point: keep nginx's upstream keepalive_timeout below it",
    field: 'graceMs',
    default: 30_000,
    parse: seconds,
  }),
  option({
    flag: 'exit-on-error',
    kind: 'boolean',
    help: 'on an uncaught exception or unhandled rejection outside a request, exit as Node does (a worker is replaced first, a lone process finishes its requests and exits with status 70); default: log it with its stack and keep serving',
    field: 'exitOnError',
    default: false,
    parse: bool,
  }),
  option({
    flag: 'reload',
    kind: 'boolean',
    help: "development: watch the app's directory (not node_modules) and reload the workers on a change (implies --workers 1)",
    field: 'reload',
    default: false,
    parse: bool,
  }),
  option({
    flag: 'no-exit-on-change',
    kind: 'boolean',
    help: "spawned by a web server (FastCGI on fd 0: mod_fcgid, lighttpd bin-path): do not exit when the app's files change; by default such a process finishes its request and exits on a change, and the web server starts a fresh one (docs/hosting.md)",
    field: 'noExitOnChange',
    default: false,
    parse: bool,
  }),
  option({
    flag: 'idle-exit',
    kind: 'string',
    arg: 'SECS',
    help: "exit after SECS without a request (the process tsgi-cgi-bridge starts for mod_cgi hosts; docs/hosting.md); such a process also exits when the app's files change, and its --timeout defaults to 30 (default: off)",
    field: 'idleExitMs',
    default: 0,
    parse: seconds,
  }),
  option({
    flag: 'keep-alive',
    kind: 'string',
    arg: 'SECS',
    help: "HTTP listeners: close a keep-alive connection idle this long (default 5, node:http's; 0: never); behind nginx proxy_pass with an upstream keepalive pool, make it longer than that pool's keepalive_timeout",
    field: 'keepAliveMs',
    default: null,
    parse: seconds,
  }),
  limit({
    flag: 'header-timeout',
    kind: 'string',
    arg: 'SECS',
    help: `FastCGI, SCGI, uwsgi: close a connection whose request head (PARAMS, netstring, vars) is not complete SECS after its first byte (default ${CONNECTION_LIMITS.headerTimeoutMs / 1000}; 0: never)`,
    limit: 'headerTimeoutMs',
    parse: seconds,
  }),
  limit({
    flag: 'first-byte-timeout',
    kind: 'string',
    arg: 'SECS',
    help: `FastCGI, SCGI, uwsgi: close a new connection that sends nothing for SECS (default ${CONNECTION_LIMITS.firstByteTimeoutMs / 1000}; 0: never)`,
    limit: 'firstByteTimeoutMs',
    parse: seconds,
  }),
  limit({
    flag: 'idle-timeout',
    kind: 'string',
    arg: 'SECS',
    help: `FastCGI (KEEP_CONN), uwsgi keep-alive: close a kept connection idle between requests for SECS (default ${CONNECTION_LIMITS.idleTimeoutMs / 1000}, longer than nginx's upstream keepalive_timeout 60 s; 0: never)`,
    limit: 'idleTimeoutMs',
    parse: seconds,
  }),
  limit({
    flag: 'tcp-keepalive',
    kind: 'string',
    arg: 'SECS',
    help: `FastCGI, SCGI, uwsgi TCP listeners: probe a connection silent for SECS so a vanished peer is found (default ${CONNECTION_LIMITS.tcpKeepAliveMs / 1000}; 0: off)`,
    limit: 'tcpKeepAliveMs',
    parse: seconds,
  }),
  limit({
    flag: 'defer-accept',
    kind: 'string',
    arg: 'SECS',
    help: `FastCGI, SCGI, uwsgi TCP listeners of the native transport (Linux): the kernel hands a connection over once its first bytes arrived or after SECS, so a request sent with the connect is answered in one step (default ${CONNECTION_LIMITS.deferAcceptMs / 1000}; 0: off)`,
    limit: 'deferAcceptMs',
    parse: seconds,
  }),
  limit({
    flag: 'max-head-memory',
    kind: 'string',
    arg: 'MB',
    help: `FastCGI, SCGI, uwsgi: bytes held in unfinished request heads over all connections of a listener; the connection that passes it is closed (default ${CONNECTION_LIMITS.maxHeadBytes / 1024 / 1024})`,
    limit: 'maxHeadBytes',
    parse: (where, key, v) => megabytes(where, key, v, true),
  }),
  limit({
    flag: 'max-unfinished',
    kind: 'string',
    arg: 'N',
    help: `FastCGI, SCGI, uwsgi: requests whose head is not complete, over all connections of a listener; more are refused (FastCGI: END_REQUEST OVERLOADED; SCGI, uwsgi: the connection is closed) (default ${CONNECTION_LIMITS.maxUnfinished})`,
    limit: 'maxUnfinished',
    parse: (where, key, v) => count(where, key, v, 1),
  }),
  limit({
    flag: 'fastcgi-max-reqs',
    kind: 'string',
    arg: 'N',
    help: `FastCGI: live requests on one connection, reported as FCGI_MAX_REQS; one more gets END_REQUEST OVERLOADED (default ${CONNECTION_LIMITS.maxConnRequests})`,
    limit: 'maxConnRequests',
    parse: (where, key, v) => count(where, key, v, 1),
  }),
  option({
    flag: 'socket-mode',
    kind: 'string',
    arg: 'MODE',
    help: 'permissions of unix sockets tsgi creates, in octal (e.g. 660)',
    field: 'socketMode',
    default: null,
    parse: socketMode,
  }),
  option({
    flag: 'user',
    kind: 'string',
    arg: 'USER',
    help: 'after binding, run as this user (name or uid; needs root); unix sockets are chowned to it',
    field: 'user',
    default: null,
    parse: name,
  }),
  option({
    flag: 'group',
    kind: 'string',
    arg: 'GROUP',
    help: "after binding, run as this group (name or gid; default: the user's group)",
    field: 'group',
    default: null,
    parse: name,
  }),
  option({
    flag: 'allow',
    kind: 'strings',
    arg: 'ADDR[,ADDR]',
    help: 'accept TCP connections only from these addresses or CIDR ranges (repeatable); FastCGI listeners also honour FCGI_WEB_SERVER_ADDRS; unix sockets are always allowed',
    field: 'allow',
    default: null,
    parse: allowList,
  }),
  option({
    flag: 'stats',
    kind: 'string',
    arg: 'ADDR',
    help: 'serve statistics over HTTP on ADDR: JSON at /, Prometheus text at /metrics',
    field: 'stats',
    default: null,
    parse: statsAddress,
  }),
  option({
    flag: 'access-log',
    kind: 'boolean',
    help: 'log one line per request: method, path, status, bytes, duration (default: off; the front server logs requests already)',
    field: 'accessLog',
    default: false,
    parse: bool,
  }),
  action({
    flag: 'no-access-log',
    kind: 'boolean',
    help: 'turn the access log off (overrides the config file)',
    cliOnly: true,
    set: (config, _where, v) => {
      if (v === true) config.accessLog = false;
    },
  }),
  option({
    flag: 'log-format',
    kind: 'string',
    arg: 'FORMAT',
    help: 'text (default: "tsgi: ..." lines) or json (one JSON object per line, for log shippers)',
    field: 'logFormat',
    default: 'text',
    parse: logFormat,
  }),
  action({
    flag: 'config',
    kind: 'string',
    arg: 'FILE',
    help: 'read options from FILE (.json or .mjs); default: tsgi.config.json or tsgi.config.mjs in the current directory if present',
    cliOnly: true,
    /* read before the others: see readConfigFile */
    set: () => {},
  }),
];

/** Config-file keys, with the value types they accept. */
const LISTENER_KEYS = PROTOCOLS.map((p) => p.flag);
const FILE_KEYS = new Set<string>([
  'app',
  ...LISTENER_KEYS,
  ...OPTIONS.filter((o) => !o.cliOnly).map((o) => o.key),
]);

/** Names of the config files looked for in the current directory, in order. */
export const CONFIG_FILES = ['tsgi.config.json', 'tsgi.config.mjs'] as const;

export type LogFormat = 'text' | 'json';

/** One listener: a protocol flag and an address. */
export interface ListenerSpec {
  /** The protocol's flag ("fastcgi", "http", ...). */
  protocol: string;
  addr: ListenAddress;
}

/** The resolved options of `tsgi serve`. */
export interface ServeConfig {
  /** APP[:EXPORT]. */
  app: string;
  /** Listeners given on the command line or in the config file (empty: the defaults apply). */
  listeners: ListenerSpec[];
  factory: boolean;
  /** --interface; null: detected from the export (see lib/server/app-loader.ts). */
  interface: AppInterface | null;
  /** --mount: the prefix in the environ's form (see lib/server/mount.ts); null: none. */
  mount: string | null;
  /** Worker processes under a master; null: one process serves alone (no master). */
  workers: number | null;
  /** Request timeout in ms; 0: off. */
  timeoutMs: number;
  /** Recycle a worker after this many requests; 0: off. */
  maxRequests: number;
  maxRequestsJitter: number;
  /** Recycle a worker above this resident size in bytes; 0: off. */
  maxRssBytes: number;
  graceMs: number;
  reload: boolean;
  /** Spawned by a web server: stay when the app's files change (see lib/server/hosting.ts). */
  noExitOnChange: boolean;
  /** --idle-exit in ms; 0: off. */
  idleExitMs: number;
  /** --keep-alive in ms (HTTP listeners); null: node:http's default. */
  keepAliveMs: number | null;
  /**
   * The FastCGI, SCGI and uwsgi deadlines and caps that were given (--header-timeout, ...);
   * the rest keep the servers' defaults.
   */
  connectionLimits: Partial<ConnectionLimits>;
  /** Mode of created unix sockets; null: left to the umask. */
  socketMode: number | null;
  user: string | null;
  group: string | null;
  /** --allow entries (addresses or CIDR ranges); null: not given. */
  allow: string[] | null;
  stats: ListenAddress | null;
  accessLog: boolean;
  /** --exit-on-error: a stray error ends the process (gracefully) instead of being logged only. */
  exitOnError: boolean;
  logFormat: LogFormat;
  /** The config file that was read, or null. */
  configFile: string | null;
}

/** What `parseCommandLine` found. */
export interface CommandLine {
  help: boolean;
  positionals: string[];
  /** Option values by config key (strings as typed; booleans true). */
  values: Record<string, unknown>;
}

/** `--help` text for the options (listener flags first, from the PROTOCOLS table). */
export function optionsHelp(): string {
  const lines: string[] = [];
  const wrap = (left: string, text: string): void => {
    const width = 100;
    const indent = 27;
    const words = text.split(' ');
    let line = `  ${left}`.padEnd(indent);
    if (line.length >= indent) {
      lines.push(line.trimEnd());
      line = ' '.repeat(indent);
    }
    let first = true;
    for (const w of words) {
      if (!first && line.length + 1 + w.length > width) {
        lines.push(line.trimEnd());
        line = ' '.repeat(indent);
        first = true;
      }
      line += (first ? '' : ' ') + w;
      first = false;
    }
    lines.push(line.trimEnd());
  };
  for (const p of PROTOCOLS) wrap(`--${p.flag} ADDR`, p.help);
  for (const o of OPTIONS) wrap(`--${o.flag}${o.arg ? ` ${o.arg}` : ''}`, o.help);
  wrap('-h, --help', 'show this help');
  wrap('-V, --version', 'show the version');
  return lines.join('\n');
}

/**
 * Options of other servers that their users type out of habit (gunicorn, uWSGI), with what
 * tsgi says instead. Keys are flags without dashes.
 */
const FOREIGN_OPTIONS: Readonly<Record<string, string>> = {
  bind: 'tsgi names the protocol with each address: --http ADDR, --fastcgi ADDR, --scgi ADDR or --uwsgi ADDR (e.g. --fastcgi 127.0.0.1:9000)',
  b: 'tsgi names the protocol with each address: --http ADDR, --fastcgi ADDR, --scgi ADDR or --uwsgi ADDR (e.g. --fastcgi 127.0.0.1:9000)',
  w: 'use --workers N',
  processes: 'use --workers N',
  socket: "use --uwsgi ADDR (uWSGI's --socket), or --fastcgi ADDR / --scgi ADDR",
  'http-socket': 'use --http ADDR',
  'fastcgi-socket': 'use --fastcgi ADDR',
  'chmod-socket': 'use --socket-mode MODE (e.g. --socket-mode 660)',
  harakiri: 'use --timeout SECS',
  t: 'use --timeout SECS',
  c: 'use --config FILE',
  k: 'tsgi runs processes; say what the app is with --interface tsgi, node or fetch',
  'worker-class': 'tsgi runs processes; say what the app is with --interface tsgi, node or fetch',
  'access-logfile': 'use --access-log (the lines go to stderr)',
  port: 'give the port with the protocol: --http 127.0.0.1:PORT or --fastcgi 127.0.0.1:PORT',
  host: 'give the host with the protocol: --http HOST:PORT or --fastcgi HOST:PORT',
  module: 'name the app as the argument: tsgi serve app.mjs or tsgi serve app.mjs:NAME',
};

/** Whether `name` (no dashes) is an option of `tsgi serve`. */
export function isServeOption(name: string): boolean {
  return (
    name === 'help' ||
    PROTOCOLS.some((p) => p.flag === name) ||
    OPTIONS.some((o) => o.flag === name)
  );
}

/** "--flag" or "-f" as typed. */
const dashed = (name: string): string => (name.length === 1 ? `-${name}` : `--${name}`);

/**
 * The message for an option tsgi does not know: what tsgi has instead (for another server's
 * option), else the nearest tsgi option.
 */
export function unknownOptionMessage(name: string): string {
  const foreign = FOREIGN_OPTIONS[name];
  if (foreign !== undefined) return `unknown option ${dashed(name)}: ${foreign}`;
  const flags = [...PROTOCOLS.map((p) => p.flag), ...OPTIONS.map((o) => o.flag), 'help'];
  const near = nearest(name, flags);
  return near === null
    ? `unknown option ${dashed(name)} (tsgi --help lists the options)`
    : `unknown option ${dashed(name)}; did you mean --${near}?`;
}

/** The placeholder of an option's value in messages ("N", "ADDR"). */
function argOf(flag: string): string {
  return PROTOCOLS.some((p) => p.flag === flag)
    ? 'ADDR'
    : (OPTIONS.find((o) => o.flag === flag)?.arg ?? 'VALUE');
}

/** Parses `tsgi serve` arguments; throws a ConfigError (one line) for a usage error. */
export function parseCommandLine(args: string[]): CommandLine {
  const options: Record<string, OptionShape> = {};
  for (const p of PROTOCOLS) options[p.flag] = { type: 'string', multiple: true };
  for (const o of OPTIONS) {
    options[o.flag] =
      o.kind === 'boolean'
        ? { type: 'boolean' }
        : { type: 'string', ...(o.kind === 'strings' ? { multiple: true } : {}) };
  }
  options.help = { type: 'boolean', short: 'h' };
  let parsed;
  try {
    parsed = parseOptions(args, options, unknownOptionMessage, argOf);
  } catch (err) {
    if (err instanceof ArgsError) throw new ConfigError(err.message);
    throw err;
  }
  const raw = parsed.values;
  const positionals = parsed.positionals;
  const values: Record<string, unknown> = {};
  for (const p of PROTOCOLS) if (raw[p.flag] !== undefined) values[p.flag] = raw[p.flag];
  for (const o of OPTIONS) if (raw[o.flag] !== undefined) values[o.key] = raw[o.flag];
  return { help: raw.help === true, positionals, values };
}

/**
 * Reads the config file: `file` when given (relative to `cwd`), else tsgi.config.json or
 * tsgi.config.mjs in `cwd` when one exists. A .mjs file exports the options object as its
 * default export, or a function (maybe async) that returns it. Returns the raw options and
 * the file's path, or null when there is no file.
 */
export async function readConfigFile(
  file: string | undefined,
  cwd: string = process.cwd(),
): Promise<{ path: string; values: Record<string, unknown> } | null> {
  let path: string;
  if (file !== undefined) {
    path = resolve(cwd, file);
    if (!existsSync(path)) throw new ConfigError(`--config ${file}: no such file (${path})`);
  } else {
    const found = CONFIG_FILES.map((f) => resolve(cwd, f)).filter((p) => existsSync(p));
    if (found.length === 0) return null;
    if (found.length > 1) {
      throw new ConfigError(
        `both ${CONFIG_FILES.join(' and ')} exist in ${cwd}: keep one, or name it with --config`,
      );
    }
    path = found[0]!;
  }
  const name = basename(path);
  let value: unknown;
  if (/\.json$/i.test(path)) {
    value = parseJsonFile(name, readFileSync(path, 'utf8'));
  } else if (/\.(mjs|js|cjs)$/i.test(path)) {
    let mod: Record<string, unknown>;
    try {
      mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>;
    } catch (err) {
      const line = syntaxErrorLine(err, path);
      throw new ConfigError(
        line === null
          ? `${name}: cannot load it: ${(err as Error).message ?? err}`
          : `${name}:${line}: ${(err as Error).message}`,
      );
    }
    value = mod.default;
    if (typeof value === 'function') {
      try {
        value = await (value as () => unknown)();
      } catch (err) {
        throw new ConfigError(`${name}: its default export failed: ${(err as Error).message}`);
      }
    }
  } else {
    throw new ConfigError(`${name}: a config file is .json or .mjs`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new ConfigError(`${name}: the options must be an object`);
  }
  const values = value as Record<string, unknown>;
  for (const key of Object.keys(values)) {
    if (FILE_KEYS.has(key)) continue;
    const near = FILE_KEYS.has(camel(key)) ? camel(key) : nearest(key, FILE_KEYS);
    throw new ConfigError(
      near === null
        ? `${name}: unknown option "${key}"; known options: ${[...FILE_KEYS].join(', ')}`
        : `${name}: unknown option "${key}"; did you mean "${near}"?`,
    );
  }
  return { path, values };
}

/** Line and column (from 1) of a character offset in `text`. */
function lineColumn(text: string, offset: number): { line: number; column: number } {
  const before = text.slice(0, offset).split('\n');
  return { line: before.length, column: before[before.length - 1]!.length + 1 };
}

/**
 * Parses a JSON config file; a syntax error names its line and column ("tsgi.config.json:3:5:
 * expected a comma"). jsonc-parser gives the offset of every error, which JSON.parse's
 * messages do not always carry.
 */
function parseJsonFile(name: string, text: string): unknown {
  const errors: ParseError[] = [];
  const value: unknown = parseJsonc(text, errors, {
    disallowComments: true,
    allowTrailingComma: false,
    allowEmptyContent: false,
  });
  const first = errors[0];
  if (first === undefined) return value;
  const { line, column } = lineColumn(text, first.offset);
  throw new ConfigError(`${name}:${line}:${column}: ${JSON_ERRORS[first.error] ?? 'invalid JSON'}`);
}

const JSON_ERRORS: Partial<Record<ParseErrorCode, string>> = {
  [ParseErrorCode.InvalidSymbol]: 'not valid JSON here',
  [ParseErrorCode.InvalidNumberFormat]: 'not a valid number',
  [ParseErrorCode.PropertyNameExpected]: 'expected a property name in double quotes',
  [ParseErrorCode.ValueExpected]: 'expected a value',
  [ParseErrorCode.ColonExpected]: 'expected a colon',
  [ParseErrorCode.CommaExpected]: 'expected a comma',
  [ParseErrorCode.CloseBraceExpected]: 'expected a closing brace }',
  [ParseErrorCode.CloseBracketExpected]: 'expected a closing bracket ]',
  [ParseErrorCode.EndOfFileExpected]: 'unexpected text after the end',
  [ParseErrorCode.InvalidCommentToken]: 'JSON has no comments (use tsgi.config.mjs for comments)',
  [ParseErrorCode.UnexpectedEndOfComment]: 'JSON has no comments',
  [ParseErrorCode.UnexpectedEndOfString]: 'a string is not closed',
  [ParseErrorCode.UnexpectedEndOfNumber]: 'a number is cut short',
  [ParseErrorCode.InvalidUnicode]: 'invalid \\u escape',
  [ParseErrorCode.InvalidEscapeCharacter]: 'invalid escape in a string',
  [ParseErrorCode.InvalidCharacter]: 'a control character in a string',
};

function fail(where: string, key: string, message: string): never {
  const flag = OPTIONS.find((o) => o.key === key)?.flag ?? key;
  throw new ConfigError(
    where === 'command line' ? `--${flag} ${message}` : `${where}: "${key}" ${message}`,
  );
}

/** A string or number value as a string (config files may write numbers as numbers). */
function scalar(where: string, key: string, v: unknown): string {
  if (typeof v === 'string') return v;
  if (typeof v === 'number' && Number.isFinite(v)) return String(v);
  return fail(where, key, `needs a string or a number, not ${JSON.stringify(v)}`);
}

function seconds(where: string, key: string, v: unknown): number {
  const s = scalar(where, key, v);
  const n = Number(s);
  if (s.trim() === '' || !Number.isFinite(n) || n < 0) {
    fail(where, key, `needs a number of seconds, not "${s}"`);
  }
  return Math.round(n * 1000);
}

function count(where: string, key: string, v: unknown, min = 0): number {
  const s = scalar(where, key, v);
  if (!/^[0-9]{1,9}$/.test(s) || Number(s) < min) {
    fail(where, key, `needs a whole number${min > 0 ? ` of at least ${min}` : ''}, not "${s}"`);
  }
  return Number(s);
}

function bool(where: string, key: string, v: unknown): boolean {
  if (typeof v !== 'boolean') fail(where, key, `needs true or false, not ${JSON.stringify(v)}`);
  return v;
}

function strings(where: string, key: string, v: unknown): string[] {
  const list = Array.isArray(v) ? v : [v];
  const out: string[] = [];
  for (const item of list) {
    if (typeof item !== 'string') {
      fail(where, key, `needs a string or a list of strings, not ${JSON.stringify(item)}`);
    }
    out.push(item);
  }
  return out;
}

/** Parses an octal mode such as "660" or "0660"; throws for anything else. */
export function parseMode(text: string): number {
  if (!/^0?[0-7]{3}$/.test(text)) throw new Error(`needs an octal mode such as 660, not "${text}"`);
  return parseInt(text, 8);
}

/** `n`, "auto" (one per CPU). */
function workerCount(where: string, key: string, v: unknown): number {
  if (v === 'auto') {
    return typeof availableParallelism === 'function' ? availableParallelism() : cpus().length;
  }
  return count(where, key, v, 1);
}

/** Runs `parse`; its error becomes the option's message. */
function checked<T>(where: string, key: string, parse: () => T): T {
  try {
    return parse();
  } catch (err) {
    return fail(where, key, (err as Error).message);
  }
}

/** A number of megabytes, in bytes (`positive`: more than 0). */
function megabytes(where: string, key: string, v: unknown, positive: boolean): number {
  const s = scalar(where, key, v);
  const n = Number(s);
  if (s.trim() === '' || !Number.isFinite(n) || n < 0 || (positive && n === 0)) {
    fail(where, key, `needs a ${positive ? 'positive ' : ''}number of megabytes, not "${s}"`);
  }
  return Math.round(n * 1024 * 1024);
}

function mountPrefix(where: string, key: string, v: unknown): string | null {
  const s = scalar(where, key, v);
  return checked(where, key, () => parseMount(s));
}

function appInterface(where: string, key: string, v: unknown): AppInterface {
  const s = scalar(where, key, v);
  if (!(INTERFACES as readonly string[]).includes(s)) {
    fail(
      where,
      key,
      `${s} is not available; this version serves ${INTERFACES.map((i) => `"${i}"`).join(', ')} apps`,
    );
  }
  return s as AppInterface;
}

function socketMode(where: string, key: string, v: unknown): number {
  if (typeof v !== 'string') {
    fail(where, key, `needs the mode as an octal string such as "660", not ${JSON.stringify(v)}`);
  }
  return checked(where, key, () => parseMode(v));
}

/** A user or group: a name or a number. */
function name(where: string, key: string, v: unknown): string {
  const s = scalar(where, key, v);
  if (s === '') fail(where, key, 'needs a name or a number');
  return s;
}

function allowList(where: string, key: string, v: unknown): string[] {
  const list = strings(where, key, v)
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (list.length === 0) fail(where, key, 'needs at least one address');
  checked(where, key, () => parseAllowList(list));
  return list;
}

function statsAddress(where: string, key: string, v: unknown): ListenAddress {
  const s = scalar(where, key, v);
  try {
    const addr = parseAddress(s);
    if (addr.type === 'fd') throw new ListenError(`"${s}": the stats endpoint cannot use fd:N`);
    return addr;
  } catch (err) {
    throw new ConfigError(
      where === 'command line'
        ? `--stats: ${(err as Error).message}`
        : `${where}: "stats": ${(err as Error).message}`,
    );
  }
}

function logFormat(where: string, key: string, v: unknown): LogFormat {
  const s = scalar(where, key, v);
  if (s !== 'text' && s !== 'json') fail(where, key, `needs text or json, not "${s}"`);
  return s;
}

/** The options by config key. */
const BY_KEY = new Map(OPTIONS.map((o) => [o.key, o]));

/** The config before any option is applied: each option's default. */
function defaults(configFile: string | null): ServeConfig {
  const config: Record<string, unknown> = {
    app: '',
    listeners: [],
    connectionLimits: {},
    configFile,
  };
  for (const o of OPTIONS) if (o.field !== undefined) config[o.field] = o.default;
  return config as unknown as ServeConfig;
}

/**
 * Merges defaults, the config file and the command line into a ServeConfig; throws a
 * ConfigError naming the option (and the file) for any bad value.
 */
export function resolveConfig(
  cli: CommandLine,
  file: { path: string; values: Record<string, unknown> } | null,
): ServeConfig {
  const fileName = file === null ? '' : basename(file.path);
  const config = defaults(file?.path ?? null);
  const apply = (where: string, values: Record<string, unknown>): void => {
    for (const [key, v] of Object.entries(values)) {
      if (v === undefined) continue;
      if (key === 'app') {
        if (typeof v !== 'string' || v === '') fail(where, key, 'needs the app module path');
        config.app = v;
        continue;
      }
      const spec = BY_KEY.get(key);
      if (spec !== undefined) spec.set(config, where, v);
      /* listener keys are handled below */ else if (!LISTENER_KEYS.includes(key)) {
        fail(where, key, 'is not an option');
      }
    }
  };
  const listenersOf = (where: string, values: Record<string, unknown>): ListenerSpec[] => {
    const out: ListenerSpec[] = [];
    for (const p of PROTOCOLS) {
      const v = values[p.flag];
      if (v === undefined) continue;
      for (const a of strings(where, p.flag, v)) {
        try {
          out.push({ protocol: p.flag, addr: parseAddress(a) });
        } catch (err) {
          throw new ConfigError(
            where === 'command line'
              ? (err as Error).message
              : `${where}: "${p.flag}": ${(err as Error).message}`,
          );
        }
      }
    }
    return out;
  };
  if (file !== null) {
    apply(fileName, file.values);
    config.listeners = listenersOf(fileName, file.values);
  }
  apply('command line', cli.values);
  const cliListeners = listenersOf('command line', cli.values);
  if (cliListeners.length > 0) config.listeners = cliListeners;
  if (cli.positionals.length > 1) {
    throw new ConfigError(`unexpected argument "${cli.positionals[1]}"`);
  }
  if (cli.positionals.length === 1) config.app = cli.positionals[0]!;
  if (config.app === '') throw new ConfigError('serve needs an APP module');
  /* Options that need a master to act on them start one with a single worker. */
  if (
    config.workers === null &&
    (config.maxRequests > 0 || config.maxRssBytes > 0 || config.reload)
  ) {
    config.workers = 1;
  }
  if (config.maxRequestsJitter < 0) config.maxRequestsJitter = Math.floor(config.maxRequests / 10);
  return config;
}

/** The comments around the README's option table (written by `npm run docs:options`). */
export const README_OPTIONS_BEGIN =
  '<!-- options: written by npm run docs:options from lib/server/config.ts -->';
export const README_OPTIONS_END = '<!-- end of options -->';

/**
 * The README's option table in markdown: the listener flags, then every option, each with
 * its config key and its `--help` text.
 */
export function optionsMarkdown(): string {
  const cell = (text: string): string => text.replace(/\|/g, '\\|');
  const rows = ['| option | config key | meaning |', '|---|---|---|'];
  for (const p of PROTOCOLS)
    rows.push(`| \`--${p.flag} ADDR\` | \`${p.flag}\` | ${cell(p.help)} |`);
  for (const o of OPTIONS) {
    const key = o.cliOnly === true ? '—' : `\`${o.key}\``;
    rows.push(`| \`--${o.flag}${o.arg ? ` ${o.arg}` : ''}\` | ${key} | ${cell(o.help)} |`);
  }
  return `${rows.join('\n')}\n`;
}
