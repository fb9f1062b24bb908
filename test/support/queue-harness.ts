import { Redis } from 'ioredis';
import type { Database } from '../../src/db/database.ts';
import { deleteKeysWithPrefix } from '../../src/integrations/queue/connection.ts';

/** Removes every Redis key this test file's queue prefix created. */
export async function cleanupRedis(prefix: string, url = 'redis://127.0.0.1:6379'): Promise<number> {
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    return await deleteKeysWithPrefix(redis, prefix);
  } finally {
    redis.disconnect();
  }
}

// one script, so the wipe is as atomic as a restart: a SCAN loop from the client would take many round trips
// through a Redis shared with other test files, and could delete jobs the relay re-added after noticing the wipe
const WIPE_PREFIX = `local cursor = '0'
local n = 0
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do n = n + redis.call('UNLINK', k) end
until cursor == '0'
return n`;

/**
 * "Redis lost everything" for this file's system under test, in one step. A real FLUSHALL would also wipe what
 * other test files running at the same time keep in the shared Redis, so by default only this prefix is wiped —
 * which is everything these workers have in Redis. SIGNOFF_TEST_REAL_FLUSHALL=1 runs a real FLUSHALL.
 */
export async function flushRedis(prefix: string, url = 'redis://127.0.0.1:6379'): Promise<void> {
  if (process.env.SIGNOFF_TEST_REAL_FLUSHALL === '1') {
    const redis = new Redis(url);
    await redis.flushall();
    redis.disconnect();
    return;
  }
  const redis = new Redis(url, { maxRetriesPerRequest: 1 });
  try {
    await redis.eval(WIPE_PREFIX, 0, `${prefix}:*`);
  } finally {
    redis.disconnect();
  }
}

export async function addEndpoint(db: Database, e: { name: string; url: string; secret: string; events: string[] }): Promise<string> {
  const row = await db.one<{ id: string }>(`INSERT INTO webhook_endpoints (name, url, secret, events) VALUES ($1,$2,$3,$4) RETURNING id`, [
    e.name,
    e.url,
    e.secret,
    e.events,
  ]);
  return row.id;
}
