import { createHash } from 'node:crypto';
import { Queue, type JobsOptions } from 'bullmq';
import type { Redis } from 'ioredis';
import type { AppContext } from '../../app-context.ts';
import type { Queryable } from '../../db/database.ts';
import { stillPending } from '../../db/pending-work.ts';
import { createRedis } from './connection.ts';
import { NOTIFY_BACKOFF } from './notify-retry.ts';

export const queueNames = { outbox: 'outbox', webhooks: 'webhooks', notify: 'notify', deviceManagers: 'device-managers' } as const;

export interface OutboxJob {
  outboxId: string;
}
export interface DeliveryJob {
  deliveryId: string;
  /** the webhook endpoint, so the per-endpoint gate needs no database read (absent on connector orders) */
  endpointId?: string;
  /** how often the endpoint's gate has sent this job back to wait (its pauses grow) */
  gateWaits?: number;
  /** a bundle (webhook-worker.ts): further fresh deliveries to the same endpoint carried by this job */
  more?: string[];
}

/** Fresh deliveries to one endpoint per webhook job: a backlog costs a queue round trip per bundle, not per delivery. */
export const DELIVERY_BUNDLE = 32;

/**
 * Deliveries per job sent back to wait for their endpoint (a line): a slow endpoint's queue goes through Redis in a
 * few jobs (with bundles of eight, each of its 3000 queued deliveries cost about as much worker time as a delivery
 * made).
 */
export const WAITING_BUNDLE = 256;

/** Lines of one endpoint come due together, on a grid, so their jobs run side by side and go back as one. */
export const onWaitingGrid = (at: number) => Math.ceil(at / 100) * 100;

/** The webhook jobs for fresh deliveries: one per bundle of up to DELIVERY_BUNDLE deliveries to the same endpoint. */
export function deliveryBundles(deliveries: { id: string; endpointId: string }[], size = DELIVERY_BUNDLE) {
  const byEndpoint = new Map<string, string[]>();
  for (const d of deliveries) {
    const ids = byEndpoint.get(d.endpointId) ?? [];
    byEndpoint.set(d.endpointId, ids);
    ids.push(d.id);
  }
  return [...byEndpoint].flatMap(([endpointId, ids]) =>
    Array.from({ length: Math.ceil(ids.length / size) }, (_, i) => {
      const [deliveryId, ...more] = ids.slice(i * size, (i + 1) * size) as [string, ...string[]];
      return {
        name: 'deliver',
        data: (more.length ? { deliveryId, endpointId, more } : { deliveryId, endpointId }) satisfies DeliveryJob,
        opts: { jobId: more.length ? jobIds.bundle([deliveryId, ...more]) : jobIds.delivery(deliveryId) },
      };
    }),
  );
}
export interface NotifyJob {
  outboxId: string;
  target: string;
  /** how many times the platform's rate limit has postponed this job (those waits spend no attempt) */
  rateLimitWaits?: number;
}

const carriedKey = (prefix: string, endpointId: string) => `${prefix}:${queueNames.webhooks}:carried:${endpointId}`;

