import type { AppContext } from '../app-context.ts';
import type { Database } from '../db/database.ts';
import { foldSettledAttempts } from './metrics.ts';
import { startPeriodicTask, type PeriodicTask } from './periodic-task.ts';

export interface PruneResult {
  deliveries: number;
  outbox: number;
}

const BATCH = 1000;
const HOUR_MS = 60 * 60 * 1000;

/** Deletes in batches of short statements, so a large backlog never holds long locks or one huge transaction. */
async function deleteInBatches(db: Database, sql: string, params: unknown[]): Promise<number> {
  let total = 0;
  for (;;) {
    const n = (await db.query(sql, params)).length;
    total += n;
    if (n < BATCH) return total;
  }
}

/**
 * Forgets finished delivery work older than `days` (by the database's clock, which stamped the rows): webhook
 * deliveries that succeeded or failed (with their attempts) and outbox events whose every effect is over.
 * Requests, decisions and the audit log are records and never pruned; neither is unfinished work. A delivery
 * goes only once all its attempts are folded into the metric totals, so the attempt counters keep counting them.
 */
export async function pruneFinishedWork(db: Database, days: number): Promise<PruneResult> {
  await foldSettledAttempts(db);
  const deliveries = await deleteInBatches(
    db,
    `DELETE FROM webhook_deliveries WHERE id IN (
       SELECT d.id FROM webhook_deliveries d
        WHERE d.status IN ('succeeded', 'failed')
          AND d.created_at < now() - make_interval(days => $1) AND d.completed_at < now() - make_interval(days => $1)
          AND NOT EXISTS (SELECT 1 FROM webhook_attempts a, webhook_attempt_rollup r WHERE a.delivery_id = d.id AND a.created_at > r.folded_through)
        LIMIT ${BATCH} FOR UPDATE OF d SKIP LOCKED)
     RETURNING 1`,
    [days],
  );
  // effects go with their event (ON DELETE CASCADE); an event still referenced by a kept delivery stays
  const outbox = await deleteInBatches(
    db,
    `DELETE FROM outbox WHERE id IN (
       SELECT o.id FROM outbox o
        WHERE o.status = 'done' AND o.created_at < now() - make_interval(days => $1)
          AND NOT EXISTS (SELECT 1 FROM outbox_effects f WHERE f.outbox_id = o.id AND f.status = 'pending')
          AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.outbox_id = o.id)
        LIMIT ${BATCH} FOR UPDATE OF o SKIP LOCKED)
     RETURNING 1`,
    [days],
  );
  return { deliveries, outbox };
}

export type Retention = PeriodicTask<PruneResult>;

/** Hourly in every worker process (RETENTION_DAYS=0 turns it off); SKIP LOCKED lets several run at once. */
export function startRetention(ctx: AppContext, opts: { intervalMs?: number } = {}): Retention {
  const log = ctx.logger.child({ component: 'retention' });
  const days = ctx.config.RETENTION_DAYS;
  const intervalMs = opts.intervalMs ?? HOUR_MS;
  return startPeriodicTask(
    async () => {
      const r = await pruneFinishedWork(ctx.db, days);
      if (r.deliveries || r.outbox) log.info({ ...r, days }, 'pruned finished deliveries and outbox events');
      return r;
    },
    {
      intervalMs,
      // not right at start-up: a fleet restarting together should not all prune at once
      firstDelayMs: Math.min(intervalMs, 60_000 + Math.random() * 60_000),
      onError: (e) => log.warn({ err: e }, 'retention pass failed; trying again next interval'),
      enabled: days > 0,
    },
  );
}
