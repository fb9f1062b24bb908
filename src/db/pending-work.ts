import type { Queryable } from './database.ts';

// Whether Postgres still holds a piece of background work as unfinished, by the same condition its processor
// claims it on (a processor that finds the condition false does nothing). The queues ask this before putting a
// finished job back, because the caller's own read of Postgres may be older than the job's finish.

const exists = async (q: Queryable, sql: string, params: unknown[]) => (await q.maybeOne(sql, params)) !== undefined;

export const stillPending = {
  /** fanOut: an event already 'done' is not fanned out again */
  relay: (q: Queryable, outboxId: string) => exists(q, `SELECT 1 FROM outbox WHERE id = $1 AND status <> 'done'`, [outboxId]),
  /** attemptDelivery: only a pending delivery is attempted */
  delivery: (q: Queryable, deliveryId: string) =>
    exists(q, `SELECT 1 FROM webhook_deliveries WHERE id = $1 AND status = 'pending' AND connector IS NULL`, [deliveryId]),
  /** a bundle's job: any of its deliveries still pending */
  anyDelivery: (q: Queryable, deliveryIds: readonly string[]) =>
    exists(q, `SELECT 1 FROM webhook_deliveries WHERE id = ANY($1::uuid[]) AND status = 'pending' AND connector IS NULL`, [deliveryIds]),
  /** attemptOrder: only a pending connector order is attempted */
  order: (q: Queryable, deliveryId: string) =>
    exists(q, `SELECT 1 FROM webhook_deliveries WHERE id = $1 AND status = 'pending' AND connector IS NOT NULL`, [deliveryId]),
  /** runEffect: only a pending effect is handed to its notifier */
  notification: (q: Queryable, outboxId: string, target: string) =>
    exists(q, `SELECT 1 FROM outbox_effects WHERE outbox_id = $1 AND target = $2 AND status = 'pending'`, [outboxId, target]),
};
