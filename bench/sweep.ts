import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { systemClock } from '../src/core/clock.ts';
import { TimerService } from '../src/core/timer-service.ts';
import { startWorkers } from '../src/integrations/queue/workers.ts';
import { benchContext, REDIS_URL } from './dispatch.ts';
import { round, seedPending } from './support.ts';

async function redisFigures(prefix: string) {
  const redis = new Redis(REDIS_URL, { maxRetriesPerRequest: 1 });
  try {
    const info = await redis.info('memory');
    const used = Number(/used_memory:(\d+)/.exec(info)?.[1] ?? 0);
    let keys = 0;
    let cursor = '0';
    do {
      const [next, found] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
      cursor = next;
      keys += found.length;
    } while (cursor !== '0');
    return { usedMemoryMb: round(used / 2 ** 20, 1), keysUnderPrefix: keys };
  } finally {
    redis.disconnect();
  }
}

/**
 * Sweep: `due` reminders due among N pending requests, for each N in `sizes` (the same database grows from one
 * size to the next). Time for one sweeper to fire them all (the median of three rounds); timers live in Postgres behind partial indexes on
 * their due-at columns, so the time follows the due rows, not N. Redis (with the workers' relay running) holds
 * no per-request state: its figures are read at each size.
 */
export async function sweepScenario(opts: { sizes: number[]; due: number }) {
  const b = await benchContext('sweep');
  const workers = await startWorkers(b.ctx, { sweeper: false });
  try {
    const timers = new TimerService(b.db, systemClock, { batchSize: 500 });
    const runs: Record<string, unknown>[] = [];
    let seeded = 0;
    for (const size of opts.sizes) {
      const seedStart = performance.now();
      if (seeded === 0) await seedPending(b.db, size);
      else await seedMore(b.db, size - seeded, seeded);
      seeded = size;
      // the rows just inserted (and their due reminders) would otherwise be vacuumed and analysed by autovacuum
      // while the sweep is being timed
      await b.db.query('VACUUM (ANALYZE) requests, request_reminders');
      const seedSeconds = (performance.now() - seedStart) / 1000;
      const redis = await redisFigures(b.prefix);
      // three rounds, each with the previous round's events relayed first; the median is the figure
      const rounds: number[] = [];
      let fired = { reminder: 0 };
      for (let round = 0; round < 3; round++) {
        await settled(b.db);
        await b.db.query(
          `UPDATE requests SET next_reminder_at = now() - interval '1 minute'
            WHERE id IN (SELECT id FROM requests WHERE status = 'pending' AND next_reminder_at > now() ORDER BY random() LIMIT $1)`,
          [opts.due],
        );
        const started = performance.now();
        fired = await timers.sweep();
        rounds.push((performance.now() - started) / 1000);
      }
      const seconds = [...rounds].sort((x, y) => x - y)[1]!;
      runs.push({
        pending: size,
        remindersDue: opts.due,
        fired: fired.reminder,
        secondsToFire: round(seconds, 2),
        rounds: rounds.map((x) => round(x, 2)),
        perSecond: round(fired.reminder / seconds),
        seedSeconds: round(seedSeconds, 1),
        redis,
      });
    }
    const first = runs[0]!.secondsToFire as number;
    const last = runs.at(-1)!.secondsToFire as number;
    return {
      scenario: 'sweep',
      runs,
      ratioLargestToSmallest: round(last / first, 2),
      redisKeysGrowth:
        (runs.at(-1)!.redis as { keysUnderPrefix: number }).keysUnderPrefix -
        (runs[0]!.redis as { keysUnderPrefix: number }).keysUnderPrefix,
      targets: { ratioLargestToSmallest: 1.3 },
    };
  } finally {
    await workers.stop();
    await b.drop();
  }
}

/** Waits until the relay has fanned out every outbox event (the previous round's reminders). */
async function settled(db: import('../src/db/database.ts').Database) {
  for (let i = 0; i < 600; i++) {
    const { n } = await db.one<{ n: string }>(`SELECT count(*) AS n FROM outbox WHERE status <> 'done'`);
    if (Number(n) === 0) return;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** More pending requests for the application seedPending made, with users and devices numbered after `from`. */
async function seedMore(db: import('../src/db/database.ts').Database, n: number, from: number) {
  const policy = (await db.one<{ policy: unknown }>('SELECT policy FROM requests LIMIT 1')).policy;
  for (let done = 0; done < n; done += 100_000) {
    const chunk = Math.min(100_000, n - done);
    const start = from + done + 1;
    await db.query(
      `WITH u AS (INSERT INTO identities (username, display_name) SELECT 'B\\u' || g, 'User ' || g FROM generate_series($1::int, $1::int + $2::int - 1) g RETURNING id, username),
            d AS (INSERT INTO devices (client_guid, name, primary_user_id) SELECT 'GUID:' || md5(u.username), 'PC-' || u.username, u.id FROM u RETURNING id, primary_user_id)
       INSERT INTO requests (application_id, requester_id, device_id, source, status, current_stage, justification, answers, policy,
                             deadline_at, stage_started_at, next_reminder_at, created_at, updated_at)
       SELECT 'App_bench', d.primary_user_id, d.id, 'api', 'pending', 0, 'bench', '{}', $3, now() + interval '14 days', now(), now() + interval '1 day', now(), now() FROM d`,
      [start, chunk, JSON.stringify(policy)],
    );
  }
}
