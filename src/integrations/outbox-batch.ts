import type { JobsOptions } from 'bullmq';
import type { AppContext } from '../app-context.ts';
import { webhookEmissions, type DomainEvent } from '../core/events.ts';
import { toDomainEvent } from '../core/outbox.ts';
import { addDeviceManagerOrders, deviceManagersFor } from './device-managers/connector-fanout.ts';
import { deliveryBundles, jobIds, onWaitingGrid, type AppQueues } from './queue/queues.ts';
import { webhookBody } from './webhooks/signing.ts';

/** Outbox events fanned out per transaction (and per addBulk). */
export const RELAY_BATCH = 200;

export interface BatchFanOut {
  events: number;
  deliveries: { id: string; endpointId: string }[];
  orders: string[];
  effects: { outboxId: string; target: string }[];
}

/**
 * Fans out up to `limit` outbox events in one transaction: the events are claimed with SKIP LOCKED (relays on
 * other workers take the next ones), every webhook delivery of the batch is one INSERT ... SELECT, every notifier
 * effect one INSERT, and the events are marked done in one UPDATE. Connector orders keep their own per-event logic
 * (the applications' device managers read once per batch).
 */
export async function fanOutBatch(ctx: AppContext, limit = RELAY_BATCH): Promise<BatchFanOut> {
  const targets = [...new Set(ctx.notifiers.map((n) => n.platform))];
  return ctx.db.tx(async (tx) => {
    const rows = await tx.query<{ id: string; payload: Omit<DomainEvent, 'id'> }>(
      // an event whose own relay job failed (last_error) is left to that job and the reconciler, so one bad event
      // cannot fail every batch it would be part of
      `SELECT id, payload FROM outbox WHERE status <> 'done' AND last_error IS NULL ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED`,
      [limit],
    );
    if (rows.length === 0) return { events: 0, deliveries: [], orders: [], effects: [] };
    const ids = rows.map((r) => r.id);
    const hooks: { outboxId: string; type: string; body: string }[] = [];
    const events = rows.map((r) => toDomainEvent(r));
    const managers = await deviceManagersFor(tx, events);
    const orders: string[] = [];
    for (const [i, event] of events.entries()) {
      const id = rows[i]!.id;
      for (const h of webhookEmissions(event))
        hooks.push({ outboxId: id, type: h.type, body: webhookBody(h.type, event.occurredAt, h.data) });
      const order = await addDeviceManagerOrders(tx, id, event, managers);
      if (order) orders.push(order);
    }
    const deliveries =
      hooks.length === 0
        ? []
        : await tx.query<{ id: string; endpoint_id: string }>(
            // one row per (event, webhook type, subscribed endpoint); 'msg_' || id is messageIdOf(id)
            `INSERT INTO webhook_deliveries (id, message_id, endpoint_id, outbox_id, event_type, body, status, next_attempt_at)
       SELECT x.id, 'msg_' || x.id, x.endpoint_id, x.outbox_id, x.type, x.body, 'pending', now()
         FROM (SELECT gen_random_uuid() AS id, e.id AS endpoint_id, h.outbox_id, h.type, h.body, h.ord, e.created_at
                 FROM unnest($1::uuid[], $2::text[], $3::text[]) WITH ORDINALITY AS h(outbox_id, type, body, ord)
                 JOIN webhook_endpoints e ON e.enabled AND (h.type = ANY(e.events) OR '*' = ANY(e.events))) x
        ORDER BY x.ord, x.created_at
       ON CONFLICT (outbox_id, endpoint_id, event_type) WHERE outbox_id IS NOT NULL DO NOTHING
       RETURNING id, endpoint_id`,
            [hooks.map((h) => h.outboxId), hooks.map((h) => h.type), hooks.map((h) => h.body)],
          );
    if (targets.length) {
      await tx.query(
        `INSERT INTO outbox_effects (outbox_id, target) SELECT o, t FROM unnest($1::uuid[]) o CROSS JOIN unnest($2::text[]) t ON CONFLICT DO NOTHING`,
        [ids, targets],
      );
    }
    await tx.query(
      `UPDATE outbox SET status = 'done', processed_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    return {
      events: rows.length,
      deliveries: deliveries.map((d) => ({ id: d.id, endpointId: d.endpoint_id })),
      orders,
      effects: ids.flatMap((outboxId) => targets.map((target) => ({ outboxId, target }))),
    };
  });
}

/**
 * Adds the fanned-out work in one addBulk per queue; the job ids are new, so nothing finished can shadow them. The
 * deliveries of an endpoint whose deliveries wait in lines in this process (`waiting`) go straight into a line of
 * their own, due a moment later: in fresh bundles, each would cost a job's round trip through Redis and the
 * worker only to join such a line.
 */
export async function enqueueBatch(queues: AppQueues, b: BatchFanOut, waiting?: (endpointId: string) => boolean): Promise<void> {
  const lines = new Map<string, string[]>();
  const bundled: BatchFanOut['deliveries'] = [];
  for (const d of b.deliveries) {
    if (!waiting?.(d.endpointId)) bundled.push(d);
    else if (lines.has(d.endpointId)) lines.get(d.endpointId)!.push(d.id);
    else lines.set(d.endpointId, [d.id]);
  }
  const due = onWaitingGrid(Date.now() + 1);
  await Promise.all([
    ...[...lines].map(([endpointId, ids]) => queues.waitingLine(ids, endpointId, 1, due)),
    bundled.length && queues.webhooks.addBulk(deliveryBundles(bundled)),
    b.orders.length &&
      queues.deviceManagers.addBulk(
        b.orders.map((id) => ({ name: 'order', data: { deliveryId: id }, opts: { jobId: jobIds.delivery(id) } })),
      ),
    b.effects.length &&
      queues.notify.addBulk(b.effects.map((f) => ({ name: 'notify', data: f, opts: { jobId: jobIds.notify(f.outboxId, f.target) } }))),
  ]);
}

const delayOpts = (jobId: string, delayMs: number): JobsOptions => ({ jobId, delay: Math.max(0, Math.round(delayMs)) });

/**
 * After Redis came back empty: every unfinished thing Postgres holds goes back on its queue at once, in pages
 * with addBulk (a job id that is somehow still there makes BullMQ skip that one). Outbox events are fanned out
 * after the pending deliveries are re-added: the other way round, every delivery the fan-out had just queued in a
 * bundle (whose job id is not its own) was queued a second time.
 */
export async function requeueEverything(
  ctx: AppContext,
  queues: AppQueues,
  page = 1000,
): Promise<{ outbox: number; deliveries: number; effects: number }> {
  let deliveries = 0;
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const rows = await ctx.db.query<{ id: string; endpoint_id: string | null; delay_ms: number }>(
      `SELECT id, endpoint_id, GREATEST(0, EXTRACT(EPOCH FROM (coalesce(next_attempt_at, now()) - now())) * 1000)::float8 AS delay_ms
         FROM webhook_deliveries WHERE status = 'pending' AND id > $1 ORDER BY id LIMIT $2`,
      [after, page],
    );
    if (rows.length === 0) break;
    after = rows[rows.length - 1]!.id;
    deliveries += rows.length;
    // the due ones in bundles (as the relay adds them), the ones waiting for a retry on their own
    const due: typeof rows = [];
    const waiting: typeof rows = [];
    for (const r of rows) if (r.endpoint_id) (Number(r.delay_ms) > 0 ? waiting : due).push(r);
    const orders = rows.filter((r) => !r.endpoint_id);
    await Promise.all([
      due.length && queues.webhooks.addBulk(deliveryBundles(due.map((r) => ({ id: r.id, endpointId: r.endpoint_id! })))),
      waiting.length &&
        queues.webhooks.addBulk(
          waiting.map((r) => ({
            name: 'deliver',
            data: { deliveryId: r.id, endpointId: r.endpoint_id! },
            opts: delayOpts(jobIds.delivery(r.id), Number(r.delay_ms)),
          })),
        ),
      orders.length &&
        queues.deviceManagers.addBulk(
          orders.map((r) => ({
            name: 'order',
            data: { deliveryId: r.id },
            opts: delayOpts(jobIds.delivery(r.id), Number(r.delay_ms) || 0),
          })),
        ),
    ]);
  }
  let outbox = 0;
  for (;;) {
    const b = await fanOutBatch(ctx);
    if (b.events === 0) break;
    outbox += b.events;
    await enqueueBatch(queues, b);
  }
  // events the batch leaves to their own relay job (it failed before) get that job back
  const failing = await ctx.db.query<{ id: string }>(
    `SELECT id FROM outbox WHERE status <> 'done' AND last_error IS NOT NULL ORDER BY seq LIMIT $1`,
    [page],
  );
  if (failing.length)
    await queues.outbox.addBulk(failing.map((r) => ({ name: 'relay', data: { outboxId: r.id }, opts: { jobId: jobIds.relay(r.id) } })));
  outbox += failing.length;
  let effects = 0;
  let afterEffect = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const rows = await ctx.db.query<{ id: string; outbox_id: string; target: string }>(
      `SELECT id, outbox_id, target FROM outbox_effects WHERE status = 'pending' AND id > $1 ORDER BY id LIMIT $2`,
      [afterEffect, page],
    );
    if (rows.length === 0) break;
    afterEffect = rows[rows.length - 1]!.id;
    effects += rows.length;
    await queues.notify.addBulk(
      rows.map((f) => ({
        name: 'notify',
        data: { outboxId: f.outbox_id, target: f.target },
        opts: { jobId: jobIds.notify(f.outbox_id, f.target) },
      })),
    );
  }
  return { outbox, deliveries, effects };
}
