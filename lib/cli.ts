#!/usr/bin/env node
/**
 * The `tsgi` command.
 *
 *   tsgi serve APP[:export] [--fastcgi ADDR]... [--http ADDR]... [--workers N] [options]
 *
 * Without --workers one process serves alone (the fastest path: nothing sits between the
 * protocol servers and the app unless an option asks for it). With --workers a master binds
 * the listeners and runs the workers (lib/server/master.ts, docs/process-manager.md).
 *
 * Exit status: 0 after a clean stop, 1 when the app cannot be loaded or a listener cannot be
 * opened, 2 for a usage error (including a bad config file).
 */
import { existsSync, realpathSync } from 'node:fs';
import type { Server } from 'node:net';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { codec, codecProblem } from './codec/index.js';
import { cgiMain } from './protocol/cgi.js';
import { requestMain } from './client/command.js';
import { serverTransport, transportProblem } from './protocol/transport.js';
import type { App } from './gateway/types.js';
import { exposureWarning } from './server/allow.js';
import { AppLoadError, loadApp } from './server/app.js';
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
import {
  formatAddress,
  isListeningSocket,
  listen,
  ListenError,
  systemdSockets,
  unixSocketSetup,
  type ListenAddress,
} from './server/listen.js';
import { createLogger, type Logger } from './server/log.js';
import {
  applySpawnedDefaults,
  spawnedApp,
  spawnedByWebServer,
  superviseSpawned,
} from './server/hosting.js';
import { MasterStartError, runMaster } from './server/master.js';
import { dropPrivileges, PrivilegeError, resolveIds, type Ids } from './server/privileges.js';
import { PROTOCOLS, protocolByFlag, type Protocol } from './server/protocols.js';
import { createStatsServer, type StatsSnapshot } from './server/stats.js';
import { nearest } from './server/args.js';
import { Serving } from './server/worker.js';
import { EXIT_STRAY_ERROR, watchStrayErrors } from './server/stray.js';
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
class StartError extends Error {}

interface Listener {
  protocol: Protocol;
  addr: ListenAddress;
}

/** The log of the running command (plain stderr lines until the options are known). */
let log: Logger = createLogger('text');

/** The listeners: as configured, else systemd's sockets, else fd 0, else HTTP on :8000. */
function chooseListeners(config: ServeConfig): Listener[] {
  const systemd = systemdSockets();
  if (config.listeners.length > 0) {
    return config.listeners.map((l) => ({ protocol: protocolByFlag(l.protocol)!, addr: l.addr }));
  }
  const fastcgi = protocolByFlag('fastcgi')!;
  if (systemd.length > 0) {
    return systemd.map((s) => ({
      protocol: protocolByFlag(s.name) ?? fastcgi,
      addr: { type: 'fd', fd: s.fd },
    }));
  }
  if (isListeningSocket(0)) return [{ protocol: fastcgi, addr: { type: 'fd', fd: 0 } }];
  return [
    { protocol: protocolByFlag('http')!, addr: { type: 'tcp', host: '127.0.0.1', port: 8000 } },
  ];
}

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
  if (config.workers !== null) {
    try {
      return await runMaster({ config, listeners, log, ids });
    } catch (err) {
      if (err instanceof MasterStartError) throw new StartError(err.message);
      throw err;
    }
  }
  return serveAlone(config, listeners, ids);
}

