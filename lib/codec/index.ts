/**
 * Codec selection: the native codec when its binary loads, else the TypeScript codec.
 * `TSGI_CODEC=ts` forces the TypeScript codec; `TSGI_CODEC=native` forces the native one and
 * throws when it cannot load.
 */
import { loadNativeCodec } from './native.js';
import { tsCodec } from './ts/index.js';
import type { Codec } from './types.js';

export * from './types.js';
export { tsCodec } from './ts/index.js';
export { loadNativeCodec } from './native.js';

function select(): Codec {
  const forced = process.env.TSGI_CODEC;
  if (forced === 'ts') return tsCodec;
  if (forced === 'native') {
    const result = loadNativeCodec();
    if (result.codec) return result.codec;
    throw new Error(`TSGI_CODEC=native but the native codec did not load: ${result.reason}`);
  }
  if (forced !== undefined && forced !== '') {
    throw new Error(`TSGI_CODEC must be "ts" or "native", not "${forced}"`);
  }
  const result = loadNativeCodec();
  if (result.codec) return result.codec;
  if (process.env.NODE_DEBUG?.split(',').includes('tsgi')) {
    process.stderr.write(
      `tsgi: native codec unavailable (${result.reason.replace(/\s*\n\s*/g, ' ')}); using ts\n`,
    );
  }
  return tsCodec;
}

/** The active codec (see {@link Codec.name} for which one). */
export const codec: Codec = select();
