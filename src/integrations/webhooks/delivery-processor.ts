import type { AppContext } from '../../app-context.ts';
import { appendAudit, systemActor } from '../../core/audit-log.ts';
import type { Queryable, Tx } from '../../db/database.ts';
import { postOnce, type PostResult } from './http-post.ts';
import { classifyStatus, parseRetryAfter, retryDelayMs, type AttemptVerdict, type BackoffOptions } from './retry-policy.ts';
import { signedHeaders } from './signing.ts';
import type { AllowList } from './url-safety.ts';
import type { AttemptHealth } from './endpoint-gate.ts';

export interface DeliveryRuntime {
  ctx: AppContext;
  allow: AllowList;
  backoff: BackoffOptions;
}

export type DeliveryStep =
  | { outcome: 'skipped' }
  | { outcome: 'succeeded' | 'failed'; health: AttemptHealth }
  | { outcome: 'retry'; retryAt: number; health?: AttemptHealth };

interface LockedDelivery {
  id: string;
  message_id: string;
  endpoint_id: string;
  event_type: string;
  body: string;
  attempts: number;
  next_attempt_at: Date | null;
  url: string;
  secret: string;
  enabled: boolean;
  endpoint_name: string;
}

const excerptOf = (r: PostResult) => (r.kind === 'response' ? r.excerpt : null);

/** Advisory lock class of delivery attempts (two-key form: the second key is a hash of the delivery id). */
const ATTEMPT_LOCK_CLASS = 7461640;
const unlock = (param: string) => `pg_advisory_unlock(${ATTEMPT_LOCK_CLASS}, hashtext(${param}::text))`;

/**
 * One attempt of one delivery, in two statements. The claim takes a session advisory lock on the delivery, held
 * for the length of the HTTP call, so a duplicate job (after a Redis flush or a stalled-job recovery) finds it
 * busy and does nothing; a killed worker's lock dies with its connection and the next job resumes. No transaction
 * is open meanwhile, so a slow receiver holds no transaction id (nothing for the audit sealer to wait on). The
 * record statement writes the attempt and the delivery's new state together and releases the lock; it applies
 * only if the delivery is still where the claim found it, so a duplicate that slipped in between (at-least-once,
 * same webhook-id) never records twice.
 */
export async function attemptDelivery(rt: DeliveryRuntime, deliveryId: string): Promise<DeliveryStep> {
  const { ctx } = rt;
  return ctx.db.session(async (q, discard) => {
    const d = await q.maybeOne<LockedDelivery & { locked: boolean }>(
      `SELECT d.id, d.message_id, d.endpoint_id, d.event_type, d.body, d.attempts, d.next_attempt_at,
              e.url, e.secret, e.enabled, e.name AS endpoint_name, pg_try_advisory_lock(${ATTEMPT_LOCK_CLASS}, hashtext(d.id::text)) AS locked
         FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
        WHERE d.id = $1 AND d.status = 'pending'`,
      [deliveryId],
    );
    if (!d?.locked) return { outcome: 'skipped' };
    let held = true;
    try {
      const due = d.next_attempt_at ? new Date(d.next_attempt_at).getTime() : 0;
      // an early duplicate of a scheduled retry waits for its turn instead of sending ahead of the backoff
      if (due > Date.now() + 250) return { outcome: 'retry', retryAt: due };
      if (!d.enabled) {
        await finish(q, d.id, 'failed', null, 'endpoint is disabled');
        return { outcome: 'failed', health: 'neutral' };
      }

      const attempt = d.attempts + 1;
      const result = await postOnce({
        url: d.url,
        headers: signedHeaders(d.secret, d.message_id, d.body),
        body: d.body,
        timeoutMs: ctx.config.WEBHOOK_TIMEOUT_MS,
        allow: rt.allow,
      });
      const verdict: AttemptVerdict | 'refused' =
        result.kind === 'response' ? classifyStatus(result.status) : result.kind === 'network' ? 'retry' : 'refused';
      const statusCode = result.kind === 'response' ? result.status : null;
      const error =
        result.kind === 'network'
          ? result.error
          : result.kind === 'refused'
            ? `refused at send time: ${result.reason}`
            : verdict === 'succeeded'
              ? null
              : statusCode! >= 300 && statusCode! < 400
                ? `HTTP ${statusCode} (redirects are not followed)`
                : `HTTP ${statusCode}`;

      const health: AttemptHealth = result.kind === 'refused' ? 'neutral' : verdict === 'retry' ? 'fail' : 'ok';
      const seen = d.attempts;
      if (verdict === 'succeeded') {
        await record(q, d.id, seen, result, error, { status: 'succeeded', attempt, nextAttemptAt: null });
        held = false;
        return { outcome: 'succeeded', health };
      }
      if (verdict === 'retry' && attempt < ctx.config.WEBHOOK_MAX_ATTEMPTS) {
        const retryAfter = result.kind === 'response' ? parseRetryAfter(result.retryAfter) : null;
        const retryAt = Date.now() + retryDelayMs(attempt, rt.backoff, retryAfter);
        await record(q, d.id, seen, result, error, { status: 'pending', attempt, nextAttemptAt: new Date(retryAt) });
        held = false;
        return { outcome: 'retry', retryAt, health };
      }
      const finalError = verdict === 'retry' ? `${error} (gave up after ${attempt} attempts)` : error;
      if (verdict === 'gone') {
        // disabling the endpoint, its audit row and the failed delivery belong together
        const reason = `the receiver answered 410 Gone at ${new Date().toISOString()}`;
        await q.query('BEGIN');
        try {
          await q.query(`UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now() WHERE id = $1`, [
            d.endpoint_id,
            reason,
          ]);
          await appendAudit(q, {
            actor: systemActor,
            action: 'webhook_endpoint.disabled',
            subjectType: 'webhook_endpoint',
            subjectId: d.endpoint_id,
            before: { enabled: true },
            after: { enabled: false },
            details: { reason, deliveryId: d.id, name: d.endpoint_name },
            at: ctx.clock.now(),
          });
          await record(q, d.id, seen, result, finalError, { status: 'failed', attempt, nextAttemptAt: null }, error);
          await q.query('COMMIT');
        } catch (e) {
          await q.query('ROLLBACK').catch(() => undefined);
          throw e;
        }
        // the unlock in record() ran inside the committed transaction: a session lock is released at once regardless
        held = false;
        return { outcome: 'failed', health };
      }
      await record(q, d.id, seen, result, finalError, { status: 'failed', attempt, nextAttemptAt: null }, error);
      held = false;
      return { outcome: 'failed', health };
    } finally {
      if (held) {
        const ok = await q.query(`SELECT ${unlock('$1')}`, [d.id]).then(
          () => true,
          () => false,
        );
        // a lock that could not be released must not stay with a pooled connection: drop the connection with it
        if (!ok) discard();
      }
    }
  });
}

