import type { Queryable, Tx } from '../db/database.ts';
import type { Actor, AuditEntry } from './audit-log.ts';
import { readableUtc } from './clock.ts';
import { type ApplicationRow, type DeviceRow, type IdentityRow, lookupTogether, type Together, togetherColumns } from './directory.ts';
import { AppError } from './errors.ts';
import type { RevokeWhy } from './events.ts';
import { recordCommand } from './command-record.ts';
import type { AnyNewEvent } from './outbox.ts';
import { accessTimers, nextInstallWindowOpening } from './policy-evaluation.ts';
import { policyDefinitionSchema } from './policy-schema.ts';
import { isUuid, type RequestRow } from './request-queries.ts';
import { installData, snapshotOf } from './request-events.ts';
import { nextRequestStatus, type RequestAction } from './request-state.ts';

/**
 * The writes behind every request transition, on a row the caller's transaction already holds (`lockRequest`).
 * Shared by the request service, CreateApprovedRequest and the timers, so each transition is written once.
 */

/** The request row, locked for the caller's transaction (`lock = false` only reads it, for checks that decide nothing). */
export async function lockRequest(tx: Queryable, id: string, lock = true): Promise<RequestRow> {
  if (!isUuid(id)) throw new AppError('not_found', `No request with id "${id}".`);
  const row = await tx.maybeOne<RequestRow>(`SELECT * FROM requests WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id]);
  if (!row) throw new AppError('not_found', `No request with id "${id}".`);
  return row;
}

/** lockRequest, with the group names of the person about to decide read in the same statement. */
/**
 * The row lock for a decision, with what deciding needs in the same round trip: the decider's groups, and the
 * application, requester and device a finished request's event describes.
 */
export async function lockRequestWithGroups(
  tx: Queryable,
  id: string,
  identityId: string,
): Promise<{ row: RequestRow; groups: string[]; context: RequestContext }> {
  if (!isUuid(id)) throw new AppError('not_found', `No request with id "${id}".`);
  const found = await tx.maybeOne<RequestRow & { decider_groups: string[] } & Together>(
    `SELECT r.*, ARRAY(SELECT g.name FROM approver_groups g JOIN approver_group_members m ON m.group_id = g.id
                        WHERE m.identity_id = $2::uuid ORDER BY g.name) AS decider_groups,
            ${togetherColumns('r.application_id', 'r.requester_id', 'r.device_id')}
       FROM requests r WHERE r.id = $1 FOR UPDATE OF r`,
    [id, identityId],
  );
  if (!found) throw new AppError('not_found', `No request with id "${id}".`);
  const { decider_groups: groups, app, identity, device, ...row } = found;
  return { row: row as RequestRow, groups, context: { app: app!, requester: identity, device } };
}

const outcomeOf = (row: Pick<RequestRow, 'status' | 'decided_by_label' | 'decided_at'>) =>
  row.status === 'pending'
    ? 'pending'
    : `${row.status}${row.decided_by_label ? ` by ${row.decided_by_label}` : ''}${row.decided_at ? ` at ${readableUtc(row.decided_at)}` : ''}`;

/** If-Match: the caller decided on what it saw at `expected`; anything since (a vote, a decision, an escalation) is 412. */
export function checkVersion(row: RequestRow, expected: number | undefined): void {
  if (expected === undefined || row.version === expected) return;
  throw new AppError(
    'precondition_failed',
    `This request changed since version ${expected}: it is now version ${row.version} (${outcomeOf(row)}). Read it again before deciding.`,
    {
      currentVersion: row.version,
      status: row.status,
      decidedBy: row.decided_by_label,
      decidedAt: row.decided_at ? new Date(row.decided_at).toISOString() : null,
    },
  );
}

/** The request's application, requester and device, in one round trip. */
export interface RequestContext {
  app: ApplicationRow;
  requester: IdentityRow | null;
  device: DeviceRow | null;
}

export async function requestContext(
  tx: Tx,
  row: Pick<RequestRow, 'application_id' | 'requester_id' | 'device_id'>,
): Promise<RequestContext> {
  const found = await lookupTogether(tx, { applicationId: row.application_id, identityId: row.requester_id, deviceId: row.device_id });
  return { app: found.app!, requester: found.identity, device: found.device };
}

/** Install now unless the application has an install window that is closed; then at its next opening. */
export async function scheduleInstall(tx: Tx, row: RequestRow, app: ApplicationRow, now: Date, force = false): Promise<boolean> {
  if (!row.auto_install && !force) return false;
  const opening = !force && app.install_window ? nextInstallWindowOpening(app.install_window, now) : null;
  if (opening) {
    await tx.query('UPDATE requests SET install_due_at = $2 WHERE id = $1', [row.id, opening]);
    return false;
  }
  await tx.query(
    'UPDATE requests SET install_ordered_at = $2, install_due_at = NULL, version = version + 1, updated_at = $2 WHERE id = $1',
    [row.id, now],
  );
  return true;
}

/** Orders the install of an approved request now (Install now, a repeated CreateApprovedRequest). */
export async function orderInstall(tx: Tx, actor: Actor, row: RequestRow, now: Date, why: string): Promise<void> {
  const ctx = await requestContext(tx, row);
  await scheduleInstall(tx, row, ctx.app, now, true);
  await recordCommand(
    tx,
    [{ actor, action: 'request.install_ordered', subjectType: 'request', subjectId: row.id, details: { why }, at: now }],
    [{ type: 'request.install_ordered', subjectId: row.id, actor, at: now, data: installData(row, ctx, why) }],
  );
}

/**
 * Moves a request to its next state, guarded by its current status so only one transaction can ever do it.
 * Approval starts the access timers and orders the install (or schedules it for the install window).
 */
export async function finishRequest(
  tx: Tx,
  actor: Actor,
  row: RequestRow,
  action: RequestAction,
  reason: string | null,
  now: Date,
  /** audit entries of the same command that come first (the vote that settled it), written in the same INSERT */
  auditFirst: AuditEntry[] = [],
  /** the application, requester and device when the caller read them with the row lock */
  known?: RequestContext,
): Promise<RequestRow> {
  const to = nextRequestStatus(row.status, action);
  const policy = policyDefinitionSchema.parse(row.policy);
  const access = to === 'approved' ? accessTimers(policy, now) : { accessExpiresAt: null, accessWarnAt: null, nextReviewAt: null };
  // read before the update: the application, requester and device are not what it changes
  const ctx = known ?? (await requestContext(tx, row));
  // an approval orders the install now, or at the install window's next opening (scheduleInstall, in the same UPDATE)
  const opening =
    to === 'approved' && row.auto_install && ctx.app.install_window ? nextInstallWindowOpening(ctx.app.install_window, now) : null;
  const orderNow = to === 'approved' && row.auto_install && !opening;
  const updated = await tx.maybeOne<RequestRow>(
    `UPDATE requests SET status = $2, decided_at = $3, decided_by = $4, decided_by_label = $5, decision_reason = $6,
            next_reminder_at = NULL, escalate_at = NULL, deadline_at = CASE WHEN $2 = 'pending' THEN deadline_at ELSE NULL END,
            access_expires_at = $7, access_warn_at = $8, next_review_at = $9,
            install_ordered_at = CASE WHEN $11 THEN $3 ELSE install_ordered_at END,
            install_due_at = CASE WHEN $11 THEN NULL WHEN $12::timestamptz IS NOT NULL THEN $12::timestamptz ELSE install_due_at END,
            version = version + CASE WHEN $11 THEN 2 ELSE 1 END, updated_at = $3
      WHERE id = $1 AND status = $10 RETURNING *`,
    [
      row.id,
      to,
      now,
      actor.id,
      actor.label,
      reason?.trim() || null,
      access.accessExpiresAt,
      access.accessWarnAt,
      access.nextReviewAt,
      row.status,
      orderNow,
      opening,
    ],
  );
  if (!updated) throw new AppError('already_decided', 'This request was decided a moment ago.');
  const audit: AuditEntry = {
    actor,
    action: `request.${to}`,
    subjectType: 'request',
    subjectId: row.id,
    before: { status: row.status },
    after: { status: to },
    details: reason ? { reason } : null,
    at: now,
  };
  const snapshot = snapshotOf(updated, ctx.app, ctx.requester, ctx.device);
  const previousStatus = row.status;
  let event: AnyNewEvent;
  if (to === 'approved') {
    const installReason = orderNow ? (reason ?? 'approved') : null;
    event = { type: 'request.approved', subjectId: row.id, actor, at: now, data: { ...snapshot, previousStatus, installReason } };
  } else if (to === 'denied' || to === 'cancelled' || to === 'expired') {
    event = { type: `request.${to}`, subjectId: row.id, actor, at: now, data: { ...snapshot, previousStatus } };
  } else {
    throw new AppError('invalid_transition', `A request cannot be finished as ${to}; revocation has its own path.`);
  }
  await recordCommand(tx, [...auditFirst, audit], [event]);
  return updated;
}

/**
 * Approved → revoked, sending app.uninstall when an install was ordered, and closing an access review still open
 * for this access. Callers check who may do it; this only writes.
 */
export async function revokeRequest(
  tx: Tx,
  actor: Actor,
  row: RequestRow,
  reason: string | null,
  now: Date,
  why: RevokeWhy,
): Promise<void> {
  if (row.status !== 'approved') nextRequestStatus(row.status, 'revoke');
  const updated = await tx.maybeOne<RequestRow>(
    `UPDATE requests SET status = 'revoked', decided_at = $2::timestamptz, decided_by = $3, decided_by_label = $4, decision_reason = $5,
            install_due_at = NULL, access_expires_at = NULL, access_warn_at = NULL, next_review_at = NULL,
            uninstall_ordered_at = CASE WHEN install_ordered_at IS NOT NULL THEN $2::timestamptz ELSE NULL END,
            version = version + 1, updated_at = $2
      WHERE id = $1 AND status = 'approved' RETURNING *`,
    [row.id, now, actor.id, actor.label, reason?.trim() || null],
  );
  if (!updated) throw new AppError('already_decided', 'This request was revoked a moment ago.');
  const closeReason = why === 'access_expired' ? 'the access expired first' : 'the access was revoked first';
  const closed = await tx.query<{ id: string }>(
    `UPDATE access_reviews SET status = 'closed', decided_at = $2, reason = $3 WHERE request_id = $1 AND status = 'pending' RETURNING id`,
    [row.id, now, closeReason],
  );
  const audits: AuditEntry[] = [
    {
      actor,
      action: 'request.revoked',
      subjectType: 'request',
      subjectId: row.id,
      before: { status: 'approved' },
      after: { status: 'revoked' },
      details: { reason, why },
      at: now,
    },
  ];
  const ctx = await requestContext(tx, updated);
  const uninstallReason = updated.install_ordered_at ? (reason ?? why) : null;
  const events: AnyNewEvent[] = [
    {
      type: 'request.revoked',
      subjectId: row.id,
      actor,
      at: now,
      data: { ...snapshotOf(updated, ctx.app, ctx.requester, ctx.device), why, uninstallReason },
    },
  ];
  for (const review of closed) {
    audits.push({
      actor,
      action: 'request.review_closed',
      subjectType: 'request',
      subjectId: row.id,
      details: { reviewId: review.id, reason: closeReason },
      at: now,
    });
    events.push({
      type: 'request.review_decided',
      subjectId: row.id,
      actor,
      at: now,
      data: {
        requestId: row.id,
        reviewId: review.id,
        outcome: 'closed',
        reason: closeReason,
        decidedBy: null,
        decidedAt: now.toISOString(),
      },
    });
  }
  await recordCommand(tx, audits, events);
}
