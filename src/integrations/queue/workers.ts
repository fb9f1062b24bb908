import { DelayedError, UnrecoverableError, Worker, type Job } from 'bullmq';
import type { AppContext } from '../../app-context.ts';
import { relayOutboxEvent, runEffect, startOutboxRelay, type OutboxRelay } from '../outbox-relay.ts';
import { attemptDelivery, endpointOf, type DeliveryRuntime, type DeliveryStep } from '../webhooks/delivery-processor.ts';
import { attemptBatches } from '../webhooks/attempt-batches.ts';
import { gateFor, gateWaitMs, type AttemptHealth, type EndpointGate, type GateResult } from '../webhooks/endpoint-gate.ts';
import { defaultBackoff, type BackoffOptions } from '../webhooks/retry-policy.ts';
import { parseAllowList } from '../webhooks/url-safety.ts';
import { createRedis } from './connection.ts';
import { Permits } from './permits.ts';
import { notifyBackoffStrategy, notifyErrorPolicy } from './notify-retry.ts';
import { AppQueues, queueNames, type DeliveryJob, type NotifyJob, type OutboxJob } from './queues.ts';
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
  const redisError = (e: Error) => log.warn({ err: e.message }, 'Redis connection error; reconnecting');
  const queues = new AppQueues(createRedis(ctx.config.REDIS_URL, 'producer', `${prefix}:worker-producer`, redisError), prefix, ctx.db, {
    notifyBackoffMs: opts.notifyBackoffMs,
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

  // gate calls made in the same tick (the releases of a record batch's jobs) go to Redis in one write
  const gateRedis = connection.duplicate({ enableAutoPipelining: true, connectionName: `${prefix}:worker-gate` });
  gateRedis.on('error', redisError);
  const gate = gateFor(ctx, gateRedis, prefix);
  const releasing = new Set<Promise<void>>();
  /**
   * Sends the job back to the delayed set until `at`. When Redis lost the job while it ran (a wipe, a restart
   * without persistence), a new one with the same id is added instead, so the retry does not wait for the reconciler.
   */
  const delay = async (
    job: Job<DeliveryJob>,
    token: string | undefined,
    at: number,
    update: () => Promise<void> | undefined,
  ): Promise<never> => {
    try {
      await update();
      await job.moveToDelayed(at, token);
    } catch (e) {
      await queues.delivery(job.data.deliveryId, at - Date.now(), job.data.endpointId);
      throw e;
    }
    throw new DelayedError();
  };
  // `webhookConcurrency` requests are sent at once. Twice as many jobs run, so the next deliveries are claimed
  // while these are sent, and a send waiting long for a slow endpoint gives its slot up (the job keeps running),
  // so such an endpoint's requests in flight cannot starve the others
  const webhookConcurrency = opts.webhookConcurrency ?? 8;
  const sendSlots = new Permits(webhookConcurrency);
  const webhookWorker = new Worker<DeliveryJob>(queueNames.webhooks, (job: Job<DeliveryJob>, token?: string) => deliver(job, token), {
    ...common,
    concurrency: webhookConcurrency * 2,
  });
  async function deliver(job: Job<DeliveryJob>, token: string | undefined) {
    const endpointId = job.data.endpointId ?? (await endpointOf(ctx, job.data.deliveryId));
    if (!endpointId) return 'skipped';
    const waits = job.data.gateWaits ?? 0;
    // a slot of this endpoint, or back to the delayed set without spending an attempt: a slow or failing endpoint
    // holds at most its own slots, never every worker slot
    const gated = (refused: Extract<GateResult, { ok: false }>) =>
      delay(job, token, Date.now() + gateWaitMs(refused, waits, gate.settings), () =>
        job.updateData({ ...job.data, endpointId, gateWaits: waits + 1 }),
      );
    // an endpoint that let the last attempts through is asked once the delivery is claimed, just before the send;
    // one that sent deliveries away lately is asked first, so its queue costs no claims given back
    const askFirst = gate.refusedLately(endpointId);
    let admitted = false;
    const admit = async () => {
      const r = await gate.acquireOrWait(endpointId, job.data.deliveryId);
      admitted = r.ok;
      return r;
    };
    if (askFirst) {
      const r = await admit();
      if (!r.ok) return gated(r);
    }
    // the slot goes back as soon as the endpoint has answered (the record is Postgres' business, not the
    // endpoint's); not awaited: later calls on this connection queue behind it, and stop() waits for it
    const release = (health: AttemptHealth, latencyMs: number | null) => {
      if (!admitted) return;
      admitted = false;
      const done = gate
        .release(endpointId, job.data.deliveryId, health, latencyMs)
        .catch((e) => log.warn({ err: e, endpointId }, 'could not release the endpoint slot; its lease frees it'))
        .finally(() => releasing.delete(done));
      releasing.add(done);
    };
    let step: DeliveryStep;
    try {
      step = await attemptDelivery(rt, job.data.deliveryId, {
        answered: release,
        recordSuccessLater: true,
        admit: askFirst ? undefined : admit,
        sendSlots,
      });
    } finally {
      release('neutral', null);
    }
    if (step.outcome === 'gated') return gated(step.gate);
    if (step.outcome === 'retry') {
      // the same job (same id) waits in the delayed set; Postgres holds the attempt count and next_attempt_at
      return delay(job, token, step.retryAt, () => (job.data.gateWaits ? job.updateData({ ...job.data, gateWaits: 0 }) : undefined));
    }
    return step.outcome;
  }

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
    w.on('error', (err) => log.warn({ err, queue: w.name }, 'worker error'));
  }
  await Promise.all(workers.map((w) => w.waitUntilReady()));
  for (const w of workers) void w.run();

  const relay = startOutboxRelay(ctx, queues);
  const sweeper = opts.sweeper === false ? null : startSweeper(ctx, { intervalMs: opts.sweepIntervalMs });
  const retention = startRetention(ctx);
  const auditSealer = opts.auditSealer === false ? null : startAuditSealer(ctx, opts.auditSealer === true ? {} : opts.auditSealer);
  log.info({ prefix }, 'workers started');

  let stopping: Promise<void> | null = null;
  return {
    queues,
    gate,
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
        await Promise.allSettled([...releasing, attemptBatches(ctx).settled()]);
        await gate.close().catch(() => undefined);
        await queues.close();
        gateRedis.disconnect();
        connection.disconnect();
        log.info('workers stopped');
      })();
      return stopping;
    },
  };
}