/**
 * The attempt row, the delivery's new state and the release of the claim's lock, in one statement (it commits by
 * itself). It applies only while the delivery is pending with the attempt count the claim saw. Its commit does not
 * wait for the WAL flush (synchronous_commit off, this statement only): an attempt record lost in a crash costs a
 * resend with the same webhook-id, never a decision. clock_timestamp(): the metrics rollup folds attempts by
 * created_at.
 */
async function record(
  q: Queryable,
  id: string,
  seenAttempts: number,
  result: PostResult,
  error: string | null,
  next: { status: 'pending' | 'succeeded' | 'failed'; attempt: number; nextAttemptAt: Date | null },
  attemptError: string | null = error,
): Promise<void> {
  const code = result.kind === 'response' ? result.status : null;
  await q.query(
    `WITH u AS (
       UPDATE webhook_deliveries SET status = $6::text, attempts = $7,
              last_status_code = CASE WHEN $6::text = 'failed' THEN coalesce($2::int, last_status_code) ELSE $2::int END,
              last_error = $8, next_attempt_at = $9::timestamptz, completed_at = CASE WHEN $6::text = 'pending' THEN NULL ELSE now() END
        WHERE id = $1 AND status = 'pending' AND attempts = $10
       RETURNING id),
     a AS (
       INSERT INTO webhook_attempts (delivery_id, attempt, status_code, latency_ms, response_excerpt, error, created_at)
       SELECT $1, (SELECT count(*) + 1 FROM webhook_attempts WHERE delivery_id = $1), $2::int, $3, $4, $5, clock_timestamp() FROM u)
     SELECT ${unlock('$11')} AS unlocked, set_config('synchronous_commit', 'off', true) AS async_commit`,
    [
      id,
      code,
      result.latencyMs,
      excerptOf(result),
      attemptError,
      next.status,
      next.attempt,
      next.status === 'succeeded' ? null : error,
      next.nextAttemptAt,
      seenAttempts,
      id,
    ],
  );
}

async function finish(tx: Queryable, id: string, status: 'failed', code: number | null, error: string | null): Promise<void> {
  await tx.query(
    `UPDATE webhook_deliveries SET status = $2, last_status_code = coalesce($3, last_status_code), last_error = $4, next_attempt_at = NULL, completed_at = now() WHERE id = $1`,
    [id, status, code, error],
  );
}

/** The endpoint of a webhook delivery (jobs enqueued without it); undefined for a connector order or a deleted row. */
export async function endpointOf(ctx: AppContext, deliveryId: string): Promise<string | undefined> {
  const row = await ctx.db.maybeOne<{ endpoint_id: string | null }>('SELECT endpoint_id FROM webhook_deliveries WHERE id = $1', [
    deliveryId,
  ]);
  return row?.endpoint_id ?? undefined;
}

/** Puts a finished delivery back in line; the caller enqueues its job. Attempts start counting again. */
export async function resetForRedelivery(tx: Tx, id: string): Promise<void> {
  await tx.query(
    `UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL, completed_at = NULL, last_error = NULL WHERE id = $1`,
    [id],
  );
}
