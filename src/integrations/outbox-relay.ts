import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { AppContext } from '../app-context.ts';
import { webhookEmissions } from '../core/events.ts';
import { toDomainEvent, type StoredEvent } from '../core/outbox.ts';
import { notifyErrorPolicy } from './queue/notify-retry.ts';
import type { AppQueues } from './queue/queues.ts';
import { WAKE_CHANNELS } from '../db/database.ts';
import { addDeviceManagerOrders } from './device-managers/connector-fanout.ts';
import { messageIdOf, webhookBody } from './webhooks/signing.ts';
import { enqueueBatch, fanOutBatch, RELAY_BATCH, requeueEverything, type BatchFanOut } from './outbox-batch.ts';

export const OUTBOX_CHANNEL = WAKE_CHANNELS.outbox;

interface OutboxRow {
  id: string;
  status: string;
  payload: StoredEvent;
}

export interface FanOut {
  deliveries: { id: string; delayMs: number; endpointId?: string }[];
  /** device-manager connector orders (rows of webhook_deliveries with a connector) */
  orders: { id: string; delayMs: number }[];
  effects: string[];
}

/**
 * Records everything one event fans out to (a delivery row per subscribed endpoint and webhook type, an
 * effect row per notifier) and marks the event done in the same transaction. The row lock makes two relays
 * of one event take turns; the unique keys make the second one a no-op.
 */
export async function fanOut(ctx: AppContext, outboxId: string): Promise<FanOut> {
  const targets = [...new Set(ctx.notifiers.map((n) => n.platform))];
  await ctx.db.tx(async (tx) => {
    const row = await tx.maybeOne<OutboxRow>('SELECT id, status, payload FROM outbox WHERE id = $1 FOR UPDATE', [outboxId]);
    if (!row || row.status === 'done') return;
    const event = toDomainEvent(row);
    for (const hook of webhookEmissions(event)) {
      const endpoints = await tx.query<{ id: string }>(
        `SELECT id FROM webhook_endpoints WHERE enabled AND ($1 = ANY(events) OR '*' = ANY(events)) ORDER BY created_at`,
        [hook.type],
      );
      const body = webhookBody(hook.type, event.occurredAt, hook.data);
      for (const ep of endpoints) {
        const id = randomUUID();
        await tx.query(
          `INSERT INTO webhook_deliveries (id, message_id, endpoint_id, outbox_id, event_type, body, status, next_attempt_at)
           VALUES ($1, $2, $3, $4, $5, $6, 'pending', now())
           ON CONFLICT (outbox_id, endpoint_id, event_type) WHERE outbox_id IS NOT NULL DO NOTHING`,
          [id, messageIdOf(id), ep.id, outboxId, hook.type, body],
        );
      }
    }
    await addDeviceManagerOrders(tx, outboxId, event);
    for (const target of targets) {
      await tx.query(`INSERT INTO outbox_effects (outbox_id, target) VALUES ($1, $2) ON CONFLICT DO NOTHING`, [outboxId, target]);
    }
    await tx.query(`UPDATE outbox SET status = 'done', processed_at = now(), attempts = attempts + 1, last_error = NULL WHERE id = $1`, [
      outboxId,
    ]);
  });
  // whatever is still pending for this event, including leftovers of an earlier relay that died after commit
  const pending = await ctx.db.query<{ id: string; delay_ms: number; connector: string | null; endpoint_id: string | null }>(
    `SELECT id, connector, endpoint_id, GREATEST(0, EXTRACT(EPOCH FROM (next_attempt_at - now())) * 1000)::float8 AS delay_ms
       FROM webhook_deliveries WHERE outbox_id = $1 AND status = 'pending'`,
    [outboxId],
  );
  const effects = await ctx.db.query<{ target: string }>(`SELECT target FROM outbox_effects WHERE outbox_id = $1 AND status = 'pending'`, [
    outboxId,
  ]);
  const due = (rows: typeof pending) =>
    rows.map((d) => ({ id: d.id, delayMs: Number(d.delay_ms) || 0, endpointId: d.endpoint_id ?? undefined }));
  return {
    deliveries: due(pending.filter((d) => !d.connector)),
    orders: due(pending.filter((d) => d.connector)),
    effects: effects.map((e) => e.target),
  };
}

