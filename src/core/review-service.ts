import { recordCommand } from './command-record.ts';
import type { Database, Tx } from '../db/database.ts';
import { eligibleMembers, requireReviewer, resolveDecider, reviewerGroups, reviewGroups } from './approval-rights.ts';
import { systemActor, type Actor } from './audit-log.ts';
import { readableUtc, type Clock } from './clock.ts';
import { identityById } from './directory.ts';
import { addDuration, parseDuration } from './durations.ts';
import { AppError } from './errors.ts';
import { nextReminder } from './policy-evaluation.ts';
import { policyDefinitionSchema, requestPolicy } from './policy-schema.ts';
import { isUuid, type RequestRow } from './request-queries.ts';
import { snapshotOf } from './request-events.ts';
import { requestContext, revokeRequest } from './request-transitions.ts';
import { getReviewView, listReviews, type ReviewFilter, type ReviewStatus, type ReviewView } from './review-queries.ts';
import { withinLimit } from './validation.ts';

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
export type ReviewWithRequest = ReviewRow & { request_policy: unknown; request_requester_id: string | null };

export interface ReviewDecisionResult {
  reviewId: string;
  status: 'kept' | 'removed';
  requestStatus: string;
}

export interface ReviewServiceOptions {
  /** how long reviewers have to answer a periodic access review (capped at the review interval) */
  reviewWindow?: string;
}

/**
 * Periodic access reviews (Entra's "does this person still need it?"): the timer sweep opens, reminds and lapses
 * them through this service; reviewers keep or remove access here from every channel, and removal revokes.
 */
