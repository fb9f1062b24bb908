import type { Database, Tx } from '../db/database.ts';
import { appendAudit, appendAuditAll, systemActor, type Actor, type AuditEntry } from './audit-log.ts';
import { readableUtc, type Clock } from './clock.ts';
import { requireMember, resolveDecider, reviewerGroups } from './approval-rights.ts';
import { identityById, membersOfGroups } from './directory.ts';
import { addDuration, parseDuration } from './durations.ts';
import { AppError } from './errors.ts';
import { emit, emitAll, type NewEvent } from './outbox.ts';
import { policyDefinitionSchema, type PolicyDefinition } from './policy-schema.ts';
import { isUuid, type RequestRow } from './request-queries.ts';
import { getReviewView, listReviews, type ReviewFilter, type ReviewStatus, type ReviewView } from './review-queries.ts';
import { snapshotOf, type RequestService } from './request-service.ts';
import { requestContext, revokeRequest } from './request-transitions.ts';
import { nextRequestStatus } from './request-state.ts';

// order matters: a lapsed review must close before the next one can open; expiry makes reminders moot
export const timerKinds = ['expiry', 'escalation', 'reminder', 'access_expiry', 'access_warning', 'review_lapse', 'review_reminder', 'review', 'install'] as const;
export type TimerKind = (typeof timerKinds)[number];
export type SweepResult = Record<TimerKind, number>;

export interface TimerServiceOptions {
  batchSize?: number;
  /** how long reviewers have to answer a periodic access review (capped at the review interval) */
  reviewWindow?: string;
  onError?: (kind: TimerKind, id: string, error: unknown) => void;
}

export interface ReviewRow {
  id: string;
  request_id: string;
  status: ReviewStatus;
  due_at: Date;
  decided_by: string | null;
  decided_by_label: string | null;
  decided_at: Date | null;
  reason: string | null;
  reviewer_groups: string[];
  approved_at: Date | null;
  approved_by_label: string | null;
  next_reminder_at: Date | null;
}

/** A review as the review sweeps claim it, with what they need of its request (claimed and locked with it). */
type ReviewWithRequest = ReviewRow & { request_policy: unknown; request_requester_id: string | null };

export interface ReviewDecisionResult {
  reviewId: string;
  status: 'kept' | 'removed';
  requestStatus: string;
}

type RequestTimer = { column: string; status: 'pending' | 'approved'; extra?: string; act: (tx: Tx, row: RequestRow, now: Date) => Promise<void> };

/**
 * Timed work lives in Postgres: due-at columns with partial indexes. A sweep claims due rows in batches with
 * FOR UPDATE SKIP LOCKED and acts in the same transaction (moving or clearing the due-at column), so any number
 * of sweepers can race and each effect still happens exactly once. Nothing costs anything until it is due.
 */
export class TimerService {
  private readonly batchSize: number;
  private readonly reviewWindow: string;
  private readonly timers: Record<Exclude<TimerKind, 'review_lapse' | 'review_reminder'>, RequestTimer>;

  constructor(private readonly db: Database, private readonly clock: Clock, private readonly requests: RequestService, private readonly opts: TimerServiceOptions = {}) {
    this.batchSize = opts.batchSize ?? 100;
    this.reviewWindow = opts.reviewWindow ?? 'P14D';
    this.timers = {
      expiry: { column: 'deadline_at', status: 'pending', act: (tx, r, now) => this.expire(tx, r, now) },
      escalation: { column: 'escalate_at', status: 'pending', extra: 'AND escalated_at IS NULL', act: (tx, r, now) => this.escalate(tx, r, now) },
      reminder: { column: 'next_reminder_at', status: 'pending', act: (tx, r, now) => this.remind(tx, r, now) },
      access_expiry: {
        column: 'access_expires_at', status: 'approved',
        act: (tx, r, now) => revokeRequest(tx, systemActor, r, 'access expired', now, 'access_expired'),
      },
      access_warning: { column: 'access_warn_at', status: 'approved', act: (tx, r, now) => this.warnAccessExpiry(tx, r, now) },
      review: { column: 'next_review_at', status: 'approved', act: (tx, r, now) => this.startReview(tx, r, now) },
      install: { column: 'install_due_at', status: 'approved', act: (tx, r, now) => this.orderWindowedInstall(tx, r, now) },
    };
  }

