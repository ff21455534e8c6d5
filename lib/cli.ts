#!/usr/bin/env node
/**
 * The `tsgi` command.
 *
 *   tsgi serve APP[:export] [--fastcgi ADDR]... [--http ADDR]... [--workers N] [options]
 *
 * Without --workers one process serves alone (the fastest path: nothing sits between the
 * protocol servers and the app unless an option asks for it). With --workers a master binds
 * the listeners and runs the workers (lib/server/master.ts, docs/process-manager.md); alone,
 * lib/server/single.ts serves. This file parses the command line and dispatches.
 *
 * Exit status: 0 after a clean stop, 1 when the app cannot be loaded or a listener cannot be
 * opened, 2 for a usage error (including a bad config file).
 */
import process from 'node:process';
import { existsSync, realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { codecProblem } from './codec/index.js';
import { cgiMain } from './command/cgi.js';
import { requestMain } from './command/request.js';
import { transportProblem } from './protocol/transport.js';
import {
  ConfigError,
  optionsHelp,
  parseCommandLine,
  readConfigFile,
  resolveConfig,
  type ServeConfig,
  isServeOption,
  unknownOptionMessage,
} from './server/config.js';
import { applySpawnedDefaults, spawnedByWebServer } from './server/hosting.js';
import { createLogger, type Logger } from './server/log.js';
import { runMaster } from './server/master.js';
import { PrivilegeError, resolveIds, type Ids } from './server/privileges.js';
import { PROTOCOLS } from './server/protocols.js';
import { runSolo } from './server/single.js';
import { chooseListeners, StartError } from './server/start.js';
import { nearest } from './server/args.js';
import { VERSION } from './version.js';

const PROTOCOL_NAMES = PROTOCOLS.map((p) => p.title).join(', ');

const USAGE = `Usage: tsgi serve APP[:EXPORT] [options]

Serve an application over ${PROTOCOL_NAMES}.

APP is a JavaScript or TypeScript module (path relative to the current directory; the
extension may be left out). The app is the named EXPORT, else the default export, else the
export named "application", else "app". An Express, Koa or Fastify app and an object with
fetch() are recognised; a (req, res) handler needs --interface node, a (request) => Response
function --interface fetch.

Options:
${optionsHelp()}

ADDR is HOST:PORT, [IPV6]:PORT, :PORT (all interfaces: a FastCGI, SCGI or uwsgi listener
there gets a warning unless --allow names its peers), unix:/path/to.sock or fd:N.
With no listener given: the sockets systemd passed (LISTEN_FDS), each serving the protocol
its FileDescriptorName= names (fastcgi, http, scgi, uwsgi; FastCGI when unnamed); else
FastCGI on fd 0 when fd 0 is a listening socket (tsgi was spawned by a web server); else
HTTP on 127.0.0.1:8000.

Options may also come from tsgi.config.json or tsgi.config.mjs in the current directory (or
--config FILE), with the same names in camelCase ("maxRequests": 1000); the command line
wins, and listeners on the command line replace all of the file's.

SIGINT or SIGTERM: stop accepting, finish running requests, exit. A second signal exits at once.
SIGHUP (with --workers): start new workers, then retire each old one once its replacement is
ready (zero-downtime reload).

Usage: tsgi cgi [APP[:EXPORT]] [--factory] [--interface NAME]

Run the app once as a CGI program (cgi-bin behind Apache or lighttpd): the request comes from
the environment and stdin, the response goes to stdout. APP defaults to $TSGI_APP.

Usage: tsgi request ADDR [--fastcgi|--scgi|--uwsgi] [--param NAME=VALUE]... [--root DIR]
                    [-X METHOD] [--data FILE|-] PATH

Send one request to a FastCGI, SCGI or uwsgi backend and print the answer ("tsgi request
--help" for more).
`;

class UsageError extends Error {}

/** The log of the running command (plain stderr lines until the options are known). */
let log: Logger = createLogger('text');

async function serve(args: string[]): Promise<number> {
  let config: ServeConfig;
  let given: (key: string) => boolean;
  try {
    const cli = parseCommandLine(args);
    if (cli.help) {
      process.stdout.write(USAGE);
      return 0;
    }
    const file = await readConfigFile(cli.values.config as string | undefined);
    config = resolveConfig(cli, file);
    given = (k) => cli.values[k] !== undefined || file?.values[k] !== undefined;
  } catch (err) {
    if (err instanceof ConfigError) throw new UsageError(err.message);
    throw err;
  }
  log = createLogger(config.logFormat);
  const listeners = chooseListeners(config);
  if (spawnedByWebServer(config, listeners)) applySpawnedDefaults(config, given);
  let ids: Ids | null;
  try {
    ids = resolveIds(config.user, config.group);
  } catch (err) {
    if (err instanceof PrivilegeError) throw new StartError(err.message);
    throw err;
  }
  const options = { config, listeners, log, ids };
  return config.workers !== null ? runMaster(options) : runSolo(options);
}

/** The commands, for "did you mean". */
const COMMANDS = ['serve', 'cgi', 'request', 'help'];

/**
 * The usage error for a first argument that is no command: an app module or a serve option
 * given without `serve` is answered with the command that works.
 */
function unknownCommand(command: string, rest: string[]): UsageError {
  const again = (): string => ['tsgi', 'serve', command, ...rest].map(shellWord).join(' ');
  if (command.startsWith('-')) {
    const name = command.replace(/^--?/, '').split('=')[0]!;
    return new UsageError(
      isServeOption(name)
        ? `${command} is an option of serve: ${again()}`
        : unknownOptionMessage(name),
    );
  }
  if (/\.(?:[cm]?[jt]s|jsx|tsx)(?::[A-Za-z_$][\w$]*)?$/.test(command) || existsSync(command)) {
    return new UsageError(`"${command}" is not a command; to serve it: ${again()}`);
  }
  const near = nearest(command, COMMANDS);
  return new UsageError(
    near === null
      ? `unknown command "${command}"; the commands are ${COMMANDS.join(', ')} (tsgi --help)`
      : `unknown command "${command}"; did you mean "tsgi ${near}"?`,
  );
}

/** A word quoted for a POSIX shell when it needs it. */
function shellWord(w: string): string {
  return /^[\w@%+=:,./-]+$/.test(w) ? w : `'${w.replace(/'/g, "'\\''")}'`;
}

/**
 * Reports a bad TSGI_CODEC, TSGI_TRANSPORT or TSGI_NATIVE_PATH in one line: a warning when
 * tsgi goes on with a fallback, else an error before anything starts.
 */
function environmentCheck(): void {
  for (const problem of [codecProblem(), transportProblem()]) {
    if (problem === null) continue;
    if (problem.status === 0) log.warn(problem.message, { event: 'environment' });
    else if (problem.status === 2) throw new UsageError(problem.message);
    else throw new StartError(problem.message);
  }
}

/** Runs the command line; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined) {
      /* asked for nothing: a usage error, the help on stderr */
      process.stderr.write(USAGE);
      return 2;
    }
    if (command === '-h' || command === '--help' || command === 'help') {
      process.stdout.write(USAGE);
      return 0;
    }
    if (command === '-V' || command === '--version') {
      process.stdout.write(`tsgi ${VERSION}\n`);
      return 0;
    }
    environmentCheck();
    if (command === 'cgi') return await cgiMain(rest);
    if (command === 'request') return await requestMain(rest);
    if (command !== 'serve') throw unknownCommand(command, rest);
    return await serve(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`tsgi: ${err.message}\n`);
      return 2;
    }
    if (err instanceof StartError) {
      log.error(err.message, { event: 'start-failed' });
      log.flush();
      return 1;
    }
    log.error(`error: ${(err as Error).stack ?? err}`, { event: 'error' });
    log.flush();
    return 1;
  }
}

const invoked = process.argv[1];
if (invoked !== undefined && import.meta.url === pathToFileURL(resolveBin(invoked)).href) {
  main(process.argv.slice(2)).then((code) => process.exit(code));
}

/** The real path of the invoked script (npm's bin link is a symlink). */
function resolveBin(p: string): string {
  try {
    return realpathSync(resolve(p));
  } catch {
    return resolve(p);
  }
}
