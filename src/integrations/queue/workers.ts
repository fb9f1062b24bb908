import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { AppContext } from '../../app-context.ts';
import { relayOutboxEvent, runEffect, startOutboxRelay, type OutboxRelay } from '../outbox-relay.ts';
import type { DeliveryRuntime } from '../webhooks/delivery-processor.ts';
import { attemptBatches } from '../webhooks/attempt-batches.ts';
import type { EndpointGate } from '../webhooks/endpoint-gate.ts';
import { defaultBackoff, type BackoffOptions } from '../webhooks/retry-policy.ts';
import { parseAllowList } from '../webhooks/url-safety.ts';
import { createRedis, reportRedisError } from './connection.ts';
import { notifyBackoffStrategy, notifyErrorPolicy } from './notify-retry.ts';
import { AppQueues, queueNames, type NotifyJob, type OutboxJob } from './queues.ts';
import { startWebhookWorker } from './webhook-worker.ts';
import { startDeviceManagerWorker } from '../device-managers/connector-worker.ts';
import { startRetention, type Retention } from '../retention.ts';
import { startSweeper, type Sweeper } from './sweeper.ts';
import { startAuditSealer, type AuditSealer, type SealerOptions } from '../audit-sealer.ts';

/** Rate-limit waits a notification may sit out before they start counting as failed attempts. */
const MAX_RATE_LIMIT_WAITS = 200;

export interface WorkerOptions {
  /** webhook retry schedule (tests shorten it) */
  backoff?: BackoffOptions;
  webhookConcurrency?: number;
  /** first retry delay of a failed chat/email notification (doubles each time) */
  notifyBackoffMs?: number;
  /** BullMQ lock: a job whose worker died is picked up again after about this long */
  lockDurationMs?: number;
  stalledIntervalMs?: number;
  /** run the timer sweeper in this process (default true) */
  sweeper?: boolean;
  sweepIntervalMs?: number;
  /** how often settings of device-manager connectors not yet checked are checked */
  deviceManagerCheckIntervalMs?: number;
  /** take part in the audit sealer election (default true); options shorten its intervals in tests */
  auditSealer?: boolean | SealerOptions;
}

export interface RunningWorkers {
  queues: AppQueues;
  gate: EndpointGate;
  relay: OutboxRelay;
  sweeper: Sweeper | null;
  retention: Retention;
  auditSealer: AuditSealer | null;
  /** stops taking jobs, lets the ones in flight finish, closes connections */
  stop(): Promise<void>;
}

/**
 * Starts the outbox relay (LISTEN + reconciler), the three BullMQ workers and the timer sweeper. Any number
 * of processes may run this against the same Postgres and Redis: job ids, row locks and SKIP LOCKED keep
 * every effect single.
 */
