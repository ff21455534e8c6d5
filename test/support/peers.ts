/**
 * Real peers for interop tests (nginx, cgi-fcgi): found on PATH or in the usual sbin
 * directories. A missing binary skips the tests with a loud message, except under CI=true,
 * where it is a failure.
 */
import { accessSync, constants } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { delimiter, join } from 'node:path';

export function findBinary(name: string): string | null {
  const dirs = [
    ...(process.env.PATH ?? '').split(delimiter),
    '/usr/sbin',
    '/usr/local/sbin',
    '/sbin',
  ];
  for (const d of dirs) {
    if (d === '') continue;
    const p = join(d, name);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

export const isCI = process.env.CI === 'true';

/**
 * The binary, or null after a loud warning. Under CI=true the caller must register a failing
 * test when this returns null (see {@link missingPeerTest}).
 */
export function findPeer(name: string, pkg: string): string | null {
  const bin = findBinary(name);
  if (bin !== null) return bin;
  console.warn(
    `\n!!!!! ${name} not found (Debian package ${pkg}): its interop tests are SKIPPED` +
      `${isCI ? ' — and FAIL, because CI=true' : ''} !!!!!\n`,
  );
  return null;
}

/** The message of the failing test registered for a missing peer under CI=true. */
export function missingPeerMessage(name: string, pkg: string): string {
  return `${name} is required under CI=true: apt-get install ${pkg}`;
}

/** A TCP port on 127.0.0.1 that was free a moment ago (for servers that cannot take port 0). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
