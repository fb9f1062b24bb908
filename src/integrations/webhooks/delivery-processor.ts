import type { AppContext } from '../../app-context.ts';
import { appendAudit, systemActor } from '../../core/audit-log.ts';
import type { Queryable, Tx } from '../../db/database.ts';
import { attemptBatches, recordAttempts, releaseLease, type AttemptRecord } from './attempt-batches.ts';
import { postOnce, type PostResult } from './http-post.ts';
import { classifyStatus, parseRetryAfter, retryDelayMs, type AttemptVerdict, type BackoffOptions } from './retry-policy.ts';
import { signedHeaders } from './signing.ts';
import type { AllowList } from './url-safety.ts';
import type { AttemptHealth, GateResult } from './endpoint-gate.ts';

export interface DeliveryRuntime {
  ctx: AppContext;
  allow: AllowList;
  backoff: BackoffOptions;
}

export interface AttemptOptions {
  /**
   * The endpoint answered (or the send failed): called before the attempt is recorded, so the endpoint's slot is
   * free while Postgres records it. Not called when no request was sent.
   */
  answered?(health: AttemptHealth, latencyMs: number): void;
  /**
   * Return from a success before its record is written (the queue worker: its job may finish and the next one
   * start). The lease keeps a duplicate from sending until the record is in; `attemptBatches(ctx).settled()` waits
   * for such records.
   */
  recordSuccessLater?: boolean;
  /**
   * The endpoint's gate, asked once the delivery is claimed, just before the send. A refusal ends the attempt as
   * `gated`, with the claim's lease given back.
   */
  admit?: () => Promise<GateResult>;
  /**
   * The process's send slots: one is held from the endpoint's admission until the request's answer, or until the
   * send has waited long (a slow endpoint's requests in flight must not hold the slots other endpoints need). The
   * claim, the wait at the endpoint's gate and the record hold none, so the next deliveries are claimed while these
   * are sent.
   */
  sendSlots?: { hold(): Promise<{ giveBack(): void }> };
}

export type DeliveryStep =
  | { outcome: 'skipped' }
  | { outcome: 'gated'; gate: Extract<GateResult, { ok: false }> }
  | { outcome: 'succeeded' | 'failed' }
  | { outcome: 'retry'; retryAt: number };

/** How long a send counts as about to finish (a fast receiver answers well within it). */
const FRESH_SEND_MS = 50;
/** How long a send may wait for its answer before it gives up its worker slot. */
const SLOW_SEND_MS = 200;

const excerptOf = (r: PostResult) => (r.kind === 'response' ? r.excerpt : null);

/**
 * One attempt of one delivery: a claim and a record, each a share of the statement written for the attempts of the
 * same moment (group commit, attempt-batches.ts). The claim leases the delivery in its row for longer than the HTTP
 * call may take, so a duplicate job (after a Redis flush or a stalled-job recovery) finds it leased and does
 * nothing, and a killed worker's lease expires and the next job resumes. No connection and no transaction is held
 * meanwhile (nothing for the audit sealer to wait on). The record writes the attempt and the delivery's new state
 * together and ends the lease; it applies only if the delivery is still where the claim found it, so a duplicate
 * that slipped in between (at-least-once, same webhook-id) never records twice.
 */