/** The relay job: fan out, then enqueue. An enqueue that fails is picked up by the reconciler. */
export async function relayOutboxEvent(ctx: AppContext, queues: AppQueues, outboxId: string): Promise<FanOut> {
  const result = await fanOut(ctx, outboxId);
  await Promise.all([
    ...result.deliveries.map((d) => queues.delivery(d.id, d.delayMs, d.endpointId)),
    ...result.orders.map((d) => queues.order(d.id, d.delayMs)),
    ...result.effects.map((t) => queues.notification(outboxId, t)),
  ]);
  return result;
}

/**
 * The notify job: hands the event to one notifier, once; failures are recorded and retried by BullMQ (a
 * permanent one, per notifyErrorPolicy, marks the effect failed at once).
 */
export async function runEffect(
  ctx: AppContext,
  outboxId: string,
  target: string,
  /** whether a failure now is the last word (no retry follows): true, false, or decided from the error */
  finalAttempt: boolean | ((error: unknown) => boolean),
): Promise<'done' | 'skipped'> {
  const outcome = await ctx.db.tx(async (tx) => {
    const row = await tx.maybeOne<{ id: string; payload: StoredEvent }>(
      `SELECT f.id, o.payload FROM outbox_effects f JOIN outbox o ON o.id = f.outbox_id
        WHERE f.outbox_id = $1 AND f.target = $2 AND f.status = 'pending' FOR UPDATE OF f SKIP LOCKED`,
      [outboxId, target],
    );
    if (!row) return { kind: 'skipped' as const };
    const notifier = ctx.notifiers.find((n) => n.platform === target);
    if (!notifier) {
      await tx.query(`UPDATE outbox_effects SET status = 'failed', last_error = $2, completed_at = now() WHERE id = $1`, [
        row.id,
        `no ${target} notifier is configured on this worker`,
      ]);
      return { kind: 'skipped' as const };
    }
    try {
      await notifier.handle(toDomainEvent({ id: outboxId, payload: row.payload }));
    } catch (e) {
      const message = (e as Error)?.message ?? String(e);
      // a permanent error will not be retried, so the effect is failed now whatever attempt this was
      const gaveUp = (typeof finalAttempt === 'function' ? finalAttempt(e) : finalAttempt) || notifyErrorPolicy(e).permanent;
      await tx.query(
        `UPDATE outbox_effects SET attempts = attempts + 1, last_error = $2, status = CASE WHEN $3 THEN 'failed' ELSE status END,
                completed_at = CASE WHEN $3 THEN now() ELSE NULL END WHERE id = $1`,
        [row.id, message.slice(0, 2000), gaveUp],
      );
      return { kind: 'error' as const, error: e };
    }
    await tx.query(
      `UPDATE outbox_effects SET status = 'done', attempts = attempts + 1, last_error = NULL, completed_at = now() WHERE id = $1`,
      [row.id],
    );
    return { kind: 'done' as const };
  });
  if (outcome.kind === 'error') throw outcome.error;
  return outcome.kind;
}

/**
 * Re-enqueues everything Postgres says is unfinished: outbox events not done, deliveries and effects still
 * pending. Harmless when the jobs exist (same ids); essential after Redis lost them. A delivery not tried yet is
 * left for a reconcile interval: it went out in a bundle, whose job id is not its own, so at once it would get a
 * second job (at each worker start, every delivery of a backlog did). Neither does a delivery of an endpoint whose
 * deliveries wait in lines (AppQueues.waitingLine marks such endpoints).
 */
