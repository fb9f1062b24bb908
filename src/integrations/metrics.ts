import { Counter, Gauge, Registry, collectDefaultMetrics, type Metric } from 'prom-client';
import type { AppContext } from '../app-context.ts';
import { aggregateAttemptsSql, DELIVERY_LATENCY_BUCKETS, foldSettledAttempts, type AttemptRow } from '../db/attempt-totals.ts';
import type { Database } from '../db/database.ts';
import { registerAuditMetrics } from './audit-metrics.ts';
import { registerDeviceManagerMetrics } from './device-managers/connector-metrics.ts';
import { DELIVERY_BUNDLE, queuesFor } from './queue/queues.ts';
import { gateFor, type CircuitView } from './webhooks/endpoint-gate.ts';

export interface Metrics {
  registry: Registry;
}

export { DELIVERY_LATENCY_BUCKETS, foldSettledAttempts } from '../db/attempt-totals.ts';

/**
 * Attempts by outcome, with their latency sum and cumulative bucket counts: the folded totals plus the attempts
 * since, read in one statement (one snapshot), so a fold running meanwhile neither hides nor doubles a row.
 */
async function attemptFigures(db: Database): Promise<AttemptRow[]> {
  await foldSettledAttempts(db);
  const rows = await db.query<{ outcome: string; n: string; sum_ms: string; buckets: string[] }>(
    `SELECT outcome, n, sum_ms, buckets FROM webhook_attempt_totals
     UNION ALL ${aggregateAttemptsSql('created_at > (SELECT folded_through FROM webhook_attempt_rollup)')}`,
  );
  const byOutcome = new Map<string, AttemptRow>();
  for (const r of rows) {
    const acc = byOutcome.get(r.outcome) ?? { outcome: r.outcome, n: 0, sum_ms: 0, buckets: DELIVERY_LATENCY_BUCKETS.map(() => 0) };
    acc.n += Number(r.n);
    acc.sum_ms += Number(r.sum_ms);
    acc.buckets = acc.buckets.map((v, i) => v + Number(r.buckets[i] ?? 0));
    byOutcome.set(r.outcome, acc);
  }
  return [...byOutcome.values()].sort((a, b) => a.outcome.localeCompare(b.outcome));
}

type MetricValue = { value: number; labels: Record<string, string | number>; metricName?: string };

/**
 * A metric whose every value is computed at scrape time (prom-client's registry only calls get()). Used for
 * the delivery counter and histogram: the attempts live in Postgres, so any web process reports all of them,
 * whichever worker process made them.
 */
function scrapeTimeMetric(
  registry: Registry,
  def: { name: string; help: string; type: 'counter' | 'histogram'; values: () => Promise<MetricValue[]> },
): void {
  const metric = {
    name: def.name,
    help: def.help,
    type: def.type,
    aggregator: 'sum',
    async get() {
      return { name: def.name, help: def.help, type: def.type, aggregator: 'sum', values: await def.values() };
    },
  };
  registry.registerMetric(metric as unknown as Metric);
}

const perContext = new WeakMap<AppContext, Metrics>();

