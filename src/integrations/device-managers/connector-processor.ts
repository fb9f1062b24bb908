import type { AppContext } from '../../app-context.ts';
import type { DeviceManagerConfig, DeviceManagerKind } from '../../core/device-manager.ts';
import type { Tx } from '../../db/database.ts';
import { recordDeviceManagerOutcome } from '../../db/device-manager-status.ts';
import { retryDelayMs, type BackoffOptions } from '../webhooks/retry-policy.ts';
import { CallTrace, ConnectorError } from './connector-outcome.ts';
import type { ConnectorOrder } from './connector-order.ts';
import type { DeviceManagers } from './connector-registry.ts';

export interface ConnectorRuntime {
  ctx: AppContext;
  managers: DeviceManagers;
  backoff: BackoffOptions;
}

export type OrderStep = { outcome: 'succeeded' | 'failed' | 'skipped' } | { outcome: 'retry'; retryAt: number };

interface LockedOrder {
  id: string;
  connector: DeviceManagerKind;
  application_id: string;
  request_id: string;
  body: string;
  attempts: number;
  created_at: Date;
  next_attempt_at: Date | null;
}

/** How long an order waits for an earlier one of the same request before looking again (no attempt is spent). */
const WAIT_FOR_EARLIER_MS = 1000;
const EXCERPT = 1024;

const direction = (op: ConnectorOrder['operation']) => (op === 'revoke' ? 'remove' : 'add');

/**
 * One attempt of one connector order, the counterpart of a webhook attempt: the delivery row stays locked (FOR UPDATE
 * SKIP LOCKED) while the connector talks to the service, so a duplicate job does nothing; the attempt is recorded in
 * webhook_attempts with the calls made, in the same transaction as the delivery's new state and the application's
 * connector status. Orders of one request keep their order: a later one waits while an earlier one is unfinished,
 * and an earlier one that is still being retried when a later one of the opposite direction exists is superseded
 * (granting after the revocation would undo it).
 */