  /** Runs every kind of timer until nothing is due (or a batch hit an error, to be retried next sweep). */
  async sweep(): Promise<SweepResult> {
    const result = Object.fromEntries(timerKinds.map((k) => [k, 0])) as SweepResult;
    for (const kind of timerKinds) {
      for (;;) {
        const { done, failed } = await this.runBatch(kind);
        result[kind] += done;
        if (failed > 0 || done + failed < this.batchSize) break;
      }
    }
    return result;
  }

  /** One batch of one kind in one transaction; each row under a savepoint so one bad row does not block the rest. */
  async runBatch(kind: TimerKind): Promise<{ done: number; failed: number }> {
    const now = this.clock.now();
    return this.db.tx(async (tx) => {
      if (kind === 'review_lapse' || kind === 'review_reminder') {
        const column = kind === 'review_lapse' ? 'due_at' : 'next_reminder_at';
        const rows = await tx.query<ReviewWithRequest>(
          // the request is locked with its review (skipped when busy) so a concurrent revocation never waits on us
          `SELECT ar.*, r.policy AS request_policy, r.requester_id AS request_requester_id
             FROM access_reviews ar JOIN requests r ON r.id = ar.request_id
            WHERE ar.status = 'pending' AND ar.${column} <= $1 ORDER BY ar.${column} LIMIT $2 FOR UPDATE OF ar, r SKIP LOCKED`,
          [now, this.batchSize],
        );
        return this.each(tx, kind, rows, (r) => (kind === 'review_lapse' ? this.lapseReview(tx, r, now) : this.remindReviewers(tx, r, now)));
      }
      const t = this.timers[kind];
      const rows = await tx.query<RequestRow>(
        `SELECT * FROM requests WHERE status = '${t.status}' AND ${t.column} <= $1 ${t.extra ?? ''}
          ORDER BY ${t.column} LIMIT $2 FOR UPDATE SKIP LOCKED`,
        [now, this.batchSize],
      );
      if (kind === 'reminder' && rows.length > 1) {
        // the common mass timer, set-based: one UPDATE and one outbox INSERT for the batch; if anything in it
        // fails, the batch is undone and the rows go one by one, so one bad row does not block the rest
        await tx.query('SAVEPOINT timer_batch');
        try {
          await this.remindAll(tx, rows, now);
          await tx.query('RELEASE SAVEPOINT timer_batch');
          return { done: rows.length, failed: 0 };
        } catch {
          await tx.query('ROLLBACK TO SAVEPOINT timer_batch');
        }
      }
      return this.each(tx, kind, rows, (r) => t.act(tx, r, now));
    });
  }

  private async each<R extends { id: string }>(tx: Tx, kind: TimerKind, rows: R[], fn: (r: R) => Promise<void>) {
    let done = 0;
    let failed = 0;
    for (const row of rows) {
      await tx.query('SAVEPOINT timer_row');
      try {
        await fn(row);
        await tx.query('RELEASE SAVEPOINT timer_row');
        done++;
      } catch (e) {
        await tx.query('ROLLBACK TO SAVEPOINT timer_row');
        failed++;
        this.opts.onError?.(kind, row.id, e);
      }
    }
    return { done, failed };
  }

  private related(tx: Tx, row: RequestRow) {
    return requestContext(tx, row);
  }