export class ReviewService {
  private readonly reviewWindow: string;

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    opts: ReviewServiceOptions = {},
  ) {
    this.reviewWindow = opts.reviewWindow ?? 'P14D';
  }

  /** The timer sweep's `review` kind: opens the periodic review of an approved request (one open review at a time). */
  async start(tx: Tx, row: RequestRow, now: Date): Promise<void> {
    const policy = requestPolicy(row);
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
    const r = await requestContext(tx, row);
    // who can answer, named: adapters and webhooks need not resolve the groups again
    const reviewerUsernames = (await eligibleMembers(tx, reviewers, row.requester_id)).map((m) => m.username);
    const approvedAt = row.decided_at ? new Date(row.decided_at).toISOString() : null;
    await recordCommand(
      tx,
      [
        {
          actor: systemActor,
          action: 'request.review_started',
          subjectType: 'request',
          subjectId: row.id,
          details: { reviewId: review.id, reviewers, dueAt: dueAt.toISOString() },
          at: now,
        },
      ],
      [
        {
          type: 'request.review_started',
          subjectId: row.id,
          actor: systemActor,
          at: now,
          data: {
            ...snapshotOf(row, r.app, r.requester, r.device),
            reviewId: review.id,
            reviewers,
            reviewerUsernames,
            approvedAt,
            approvedBy: row.decided_by_label,
            dueAt: dueAt.toISOString(),
          },
        },
      ],
    );
  }

  /** An open review nobody has answered yet: its reviewers are reminded, in the prompt's thread where there is one. */
  async remind(tx: Tx, review: ReviewWithRequest, now: Date): Promise<void> {
    const policy = policyDefinitionSchema.parse(review.request_policy);
    const dueAt = new Date(review.due_at);
    await tx.query(`UPDATE access_reviews SET next_reminder_at = $2 WHERE id = $1`, [
      review.id,
      nextReminder(policy, new Date(review.next_reminder_at!), now, dueAt),
    ]);
    const reviewers = reviewGroups(review, policy);
    const reviewerUsernames = (await eligibleMembers(tx, reviewers, review.request_requester_id)).map((m) => m.username);
    const details = { reviewId: review.id, reviewers, dueAt: dueAt.toISOString() };
    await recordCommand(
      tx,
      [
        {
          actor: systemActor,
          action: 'request.review_reminder',
          subjectType: 'request',
          subjectId: review.request_id,
          details,
          at: now,
        },
      ],
      [
        {
          type: 'request.review_reminder',
          subjectId: review.request_id,
          actor: systemActor,
          at: now,
          data: { requestId: review.request_id, ...details, reviewerUsernames },
        },
      ],
    );
  }

  /** The timer sweep's `review_lapse` kind: nobody answered in time, so the access is kept. */
  async lapse(tx: Tx, review: ReviewRow, now: Date): Promise<void> {
    const reason = 'nobody answered the review in time; access is kept';
    await tx.query(`UPDATE access_reviews SET status = 'lapsed', decided_at = $2, reason = $3 WHERE id = $1`, [review.id, now, reason]);
    await recordCommand(
      tx,
      [
        {
          actor: systemActor,
          action: 'request.review_lapsed',
          subjectType: 'request',
          subjectId: review.request_id,
          details: { reviewId: review.id, reason },
          at: now,
        },
      ],
      [
        {
          type: 'request.review_decided',
          subjectId: review.request_id,
          actor: systemActor,
          at: now,
          data: {
            requestId: review.request_id,
            reviewId: review.id,
            outcome: 'lapsed',
            reason,
            decidedBy: null,
            decidedAt: now.toISOString(),
          },
        },
      ],
    );
  }

  get(id: string): Promise<ReviewView> {
    return getReviewView(this.db, id);
  }

  list(filter: ReviewFilter, limit?: number, cursor?: string) {
    return listReviews(this.db, filter, limit, cursor);
  }

  /**
   * Refuses, without deciding anything, a reviewer who could not decide this review now (already decided, their
   * own access, not a reviewer). Chat adapters call it before asking for a reason; decide() checks again.
   */
  async checkReviewer(actor: Actor, reviewId: string): Promise<ReviewView> {
    if (!isUuid(reviewId)) throw new AppError('not_found', `No access review with id "${reviewId}".`);
    return this.db.tx(async (tx) => {
      const review = await tx.maybeOne<ReviewRow>('SELECT * FROM access_reviews WHERE id = $1', [reviewId]);
      if (!review) throw new AppError('not_found', `No access review with id "${reviewId}".`);
      if (review.status !== 'pending') throw await reviewAlreadyDecided(tx, review);
      const row = await tx.one<RequestRow>('SELECT * FROM requests WHERE id = $1', [review.request_id]);
      await requireReviewer(
        tx,
        await resolveDecider(tx, actor, undefined, 'reviewer'),
        row.requester_id,
        reviewGroups(review, requestPolicy(row)),
      );
      return getReviewView(tx, reviewId);
    });
  }

  /** A reviewer keeps or removes access; remove revokes the request (and uninstalls when an install was ordered). */
  async decide(
    actor: Actor,
    reviewId: string,
    decision: 'keep' | 'remove',
    reason?: string | null,
    opts: { reviewerUsername?: string } = {},
  ): Promise<ReviewDecisionResult> {
    if (!isUuid(reviewId)) throw new AppError('not_found', `No access review with id "${reviewId}".`);
    withinLimit('reason', reason);
    const now = this.clock.now();
    return this.db.tx(async (tx) => {
      // request row first, then the review: the same order as revocation and the lapse sweep, so they cannot deadlock
      const target = await tx.maybeOne<{ request_id: string }>('SELECT request_id FROM access_reviews WHERE id = $1', [reviewId]);
      if (!target) throw new AppError('not_found', `No access review with id "${reviewId}".`);
      const reviewer = await resolveDecider(tx, actor, opts.reviewerUsername, 'reviewer');
      const row = await tx.one<RequestRow>('SELECT * FROM requests WHERE id = $1 FOR UPDATE', [target.request_id]);
      const review = await tx.one<ReviewRow>('SELECT * FROM access_reviews WHERE id = $1 FOR UPDATE', [reviewId]);
      if (review.status !== 'pending') throw await reviewAlreadyDecided(tx, review);
      await requireReviewer(tx, reviewer, row.requester_id, reviewGroups(review, requestPolicy(row)));
      const status = decision === 'keep' ? 'kept' : 'removed';
      const why = reason?.trim() || null;
      // removing someone's access always says why (the requester is told), wherever it is decided
      if (decision === 'remove' && !why)
        throw new AppError('validation_failed', 'Say why the access is no longer needed (reason) before removing it.', { field: 'reason' });
      await tx.query(
        `UPDATE access_reviews SET status = $2, decided_by = $3, decided_by_label = $4, decided_at = $5, reason = $6 WHERE id = $1`,
        [review.id, status, reviewer.id, reviewer.label, now, why],
      );
      await recordCommand(
        tx,
        [
          {
            actor: reviewer,
            action: `request.review.${decision}`,
            subjectType: 'request',
            subjectId: row.id,
            details: { reviewId: review.id, reason: why },
            at: now,
          },
        ],
        [
          {
            type: 'request.review_decided',
            subjectId: row.id,
            actor: reviewer,
            at: now,
            data: {
              requestId: row.id,
              reviewId: review.id,
              outcome: status,
              reason: why,
              decidedBy: reviewer.label,
              decidedAt: now.toISOString(),
            },
          },
        ],
      );
      let requestStatus: string = row.status;
      if (decision === 'remove' && row.status === 'approved') {
        await revokeRequest(tx, reviewer, row, why ?? 'removed in access review', now, 'review_removed');
        requestStatus = 'revoked';
      }
      return { reviewId: review.id, status, requestStatus };
    });
  }
}

async function reviewAlreadyDecided(tx: Tx, review: ReviewRow): Promise<AppError> {
  const decidedAt = review.decided_at ? new Date(review.decided_at).toISOString() : null;
  const who =
    review.decided_by_label ?? (review.decided_by ? ((await identityById(tx, review.decided_by))?.display_name ?? 'someone') : null);
  const how =
    review.status === 'lapsed'
      ? 'lapsed (nobody answered in time; access was kept)'
      : review.status === 'closed'
        ? `closed (${review.reason ?? 'the access ended first'})`
        : `${review.status} by ${who ?? 'someone'}`;
  return new AppError(
    'already_decided',
    `This review was already ${how} at ${review.decided_at ? readableUtc(review.decided_at) : 'an earlier time'}.`,
    {
      // a lapse or a closure was Signoff's doing: chat replies name it rather than "someone"
      status: review.status,
      decidedBy: who ?? (review.status === 'lapsed' || review.status === 'closed' ? systemActor.label : null),
      decidedAt,
    },
  );
}
