/**
 * Real peers for interop tests (nginx, cgi-fcgi): found on PATH or in the usual sbin
 * directories. A missing binary skips the tests with a loud message, except under CI=true,
 * where it is a failure.
 */
import { accessSync, constants, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
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

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (for servers that cannot take port 0).
 * It is picked below the kernel's ephemeral range (ip_local_port_range, 32768 and up on
 * Linux): a port from that range can be taken as the source port of any outgoing connection
 * of the suites running beside this one before the server binds it (seen as nginx's
 * "bind() ... Address already in use").
 */
export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 50; tries++) {
    const port = 10000 + Math.floor(Math.random() * (EPHEMERAL_LOW - 10000));
    if (await bindable(port)) return port;
  }
  throw new Error('freePort: no free port found below the ephemeral range');
}

/** The low end of the kernel's ephemeral port range (32768 where it cannot be read). */
const EPHEMERAL_LOW = ((): number => {
  try {
    const low = Number(
      readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'latin1').split(/\s+/)[0],
    );
    return Number.isInteger(low) && low > 11000 ? low : 32768;
  } catch {
    return 32768;
  }
})();

/** True when a server could listen on 127.0.0.1:`port` just now. */
function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.on('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
