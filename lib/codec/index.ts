/**
 * Codec selection: the native codec when its binary loads, else the TypeScript codec.
 * `TSGI_CODEC=ts` forces the TypeScript codec; `TSGI_CODEC=native` forces the native one.
 * `TSGI_NATIVE_PATH` names the native binary to load instead of the package's own.
 *
 * Nothing is chosen while this module loads: the choice is made at the first call of
 * {@link selectedCodec} (a protocol server makes it when it is created without
 * `options.codec`), and kept for the process. A bad setting never throws at import: it is
 * returned by {@link codecProblem}, which the tsgi command reports in one line before it
 * starts, and {@link selectedCodec} (so creating a server that uses it) throws the same
 * message. {@link codec} is the selected codec under its old name, resolved at its first use.
 */
import process from 'node:process';
import { debuglog } from 'node:util';
import { loadNativeCodec } from './native.js';
import { tsCodec } from './ts/index.js';
import type { Codec } from './types.js';

export * from './types.js';
export { tsCodec } from './ts/index.js';
export { loadNativeCodec } from './native.js';

/** Something wrong with the environment variables that choose the codec or transport. */
export interface EnvironmentProblem {
  /** For the user, naming the variable ("TSGI_CODEC must be ..."). */
  message: string;
  /**
   * 2: the value is not one the variable takes (a usage error); 1: what it asks for cannot be
   * had here; 0: a warning (tsgi goes on with the fallback it names).
   */
  status: 0 | 1 | 2;
}

const debug = debuglog('tsgi');

function select(): { codec: Codec; problem: EnvironmentProblem | null } {
  const forced = process.env.TSGI_CODEC;
  if (forced === 'ts') return { codec: tsCodec, problem: null };
  const oneLine = (reason: string): string => reason.replace(/\s*\n[\s\S]*$/, '');
  if (forced === 'native') {
    const result = loadNativeCodec();
    if (result.codec) return { codec: result.codec, problem: null };
    return {
      codec: tsCodec,
      problem: {
        message: `TSGI_CODEC=native but the native codec did not load: ${oneLine(result.reason)}`,
        status: 1,
      },
    };
  }
  if (forced !== undefined && forced !== '') {
    return {
      codec: tsCodec,
      problem: { message: `TSGI_CODEC must be "ts" or "native", not "${forced}"`, status: 2 },
    };
  }
  const result = loadNativeCodec();
  if (result.codec) return { codec: result.codec, problem: null };
  /* NODE_DEBUG=tsgi (or a pattern naming it) says why, as node's own debug sections do */
  debug(
    'native codec unavailable (%s); tsgi uses the ts codec',
    result.reason.replace(/\s*\n\s*/g, ' '),
  );
  const path = process.env.TSGI_NATIVE_PATH;
  if (path !== undefined && path !== '') {
    /* the user named a binary: say that it was not the one used */
    return {
      codec: tsCodec,
      problem: {
        message: `TSGI_NATIVE_PATH=${path} did not load (${oneLine(result.reason)}); using the ts codec`,
        status: 0,
      },
    };
  }
  return { codec: tsCodec, problem: null };
}

let selection: { codec: Codec; problem: EnvironmentProblem | null } | undefined;

/** The environment's choice, made at the first call. */
function selected(): { codec: Codec; problem: EnvironmentProblem | null } {
  selection ??= select();
  return selection;
}

/**
 * Why the environment's choice of codec failed or fell back, or null when it did not. Makes the
 * choice when it is not made yet; never throws.
 */
export function codecProblem(): EnvironmentProblem | null {
  return selected().problem;
}

/**
 * The codec the environment selects (TSGI_CODEC, TSGI_NATIVE_PATH; the native codec when it
 * loads, else the TypeScript one), chosen at the first call and kept for the process. Throws
 * the {@link codecProblem} message when the setting is invalid or asks for what cannot be had.
 */
export function selectedCodec(): Codec {
  const { codec, problem } = selected();
  if (problem !== null && problem.status !== 0) throw new Error(problem.message);
  return codec;
}

/**
 * The selected codec ({@link selectedCodec}) under the name it always had: the choice is made
 * at its first use, which throws when the environment's setting is bad. Code on a hot path
 * should hold {@link selectedCodec}'s result instead (every use of this one goes through a
 * Proxy).
 */
export const codec: Codec = new Proxy({} as Codec, {
  get: (_target, key) => Reflect.get(selectedCodec(), key) as unknown,
  has: (_target, key) => Reflect.has(selectedCodec(), key),
  ownKeys: () => Reflect.ownKeys(selectedCodec()),
  getOwnPropertyDescriptor: (_target, key) => {
    const d = Reflect.getOwnPropertyDescriptor(selectedCodec(), key);
    return d && { ...d, configurable: true };
  },
});
