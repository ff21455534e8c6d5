// What test/codec/vectors.test.ts takes from vitest, on Node's own test runner, for a bundle of
// that suite run where vitest cannot (Node for Windows under wine: vite's esbuild binary does
// not start there). `expect` keeps the matchers the suite uses; toEqual is
// assert.deepStrictEqual, which is stricter than vitest's toEqual (it also compares prototypes
// and undefined properties), so a vector passing here passes under vitest too.
import assert from 'node:assert/strict';

export { describe, it } from 'node:test';

export function expect(actual, message) {
  return {
    toBe(expected) {
      assert.strictEqual(actual, expected, message);
    },
    toEqual(expected) {
      assert.deepStrictEqual(actual, expected, message);
    },
    toBeLessThanOrEqual(limit) {
      assert.ok(actual <= limit, message ?? `${actual} > ${limit}`);
    },
    toBeInstanceOf(cls) {
      assert.ok(actual instanceof cls, message ?? `not an instance of ${cls.name}`);
    },
  };
}
