import type { Database, Tx } from '../db/database.ts';
import { recordCommand } from './command-record.ts';
import { stageApproverGroups } from './approval-rights.ts';
import { systemActor, type AuditEntry } from './audit-log.ts';
import type { Clock } from './clock.ts';
import type { AnyNewEvent } from './outbox.ts';
import { nextReminder } from './policy-evaluation.ts';
import { requestPolicy } from './policy-schema.ts';
import type { RequestRow } from './request-queries.ts';
import { installData, snapshotOf } from './request-events.ts';
import { requestContext, revokeRequest } from './request-transitions.ts';
import { nextRequestStatus } from './request-state.ts';
import { ReviewService, type ReviewWithRequest } from './review-service.ts';

// order matters: a lapsed review must close before the next one can open; expiry makes reminders moot
export const timerKinds = [
  'expiry',
  'escalation',
  'reminder',
  'access_expiry',
  'access_warning',
  'review_lapse',
  'review_reminder',
  'review',
  'install',
] as const;
export type TimerKind = (typeof timerKinds)[number];
export type SweepResult = Record<TimerKind, number>;

export interface TimerServiceOptions {
  batchSize?: number;
  /** how long reviewers have to answer a periodic access review (capped at the review interval) */
  reviewWindow?: string;
  onError?: (kind: TimerKind, id: string, error: unknown) => void;
}

type RequestTimer = {
  column: string;
  status: 'pending' | 'approved';
  extra?: string;
  /** the SELECT of a batch of due rows ($1 now, $2 the batch size), when not the one built from column and status */
  due?: string;
  act: (tx: Tx, row: RequestRow, now: Date) => Promise<void>;
};

/**
 * Timed work lives in Postgres: due-at columns with partial indexes (reminders, the mass timer, found through a narrow
 * table of their own). A sweep claims due rows in batches with FOR UPDATE SKIP LOCKED and acts in the same
 * transaction (moving or clearing the due-at column), so any number of sweepers can race and each effect still
 * happens exactly once. Nothing costs anything until it is due.
 */
