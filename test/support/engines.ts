/**
 * Which installed npm packages do not support the running Node, from their package.json
 * `engines.node` (">= 20", ">=20.0.0", "^20 || >=22"): the Node version matrix runs the
 * framework suites on Node versions that some framework packages have left behind (@koa/router
 * and @hono/node-server need Node 20). Such a framework is skipped with a loud message, under
 * CI too: it is not a missing peer but a combination its authors do not support.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from './build.js';

const running = Number(process.versions.node.split('.')[0]);

/** The lowest Node major an `engines.node` range accepts (its smallest number), or 0. */
function lowestMajor(range: string): number {
  const majors = [...range.matchAll(/(\d+)(?:\.\d+){0,2}/g)].map((m) => Number(m[1]));
  return majors.length === 0 ? 0 : Math.min(...majors);
}

/** "pkg x.y.z needs Node >= N" for the first of `packages` that rejects this Node, else null. */
export function unsupportedOnThisNode(packages: readonly string[]): string | null {
  for (const name of packages) {
    const pkg = JSON.parse(
      readFileSync(join(ROOT, 'node_modules', name, 'package.json'), 'utf8'),
    ) as { version: string; engines?: { node?: string } };
    const range = pkg.engines?.node;
    if (range === undefined) continue;
    const lowest = lowestMajor(range);
    if (running < lowest) {
      return `${name} ${pkg.version} needs Node ${range}; this is Node ${process.versions.node}`;
    }
  }
  return null;
}

/** Prints the loud skip message for `what`. */
export function warnUnsupported(what: string, reason: string): void {
  process.stderr.write(`\n!!!!! ${what} is SKIPPED on this Node: ${reason} !!!!!\n\n`);
}
