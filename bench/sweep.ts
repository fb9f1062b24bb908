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
 * Sweep: `due` reminders due among N pending requests, for each N in `sizes`, each size in a database of its own.
 * Time for one sweeper to fire them all: the median of five rounds per size, the sizes taking turns round by round
 * (so a machine whose speed drifts over the minutes of the run weighs on every size alike; one size after the other,
 * the ratio moved 0.80–1.58 between runs of the same code). Timers live in Postgres behind partial indexes on their
 * due-at columns, so the time follows the due rows, not N. Redis (with the workers' relay running) holds no
 * per-request state: its figures are read at each size.
 */
export async function sweepScenario(opts: { sizes: number[]; due: number; rounds?: number }) {
  const sizes: Sized[] = [];
  try {
    for (const size of opts.sizes) {
      const b = await benchContext('sweep');
      const sized: Sized = {
        size,
        b,
        workers: await startWorkers(b.ctx, { sweeper: false }),
        timers: new TimerService(b.db, systemClock, { batchSize: 500 }),
        rounds: [],
        fired: 0,
      };
      sizes.push(sized);
      const seedStart = performance.now();
      const first = Math.min(size, 100_000);
      await seedPending(b.db, first);
      if (size > first) await seedMore(b.db, size - first, first);
      // the rows just inserted (and their due reminders) would otherwise be vacuumed and analysed by autovacuum
      // while the sweep is being timed
      await b.db.query('VACUUM (ANALYZE) requests, request_reminders');
      sized.seedSeconds = (performance.now() - seedStart) / 1000;
      sized.redis = await redisFigures(b.prefix);
    }
    for (let r = 0; r < (opts.rounds ?? 5); r++) {
      // the order flips every round: neither size always runs first
      for (const sized of r % 2 ? [...sizes].reverse() : sizes) {
        // every database's relay idle first: one's fan-out must not run beside another's timed sweep
        for (const other of sizes) await settled(other.b.db);
        await sweepRound(sized, opts.due);
      }
    }
    const runs = sizes.map(({ size, rounds, fired, seedSeconds, redis }) => {
      const seconds = [...rounds].sort((x, y) => x - y)[Math.floor(rounds.length / 2)]!;
      return {
        pending: size,
        remindersDue: opts.due,
        fired,
        secondsToFire: round(seconds, 2),
        rounds: rounds.map((x) => round(x, 2)),
        perSecond: round(fired / seconds),
        seedSeconds: round(seedSeconds ?? 0, 1),
        redis,
      };
    });
    const first = runs[0]!.secondsToFire;
    const last = runs.at(-1)!.secondsToFire;
    return {
      scenario: 'sweep',
      runs,
      ratioLargestToSmallest: round(last / first, 2),
      redisKeysGrowth: runs.at(-1)!.redis!.keysUnderPrefix - runs[0]!.redis!.keysUnderPrefix,
      targets: { ratioLargestToSmallest: 1.3 },
    };
  } finally {
    for (const { b, workers } of sizes) {
      await workers.stop();
      await b.drop();
    }
  }
}

interface Sized {
  size: number;
  b: Awaited<ReturnType<typeof benchContext>>;
  workers: Awaited<ReturnType<typeof startWorkers>>;
  timers: TimerService;
  rounds: number[];
  fired: number;
  seedSeconds?: number;
  redis?: Awaited<ReturnType<typeof redisFigures>>;
}

/** One timed round: `due` reminders made due and swept. */
async function sweepRound(sized: Sized, due: number): Promise<void> {
  const { db } = sized.b;
  await db.query(
    `UPDATE requests SET next_reminder_at = now() - interval '1 minute'
      WHERE id IN (SELECT id FROM requests WHERE status = 'pending' AND next_reminder_at > now() ORDER BY random() LIMIT $1)`,
    [due],
  );
  const started = performance.now();
  const fired = await sized.timers.sweep();
  sized.rounds.push((performance.now() - started) / 1000);
  sized.fired = fired.reminder;
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
