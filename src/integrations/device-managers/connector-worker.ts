import { DelayedError, Worker, type Job, type WorkerOptions as BullWorkerOptions } from 'bullmq';
import type { AppContext } from '../../app-context.ts';
import { startPeriodicTask, type PeriodicTask } from '../periodic-task.ts';
import { queueNames, type DeliveryJob } from '../queue/queues.ts';
import type { BackoffOptions } from '../webhooks/retry-policy.ts';
import { checkUncheckedDeviceManagers } from './connector-checks.ts';
import { attemptOrder, type ConnectorRuntime } from './connector-processor.ts';
import { deviceManagersFor } from './connector-registry.ts';

export interface DeviceManagerWorker {
  worker: Worker<DeliveryJob>;
  checks: PeriodicTask<number>;
  stop(): Promise<void>;
}

/** The BullMQ worker for connector orders, beside the webhook worker and with the same job and lock settings. */
export function startDeviceManagerWorker(
  ctx: AppContext,
  common: Pick<BullWorkerOptions, 'connection' | 'prefix' | 'lockDuration' | 'stalledInterval' | 'maxStalledCount' | 'autorun'>,
  opts: { backoff: BackoffOptions; concurrency?: number; checkIntervalMs?: number },
): DeviceManagerWorker {
  const log = ctx.logger.child({ component: 'device-managers' });
  const rt: ConnectorRuntime = { ctx, managers: deviceManagersFor(ctx.config), backoff: opts.backoff };
  const worker = new Worker<DeliveryJob>(
    queueNames.deviceManagers,
    async (job: Job<DeliveryJob>, token?: string) => {
      const step = await attemptOrder(rt, job.data.deliveryId);
      if (step.outcome === 'retry') {
        await job.moveToDelayed(step.retryAt, token);
        throw new DelayedError();
      }
      return step.outcome;
    },
    { ...common, concurrency: opts.concurrency ?? 4 },
  );
  const checks = startPeriodicTask(() => checkUncheckedDeviceManagers(ctx), {
    intervalMs: opts.checkIntervalMs ?? 10 * 60_000,
    firstDelayMs: Math.min(opts.checkIntervalMs ?? 10 * 60_000, 5_000),
    onError: (e) => log.warn({ err: e }, 'checking device-manager settings failed; trying again next interval'),
  });
  return {
    worker,
    checks,
    async stop() {
      await checks.stop();
      await worker.close();
    },
  };
}