export async function attemptOrder(rt: ConnectorRuntime, deliveryId: string): Promise<OrderStep> {
  const { ctx } = rt;
  return ctx.db.tx(async (tx) => {
    const d = await tx.maybeOne<LockedOrder>(
      `SELECT id, connector, application_id, request_id, body, attempts, created_at, next_attempt_at FROM webhook_deliveries
        WHERE id = $1 AND status = 'pending' AND connector IS NOT NULL FOR UPDATE SKIP LOCKED`,
      [deliveryId],
    );
    if (!d) return { outcome: 'skipped' };
    const due = d.next_attempt_at ? new Date(d.next_attempt_at).getTime() : 0;
    if (due > Date.now() + 250) return { outcome: 'retry', retryAt: due };
    const order = (JSON.parse(d.body) as { data: ConnectorOrder }).data;

    const later = await tx.query<{ body: string }>(
      `SELECT body FROM webhook_deliveries WHERE connector IS NOT NULL AND request_id = $1 AND id <> $2 AND status IN ('pending', 'succeeded')
          AND (created_at, id) > ($3::timestamptz, $2::uuid)`,
      [d.request_id, d.id, d.created_at],
    );
    const overtaken = later.find(
      (l) => direction((JSON.parse(l.body) as { data: ConnectorOrder }).data.operation) !== direction(order.operation),
    );
    if (overtaken) {
      await finish(
        tx,
        d.id,
        d.attempts,
        'failed',
        null,
        `superseded: a later order for this request ${direction(order.operation) === 'add' ? 'revokes' : 'grants'} it; nothing was sent`,
      );
      return { outcome: 'failed' };
    }
    const earlier = await tx.maybeOne<{ id: string }>(
      `SELECT id FROM webhook_deliveries WHERE connector IS NOT NULL AND request_id = $1 AND id <> $2 AND status = 'pending'
          AND (created_at, id) < ($3::timestamptz, $2::uuid) LIMIT 1`,
      [d.request_id, d.id, d.created_at],
    );
    if (earlier) return { outcome: 'retry', retryAt: Date.now() + WAIT_FOR_EARLIER_MS };

    const app = await tx.maybeOne<{ name: string; per_device: boolean; device_manager: DeviceManagerConfig | null }>(
      'SELECT name, per_device, device_manager FROM applications WHERE id = $1',
      [d.application_id],
    );
    const attempt = d.attempts + 1;
    const trace = new CallTrace();
    const started = performance.now();
    let summary: string | null = null;
    let failure: ConnectorError | null = null;
    const connector = await rt.managers.connector(d.connector);
    if (!app?.device_manager || app.device_manager.kind !== d.connector) {
      failure = new ConnectorError(`the application no longer sends orders to ${d.connector}; nothing was sent`, { retryable: false });
    } else if (!connector) {
      // another worker may have the connection; this one leaves the order for later rather than failing it
      failure = new ConnectorError(`not sent: ${rt.managers.missing(d.connector)}`, { retryable: true, misconfigured: true });
    } else {
      try {
        summary = await connector.perform(
          order,
          app.device_manager,
          { id: d.application_id, name: app.name, perDevice: app.per_device },
          trace,
        );
      } catch (e) {
        failure =
          e instanceof ConnectorError
            ? e
            : new ConnectorError(`unexpected error: ${(e as Error)?.message ?? String(e)}`, { retryable: true });
      }
    }
    const latency = Math.round(performance.now() - started);
    const log = [trace.toString(), summary ?? ''].filter(Boolean).join('\n').slice(0, EXCERPT) || null;
    await tx.query(
      `INSERT INTO webhook_attempts (delivery_id, attempt, status_code, latency_ms, response_excerpt, error, created_at)
       VALUES ($1, (SELECT count(*) + 1 FROM webhook_attempts WHERE delivery_id = $1), $2, $3, $4, $5, clock_timestamp())`,
      [d.id, failure ? failure.statusCode : (trace.lastStatus ?? 200), latency, log, failure?.message.slice(0, 2000) ?? null],
    );
    if (!failure) {
      await tx.query(
        `UPDATE webhook_deliveries SET status = 'succeeded', attempts = $2, last_status_code = $3, last_error = NULL, next_attempt_at = NULL, completed_at = now() WHERE id = $1`,
        [d.id, attempt, trace.lastStatus],
      );
      await recordDeviceManagerOutcome(tx, d.application_id, d.connector, true, summary);
      return { outcome: 'succeeded' };
    }
    const max = ctx.config.DEVICE_MANAGER_MAX_ATTEMPTS;
    if (failure.retryable && attempt < max) {
      const retryAt = Date.now() + retryDelayMs(attempt, rt.backoff, failure.retryAfterMs);
      await tx.query(
        `UPDATE webhook_deliveries SET attempts = $2, last_status_code = $3, last_error = $4, next_attempt_at = $5 WHERE id = $1`,
        [d.id, attempt, failure.statusCode, failure.message.slice(0, 2000), new Date(retryAt)],
      );
      await recordDeviceManagerOutcome(tx, d.application_id, d.connector, false, `${failure.message} (retrying)`);
      return { outcome: 'retry', retryAt };
    }
    const finalError = failure.retryable ? `${failure.message} (gave up after ${attempt} attempts)` : failure.message;
    await finish(tx, d.id, attempt, 'failed', failure.statusCode, finalError);
    await recordDeviceManagerOutcome(tx, d.application_id, d.connector, false, finalError);
    return { outcome: 'failed' };
  });
}

async function finish(tx: Tx, id: string, attempts: number, status: 'failed', code: number | null, error: string): Promise<void> {
  await tx.query(
    `UPDATE webhook_deliveries SET status = $2, attempts = $3, last_status_code = coalesce($4, last_status_code), last_error = $5, next_attempt_at = NULL,
            completed_at = now() WHERE id = $1`,
    [id, status, attempts, code, error.slice(0, 2000)],
  );
}