/**
 * One registry per context (tests run several in one process). Everything but the process metrics is read
 * from PostgreSQL (and queue depths from Redis) at scrape time: requests by state, decisions, deliveries,
 * delivery attempts and their latency, outbox lag. So every web process reports the same complete truth, even
 * when the deliveries were made by `--role worker` processes that have no HTTP server of their own.
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
        for (const r of await db.query<{ status: string; n: string }>('SELECT status, count(*) AS n FROM requests GROUP BY status'))
          this.set({ state: r.status }, Number(r.n));
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
        for (const r of await db.query<{ decision: string; n: string }>(
          'SELECT decision, count(*) AS n FROM request_decisions GROUP BY decision',
        ))
          this.inc({ decision: r.decision }, Number(r.n));
      });
    },
  });
  new Gauge({
    name: 'signoff_webhook_deliveries',
    help: 'Webhook deliveries on record by outcome (pending, succeeded, failed); finished ones leave after RETENTION_DAYS',
    labelNames: ['outcome'],
    registers: [registry],
    async collect() {
      await safe('deliveries', async () => {
        this.reset();
        for (const s of ['pending', 'succeeded', 'failed']) this.set({ outcome: s }, 0);
        for (const r of await db.query<{ status: string; n: string }>(
          'SELECT status, count(*) AS n FROM webhook_deliveries GROUP BY status',
        ))
          this.set({ outcome: r.status }, Number(r.n));
      });
    },
  });
  new Gauge({
    name: 'signoff_outbox_lag_seconds',
    help: 'Age of the oldest outbox event not yet fanned out (0 when none)',
    registers: [registry],
    async collect() {
      await safe('outbox lag', async () => {
        const r = await db.one<{ lag: number | null }>(
          `SELECT EXTRACT(EPOCH FROM (now() - min(created_at)))::float8 AS lag FROM outbox WHERE status <> 'done'`,
        );
        this.set(Math.max(0, r.lag ?? 0));
      });
    },
  });
  new Gauge({
    name: 'signoff_outbox_pending',
    help: 'Outbox events not yet fanned out',
    registers: [registry],
    async collect() {
      await safe('outbox', async () =>
        this.set(Number((await db.one<{ n: string }>(`SELECT count(*) AS n FROM outbox WHERE status <> 'done'`)).n)),
      );
    },
  });
  new Gauge({
    name: 'signoff_queue_jobs',
    help: `BullMQ jobs by queue and state (a webhook job may carry a bundle of up to ${DELIVERY_BUNDLE} fresh deliveries; signoff_webhook_deliveries counts deliveries)`,
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

  // one read of Postgres and Redis per scrape serves both endpoint gauges
  let circuitScrape: Promise<{ name: string; view: CircuitView | undefined }[]> | null = null;
  const circuits = () => {
    circuitScrape ??= (async () => {
      const eps = await db.query<{ id: string; name: string }>('SELECT id, name FROM webhook_endpoints WHERE enabled');
      const views = await gateFor(ctx, queuesFor(ctx).connection).view(eps.map((e) => e.id));
      return eps.map((e) => ({ name: e.name, view: views.get(e.id) }));
    })().finally(() => setImmediate(() => (circuitScrape = null)));
    return circuitScrape;
  };
  new Gauge({
    name: 'signoff_webhook_endpoint_circuit',
    help: 'Circuit breaker of each enabled webhook endpoint: 1 for its current state (closed, open, half_open), else 0',
    labelNames: ['endpoint', 'state'],
    registers: [registry],
    async collect() {
      await safe('endpoint circuits', async () => {
        this.reset();
        for (const e of await circuits())
          for (const s of ['closed', 'open', 'half_open'])
            this.set({ endpoint: e.name, state: s }, (e.view?.state ?? 'closed') === s ? 1 : 0);
      });
    },
  });
  new Gauge({
    name: 'signoff_webhook_endpoint_in_flight',
    help: 'Webhook endpoint slots held, over all workers: attempts in flight, and slots a worker leased for its next attempts',
    labelNames: ['endpoint'],
    registers: [registry],
    async collect() {
      await safe('endpoint slots', async () => {
        this.reset();
        for (const e of await circuits()) this.set({ endpoint: e.name }, e.view?.inFlight ?? 0);
      });
    },
  });

  registerDeviceManagerMetrics(registry, db, safe);
  registerAuditMetrics(registry, db, safe);

  // both read one query per scrape; the histogram awaits the counter's result instead of scanning again
  let scrape: Promise<AttemptRow[]> | null = null;
  const attempts = (): Promise<AttemptRow[]> => {
    scrape ??= attemptFigures(db)
      .catch((e) => {
        ctx.logger.warn({ err: e }, 'metrics: could not read webhook attempts');
        return [];
      })
      .finally(() => setImmediate(() => (scrape = null)));
    return scrape;
  };
  scrapeTimeMetric(registry, {
    name: 'signoff_webhook_attempts_total',
    help: 'Webhook delivery attempts by outcome (succeeded, retry, failed, gone, refused), all processes, from PostgreSQL',
    type: 'counter',
    values: async () => (await attempts()).map((r) => ({ labels: { outcome: r.outcome }, value: r.n })),
  });
  scrapeTimeMetric(registry, {
    name: 'signoff_webhook_delivery_latency_seconds',
    help: 'Latency of webhook delivery attempts, all processes, from PostgreSQL',
    type: 'histogram',
    values: async () =>
      (await attempts()).flatMap((r): MetricValue[] => [
        ...DELIVERY_LATENCY_BUCKETS.map((le, i) => ({
          metricName: 'signoff_webhook_delivery_latency_seconds_bucket',
          labels: { le, outcome: r.outcome },
          value: r.buckets[i]!,
        })),
        { metricName: 'signoff_webhook_delivery_latency_seconds_bucket', labels: { le: '+Inf', outcome: r.outcome }, value: r.n },
        { metricName: 'signoff_webhook_delivery_latency_seconds_sum', labels: { outcome: r.outcome }, value: r.sum_ms / 1000 },
        { metricName: 'signoff_webhook_delivery_latency_seconds_count', labels: { outcome: r.outcome }, value: r.n },
      ]),
  });

  const metrics: Metrics = { registry };
  // prom-client's names already start with process_/nodejs_: signoff_process_cpu_seconds_total, not process_process_
  collectDefaultMetrics({ register: registry, prefix: 'signoff_' });
  perContext.set(ctx, metrics);
  return metrics;
}
