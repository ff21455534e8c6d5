/**
 * The `tsgi cgi` command: parses its arguments, loads the app and runs it once with
 * {@link runCgi} (lib/protocol/cgi.ts holds CGI itself: the environ from the environment and
 * stdin, the response on stdout).
 */
import process from 'node:process';
import type { App } from '../gateway/types.js';
import { processEnvironment, runCgi, type CgiIo } from '../protocol/cgi.js';
import { AppLoadError, INTERFACES, loadApp, parseInterface } from '../server/app-loader.js';
import { ArgsError, nearest, parseOptions } from '../server/args.js';

/** The help of `tsgi cgi`. */
export const CGI_USAGE = `Usage: tsgi cgi [APP[:EXPORT]] [--factory] [--interface NAME]

Run the app once as a CGI program: the request comes from the environment and stdin, the
response goes to stdout. APP defaults to the TSGI_APP environment variable; use an absolute
path (a web server runs CGI programs in the script's directory).

Options:
  --factory         the export is a factory: call it once and serve the app it returns
  --interface NAME  what the export is: ${INTERFACES.join(', ')} (default: detected)
  -h, --help        show this help

Exit status: 0 once the app is loaded (its errors become 500 responses), 1 when it cannot be
loaded, 2 for a usage error.
`;

/**
 * `tsgi cgi [APP[:EXPORT]] [--factory] [--interface NAME]`: loads the app (APP, else the
 * TSGI_APP environment variable), runs it once with {@link runCgi} and resolves with the exit
 * status: 0 once the app was loaded, 1 when it could not be, 2 for a usage error.
 */
export async function cgiMain(args: string[], io: CgiIo = {}): Promise<number> {
  const stderr = io.stderr ?? process.stderr;
  const usage = (message: string): number => {
    stderr.write(`tsgi: ${message}\n`);
    return 2;
  };
  const options = {
    factory: { type: 'boolean' },
    interface: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  } as const;
  let parsed;
  try {
    parsed = parseOptions(
      args,
      options,
      (name) => {
        const near = nearest(name, Object.keys(options));
        return `cgi: unknown option ${name.length === 1 ? '-' : '--'}${name}${near === null ? ' (tsgi cgi --help)' : `; did you mean --${near}?`}`;
      },
      () => 'NAME',
    );
  } catch (err) {
    if (err instanceof ArgsError) return usage(err.message);
    throw err;
  }
  const positionals = parsed.positionals;
  const values = parsed.values as { factory?: true; interface?: string; help?: true };
  if (values.help) {
    (io.stdout ?? process.stdout).write(CGI_USAGE);
    return 0;
  }
  if (positionals.length > 1) return usage(`unexpected argument "${positionals[1]}"`);
  const environ = io.environ ?? processEnvironment();
  let spec = positionals[0];
  if (spec === undefined) {
    for (let i = 0; i + 1 < environ.length; i += 2) {
      if (environ[i] === 'TSGI_APP') spec = environ[i + 1];
    }
  }
  if (spec === undefined || spec === '') {
    return usage('cgi needs an APP module (or the TSGI_APP environment variable)');
  }
  let iface;
  try {
    iface = values.interface === undefined ? null : parseInterface(values.interface);
  } catch (err) {
    return usage((err as Error).message);
  }
  let app: App;
  try {
    app = await loadApp(spec, { factory: values.factory === true, interface: iface });
  } catch (err) {
    if (!(err instanceof AppLoadError)) throw err;
    stderr.write(`tsgi: ${err.message}\n`);
    return 1;
  }
  const term = new AbortController();
  const onSignal = (): void => term.abort();
  process.on('SIGTERM', onSignal);
  try {
    await runCgi(app, { ...io, environ }, term.signal);
  } finally {
    process.off('SIGTERM', onSignal);
  }
  return 0;
}
