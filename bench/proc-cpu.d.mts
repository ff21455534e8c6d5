// Types of bench/proc-cpu.mjs for the TypeScript benches.

/** CPU seconds of a process tree, user and system apart. */
export interface CpuTimes {
  user: number;
  system: number;
}

/**
 * CPU seconds used so far by each of `pids` and every process below it, user and system
 * apart, from one read of /proc; null where /proc is not there.
 */
export function cpuTimes(pids: readonly number[]): CpuTimes[] | null;
