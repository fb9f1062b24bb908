import { describe, expect, it } from 'vitest';
import { GroupCommit } from '../../src/db/group-commit.ts';

describe('GroupCommit', () => {
  it('calls made together share one flush, each gets its own result', async () => {
    const flushes: number[][] = [];
    const g = new GroupCommit<number, number>(async (xs) => {
      flushes.push(xs);
      return xs.map((x) => x * 10);
    });
    expect(await Promise.all([1, 2, 3].map((x) => g.submit(x)))).toEqual([10, 20, 30]);
    expect(flushes).toEqual([[1, 2, 3]]);
  });

  it('calls arriving while a flush is in flight go together in the next one', async () => {
    const flushes: number[][] = [];
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    const g = new GroupCommit<number, null>(async (xs) => {
      flushes.push(xs);
      if (flushes.length === 1) await gate;
      return xs.map(() => null);
    });
    const first = g.submit(1);
    await new Promise((res) => setImmediate(res));
    const later = [g.submit(2), g.submit(3), g.submit(4)];
    release();
    await Promise.all([first, ...later]);
    expect(flushes).toEqual([[1], [2, 3, 4]]);
  });

  it('a failed flush fails only the calls it held', async () => {
    let n = 0;
    const g = new GroupCommit<number, number>(async (xs) => {
      if (++n === 1) throw new Error('connection lost');
      return xs;
    });
    await expect(g.submit(1)).rejects.toThrow('connection lost');
    expect(await g.submit(2)).toBe(2);
  });

  it('waits for expected companions, and goes at once when none are expected any more', async () => {
    let expected = 2;
    const flushes: number[][] = [];
    // a window far longer than the test: the batch must go because the last companion arrived, not on the timer
    const g = new GroupCommit<number, null>(
      async (xs) => {
        flushes.push(xs);
        return xs.map(() => null);
      },
      { maxWaitMs: 60_000, expectMore: () => expected > 0 },
    );
    const a = g.submit(1);
    await new Promise((res) => setImmediate(res));
    expect(flushes).toEqual([]);
    expected = 1;
    const b = g.submit(2);
    expected = 0;
    const c = g.submit(3);
    await Promise.all([a, b, c]);
    expect(flushes).toEqual([[1, 2, 3]]);
  });
});