  private async expire(tx: Tx, row: RequestRow, now: Date): Promise<void> {
    const to = nextRequestStatus(row.status, 'expire');
    const reason = 'no decision before the deadline';
    const updated = await tx.one<RequestRow>(
      `UPDATE requests SET status = $2, decided_at = $3, decided_by = NULL, decided_by_label = $4, decision_reason = $5,
              deadline_at = NULL, next_reminder_at = NULL, escalate_at = NULL, version = version + 1, updated_at = $3
        WHERE id = $1 AND status = 'pending' RETURNING *`,
      [row.id, to, now, systemActor.label, reason],
    );
    await appendAudit(tx, { actor: systemActor, action: 'request.expired', subjectType: 'request', subjectId: row.id, before: { status: row.status }, after: { status: to }, details: { reason, deadline: row.deadline_at }, at: now });
    const r = await this.related(tx, updated);
    const snapshot = snapshotOf(updated, r.app, r.requester, r.device);
    await emit(tx, {
      type: 'request.expired', subjectType: 'request', subjectId: row.id, actor: systemActor, at: now,
      data: { ...snapshot, previousStatus: row.status }, webhooks: [{ type: 'request.expired', data: snapshot }],
    });
  }

  private async escalate(tx: Tx, row: RequestRow, now: Date): Promise<void> {
    const policy = policyOf(row);
    await tx.query(`UPDATE requests SET escalated_at = $2, escalate_at = NULL, version = version + 1, updated_at = $2 WHERE id = $1`, [row.id, now]);
    const details = { stage: row.current_stage, escalateTo: policy.escalateTo ?? [], approverGroups: policy.stages[row.current_stage]?.approvers ?? [] };
    await appendAudit(tx, { actor: systemActor, action: 'request.escalated', subjectType: 'request', subjectId: row.id, details, at: now });
    await emit(tx, { type: 'request.escalated', subjectType: 'request', subjectId: row.id, actor: systemActor, at: now, data: { requestId: row.id, ...details } });
  }

  private async remind(tx: Tx, row: RequestRow, now: Date): Promise<void> {
    const policy = policyOf(row);
    const next = nextReminder(policy, new Date(row.next_reminder_at!), now, row.deadline_at ? new Date(row.deadline_at) : null);
    await tx.query(`UPDATE requests SET next_reminder_at = $2 WHERE id = $1`, [row.id, next]);
    const stage = policy.stages[row.current_stage];
    const groups = [...(stage?.approvers ?? []), ...(row.escalated_at ? (policy.escalateTo ?? []) : [])];
    const details = { stage: row.current_stage, approverGroups: [...new Set(groups)], deadlineAt: row.deadline_at ? new Date(row.deadline_at).toISOString() : null };
    await appendAudit(tx, { actor: systemActor, action: 'request.reminder', subjectType: 'request', subjectId: row.id, details, at: now });
    await emit(tx, { type: 'request.reminder', subjectType: 'request', subjectId: row.id, actor: systemActor, at: now, data: { requestId: row.id, ...details } });
  }

  /** remind() for a batch of rows: the same rows, audit entries and events, in fewer statements. */
  private async remindAll(tx: Tx, rows: RequestRow[], now: Date): Promise<void> {
    const events: NewEvent[] = [];
    const audits: AuditEntry[] = [];
    const next: (Date | null)[] = [];
    for (const row of rows) {
      const policy = policyOf(row);
      next.push(nextReminder(policy, new Date(row.next_reminder_at!), now, row.deadline_at ? new Date(row.deadline_at) : null));
      const stage = policy.stages[row.current_stage];
      const groups = [...(stage?.approvers ?? []), ...(row.escalated_at ? (policy.escalateTo ?? []) : [])];
      const details = { stage: row.current_stage, approverGroups: [...new Set(groups)], deadlineAt: row.deadline_at ? new Date(row.deadline_at).toISOString() : null };
      audits.push({ actor: systemActor, action: 'request.reminder', subjectType: 'request', subjectId: row.id, details, at: now });
      events.push({ type: 'request.reminder', subjectType: 'request', subjectId: row.id, actor: systemActor, at: now, data: { requestId: row.id, ...details } });
    }
    await tx.query(
      `UPDATE requests r SET next_reminder_at = v.next FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, next) WHERE r.id = v.id`,
      [rows.map((r) => r.id), next.map((d) => d?.toISOString() ?? null)],
    );
    await appendAuditAll(tx, audits);
    await emitAll(tx, events);
  }

