/**
 * The test helpers' port choice for servers that cannot take port 0 (startOnFreePorts in
 * test/support/frontends.ts): a server whose port was taken between the pick and its bind is
 * started again on new ports, any other failure is not retried.
 */
import { createServer, type Server } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { accepts, startOnFreePorts } from '../support/frontends.js';
import { freePort } from '../support/peers.js';
import { startChild, type Child } from '../support/spawn.js';

/**
 * A node process listening on 127.0.0.1:port, once it says so (it exits with EADDRINUSE when
 * the port is taken; the holder of the port accepting is not its start).
 */
async function listener(port: number): Promise<Child> {
  const child = startChild(process.execPath, [
    '-e',
    `require('net').createServer((s) => s.end()).listen(${port}, '127.0.0.1', () => console.error('listening'))`,
  ]);
  await child.waitForStderr(/listening/);
  return child;
}

describe('startOnFreePorts()', () => {
  const children: Child[] = [];
  let holder: Server | null = null;
  afterEach(async () => {
    for (const c of children.splice(0)) await c.stop();
    await new Promise<void>((r) => (holder ? holder.close(() => r()) : r()));
    holder = null;
  });

  it('picks new ports when the server could not bind one that was taken after the pick', async () => {
    /* a port free at pick time and taken before the server binds it: held here */
    const taken = await freePort();
    holder = createServer();
    await new Promise<void>((r) => holder!.listen(taken, '127.0.0.1', r));
    const picks = [taken];
    const pick = async () => picks.shift() ?? freePort();
    const tried: number[][] = [];
    const { started, ports } = await startOnFreePorts(
      1,
      async (p) => {
        tried.push(p);
        const child = await listener(p[0]!);
        children.push(child);
        return child;
      },
      pick,
    );
    expect(tried).toHaveLength(2);
    expect(tried[0]).toEqual([taken]);
    expect(ports).toEqual(tried[1]);
    expect(ports[0]).not.toBe(taken);
    expect(await accepts(ports[0]!)).toBe(true);
    expect(started.proc.exitCode).toBe(null);
  });

  it('gives distinct ports and does not retry other failures', async () => {
    let calls = 0;
    let seen: number[] = [];
    const again = [24, 24, 25, 26];
    await expect(
      startOnFreePorts(
        3,
        (p) => {
          calls++;
          seen = p;
          return Promise.reject(new Error('the server refused its configuration'));
        },
        async () => {
          const p = again.shift();
          if (p === undefined) throw new Error('picked more ports than one try needs');
          return p;
        },
      ),
    ).rejects.toThrow('refused its configuration');
    expect(calls).toBe(1);
    expect(seen).toEqual([24, 25, 26]);
  });

  it('throws the port clash after the last try', async () => {
    let calls = 0;
    await expect(
      startOnFreePorts(
        1,
        () => {
          calls++;
          return Promise.reject(new Error('bind() failed (98: Address already in use)'));
        },
        freePort,
        3,
      ),
    ).rejects.toThrow('Address already in use');
    expect(calls).toBe(3);
  });
});
