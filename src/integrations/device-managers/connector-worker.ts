import { DelayedError, Worker, type Job, type WorkerOptions as BullWorkerOptions } from 'bullmq';
import type { AppContext } from '../../app-context.ts';
import type { DeviceManagerConfig } from '../../core/device-manager.ts';
import { recordDeviceManagerCheck } from '../../db/device-manager-status.ts';
import { startPeriodicTask, type PeriodicTask } from '../periodic-task.ts';
import { queueNames, type DeliveryJob } from '../queue/queues.ts';
import type { BackoffOptions } from '../webhooks/retry-policy.ts';
import { attemptOrder, type ConnectorRuntime } from './connector-processor.ts';
import { deviceManagersFor } from './connector-registry.ts';

export interface DeviceManagerWorker {
  worker: Worker<DeliveryJob>;
  checks: PeriodicTask<number>;
  stop(): Promise<void>;
}

/**
 * Checks connector settings nobody could check when they were saved (the CLI that applied the catalog had no
 * credentials, the service was unreachable), so a wrong group or model name shows on the application before the first
 * approval runs into it.
 */
export async function checkUncheckedDeviceManagers(ctx: AppContext): Promise<number> {
  const managers = deviceManagersFor(ctx.config);
  const rows = await ctx.db.query<{ id: string; name: string; per_device: boolean; device_manager: DeviceManagerConfig }>(
    `SELECT a.id, a.name, a.per_device, a.device_manager FROM applications a LEFT JOIN device_manager_status s ON s.application_id = a.id
      WHERE a.device_manager IS NOT NULL AND (s.application_id IS NULL OR (s.state = 'unchecked' AND s.last_success_at IS NULL))`,
  );
  let checked = 0;
  for (const r of rows) {
    if (!managers.connector(r.device_manager.kind)) continue;
    const result = await managers.check(r.device_manager, { id: r.id, name: r.name, perDevice: r.per_device });
    const state = result.outcome === 'ok' ? 'ok' : result.outcome === 'rejected' ? 'error' : 'unchecked';
    const message = result.outcome === 'ok' ? (result.detail ?? null) : result.outcome === 'rejected' ? `deviceManager.${result.field}: ${result.message}` : result.message;
    await recordDeviceManagerCheck(ctx.db, r.id, r.device_manager.kind, state, message);
    checked++;
  }
  return checked;
}

/** The BullMQ worker for connector orders, beside the webhook worker and with the same job and lock settings. */
export function startDeviceManagerWorker(
  ctx: AppContext,
  common: Pick<BullWorkerOptions, 'connection' | 'prefix' | 'lockDuration' | 'stalledInterval' | 'maxStalledCount' | 'autorun'>,
  opts: { backoff: BackoffOptions; concurrency?: number; checkIntervalMs?: number },
): DeviceManagerWorker {
  const log = ctx.logger.child({ component: 'device-managers' });
  const rt: ConnectorRuntime = { ctx, managers: deviceManagersFor(ctx.config), backoff: opts.backoff };
  const worker = new Worker<DeliveryJob>(queueNames.deviceManagers, async (job: Job<DeliveryJob>, token?: string) => {
    const step = await attemptOrder(rt, job.data.deliveryId);
    if (step.outcome === 'retry') {
      await job.moveToDelayed(step.retryAt, token);
      throw new DelayedError();
    }
    return step.outcome;
  }, { ...common, concurrency: opts.concurrency ?? 4 });
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
