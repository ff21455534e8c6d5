/**
 * ConnectionSet (lib/protocol/socket.ts): the open connections of a server, a Set whose newest
 * member is kept apart. It must behave as a Set does: members in the order they were added,
 * size, has and delete, and iteration that visits members added while it runs and skips
 * members deleted before they were reached.
 */
import { describe, expect, it } from 'vitest';
import { ConnectionSet } from '../../lib/protocol/socket.js';

const members = (s: ConnectionSet<string>): string[] => [...s];

describe('ConnectionSet', () => {
  it('keeps members in the order they were added, with size, has and delete', () => {
    const s = new ConnectionSet<string>();
    expect([s.size, members(s)]).toEqual([0, []]);
    s.add('a').add('b').add('c');
    expect([s.size, members(s), s.has('a'), s.has('c'), s.has('x')]).toEqual([
      3,
      ['a', 'b', 'c'],
      true,
      true,
      false,
    ]);
    s.add('c');
    expect([s.size, members(s)]).toEqual([3, ['a', 'b', 'c']]);
    expect([s.delete('c'), s.delete('c'), s.delete('x')]).toEqual([true, false, false]);
    expect([s.size, members(s), s.has('c')]).toEqual([2, ['a', 'b'], false]);
    s.add('d');
    expect(s.delete('a')).toBe(true);
    expect([s.size, members(s)]).toEqual([2, ['b', 'd']]);
    s.add('e');
    expect(members(s)).toEqual(['b', 'd', 'e']);
    for (const m of ['b', 'd', 'e']) s.delete(m);
    expect([s.size, members(s)]).toEqual([0, []]);
  });

  it('one member added and deleted after another leaves the others as they were', () => {
    const s = new ConnectionSet<string>();
    s.add('kept');
    for (let i = 0; i < 5; i++) {
      s.add(`c${i}`);
      expect(s.delete(`c${i}`)).toBe(true);
    }
    expect([s.size, members(s)]).toEqual([1, ['kept']]);
  });

  it('iterates as a Set does while members are added and deleted', () => {
    const s = new ConnectionSet<string>();
    const plain = new Set<string>();
    for (const x of [s, plain]) x.add('a').add('b').add('c');
    const walk = (
      x: Iterable<string> & { add(v: string): unknown; delete(v: string): boolean },
    ) => {
      const seen: string[] = [];
      for (const m of x) {
        seen.push(m);
        if (m === 'a') {
          x.delete('b');
          x.add('d');
          x.add('e');
          x.delete('e');
        }
        if (m === 'c') x.delete('a');
        if (m === 'd') x.add('f');
      }
      return seen;
    };
    expect(walk(s)).toEqual(walk(plain));
    expect(walk(new ConnectionSet<string>())).toEqual([]);
    expect(members(s)).toEqual([...plain]);
    expect(s.size).toBe(plain.size);
  });
});
