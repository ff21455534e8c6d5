/**
 * The CPU time of process trees, from /proc (Linux): what bench/measure.ts (bench:e2e,
 * bench:client) and bench/request-cpu.mjs read per request.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';

/** Clock ticks per second of /proc/PID/stat's times (Linux). */
const CLK_TCK = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout) || 100;

/**
 * CPU seconds used so far by each of `pids` and every process below it, user and system
 * apart, from one read of /proc; null where /proc is not there.
 */
export function cpuTimes(pids) {
  if (process.platform !== 'linux') return null;
  const children = new Map();
  const ticks = new Map();
  for (const entry of readdirSync('/proc')) {
    if (!/^[0-9]+$/.test(entry)) continue;
    let stat;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue; /* it exited meanwhile */
    }
    /* fields after the command name "(...)": state ppid ... utime(14th) stime(15th) */
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const ppid = Number(f[1]);
    ticks.set(Number(entry), [Number(f[11]), Number(f[12])]);
    const list = children.get(ppid);
    if (list) list.push(Number(entry));
    else children.set(ppid, [Number(entry)]);
  }
  return pids.map((pid) => {
    let user = 0;
    let system = 0;
    const todo = [pid];
    while (todo.length > 0) {
      const p = todo.pop();
      const t = ticks.get(p);
      if (t !== undefined) {
        user += t[0];
        system += t[1];
      }
      todo.push(...(children.get(p) ?? []));
    }
    return { user: user / CLK_TCK, system: system / CLK_TCK };
  });
}