/** One process, no master: the protocol servers run here. */
async function serveAlone(
  config: ServeConfig,
  listeners: Listener[],
  ids: Ids | null,
): Promise<number> {
  const startedAt = Date.now();
  const graceMs = config.graceMs;
  let serving: Serving;
  try {
    serving = new Serving({
      log,
      track: config.stats !== null || config.timeoutMs > 0 || config.accessLog,
      countConnections: config.stats !== null,
      timeoutMs: config.timeoutMs,
      accessLog: config.accessLog,
      allow: config.allow,
      multiprocess: false,
      mount: config.mount,
      keepAliveMs: config.keepAliveMs,
      connectionLimits: config.connectionLimits,
      worker: null,
    });
  } catch (err) {
    throw new StartError((err as Error).message);
  }
  const load = async (): Promise<App> => {
    try {
      return await loadApp(config.app, {
        factory: config.factory,
        interface: config.interface,
        onWarning: (m) => log.warn(m, { event: 'app-warning' }),
      });
    } catch (err) {
      if (err instanceof AppLoadError) throw new StartError(err.message);
      throw err;
    }
  };
  /* With --user the sockets are bound first and the app is loaded after dropping privileges;
     the servers then call it through a forwarding function. */
  let app: App | null = ids === null ? await load() : null;
  const loaded: App = app ?? ((env, start) => app!(env, start));
  const target = spawnedByWebServer(config, listeners)
    ? spawnedApp(loaded, config, log, () => stop())
    : loaded;
  if (config.timeoutMs > 0 && serving.watchdog === null) {
    log.info(
      'the native addon is not loaded: --timeout ends requests that wait, but a request stuck ' +
        'in a busy loop needs a master to kill its process',
    );
  }
  let stopping = false;
  const stats =
    config.stats === null
      ? null
      : createStatsServer((): StatsSnapshot => ({
          mode: 'single',
          pid: process.pid,
          startedAt,
          generation: 1,
          reloads: 0,
          workers: [
            {
              id: 1,
              pid: process.pid,
              generation: 1,
              state: stopping ? 'stopping' : 'ready',
              startedAt,
              requests: serving.tracker?.counters.requests ?? 0,
              inFlight: serving.tracker?.counters.inFlight ?? 0,
              totalMs: serving.tracker?.counters.totalMs ?? 0,
              maxMs: serving.tracker?.counters.maxMs ?? 0,
              rssBytes: process.memoryUsage.rss(),
              restarts: 0,
            },
          ],
          listeners: serving.listenerStats(),
        }));
  const stopAll = async (): Promise<void> => {
    await serving.drain();
    if (stats !== null && stats.listening) {
      stats.close();
      stats.closeAllConnections();
    }
  };

  /* Signals are handled from before the first listener opens, so none is ever missed. */
  let stopped: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => (stopped = resolve));
  let startup: Promise<unknown> = Promise.resolve();
  let exitStatus = 0;
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log.warn(`${signal} again: exiting now`, { event: 'stop-now' });
      log.flush();
      process.exit(1);
    }
    log.info(`${signal}: finishing running requests`, { event: 'stop', signal });
    stop();
  };
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    const timer = setTimeout(() => {
      log.warn(`requests still running after ${graceMs / 1000}s: exiting`, {
        event: 'stop-timeout',
      });
      log.flush();
      process.exit(1);
    }, graceMs);
    timer.unref();
    startup.then(stopAll).then(() => {
      clearTimeout(timer);
      log.info('stopped', { event: 'stopped' });
      stopped(exitStatus);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  watchStrayErrors(
    log,
    config.exitOnError
      ? () => {
          log.info('--exit-on-error: finishing running requests', { event: 'stop' });
          exitStatus = EXIT_STRAY_ERROR;
          stop();
        }
      : null,
  );

  const sockets = unixSocketSetup(
    config,
    listeners.map((l) => l.addr),
    ids,
  );
  if (sockets.warning !== null) log.warn(sockets.warning, { event: 'socket-mode' });
  const unix = sockets.options;
  const open = async (): Promise<void> => {
    const opened: [Protocol, string, Server][] = [];
    for (const l of listeners) {
      if (stopping) return;
      const entry = serving.add(l.protocol, target, formatAddress(l.addr));
      const shown = await listen(entry.server, l.addr, unix);
      entry.shown = shown;
      entry.stats.address = shown;
      opened.push([l.protocol, shown, entry.server]);
      if (ids === null) announce(l.protocol, shown, entry.server);
    }
    let statsShown = '';
    if (stats !== null && config.stats !== null && !stopping) {
      statsShown = await listen(stats, config.stats, unix);
    }
    if (ids !== null) {
      try {
        dropPrivileges(ids);
      } catch (err) {
        throw new StartError((err as Error).message);
      }
      app = await load();
      for (const [protocol, shown, server] of opened) announce(protocol, shown, server);
    }
    if (statsShown !== '') {
      log.info(`statistics on ${statsShown}: JSON at /, Prometheus text at /metrics`, {
        event: 'stats',
        address: statsShown,
      });
    }
  };
  const announce = (protocol: Protocol, shown: string, server: Server): void => {
    const bound = server.address();
    const host = bound !== null && typeof bound === 'object' ? bound.address : null;
    const exposed = exposureWarning(protocol, shown, host, config.allow);
    if (exposed !== null) log.warn(exposed, { event: 'exposed', address: shown });
    /* HTTP is node:http's; the gateway protocols say which connection transport they got */
    const via = protocol.flag === 'http' ? '' : `, ${serverTransport(server)} transport`;
    log.info(
      `serving ${config.app} over ${protocol.title} on ${shown} (${codec.name} codec${via})`,
      {
        event: 'listening',
        protocol: protocol.flag,
        address: shown,
      },
    );
  };
  const opening = open();
  startup = opening.catch(() => undefined);
  try {
    await opening;
  } catch (err) {
    await stopAll();
    if (err instanceof ListenError) throw new StartError(err.message);
    throw err;
  }
  if (spawnedByWebServer(config, listeners)) superviseSpawned(config, log, stop);
  return finished;
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
  for (const problem of [codecProblem, transportProblem]) {
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
