/**
 * Child processes for tests: started with an argument list (no shell), output gathered, and
 * stopped by pid in the test's own cleanup.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';

export interface Child {
  proc: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  /** Resolves with the exit code (or the signal name). */
  exited: Promise<number | string>;
  /** Resolves with the first stderr match of `re` (rejects when the process exits first). */
  waitForStderr(re: RegExp): Promise<RegExpMatchArray>;
  /** SIGTERM (so that a master process stops its workers), SIGKILL if still alive after 5 s. */
  stop(): Promise<void>;
}

export function startChild(cmd: string, args: string[], options: SpawnOptions = {}): Child {
  const proc = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options });
  let out = '';
  let err = '';
  let waiters: (() => void)[] = [];
  const wake = () => {
    const w = waiters;
    waiters = [];
    for (const f of w) f();
  };
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString('latin1');
    wake();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    err += d.toString('latin1');
    wake();
  });
  let done = false;
  const exited = new Promise<number | string>((resolve) => {
    proc.on('exit', (code, signal) => {
      done = true;
      wake();
      resolve(code ?? signal ?? -1);
    });
    proc.on('error', (e) => {
      err += String(e);
      done = true;
      wake();
      resolve(-1);
    });
  });
  return {
    proc,
    stdout: () => out,
    stderr: () => err,
    exited,
    async waitForStderr(re: RegExp) {
      for (;;) {
        const m = re.exec(err);
        if (m !== null) return m;
        if (done) {
          await new Promise((r) => setImmediate(r));
          const again = re.exec(err);
          if (again !== null) return again;
          throw new Error(`${cmd} exited before printing ${re}; stderr:\n${err}`);
        }
        await new Promise<void>((r) => waiters.push(r));
      }
    },
    async stop() {
      if (done || proc.pid === undefined) return;
      proc.kill('SIGTERM');
      const timer = setTimeout(() => {
        if (!done) proc.kill('SIGKILL');
      }, 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}
