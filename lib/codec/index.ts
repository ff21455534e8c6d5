/**
 * Codec selection: the native codec when its binary loads, else the TypeScript codec.
 * `TSGI_CODEC=ts` forces the TypeScript codec; `TSGI_CODEC=native` forces the native one.
 * `TSGI_NATIVE_PATH` names the native binary to load instead of the package's own.
 *
 * A bad setting never throws while this module loads: it is kept in {@link codecProblem},
 * which the tsgi command reports in one line before it starts, and any use of {@link codec}
 * then throws the same message (a program importing tsgi sees it at its first use).
 */
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

/** A codec whose every use throws `message`. */
function unusable(message: string): Codec {
  return new Proxy({} as Codec, {
    get() {
      throw new Error(message);
    },
  });
}

const selection = select();

/** Why the environment's choice of codec failed or fell back, or null when it did not. */
export const codecProblem: EnvironmentProblem | null = selection.problem;

/** The active codec (see {@link Codec.name} for which one). */
export const codec: Codec =
  codecProblem !== null && codecProblem.status !== 0
    ? unusable(codecProblem.message)
    : selection.codec;
