// The CPU-bound app of the workers rows of bench:e2e: the hello world answer after a fixed
// amount of pure JavaScript work per request (TSGI_BENCH_CPU_WORK iterations; bench/e2e.ts
// calibrates it to about 2 ms of CPU on the machine it runs on). One process can serve about
// 500 of these per second per core, so the rows measure how the workers share the CPUs.
const HEADERS = [['Content-Type', 'text/plain']];
const BODY = ['Hello, world!\n'];
const ITERATIONS = Number(process.env.TSGI_BENCH_CPU_WORK ?? 2_000_000);

/** `n` rounds of xorshift32: CPU only, no allocation, cannot be optimised away. */
export function work(n) {
  let x = 2463534242;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
  }
  return x;
}

let sink = 0;

export default function cpu(_environ, startResponse) {
  sink ^= work(ITERATIONS);
  startResponse('200 OK', HEADERS);
  return sink === 0.5 ? [] : BODY;
}