export async function attemptDelivery(rt: DeliveryRuntime, deliveryId: string, opts: AttemptOptions = {}): Promise<DeliveryStep> {
  const { ctx } = rt;
  const batches = attemptBatches(ctx);
  const claim = await batches.claim(deliveryId);
  if (claim.kind === 'none') return { outcome: 'skipped' };
  // an early duplicate of a scheduled retry waits for its turn instead of sending ahead of the backoff
  if (claim.kind === 'early') return { outcome: 'retry', retryAt: claim.due };
  const d = claim.delivery;
  // nothing is sent to a disabled endpoint: no send slot and no slot of its gate
  if (!d.enabled) {
    await finish(ctx.db, d.id, d.lease_token, 'endpoint is disabled').catch(async (e) => {
      await releaseLease(ctx.db, d.id, d.lease_token).catch(() => undefined);
      throw e;
    });
    return { outcome: 'failed' };
  }
  let held = true;
  // the endpoint's slot, then a send slot of this process: waiting for a busy endpoint holds no send slot (a new
  // endpoint's attempts waited at its gate holding every send slot until it was known to be slow)
  let slot: { giveBack(): void } | undefined;
  try {
    const admission = await opts.admit?.();
    if (admission?.ok === false) {
      // refused: the lease goes back, so the job's next run is not taken for a duplicate
      await batches.release(d.id, d.lease_token);
      return { outcome: 'gated', gate: admission };
    }
    slot = await opts.sendSlots?.hold();
  } catch (e) {
    slot?.giveBack();
    await releaseLease(ctx.db, d.id, d.lease_token).catch(() => undefined);
    throw e;
  }
  // counted while sending, for a moment only: records finishing meanwhile wait briefly for this one to join their
  // batch, but an attempt stuck on a slow endpoint must not make every other endpoint's attempts wait
  batches.sending++;
  let sending = true;
  const sent = () => {
    clearTimeout(stale);
    if (sending) batches.sending--;
    sending = false;
  };
  const stale = setTimeout(sent, FRESH_SEND_MS);
  stale.unref();
  try {
    const attempt = d.attempts + 1;
    // a send still waiting for its answer after a moment gives its slot up, so a slow endpoint's requests in
    // flight do not hold the send slots other endpoints' deliveries need
    const slowTimer = slot ? setTimeout(slot.giveBack, SLOW_SEND_MS) : undefined;
    let result: PostResult;
    try {
      result = await postOnce({
        url: d.url,
        headers: signedHeaders(d.secret, d.message_id, d.body),
        body: d.body,
        timeoutMs: ctx.config.WEBHOOK_TIMEOUT_MS,
        allow: rt.allow,
      });
    } finally {
      clearTimeout(slowTimer);
    }
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

    sent();
    const health: AttemptHealth = result.kind === 'refused' ? 'neutral' : verdict === 'retry' ? 'fail' : 'ok';
    // the endpoint's slot first: the send slot's next holder asks for one at once
    opts.answered?.(health, result.latencyMs);
    slot?.giveBack();
    const base = {
      id: d.id,
      leaseToken: d.lease_token,
      seenAttempts: d.attempts,
      statusCode,
      latencyMs: result.latencyMs,
      excerpt: excerptOf(result),
      attemptError: error,
      attempt,
    };
    if (verdict === 'succeeded') {
      const success: AttemptRecord = { ...base, status: 'succeeded', lastError: null, nextAttemptAt: null };
      if (opts.recordSuccessLater) batches.recordLater(success);
      else await batches.record(success);
      held = false;
      return { outcome: 'succeeded' };
    }
    if (verdict === 'retry' && attempt < ctx.config.WEBHOOK_MAX_ATTEMPTS) {
      const retryAfter = result.kind === 'response' ? parseRetryAfter(result.retryAfter) : null;
      const retryAt = Date.now() + retryDelayMs(attempt, rt.backoff, retryAfter);
      await batches.record({ ...base, status: 'pending', lastError: error, nextAttemptAt: new Date(retryAt) });
      held = false;
      return { outcome: 'retry', retryAt };
    }
    const finalError = verdict === 'retry' ? `${error} (gave up after ${attempt} attempts)` : error;
    const failed: AttemptRecord = { ...base, status: 'failed', lastError: finalError, nextAttemptAt: null };
    if (verdict === 'gone') {
      // disabling the endpoint, its audit row and the failed delivery belong together (rare: a statement of its own)
      const reason = `the receiver answered 410 Gone at ${new Date().toISOString()}`;
      await ctx.db.tx(async (tx) => {
        await tx.query(`UPDATE webhook_endpoints SET enabled = false, disabled_reason = $2, updated_at = now() WHERE id = $1`, [
          d.endpoint_id,
          reason,
        ]);
        await appendAudit(tx, {
          actor: systemActor,
          action: 'webhook_endpoint.disabled',
          subjectType: 'webhook_endpoint',
          subjectId: d.endpoint_id,
          before: { enabled: true },
          after: { enabled: false },
          details: { reason, deliveryId: d.id, name: d.endpoint_name },
          at: ctx.clock.now(),
        });
        await recordAttempts(tx, [failed]);
      });
      held = false;
      return { outcome: 'failed' };
    }
    await batches.record(failed);
    held = false;
    return { outcome: 'failed' };
  } finally {
    sent();
    slot?.giveBack();
    // the attempt was not recorded: end the lease so the job's retry may go ahead (else it expires by itself)
    if (held) await releaseLease(ctx.db, d.id, d.lease_token).catch(() => undefined);
  }
}

async function finish(q: Queryable, id: string, leaseToken: string, error: string): Promise<void> {
  await q.query(
    `UPDATE webhook_deliveries SET status = 'failed', last_error = $3, next_attempt_at = NULL, completed_at = now(), lease_until = NULL, lease_token = NULL
      WHERE id = $1 AND lease_token = $2`,
    [id, leaseToken, error],
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
    `UPDATE webhook_deliveries SET status = 'pending', attempts = 0, next_attempt_at = NULL, completed_at = NULL, last_error = NULL, lease_until = NULL, lease_token = NULL
      WHERE id = $1`,
    [id],
  );
}