export async function startWorkers(ctx: AppContext, opts: WorkerOptions = {}): Promise<RunningWorkers> {
  const log = ctx.logger.child({ component: 'workers' });
  const prefix = ctx.config.QUEUE_PREFIX;
  // own producer connection: stop() closes it without touching the web role's shared one
  const redisError = (e: Error) => reportRedisError(log, e);
  const queues = new AppQueues(createRedis(ctx.config.REDIS_URL, 'producer', `${prefix}:worker-producer`, redisError), prefix, ctx.db, {
    notifyBackoffMs: opts.notifyBackoffMs,
    reconcileMs: ctx.config.OUTBOX_RECONCILE_MS,
  });
  const connection = createRedis(ctx.config.REDIS_URL, 'worker', `${prefix}:worker`, redisError);
  const rt: DeliveryRuntime = { ctx, allow: parseAllowList(ctx.config.WEBHOOK_ALLOW_HOSTS), backoff: opts.backoff ?? defaultBackoff };
  const common = {
    connection,
    prefix,
    lockDuration: opts.lockDurationMs ?? 30_000,
    stalledInterval: opts.stalledIntervalMs ?? opts.lockDurationMs ?? 30_000,
    // a job whose worker keeps dying is failed by BullMQ; the reconciler re-adds it while Postgres says pending
    maxStalledCount: 3,
    autorun: false,
  };

  const outboxWorker = new Worker<OutboxJob>(
    queueNames.outbox,
    async (job) => {
      try {
        await relayOutboxEvent(ctx, queues, job.data.outboxId);
      } catch (e) {
        // visible in Postgres (and on the outbox lag metric) even after Redis forgets the failed job
        await ctx.db
          .query(`UPDATE outbox SET attempts = attempts + 1, last_error = $2 WHERE id = $1 AND status <> 'done'`, [
            job.data.outboxId,
            String((e as Error)?.message ?? e).slice(0, 2000),
          ])
          .catch(() => undefined);
        throw e;
      }
    },
    { ...common, concurrency: 4 },
  );

  const webhooks = startWebhookWorker(ctx, queues, rt, common, { concurrency: opts.webhookConcurrency ?? 8 });
  const webhookWorker = webhooks.worker;

  const notifyWorker = new Worker<NotifyJob>(
    queueNames.notify,
    async (job: Job<NotifyJob>, token?: string) => {
      const waits = job.data.rateLimitWaits ?? 0;
      // being rate limited is not a failure: wait as long as the platform asks without spending an attempt,
      // so a burst (a big approver group, a busy channel) delays messages instead of dropping them
      const waitsOut = (e: unknown) => notifyErrorPolicy(e).retryAfterMs !== null && waits < MAX_RATE_LIMIT_WAITS;
      const lastAttempt = job.attemptsMade + 1 >= (job.opts.attempts ?? 1);
      try {
        return await runEffect(ctx, job.data.outboxId, job.data.target, (e) => lastAttempt && !waitsOut(e));
      } catch (e) {
        const policy = notifyErrorPolicy(e);
        // a permanent refusal (403, invalid_auth, ...) fails the job now instead of burning the retry budget;
        // runEffect has already marked the effect failed in Postgres
        if (policy.permanent) throw new UnrecoverableError((e as Error)?.message ?? String(e));
        if (waitsOut(e)) {
          await job.updateData({ ...job.data, rateLimitWaits: waits + 1 });
          await job.moveToDelayed(Date.now() + policy.retryAfterMs! + Math.floor(Math.random() * 250), token);
          throw new DelayedError();
        }
        throw e;
      }
    },
    { ...common, concurrency: 4, settings: { backoffStrategy: notifyBackoffStrategy } },
  );

  const deviceManagers = startDeviceManagerWorker(ctx, common, { backoff: rt.backoff, checkIntervalMs: opts.deviceManagerCheckIntervalMs });

  const workers = [outboxWorker, webhookWorker, notifyWorker, deviceManagers.worker];
  for (const w of workers) {
    w.on('failed', (job, err) => log.warn({ err, queue: w.name, jobId: job?.id }, 'job failed'));
    w.on('error', (err) => reportRedisError(log, err, { queue: w.name }));
  }
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  for (const w of workers) void w.run();

  const relay = startOutboxRelay(ctx, queues, { waiting: webhooks.waiting });
  const sweeper = opts.sweeper === false ? null : startSweeper(ctx, { intervalMs: opts.sweepIntervalMs });
  const retention = startRetention(ctx);
  const auditSealer = opts.auditSealer === false ? null : startAuditSealer(ctx, opts.auditSealer === true ? {} : opts.auditSealer);
  log.info({ prefix }, 'workers started');

  let stopping: Promise<void> | null = null;
  return {
    queues,
    gate: webhooks.gate,
    relay,
    sweeper,
    retention,
    auditSealer,
    stop() {
      stopping ??= (async () => {
        await relay.stop();
        await sweeper?.stop();
        await retention.stop();
        await auditSealer?.stop();
        await deviceManagers.checks.stop();
        // close() waits for the jobs in flight to finish
        await Promise.allSettled(workers.map((w) => w.close()));
        await Promise.allSettled([webhooks.released(), attemptBatches(ctx).settled()]);
        await webhooks.close();
        await queues.close();
        connection.disconnect();
        log.info('workers stopped');
      })();
      return stopping;
    },
  };
}