export async function reconcileOnce(
  ctx: AppContext,
  queues: AppQueues,
  batch = 1000,
): Promise<{ outbox: number; deliveries: number; effects: number; orders: number }> {
  const outbox = await ctx.db.query<{ id: string }>(`SELECT id FROM outbox WHERE status <> 'done' ORDER BY seq LIMIT $1`, [batch]);
  for (const r of outbox) await queues.relay(r.id);
  const deliveries = await ctx.db.query<{ id: string; endpoint_id: string; delay_ms: number }>(
    `SELECT id, endpoint_id, GREATEST(0, EXTRACT(EPOCH FROM (coalesce(next_attempt_at, now()) - now())) * 1000)::float8 AS delay_ms
       FROM webhook_deliveries
      WHERE status = 'pending' AND connector IS NULL AND (attempts > 0 OR created_at < now() - make_interval(secs => $2::float8 / 1000))
      ORDER BY next_attempt_at NULLS FIRST LIMIT $1`,
    [batch, ctx.config.OUTBOX_RECONCILE_MS],
  );
  const inLines = await queues.carriedOf([...new Set(deliveries.map((d) => d.endpoint_id))]);
  for (const d of deliveries) if (!inLines.has(d.endpoint_id)) await queues.delivery(d.id, Number(d.delay_ms) || 0, d.endpoint_id);
  const orders = await ctx.db.query<{ id: string; delay_ms: number }>(
    `SELECT id, GREATEST(0, EXTRACT(EPOCH FROM (coalesce(next_attempt_at, now()) - now())) * 1000)::float8 AS delay_ms
       FROM webhook_deliveries WHERE status = 'pending' AND connector IS NOT NULL ORDER BY next_attempt_at NULLS FIRST LIMIT $1`,
    [batch],
  );
  for (const d of orders) await queues.order(d.id, Number(d.delay_ms) || 0);
  const effects = await ctx.db.query<{ outbox_id: string; target: string }>(
    `SELECT outbox_id, target FROM outbox_effects WHERE status = 'pending' ORDER BY created_at LIMIT $1`,
    [batch],
  );
  for (const f of effects) await queues.notification(f.outbox_id, f.target);
  return { outbox: outbox.length, deliveries: deliveries.length, effects: effects.length, orders: orders.length };
}

export interface OutboxRelay {
  /** runs one reconcile pass now (also used right after the LISTEN connection comes back) */
  reconcile(): Promise<void>;
  /** fans out what the outbox holds now, in batches (what a NOTIFY triggers) */
  drain(): Promise<void>;
  /** looks for the Redis marker now; when it is gone, re-enqueues everything Postgres holds */
  checkRedis(): Promise<boolean>;
  stop(): Promise<void>;
}

/** A key the relay keeps in Redis: when it is gone, Redis lost its data (FLUSHALL, a restart without persistence). */
export const redisMarkerKey = (prefix: string) => `${prefix}:relay:marker`;
const MARKER_CHECK_MS = 1000;

/**
 * LISTEN on a dedicated connection turns a commit into a batch fan-out within milliseconds; the reconciler every
 * OUTBOX_RECONCILE_MS covers missed notifications. A marker key in Redis, checked every second and on every
 * reconnect, tells when Redis came back empty: then everything unfinished is re-enqueued at once.
 */
