/**
 * The environment rule of a web-server-run app, the same under CGI (`tsgi cgi`) and FastCGI
 * (a process spawned by mod_fcgid or lighttpd's bin-path) (docs/hosting.md, "Environment"):
 *
 * - environ: the variables the web server sends with the request. FastCGI: every param.
 *   CGI: the request variables of the process environment (lib/protocol/cgi.ts: the
 *   meta-variables, HTTP_*, SSL_*, REDIRECT_*) and the {@link SITE_VARIABLES}.
 * - process.env: the process's own environment (set it in the entry file's first line:
 *   `#!/usr/bin/env -S NODE_ENV=production tsgi serve`, read before the app loads, both
 *   modes). A {@link SITE_VARIABLES} name the web server sets (`SetEnv NODE_ENV production`
 *   in an .htaccess) and the process environment lacks is copied into process.env: under CGI
 *   the web server put it there already; under FastCGI it is copied from the first request,
 *   that is after the app loaded (a framework that reads it while loading needs the first
 *   line).
 */
import process from 'node:process';

/** Web-server variables that are settings of the app's process rather than of a request. */
export const SITE_VARIABLES: ReadonlySet<string> = new Set(['NODE_ENV']);

/**
 * Copies the {@link SITE_VARIABLES} of a request's environ into process.env where it has
 * none (FastCGI: the web server's SetEnv arrives as params).
 */
export function adoptSiteVariables(environ: Record<string, unknown>): void {
  for (const name of SITE_VARIABLES) {
    const v = environ[name];
    if (typeof v === 'string' && process.env[name] === undefined) process.env[name] = v;
  }
}