/** Job ids are the Postgres ids, so enqueueing the same thing twice is a no-op while the first is queued. */
export const jobIds = {
  relay: (outboxId: string) => outboxId,
  delivery: (deliveryId: string) => deliveryId,
  // a bundle of fresh deliveries, named by all of them: adding the same bundle twice is a no-op, while bundles that
  // merely share a first delivery (the relay's and a wipe recovery's, grouped differently) never shadow each other,
  // as a finished job kept under the same id would make BullMQ drop the other silently; the deliveries' own ids
  // stay free for their retries
  // a bundle sent back by its endpoint's gate is a new job, named also by how often it has waited: never the id of
  // the run that sends it back (BullMQ would drop the add while that job is active)
  bundle: (deliveryIds: readonly string[], gateWaits = 0) =>
    `bundle-${deliveryIds[0]}-${createHash('sha256')
      .update(deliveryIds.join(',') + (gateWaits ? `#${gateWaits}` : ''))
      .digest('hex')
      .slice(0, 16)}`,
  // BullMQ refuses ids with a single ':' (reserved for its repeatable jobs), hence '-'
  notify: (outboxId: string, target: string) => `${outboxId}-${target}`,
};

// completed jobs linger briefly for Bull Board; nothing depends on them being kept
const keep: Pick<JobsOptions, 'removeOnComplete' | 'removeOnFail'> = {
  removeOnComplete: { age: 3600, count: 5000 },
  removeOnFail: { age: 7 * 24 * 3600, count: 5000 },
};

/** The producer side of the three queues. One instance per context, shared by workers, routes and metrics. */
export class AppQueues {
  readonly outbox: Queue<OutboxJob>;
  readonly webhooks: Queue<DeliveryJob>;
  readonly notify: Queue<NotifyJob>;
  /** connector orders (Intune, Configuration Manager): webhook_deliveries rows with a connector instead of an endpoint */
  readonly deviceManagers: Queue<DeliveryJob>;
  private readonly lineMarkMs: number;

  constructor(
    readonly connection: Redis,
    readonly prefix: string,
    /** where ensure() checks that work a finished job stands for is still pending */
    private readonly db: Queryable,
    tuning: {
      notifyBackoffMs?: number;
      /** the reconciler's interval: lines mark their endpoint for twice it */
      reconcileMs?: number;
    } = {},
  ) {
    this.lineMarkMs = 2 * (tuning.reconcileMs ?? 30_000);
    const opts = { connection, prefix };
    this.outbox = new Queue<OutboxJob>(queueNames.outbox, {
      ...opts,
      defaultJobOptions: { ...keep, attempts: 10, backoff: { type: 'exponential', delay: 1000 } },
    });
    this.webhooks = new Queue<DeliveryJob>(queueNames.webhooks, {
      ...opts,
      defaultJobOptions: { ...keep, attempts: 10, backoff: { type: 'exponential', delay: 1000 } },
    });
    // custom backoff (notify-retry.ts): exponential with jitter, never sooner than a platform's Retry-After
    this.notify = new Queue<NotifyJob>(queueNames.notify, {
      ...opts,
      defaultJobOptions: { ...keep, attempts: 8, backoff: { type: NOTIFY_BACKOFF, delay: tuning.notifyBackoffMs ?? 2000 } },
    });
    this.deviceManagers = new Queue<DeliveryJob>(queueNames.deviceManagers, {
      ...opts,
      defaultJobOptions: { ...keep, attempts: 10, backoff: { type: 'exponential', delay: 1000 } },
    });
    // the connection's own listener reports an outage; without one here BullMQ prints each error's stack to stderr
    for (const q of this.all()) q.on('error', () => undefined);
  }

  /**
   * Lines (a gated endpoint's deliveries waiting together, webhook-worker.ts) carry deliveries under job ids that are
   * not their own, so the reconciler cannot tell from a job id that such a delivery has a job. Adding a line
   * (waitingLine) marks its endpoint until two reconcile intervals past the line's due time (a line that goes back is
   * added again); the reconciler leaves the deliveries of a marked endpoint to its lines (each would get a second
   * job: a slow endpoint's whole queue, 1000 per pass). One whose job was lost meanwhile (a failed enqueue) is
   * re-added once the endpoint's lines are gone.
   */
  private async markCarried(endpointId: string, ttlMs: number): Promise<void> {
    const key = carriedKey(this.prefix, endpointId);
    const ms = Math.max(1, Math.round(ttlMs));
    // a mark is only ever lengthened: a line due later keeps its endpoint marked past a shorter mark
    await this.connection.multi().set(key, '1', 'PX', ms, 'NX').pexpire(key, ms, 'GT').exec();
  }

  /** The endpoints (of those given) with deliveries waiting in lines lately. */
  async carriedOf(endpointIds: string[]): Promise<Set<string>> {
    if (endpointIds.length === 0) return new Set();
    const marks = await this.connection.mget(...endpointIds.map((id) => carriedKey(this.prefix, id)));
    return new Set(endpointIds.filter((_, i) => marks[i] !== null));
  }

  all(): Queue[] {
    return [this.outbox, this.webhooks, this.notify, this.deviceManagers] as Queue[];
  }

  relay(outboxId: string): Promise<void> {
    return this.ensure(this.outbox as Queue, 'relay', { outboxId }, jobIds.relay(outboxId), () => stillPending.relay(this.db, outboxId));
  }

  delivery(deliveryId: string, delayMs = 0, endpointId?: string): Promise<void> {
    return this.ensure(
      this.webhooks as Queue,
      'deliver',
      { deliveryId, ...(endpointId ? { endpointId } : {}) },
      jobIds.delivery(deliveryId),
      () => stillPending.delivery(this.db, deliveryId),
      delayMs,
    );
  }

  /**
   * Deliveries to one endpoint its gate sent back to wait, as one job (a line, of one delivery or more): a slow
   * endpoint's queue then moves through Redis a bundle at a time.
   */
  private waitingBundle(
    deliveryIds: readonly [string, ...string[]],
    endpointId: string,
    gateWaits: number,
    delayMs: number,
  ): Promise<void> {
    const [deliveryId, ...more] = deliveryIds;
    return this.ensure(
      this.webhooks as Queue,
      'deliver',
      { deliveryId, endpointId, gateWaits, more } satisfies DeliveryJob,
      jobIds.bundle(deliveryIds, gateWaits),
      () => stillPending.anyDelivery(this.db, deliveryIds),
      delayMs,
    );
  }

  /**
   * One endpoint's deliveries waiting for it, in lines of up to WAITING_BUNDLE, due at `at` (epoch ms), with the
   * endpoint marked for the reconciler (unmarked when Redis refuses the mark: the reconciler then adds duplicates).
   */
  async waitingLine(deliveryIds: string[], endpointId: string, gateWaits: number, at: number): Promise<void> {
    const ids = [...new Set(deliveryIds)];
    const adds: Promise<void>[] = [this.markCarried(endpointId, at - Date.now() + this.lineMarkMs).catch(() => undefined)];
    for (let i = 0; i < ids.length; i += WAITING_BUNDLE)
      adds.push(this.waitingBundle(ids.slice(i, i + WAITING_BUNDLE) as [string, ...string[]], endpointId, gateWaits, at - Date.now()));
    await Promise.all(adds);
  }

  order(deliveryId: string, delayMs = 0): Promise<void> {
    return this.ensure(
      this.deviceManagers as Queue,
      'order',
      { deliveryId },
      jobIds.delivery(deliveryId),
      () => stillPending.order(this.db, deliveryId),
      delayMs,
    );
  }

  notification(outboxId: string, target: string): Promise<void> {
    return this.ensure(this.notify as Queue, 'notify', { outboxId, target }, jobIds.notify(outboxId, target), () =>
      stillPending.notification(this.db, outboxId, target),
    );
  }

  /**
   * Adds the job unless one with this id is already waiting, delayed or running. A finished copy (kept for
   * Bull Board) would make BullMQ ignore the add, so it is removed first, but only once Postgres confirms the
   * work is still pending: callers read Postgres before calling, and the job may have finished and settled the
   * work since (processors commit before their job finishes, so a finished job's work is settled by now unless
   * something reset it; a webhook success is the exception, its record may follow its job by a moment, and the
   * job added then finds the delivery leased and sends nothing). A job that turns active in between is locked, so
   * remove() fails and add() is then a harmless duplicate.
   */
  private async ensure(
    queue: Queue,
    name: string,
    data: object,
    jobId: string,
    pending: () => Promise<boolean>,
    delayMs = 0,
  ): Promise<void> {
    const state = await queue.getJobState(jobId);
    if (state !== 'completed' && state !== 'failed' && state !== 'unknown') return;
    if (state !== 'unknown' && !(await pending())) return;
    // 'unknown' may still leave a job hash behind without any list pointing at it (a partial wipe, a crash
    // between Redis writes); BullMQ would treat it as a duplicate and never run it, so clear it first
    await queue.remove(jobId).catch(() => undefined);
    await queue.add(name, data, { jobId, delay: Math.max(0, Math.round(delayMs)) });
  }

  async close(): Promise<void> {
    await Promise.allSettled(this.all().map((q) => q.close()));
    this.connection.disconnect();
  }
}

const perContext = new WeakMap<AppContext, AppQueues>();

/** The context's producer queues, created on first use (the web role needs them only for redeliver and Bull Board). */
export function queuesFor(ctx: AppContext): AppQueues {
  let q = perContext.get(ctx);
  if (!q) {
    q = new AppQueues(
      createRedis(ctx.config.REDIS_URL, 'producer', `${ctx.config.QUEUE_PREFIX}:producer`),
      ctx.config.QUEUE_PREFIX,
      ctx.db,
    );
    perContext.set(ctx, q);
  }
  return q;
}

export async function closeQueues(ctx: AppContext): Promise<void> {
  const q = perContext.get(ctx);
  perContext.delete(ctx);
  await q?.close();
}
