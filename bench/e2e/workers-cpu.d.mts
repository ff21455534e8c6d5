// Types of bench/e2e/workers-cpu.mjs for bench/e2e/workers.ts.
import type { App } from '../../lib/gateway/types.js';

/** `n` rounds of xorshift32 (pure CPU work). */
export function work(n: number): number;
declare const cpu: App;
export default cpu;
