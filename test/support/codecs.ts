/**
 * The codecs the conformance and differential tests run against: always the TypeScript codec,
 * and the native codec when its binary loads.
 *
 * When the native codec does not load, a CI run (CI=true) must fail: a CI run that silently
 * used only the fallback proves nothing about native. Outside CI the native runs are skipped
 * loudly (a console warning, and the native test groups show as skipped).
 */
import { describe, it } from 'vitest';
import { tsCodec } from '../../lib/codec/ts/index.js';
import type { Codec } from '../../lib/codec/types.js';

export interface NativeStatus {
  codec: Codec | null;
  reason: string;
}

/* The module path is held in a variable so that this helper type-checks and runs even while
 * lib/codec/native.ts does not exist yet; a missing module is reported as the reason. */
const NATIVE_MODULE = '../../lib/codec/native.js';

async function loadNative(): Promise<NativeStatus> {
  let mod: { loadNativeCodec?: () => NativeStatus };
  try {
    mod = (await import(/* @vite-ignore */ NATIVE_MODULE)) as typeof mod;
  } catch (err) {
    return { codec: null, reason: `cannot import lib/codec/native: ${(err as Error).message}` };
  }
  if (typeof mod.loadNativeCodec !== 'function') {
    return { codec: null, reason: 'lib/codec/native does not export loadNativeCodec()' };
  }
  try {
    const result = mod.loadNativeCodec();
    if (result.codec) return { codec: result.codec, reason: '' };
    return {
      codec: null,
      reason: result.reason || 'loadNativeCodec() gave no codec and no reason',
    };
  } catch (err) {
    return { codec: null, reason: `loadNativeCodec() threw: ${(err as Error).message}` };
  }
}

/** Whether the native codec loaded, and why not. */
export const native: NativeStatus = await loadNative();

/** True on CI, where a missing native codec is a failure. */
export const isCI = process.env.CI === 'true' || process.env.CI === '1';

if (!native.codec) {
  console.warn(
    `\n*** tsgi tests: the NATIVE codec did not load (${native.reason}).\n` +
      `*** Only the TypeScript codec is tested; native runs are SKIPPED.` +
      (isCI ? '\n*** CI=true: this is a FAILURE.\n' : '\n'),
  );
}

/** One entry per codec; `codec` is null for a native codec that did not load. */
export interface CodecEntry {
  name: 'ts' | 'native';
  codec: Codec | null;
}

/** The codecs to run: ts always, native always listed (null when it did not load). */
export const codecEntries: CodecEntry[] = [
  { name: 'ts', codec: tsCodec },
  { name: 'native', codec: native.codec },
];

/** The codecs that are available. */
export const codecs: Codec[] = codecEntries.flatMap((e) => (e.codec ? [e.codec] : []));

/**
 * Declares one describe block per codec. For an unavailable native codec: on CI, a failing
 * test with the reason; elsewhere a skipped block (so the skip shows in the report).
 */
export function describeEachCodec(title: string, body: (codec: Codec) => void): void {
  for (const entry of codecEntries) {
    if (entry.codec) {
      const codec = entry.codec;
      describe(`${title} [${entry.name}]`, () => body(codec));
    } else if (isCI) {
      describe(`${title} [${entry.name}]`, () => {
        it('native codec is available on CI', () => {
          throw new Error(`native codec did not load on CI: ${native.reason}`);
        });
      });
    } else {
      describe.skip(`${title} [${entry.name}] (native codec unavailable: ${native.reason})`, () => {
        it('skipped', () => {});
      });
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Event helpers shared by the vector and differential suites (test/codec/)
// ---------------------------------------------------------------------------------------------

/** An event as a plain record. */
export type Ev = Record<string, unknown>;

/** Lowercase hex of bytes. */
export function toHex(bytes: ArrayLike<number>): string {
  let s = '';
  for (let i = 0; i < bytes.length; i++) s += bytes[i]!.toString(16).padStart(2, '0');
  return s;
}

/** Stream event types: their `data` is bytes. */
export const STREAM_TYPES: ReadonlySet<string> = new Set([
  'stdin',
  'stdout',
  'stderr',
  'data',
  'body',
]);

/** A raw event with its data turned into hex (take it at once: the chunk may be reused). */
export function snapshot(e: Ev): Ev {
  return 'data' in e && e.data instanceof Uint8Array ? { ...e, data: toHex(e.data) } : { ...e };
}

/** Merge consecutive stream events of the same type and request id (data already hex). */
export function normalise(events: Ev[]): Ev[] {
  const out: Ev[] = [];
  for (const e of events) {
    const last = out[out.length - 1];
    if (
      last &&
      STREAM_TYPES.has(e.type as string) &&
      last.type === e.type &&
      last.requestId === e.requestId
    ) {
      last.data = (last.data as string) + (e.data as string);
    } else {
      out.push({ ...e });
    }
  }
  return out;
}
