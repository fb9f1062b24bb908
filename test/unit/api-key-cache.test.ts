import { describe, expect, it } from 'vitest';
import { apiKeyDigest } from '../../src/core/api-keys.ts';
import type { Queryable } from '../../src/db/database.ts';
import { ApiKeyCache } from '../../src/integrations/http/api-key-cache.ts';

/** api_keys as verifyApiKeyDigest reads it: counts reads and last-use stamps, and can hold a read until released. */
class FakeKeys implements Queryable {
  reads = 0;
  stamps = 0;
  readonly revoked = new Set<string>();
  held: (() => void)[] | null = null;

  async maybeOne<T>(_sql: string, params?: unknown[]): Promise<T | undefined> {
    this.reads++;
    if (this.held) await new Promise<void>((r) => this.held!.push(r));
    const digest = String(params![0]);
    if (!known.has(digest)) return undefined;
    const name = known.get(digest)!;
    return {
      id: `id-${name}`,
      name,
      scopes: ['requests:read'],
      identity_id: null,
      identity_label: null,
      key_hash: digest,
      revoked_at: this.revoked.has(name) ? new Date() : null,
      stale_use: true,
    } as T;
  }
  async query<T>(sql: string): Promise<T[]> {
    if (sql.startsWith('UPDATE api_keys SET last_used_at')) this.stamps++;
    return [];
  }
  async one<T>(): Promise<T> {
    throw new Error('not used');
  }
}
const known = new Map(['a', 'b', 'c'].map((n) => [apiKeyDigest(`sk_${n}`), n]));

const setup = (opts: { maxAgeMs?: number; maxEntries?: number } = {}) => {
  const db = new FakeKeys();
  let now = 1_000_000;
  const cache = new ApiKeyCache(db, { now: () => now, ...opts });
  return { db, cache, advance: (ms: number) => (now += ms) };
};

describe('ApiKeyCache', () => {
  it('reads every call while it is not listening', async () => {
    const { db, cache } = setup();
    await cache.verify('sk_a');
    await cache.verify('sk_a');
    expect(db.reads).toBe(2);
  });

  it('reads a key once while listening, and again after a change is heard', async () => {
    const { db, cache } = setup();
    cache.resume();
    await cache.verify('sk_a');
    await cache.verify('sk_a');
    expect(db.reads).toBe(1);
    db.revoked.add('a');
    cache.forgetAll();
    await expect(cache.verify('sk_a')).rejects.toMatchObject({ code: 'unauthenticated' });
  });

  it('does not keep what it read while a change was heard: the read may predate the change', async () => {
    const { db, cache } = setup();
    cache.resume();
    db.held = [];
    const reading = cache.verify('sk_a');
    await Promise.resolve();
    cache.forgetAll();
    for (const release of db.held.splice(0)) release();
    db.held = null;
    await reading;
    db.revoked.add('a');
    await expect(cache.verify('sk_a')).rejects.toMatchObject({ code: 'unauthenticated' });
  });

  it('keeps nothing across a gap in listening', async () => {
    const { db, cache } = setup();
    cache.resume();
    await cache.verify('sk_a');
    cache.suspend();
    cache.resume();
    db.revoked.add('a');
    await expect(cache.verify('sk_a')).rejects.toMatchObject({ code: 'unauthenticated' });
  });

  it('reads a key again after maxAgeMs even if nothing was heard', async () => {
    const { db, cache, advance } = setup({ maxAgeMs: 60_000 });
    cache.resume();
    await cache.verify('sk_a');
    advance(59_000);
    await cache.verify('sk_a');
    expect(db.reads).toBe(1);
    advance(2_000);
    await cache.verify('sk_a');
    expect(db.reads).toBe(2);
  });

  it('stamps a kept key’s last use once a minute, not on every call', async () => {
    const { db, cache, advance } = setup({ maxAgeMs: 3_600_000 });
    cache.resume();
    await cache.verify('sk_a');
    expect(db.stamps).toBe(1);
    for (let i = 0; i < 5; i++) {
      advance(10_000);
      await cache.verify('sk_a');
    }
    expect(db.stamps).toBe(1);
    advance(10_000);
    await cache.verify('sk_a');
    expect([db.stamps, db.reads]).toEqual([2, 1]);
  });

  it('keeps at most maxEntries keys and never an unknown one', async () => {
    const { db, cache } = setup({ maxEntries: 2 });
    cache.resume();
    await expect(cache.verify('sk_nobody')).rejects.toMatchObject({ code: 'unauthenticated' });
    await expect(cache.verify('sk_nobody')).rejects.toMatchObject({ code: 'unauthenticated' });
    expect(db.reads).toBe(2);
    for (const k of ['sk_a', 'sk_b', 'sk_c']) await cache.verify(k);
    db.reads = 0;
    await cache.verify('sk_c');
    await cache.verify('sk_b');
    expect(db.reads).toBe(0);
    await cache.verify('sk_a');
    expect(db.reads).toBe(1);
  });
});
