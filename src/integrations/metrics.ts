import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AppContext } from '../app-context.ts';
import { queuesFor } from './queue/queues.ts';

export interface Metrics {
  registry: Registry;
  /** per attempt, by outcome (succeeded, retry, failed, gone, refused), in the process that sent it */
  deliveryAttempts: Counter<'outcome'>;
  deliveryLatency: Histogram<'outcome'>;
}

const perContext = new WeakMap<AppContext, Metrics>();

/**
 * One registry per context (tests run several in one process). State that lives in Postgres (requests by
 * state, decisions, deliveries, outbox lag) is read at scrape time, so every web process reports the same
 * truth no matter which worker did the work.
 */
export function metricsFor(ctx: AppContext): Metrics {
  const existing = perContext.get(ctx);
  if (existing) return existing;
  const registry = new Registry();
  const db = ctx.db;
  const safe = async (what: string, fn: () => Promise<void>) => {
    try {
      await fn();
    } catch (e) {
      ctx.logger.warn({ err: e }, `metrics: could not read ${what}`);
    }
  };

  new Gauge({
    name: 'signoff_requests',
    help: 'Requests by state',
    labelNames: ['state'],
    registers: [registry],
    async collect() {
      await safe('requests', async () => {
        this.reset();
        for (const s of ['pending', 'approved', 'denied', 'cancelled', 'expired', 'revoked']) this.set({ state: s }, 0);
        for (const r of await db.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM requests GROUP BY status')) this.set({ state: r.status }, Number(r.n));
      });
    },
  });
  new Counter({
    name: 'signoff_decisions_total',
    help: 'Approver decisions recorded, by decision',
    labelNames: ['decision'],
    registers: [registry],
    async collect() {
      await safe('decisions', async () => {
        this.reset();
        for (const r of await db.query<{ decision: string; n: string }>('SELECT decision, count(*) AS n FROM request_decisions GROUP BY decision')) this.inc({ decision: r.decision }, Number(r.n));
      });
    },
  });
  new Gauge({
    name: 'signoff_webhook_deliveries',
    help: 'Webhook deliveries by outcome (pending, succeeded, failed)',
    labelNames: ['outcome'],
    registers: [registry],
    async collect() {
      await safe('deliveries', async () => {
        this.reset();
        for (const s of ['pending', 'succeeded', 'failed']) this.set({ outcome: s }, 0);
        for (const r of await db.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM webhook_deliveries GROUP BY status')) this.set({ outcome: r.status }, Number(r.n));
      });
    },
  });
  new Gauge({
    name: 'signoff_outbox_lag_seconds',
    help: 'Age of the oldest outbox event not yet fanned out (0 when none)',
    registers: [registry],
    async collect() {
      await safe('outbox lag', async () => {
        const r = await db.one<{ lag: number | null }>(`SELECT EXTRACT(EPOCH FROM (now() - min(created_at)))::float8 AS lag FROM outbox WHERE status <> 'done'`);
        this.set(Math.max(0, r.lag ?? 0));
      });
    },
  });
  new Gauge({
    name: 'signoff_outbox_pending',
    help: 'Outbox events not yet fanned out',
    registers: [registry],
    async collect() {
      await safe('outbox', async () => this.set(Number((await db.one<{ n: string }>(`SELECT count(*) AS n FROM outbox WHERE status <> 'done'`)).n)));
    },
  });
  new Gauge({
    name: 'signoff_queue_jobs',
    help: 'BullMQ jobs by queue and state',
    labelNames: ['queue', 'state'],
    registers: [registry],
    async collect() {
      await safe('queue depths', async () => {
        this.reset();
        for (const q of queuesFor(ctx).all()) {
          const counts = await q.getJobCounts('waiting', 'active', 'delayed', 'failed', 'completed', 'prioritized');
          for (const [state, n] of Object.entries(counts)) this.set({ queue: q.name, state }, n);
        }
      });
    },
  });

  const metrics: Metrics = {
    registry,
    deliveryAttempts: new Counter({ name: 'signoff_webhook_attempts_total', help: 'Webhook delivery attempts made by this process, by outcome', labelNames: ['outcome'], registers: [registry] }),
    deliveryLatency: new Histogram({
      name: 'signoff_webhook_delivery_latency_seconds',
      help: 'Latency of webhook delivery attempts',
      labelNames: ['outcome'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
  };
  collectDefaultMetrics({ register: registry, prefix: 'signoff_process_' });
  perContext.set(ctx, metrics);
  return metrics;
}
