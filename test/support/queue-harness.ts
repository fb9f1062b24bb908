import { Redis } from 'ioredis';
import type { Database } from '../../src/db/database.ts';
import { deleteKeysWithPrefix } from '../../src/integrations/queue/connection.ts';
import { VISIO } from './fixtures.ts';
import type { TestContext } from './test-context.ts';
import { holdAnswers, startReceiver, type Receiver } from './webhook-receiver.ts';

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

/**
 * An endpoint that holds every request open until `release()`, and `n` approvals of VISIO (one device each, named by
 * `tag`) committed while no worker runs: the backlog a busy endpoint's gate sends back to wait. Seed Contoso first.
 */
export async function heldEndpointBacklog(t: TestContext, n: number, tag: string): Promise<{ held: Receiver; release(): void }> {
  const held = await startReceiver();
  const release = holdAnswers(held);
  await addEndpoint(t.tdb.db, { name: 'held', url: held.url, secret: held.secret, events: ['app.install'] });
  await approveDevices(t, tag, 0, n);
  return { held, release };
}

/** Approves VISIO for devices `from` to `to` - 1 (named by `tag`, added here), one CreateApprovedRequest each. */
export async function approveDevices(t: TestContext, tag: string, from: number, to: number): Promise<void> {
  const api = { id: null, label: 'api:test', channel: 'api' as const };
  for (let i = from; i < to; i++) {
    const guid = `GUID:${tag}-${String(i).padStart(3, '0')}`;
    await t.tdb.db.query(`INSERT INTO devices (client_guid, name) VALUES ($1, $2)`, [guid, `PC-${tag}${i}`]);
    await t.ctx.requests.createApproved(api, { applicationId: VISIO, clientGuid: guid });
  }
}
