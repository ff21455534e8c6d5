#!/usr/bin/env node
/**
 * The `tsgi` command.
 *
 *   tsgi serve APP[:export] [--fastcgi ADDR]... [--http ADDR]... [--factory] [--interface tsgi]
 *
 * Exit status: 0 after a clean stop, 1 when the app cannot be loaded or a listener cannot be
 * opened, 2 for a usage error.
 */
import { realpathSync } from 'node:fs';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { codec } from './codec/index.js';
import { AppLoadError, loadApp, parseInterface } from './server/app.js';
import {
  isListeningSocket,
  listen,
  ListenError,
  parseAddress,
  type ListenAddress,
} from './server/listen.js';
import { PROTOCOLS, protocolByFlag, type Protocol } from './server/protocols.js';
import { VERSION } from './version.js';

const pad = (s: string) => (s.length >= 25 ? `${s} ` : s.padEnd(25));
const PROTOCOL_HELP = PROTOCOLS.map((p) => `  ${pad(`--${p.flag} ADDR`)}${p.help}`).join('\n');
const PROTOCOL_NAMES = PROTOCOLS.map((p) => p.title).join(', ');

const USAGE = `Usage: tsgi serve APP[:EXPORT] [options]

Serve an application over ${PROTOCOL_NAMES}.

APP is a JavaScript module (path relative to the current directory). The app is the named
EXPORT, else the default export, else the export named "application", else "app".

Options:
${PROTOCOL_HELP}
  --factory                the export is a factory: call it once at start-up (it may be
                           async) and serve the app it returns
  --interface tsgi         what the export is (only "tsgi" for now)
  --graceful-timeout SECS  on SIGINT/SIGTERM, wait this long for running requests (default 30)
  -h, --help               show this help
  -V, --version            show the version

ADDR is HOST:PORT, [IPV6]:PORT, :PORT (all interfaces), unix:/path/to.sock or fd:N.
With no listener given: FastCGI on fd 0 when fd 0 is a listening socket (tsgi was
spawned by a web server), else HTTP on 127.0.0.1:8000.

SIGINT or SIGTERM: stop accepting, finish running requests, exit. A second signal exits at once.
`;

class UsageError extends Error {}
class StartError extends Error {}

interface Listener {
  protocol: Protocol;
  addr: ListenAddress;
}

interface Running {
  kind: string;
  shown: string;
  drain(): Promise<void>;
}

function log(line: string): void {
  process.stderr.write(`tsgi: ${line}\n`);
}

async function serve(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        ...Object.fromEntries(
          PROTOCOLS.map((p) => [p.flag, { type: 'string' as const, multiple: true as const }]),
        ),
        factory: { type: 'boolean' },
        interface: { type: 'string' },
        'graceful-timeout': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (positionals.length !== 1) {
    throw new UsageError(
      positionals.length === 0
        ? 'serve needs an APP module'
        : `unexpected argument "${positionals[1]}"`,
    );
  }
  let iface;
  try {
    iface = parseInterface((values.interface as string | undefined) ?? 'tsgi');
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  let graceMs = 30_000;
  if (values['graceful-timeout'] !== undefined) {
    const s = Number(values['graceful-timeout']);
    if (!Number.isFinite(s) || s < 0)
      throw new UsageError('--graceful-timeout needs a number of seconds');
    graceMs = s * 1000;
  }
  const listeners: Listener[] = [];
  try {
    for (const protocol of PROTOCOLS) {
      const given = (values as Record<string, unknown>)[protocol.flag] as string[] | undefined;
      for (const a of given ?? []) {
        listeners.push({ protocol, addr: parseAddress(a) });
      }
    }
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (listeners.length === 0) {
    if (isListeningSocket(0)) {
      listeners.push({ protocol: protocolByFlag('fastcgi')!, addr: { type: 'fd', fd: 0 } });
    } else {
      listeners.push({
        protocol: protocolByFlag('http')!,
        addr: { type: 'tcp', host: '127.0.0.1', port: 8000 },
      });
    }
  }

  let app;
  try {
    app = await loadApp(positionals[0]!, { factory: values.factory === true, interface: iface });
  } catch (err) {
    if (err instanceof AppLoadError) throw new StartError(err.message);
    throw err;
  }
  const running: Running[] = [];
  const stopAll = (): Promise<unknown> => Promise.all(running.map((r) => r.drain()));

  /* Signals are handled from before the first listener opens, so none is ever missed. */
  let stopping = false;
  let stopped: (code: number) => void = () => {};
  const finished = new Promise<number>((resolve) => (stopped = resolve));
  let startup: Promise<unknown> = Promise.resolve();
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) {
      log(`${signal} again: exiting now`);
      process.exit(1);
    }
    stopping = true;
    log(`${signal}: finishing running requests`);
    const timer = setTimeout(() => {
      log(`requests still running after ${graceMs / 1000}s: exiting`);
      process.exit(1);
    }, graceMs);
    timer.unref();
    startup.then(stopAll).then(() => {
      clearTimeout(timer);
      log('stopped');
      stopped(0);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const open = async (): Promise<void> => {
    for (const l of listeners) {
      if (stopping) return;
      const server = l.protocol.create(app, {});
      const shown = await listen(server, l.addr);
      running.push({ kind: l.protocol.flag, shown, drain: () => server.drain() });
      log(`serving ${positionals[0]} over ${l.protocol.title} on ${shown} (${codec.name} codec)`);
    }
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
  return finished;
}

/** Runs the command line; resolves with the exit status. */
export async function main(argv: string[]): Promise<number> {
  try {
    const [command, ...rest] = argv;
    if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
      process.stdout.write(USAGE);
      return command === undefined ? 2 : 0;
    }
    if (command === '-V' || command === '--version') {
      process.stdout.write(`tsgi ${VERSION}\n`);
      return 0;
    }
    if (command !== 'serve') throw new UsageError(`unknown command "${command}"`);
    return await serve(rest);
  } catch (err) {
    if (err instanceof UsageError) {
      process.stderr.write(`tsgi: ${err.message}\nRun "tsgi --help" for usage.\n`);
      return 2;
    }
    if (err instanceof StartError) {
      log(err.message);
      return 1;
    }
    log(`error: ${(err as Error).stack ?? err}`);
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