export function startOutboxRelay(
  ctx: AppContext,
  queues: AppQueues,
  opts: { /** the endpoint's deliveries wait in lines now (enqueueBatch) */ waiting?: (endpointId: string) => boolean } = {},
): OutboxRelay {
  const log = ctx.logger.child({ component: 'outbox-relay' });
  let stopped = false;
  let client: pg.Client | null = null;
  let reconnectTimer: NodeJS.Timeout | null = null;
  let reconciling: Promise<void> | null = null;
  let draining: Promise<void> | null = null;
  let drainAgain = false;
  let checking: Promise<boolean> | null = null;
  let backoff = 250;
  const marker = redisMarkerKey(queues.prefix);

  const drainOnce = async () => {
    for (;;) {
      drainAgain = false;
      let batch: BatchFanOut;
      try {
        batch = await fanOutBatch(ctx, RELAY_BATCH);
      } catch (e) {
        // one bad event must not hold up the rest: the per-event relay job records its error and retries it
        log.warn({ err: e }, 'batch fan-out failed; relaying event by event');
        const rows = await ctx.db.query<{ id: string }>(`SELECT id FROM outbox WHERE status <> 'done' ORDER BY seq LIMIT $1`, [
          RELAY_BATCH,
        ]);
        for (const r of rows) await queues.relay(r.id).catch(() => undefined);
        return;
      }
      await enqueueBatch(queues, batch, opts.waiting).catch((e) => log.warn({ err: e }, 'could not enqueue; recovered when Redis is back'));
      if (batch.events < RELAY_BATCH && !drainAgain) return;
    }
  };

  const drain = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    if (draining) {
      drainAgain = true;
      return draining;
    }
    draining = drainOnce()
      .catch((e) => log.warn({ err: e }, 'relay failed; the reconciler will try again'))
      .finally(() => {
        draining = null;
      });
    return draining;
  };

  const reconcile = (): Promise<void> => {
    if (stopped) return Promise.resolve();
    // after a re-enqueue in progress (a first start): read meanwhile, the events it holds locked look unrelayed,
    // and each got a relay job whose deliveries then went out a second time, one job each
    reconciling ??= (checking ?? Promise.resolve())
      .then(() => drain())
      .then(() => reconcileOnce(ctx, queues))
      .then((n) => {
        if (n.outbox || n.deliveries || n.effects || n.orders) log.debug(n, 'reconciled');
      })
      .catch((e) => log.warn({ err: e }, 'reconcile failed; will try again'))
      .finally(() => {
        reconciling = null;
      });
    return reconciling;
  };

  const checkRedis = (): Promise<boolean> => {
    if (stopped) return Promise.resolve(false);
    checking ??= (async () => {
      // NX: of several workers, the one that sets the marker again does the re-enqueue
      const set = await queues.connection.set(marker, String(Date.now()), 'NX');
      if (set !== 'OK') return false;
      const n = await requeueEverything(ctx, queues);
      // no marker is also a first start on a new Redis: an alarm only when there was work to put back
      if (n.outbox || n.deliveries || n.effects) log.warn(n, 'Redis came back without its data; re-enqueued what Postgres holds');
      else log.info('Redis holds no queue marker (a first start, or it lost its data); Postgres has no unfinished work to re-enqueue');
      return true;
    })()
      .catch((e) => {
        log.debug({ err: e }, 'Redis marker check failed; trying again');
        return false;
      })
      .finally(() => {
        checking = null;
      });
    return checking;
  };
  const onRedisReady = () => void checkRedis();
  queues.connection.on('ready', onRedisReady);

  const connect = async () => {
    if (stopped) return;
    const c = new pg.Client({ connectionString: ctx.config.DATABASE_URL, application_name: 'signoff-outbox-listener' });
    client = c;
    const retry = () => {
      if (stopped || client !== c) return;
      client = null;
      c.end().catch(() => undefined);
      reconnectTimer = setTimeout(() => void connect(), backoff);
      backoff = Math.min(backoff * 2, 10_000);
    };
    c.on('error', (e) => {
      log.warn({ err: e }, 'LISTEN connection lost; reconnecting');
      retry();
    });
    c.on('end', retry);
    c.on('notification', (msg) => {
      if (msg.channel !== OUTBOX_CHANNEL || !msg.payload) return;
      void drain();
    });
    try {
      await c.connect();
      await c.query(`LISTEN ${OUTBOX_CHANNEL}`);
      backoff = 250;
      // notifications sent while we were not listening are gone; sweep them up
      void reconcile();
    } catch (e) {
      log.warn({ err: e }, 'could not LISTEN; retrying');
      retry();
    }
  };

  void connect();
  const interval = setInterval(() => void reconcile(), ctx.config.OUTBOX_RECONCILE_MS);
  interval.unref();
  const markerTimer = setInterval(() => void checkRedis(), MARKER_CHECK_MS);
  markerTimer.unref();
  // a first start with an empty Redis is the same situation as a wiped one
  void checkRedis();

  return {
    reconcile,
    drain,
    checkRedis,
    async stop() {
      stopped = true;
      clearInterval(interval);
      clearInterval(markerTimer);
      queues.connection.off('ready', onRedisReady);
      if (reconnectTimer) clearTimeout(reconnectTimer);
      const c = client;
      client = null;
      await Promise.allSettled([reconciling, draining, checking]);
      await c?.end().catch(() => undefined);
    },
  };
}
