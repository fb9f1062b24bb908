import type { AppContext } from '../../app-context.ts';
import { appendAudit, type Actor } from '../../core/audit-log.ts';
import { AppError } from '../../core/errors.ts';
import { isUuid } from '../../core/request-queries.ts';
import { queuesFor } from '../queue/queues.ts';
import { resetForRedelivery } from './delivery-processor.ts';

/**
 * Sends a finished (usually failed) delivery again, with the same webhook-id and body; a connector order runs
 * again with the application's current settings. Shared by the REST API and the web app's Admin pages.
 */
export async function redeliver(ctx: AppContext, actor: Actor, id: string): Promise<void> {
  if (!isUuid(id)) throw new AppError('not_found', `No delivery with id "${id}".`);
  const connector = await ctx.db.tx(async (tx) => {
    const row = await tx.maybeOne<{
      status: string;
      enabled: boolean | null;
      name: string | null;
      connector: string | null;
      configured: string | null;
    }>(
      `SELECT d.status, e.enabled, e.name, d.connector, a.device_manager->>'kind' AS configured FROM webhook_deliveries d
         LEFT JOIN webhook_endpoints e ON e.id = d.endpoint_id LEFT JOIN applications a ON a.id = d.application_id WHERE d.id = $1 FOR UPDATE OF d`,
      [id],
    );
    if (!row) throw new AppError('not_found', `No delivery with id "${id}".`);
    if (row.status === 'pending') throw new AppError('conflict', 'This delivery is still being attempted.', { status: row.status });
    if (!row.connector && !row.enabled)
      throw new AppError('conflict', `The endpoint "${row.name}" is disabled; enable it before redelivering.`, { endpoint: row.name });
    if (row.connector && row.configured !== row.connector) {
      throw new AppError('conflict', `The application no longer uses ${row.connector}; this order has nowhere to go.`, {
        connector: row.connector,
      });
    }
    await resetForRedelivery(tx, id);
    await appendAudit(tx, {
      actor,
      action: 'webhook_delivery.redelivered',
      subjectType: 'webhook_delivery',
      subjectId: id,
      before: { status: row.status },
      after: { status: 'pending' },
      at: ctx.clock.now(),
    });
    return row.connector;
  });
  // if Redis is unavailable the reconciler picks the pending delivery up
  const queues = queuesFor(ctx);
  await (connector ? queues.order(id) : queues.delivery(id)).catch((e) =>
    ctx.logger.warn({ err: e, deliveryId: id }, 'could not enqueue the redelivery; the reconciler will'),
  );
}