  private async warnAccessExpiry(tx: Tx, row: RequestRow, now: Date): Promise<void> {
    await tx.query(`UPDATE requests SET access_warn_at = NULL WHERE id = $1`, [row.id]);
    const r = await this.related(tx, row);
    const accessExpiresAt = row.access_expires_at ? new Date(row.access_expires_at).toISOString() : null;
    await appendAudit(tx, { actor: systemActor, action: 'request.access_expiring', subjectType: 'request', subjectId: row.id, details: { accessExpiresAt }, at: now });
    await emit(tx, {
      type: 'request.access_expiring', subjectType: 'request', subjectId: row.id, actor: systemActor, at: now,
      data: { ...snapshotOf(row, r.app, r.requester, r.device), accessExpiresAt },
    });
  }

  private async orderWindowedInstall(tx: Tx, row: RequestRow, now: Date): Promise<void> {
    const why = 'install window opened';
    await tx.query(`UPDATE requests SET install_ordered_at = $2, install_due_at = NULL, version = version + 1, updated_at = $2 WHERE id = $1`, [row.id, now]);
    const r = await this.related(tx, row);
    await appendAudit(tx, { actor: systemActor, action: 'request.install_ordered', subjectType: 'request', subjectId: row.id, details: { why }, at: now });
    await emit(tx, {
      type: 'request.install_ordered', subjectType: 'request', subjectId: row.id, actor: systemActor, at: now,
      data: { requestId: row.id, why },
      webhooks: [{
        type: 'app.install',
        data: {
          requestId: row.id, applicationId: r.app.id, applicationName: r.app.name, clientGuid: r.device?.client_guid ?? null,
          deviceName: r.device?.name ?? null, username: r.requester?.username ?? null, reason: why,
        },
      }],
    });
  }

  private async startReview(tx: Tx, row: RequestRow, now: Date): Promise<void> {
    const policy = policyOf(row);
    if (!policy.accessReviewEvery) {
      await tx.query(`UPDATE requests SET next_review_at = NULL WHERE id = $1`, [row.id]);
      return;
    }
    const windowMs = Math.min(parseDuration(this.reviewWindow), parseDuration(policy.accessReviewEvery));
    const dueAt = new Date(now.getTime() + windowMs);
    await tx.query(`UPDATE requests SET next_review_at = $2 WHERE id = $1`, [row.id, addDuration(now, policy.accessReviewEvery)]);
    const reviewers = reviewerGroups(policy);
    const review = await tx.maybeOne<{ id: string }>(
      `INSERT INTO access_reviews (request_id, status, due_at, created_at, reviewer_groups, approved_at, approved_by_label, next_reminder_at)
       VALUES ($1, 'pending', $2, $3, $4, $5, $6, $7)
       ON CONFLICT (request_id) WHERE status = 'pending' DO NOTHING RETURNING id`,
      [row.id, dueAt, now, reviewers, row.decided_at, row.decided_by_label, nextReminder(policy, now, now, dueAt)],
    );
    // the previous review is still open: it is not duplicated, the next one is simply scheduled
    if (!review) return;
    const r = await this.related(tx, row);
    // who can answer, named: adapters and webhooks need not resolve the groups again
    const reviewerUsernames = (await membersOfGroups(tx, reviewers)).filter((m) => m.id !== row.requester_id).map((m) => m.username);
    const approvedAt = row.decided_at ? new Date(row.decided_at).toISOString() : null;
    await appendAudit(tx, { actor: systemActor, action: 'request.review_started', subjectType: 'request', subjectId: row.id, details: { reviewId: review.id, reviewers, dueAt: dueAt.toISOString() }, at: now });
    await emit(tx, {
      type: 'request.review_started', subjectType: 'request', subjectId: row.id, actor: systemActor, at: now,
      data: {
        ...snapshotOf(row, r.app, r.requester, r.device), reviewId: review.id, reviewers, reviewerUsernames,
        approvedAt, approvedBy: row.decided_by_label, dueAt: dueAt.toISOString(),
      },
    });
  }