export class TimerService {
  private readonly batchSize: number;
  /** reviews are their own service; the sweep only opens, reminds and lapses them on time */
  private readonly reviews: ReviewService;
  private readonly timers: Record<Exclude<TimerKind, 'review_lapse' | 'review_reminder'>, RequestTimer>;

  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
    private readonly opts: TimerServiceOptions = {},
  ) {
    this.batchSize = opts.batchSize ?? 100;
    this.reviews = new ReviewService(db, clock, { reviewWindow: opts.reviewWindow });
    this.timers = {
      expiry: { column: 'deadline_at', status: 'pending', act: (tx, r, now) => this.expire(tx, r, now) },
      escalation: {
        column: 'escalate_at',
        status: 'pending',
        extra: 'AND escalated_at IS NULL',
        act: (tx, r, now) => this.escalate(tx, r, now),
      },
      reminder: {
        column: 'next_reminder_at',
        status: 'pending',
        // found through their own narrow table (kept by a trigger), so moving one stays a HOT update
        due: `SELECT r.* FROM request_reminders t JOIN requests r ON r.id = t.request_id
               WHERE t.due_at <= $1 AND r.status = 'pending' AND r.next_reminder_at <= $1
               ORDER BY t.due_at LIMIT $2 FOR UPDATE OF r SKIP LOCKED`,
        act: (tx, r, now) => this.remind(tx, r, now),
      },
      access_expiry: {
        column: 'access_expires_at',
        status: 'approved',
        act: async (tx, r, now) => {
          await revokeRequest(tx, systemActor, r, 'access expired', now, 'access_expired');
        },
      },
      access_warning: { column: 'access_warn_at', status: 'approved', act: (tx, r, now) => this.warnAccessExpiry(tx, r, now) },
      review: { column: 'next_review_at', status: 'approved', act: (tx, r, now) => this.reviews.start(tx, r, now) },
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
        return this.each(tx, kind, rows, (r) =>
          kind === 'review_lapse' ? this.reviews.lapse(tx, r, now) : this.reviews.remind(tx, r, now),
        );
      }
      const t = this.timers[kind];
      const rows = await tx.query<RequestRow>(
        t.due ??
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

  private async expire(tx: Tx, row: RequestRow, now: Date): Promise<void> {
    const to = nextRequestStatus(row.status, 'expire');
    const reason = 'no decision before the deadline';
    const updated = await tx.one<RequestRow>(
      `UPDATE requests SET status = $2, decided_at = $3, decided_by = NULL, decided_by_label = $4, decision_reason = $5,
              deadline_at = NULL, next_reminder_at = NULL, escalate_at = NULL, version = version + 1, updated_at = $3
        WHERE id = $1 AND status = 'pending' RETURNING *`,
      [row.id, to, now, systemActor.label, reason],
    );
    const r = await requestContext(tx, updated);
    await recordCommand(
      tx,
      [
        {
          actor: systemActor,
          action: 'request.expired',
          subjectType: 'request',
          subjectId: row.id,
          before: { status: row.status },
          after: { status: to },
          details: { reason, deadline: row.deadline_at },
          at: now,
        },
      ],
      [
        {
          type: 'request.expired',
          subjectId: row.id,
          actor: systemActor,
          at: now,
          data: { ...snapshotOf(updated, r.app, r.requester, r.device), previousStatus: row.status },
        },
      ],
    );
  }

  private async escalate(tx: Tx, row: RequestRow, now: Date): Promise<void> {
    const policy = requestPolicy(row);
    await tx.query(`UPDATE requests SET escalated_at = $2, escalate_at = NULL, version = version + 1, updated_at = $2 WHERE id = $1`, [
      row.id,
      now,
    ]);
    const details = {
      stage: row.current_stage,
      escalateTo: policy.escalateTo ?? [],
      approverGroups: policy.stages[row.current_stage]?.approvers ?? [],
    };
    await recordCommand(
      tx,
      [{ actor: systemActor, action: 'request.escalated', subjectType: 'request', subjectId: row.id, details, at: now }],
      [{ type: 'request.escalated', subjectId: row.id, actor: systemActor, at: now, data: { requestId: row.id, ...details } }],
    );
  }

  private async remind(tx: Tx, row: RequestRow, now: Date): Promise<void> {
    const policy = requestPolicy(row);
    const next = nextReminder(policy, new Date(row.next_reminder_at!), now, row.deadline_at ? new Date(row.deadline_at) : null);
    await tx.query(`UPDATE requests SET next_reminder_at = $2 WHERE id = $1`, [row.id, next]);
    const details = {
      stage: row.current_stage,
      approverGroups: stageApproverGroups(policy, row.current_stage, Boolean(row.escalated_at)),
      deadlineAt: row.deadline_at ? new Date(row.deadline_at).toISOString() : null,
    };
    await recordCommand(
      tx,
      [{ actor: systemActor, action: 'request.reminder', subjectType: 'request', subjectId: row.id, details, at: now }],
      [{ type: 'request.reminder', subjectId: row.id, actor: systemActor, at: now, data: { requestId: row.id, ...details } }],
    );
  }

  /** remind() for a batch of rows: the same rows, audit entries and events, in fewer statements. */
  private async remindAll(tx: Tx, rows: RequestRow[], now: Date): Promise<void> {
    const events: AnyNewEvent[] = [];
    const audits: AuditEntry[] = [];
    const next: (Date | null)[] = [];
    for (const row of rows) {
      const policy = requestPolicy(row);
      next.push(nextReminder(policy, new Date(row.next_reminder_at!), now, row.deadline_at ? new Date(row.deadline_at) : null));
      const details = {
        stage: row.current_stage,
        approverGroups: stageApproverGroups(policy, row.current_stage, Boolean(row.escalated_at)),
        deadlineAt: row.deadline_at ? new Date(row.deadline_at).toISOString() : null,
      };
      audits.push({ actor: systemActor, action: 'request.reminder', subjectType: 'request', subjectId: row.id, details, at: now });
      events.push({ type: 'request.reminder', subjectId: row.id, actor: systemActor, at: now, data: { requestId: row.id, ...details } });
    }
    await tx.query(
      `UPDATE requests r SET next_reminder_at = v.next FROM unnest($1::uuid[], $2::timestamptz[]) AS v(id, next) WHERE r.id = v.id`,
      [rows.map((r) => r.id), next.map((d) => d?.toISOString() ?? null)],
    );
    await recordCommand(tx, audits, events);
  }

  private async warnAccessExpiry(tx: Tx, row: RequestRow, now: Date): Promise<void> {
    await tx.query(`UPDATE requests SET access_warn_at = NULL WHERE id = $1`, [row.id]);
    const r = await requestContext(tx, row);
    const accessExpiresAt = row.access_expires_at ? new Date(row.access_expires_at).toISOString() : null;
    await recordCommand(
      tx,
      [
        {
          actor: systemActor,
          action: 'request.access_expiring',
          subjectType: 'request',
          subjectId: row.id,
          details: { accessExpiresAt },
          at: now,
        },
      ],
      [
        {
          type: 'request.access_expiring',
          subjectId: row.id,
          actor: systemActor,
          at: now,
          data: { ...snapshotOf(row, r.app, r.requester, r.device), accessExpiresAt },
        },
      ],
    );
  }

  private async orderWindowedInstall(tx: Tx, row: RequestRow, now: Date): Promise<void> {
    const why = 'install window opened';
    await tx.query(
      `UPDATE requests SET install_ordered_at = $2, install_due_at = NULL, version = version + 1, updated_at = $2 WHERE id = $1`,
      [row.id, now],
    );
    const r = await requestContext(tx, row);
    await recordCommand(
      tx,
      [
        {
          actor: systemActor,
          action: 'request.install_ordered',
          subjectType: 'request',
          subjectId: row.id,
          details: { why },
          at: now,
        },
      ],
      [
        {
          type: 'request.install_ordered',
          subjectId: row.id,
          actor: systemActor,
          at: now,
          data: installData(row, r, why),
        },
      ],
    );
  }
}