  /** An open review nobody has answered yet: its reviewers are reminded, in the prompt's thread where there is one. */
  private async remindReviewers(tx: Tx, review: ReviewWithRequest, now: Date): Promise<void> {
    const policy = policyDefinitionSchema.parse(review.request_policy);
    const dueAt = new Date(review.due_at);
    await tx.query(`UPDATE access_reviews SET next_reminder_at = $2 WHERE id = $1`, [review.id, nextReminder(policy, new Date(review.next_reminder_at!), now, dueAt)]);
    const reviewers = review.reviewer_groups?.length ? review.reviewer_groups : reviewerGroups(policy);
    const reviewerUsernames = (await membersOfGroups(tx, reviewers)).filter((m) => m.id !== review.request_requester_id).map((m) => m.username);
    const details = { reviewId: review.id, reviewers, dueAt: dueAt.toISOString() };
    await appendAudit(tx, { actor: systemActor, action: 'request.review_reminder', subjectType: 'request', subjectId: review.request_id, details, at: now });
    await emit(tx, { type: 'request.review_reminder', subjectType: 'request', subjectId: review.request_id, actor: systemActor, at: now, data: { requestId: review.request_id, ...details, reviewerUsernames } });
  }

  private async lapseReview(tx: Tx, review: ReviewRow, now: Date): Promise<void> {
    const reason = 'nobody answered the review in time; access is kept';
    await tx.query(`UPDATE access_reviews SET status = 'lapsed', decided_at = $2, reason = $3 WHERE id = $1`, [review.id, now, reason]);
    await appendAudit(tx, { actor: systemActor, action: 'request.review_lapsed', subjectType: 'request', subjectId: review.request_id, details: { reviewId: review.id, reason }, at: now });
    await emit(tx, {
      type: 'request.review_decided', subjectType: 'request', subjectId: review.request_id, actor: systemActor, at: now,
      data: { requestId: review.request_id, reviewId: review.id, outcome: 'lapsed', reason, decidedBy: null, decidedAt: now.toISOString() },
    });
  }

  getReview(id: string): Promise<ReviewView> {
    return getReviewView(this.db, id);
  }

  listReviews(filter: ReviewFilter, limit?: number, cursor?: string) {
    return listReviews(this.db, filter, limit, cursor);
  }

  /**
   * Refuses, without deciding anything, a reviewer who could not decide this review now (already decided, their
   * own access, not a reviewer). Chat adapters call it before asking for a reason; decideReview checks again.
   */
  async checkReviewer(actor: Actor, reviewId: string): Promise<ReviewView> {
    if (!isUuid(reviewId)) throw new AppError('not_found', `No access review with id "${reviewId}".`);
    return this.db.tx(async (tx) => {
      const review = await tx.maybeOne<ReviewRow>('SELECT * FROM access_reviews WHERE id = $1', [reviewId]);
      if (!review) throw new AppError('not_found', `No access review with id "${reviewId}".`);
      if (review.status !== 'pending') throw await reviewAlreadyDecided(tx, review);
      const row = await tx.one<RequestRow>('SELECT * FROM requests WHERE id = $1', [review.request_id]);
      await authorizeReviewer(tx, await resolveDecider(tx, actor, undefined, 'reviewer'), row, groupsOf(review, row));
      return getReviewView(tx, reviewId);
    });
  }

  /** A reviewer keeps or removes access; remove revokes the request (and uninstalls when an install was ordered). */
  async decideReview(actor: Actor, reviewId: string, decision: 'keep' | 'remove', reason?: string | null, opts: { reviewerUsername?: string } = {}): Promise<ReviewDecisionResult> {
    if (!isUuid(reviewId)) throw new AppError('not_found', `No access review with id "${reviewId}".`);
    const now = this.clock.now();
    return this.db.tx(async (tx) => {
      // request row first, then the review: the same order as revocation and the lapse sweep, so they cannot deadlock
      const target = await tx.maybeOne<{ request_id: string }>('SELECT request_id FROM access_reviews WHERE id = $1', [reviewId]);
      if (!target) throw new AppError('not_found', `No access review with id "${reviewId}".`);
      const reviewer = await resolveDecider(tx, actor, opts.reviewerUsername, 'reviewer');
      const row = await tx.one<RequestRow>('SELECT * FROM requests WHERE id = $1 FOR UPDATE', [target.request_id]);
      const review = await tx.one<ReviewRow>('SELECT * FROM access_reviews WHERE id = $1 FOR UPDATE', [reviewId]);
      if (review.status !== 'pending') throw await reviewAlreadyDecided(tx, review);
      await authorizeReviewer(tx, reviewer, row, groupsOf(review, row));
      const status = decision === 'keep' ? 'kept' : 'removed';
      const why = reason?.trim() || null;
      // removing someone's access always says why (the requester is told), wherever it is decided
      if (decision === 'remove' && !why) throw new AppError('validation_failed', 'Say why the access is no longer needed (reason) before removing it.', { field: 'reason' });
      await tx.query(`UPDATE access_reviews SET status = $2, decided_by = $3, decided_by_label = $4, decided_at = $5, reason = $6 WHERE id = $1`, [review.id, status, reviewer.id, reviewer.label, now, why]);
      await appendAudit(tx, { actor: reviewer, action: `request.review.${decision}`, subjectType: 'request', subjectId: row.id, details: { reviewId: review.id, reason: why }, at: now });
      await emit(tx, {
        type: 'request.review_decided', subjectType: 'request', subjectId: row.id, actor: reviewer, at: now,
        data: { requestId: row.id, reviewId: review.id, outcome: status, reason: why, decidedBy: reviewer.label, decidedAt: now.toISOString() },
      });
      let requestStatus: string = row.status;
      if (decision === 'remove' && row.status === 'approved') {
        await revokeRequest(tx, reviewer, row, why ?? 'removed in access review', now, 'review_removed');
        requestStatus = 'revoked';
      }
      return { reviewId: review.id, status, requestStatus };
    });
  }
}

const policyOf = (row: RequestRow): PolicyDefinition => policyDefinitionSchema.parse(row.policy);

/**
 * The reminder after one due at `last`, at the policy's interval; none without an interval or once it would
 * fall on or after `until`. A sweeper that was down sends one reminder, not one per missed interval.
 */
function nextReminder(policy: PolicyDefinition, last: Date, now: Date, until: Date | null): Date | null {
  if (!policy.reminderEvery) return null;
  let next = addDuration(last, policy.reminderEvery);
  if (next <= now) next = addDuration(now, policy.reminderEvery);
  return until && next >= until ? null : next;
}

export { reviewerGroups } from './approval-rights.ts';

const groupsOf = (review: ReviewRow, row: RequestRow) => (review.reviewer_groups?.length ? review.reviewer_groups : reviewerGroups(policyOf(row)));

async function reviewAlreadyDecided(tx: Tx, review: ReviewRow): Promise<AppError> {
  const decidedAt = review.decided_at ? new Date(review.decided_at).toISOString() : null;
  const who = review.decided_by_label
    ?? (review.decided_by ? ((await identityById(tx, review.decided_by))?.display_name ?? 'someone') : null);
  const how = review.status === 'lapsed'
    ? 'lapsed (nobody answered in time; access was kept)'
    : review.status === 'closed' ? `closed (${review.reason ?? 'the access ended first'})` : `${review.status} by ${who ?? 'someone'}`;
  return new AppError('already_decided', `This review was already ${how} at ${review.decided_at ? readableUtc(review.decided_at) : 'an earlier time'}.`, {
    // a lapse or a closure was Signoff's doing: chat replies name it rather than "someone"
    status: review.status, decidedBy: who ?? (review.status === 'lapsed' || review.status === 'closed' ? systemActor.label : null), decidedAt,
  });
}

function authorizeReviewer(tx: Tx, reviewer: Actor & { id: string }, row: RequestRow, groups: string[]): Promise<void> {
  return requireMember(tx, reviewer, groups, { subjectId: row.requester_id, selfMessage: 'You cannot review your own access.', what: 'review this access', detailsKey: 'reviewerGroups' });
}
