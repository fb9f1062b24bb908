import type { Queryable, Tx } from '../db/database.ts';
import type { Actor, AuditEntry } from './audit-log.ts';
import { readableUtc } from './clock.ts';
import { type ApplicationRow, type DeviceRow, type IdentityRow, lookupTogether, type Together, togetherColumns } from './directory.ts';
import { AppError } from './errors.ts';
import type { RevokeWhy } from './events.ts';
import { recordCommand } from './command-record.ts';
import type { AnyNewEvent } from './outbox.ts';
import { accessTimers, nextInstallWindowOpening } from './policy-evaluation.ts';
import { requestPolicy } from './policy-schema.ts';
import { isUuid, type RequestRow } from './request-queries.ts';
import { installData, snapshotOf } from './request-events.ts';
import { nextRequestStatus, type RequestAction } from './request-state.ts';
import { afterTransition, type RequestChanges, type Transition, type VoteRecord, writeTransition } from './request-write.ts';
import { type ExpectedVersion, staleVersion, versionMatches } from './versions.ts';

/**
 * The transitions of a request, planned once (planFinish) and written by writeTransition: on a row the caller's
 * transaction holds (`lockRequest`: cancel, expiry, CreateApprovedRequest, the timers), or guarded by the version a
 * decision read (`readForDecision`). Shared by every caller, so each transition is written once.
 */

/** The request row, locked for the caller's transaction (`lock = false` only reads it, for checks that decide nothing). */
export async function lockRequest(tx: Queryable, id: string, lock = true): Promise<RequestRow> {
  if (!isUuid(id)) throw new AppError('not_found', `No request with id "${id}".`);
  const row = await tx.maybeOne<RequestRow>(`SELECT * FROM requests WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id]);
  if (!row) throw new AppError('not_found', `No request with id "${id}".`);
  return row;
}

/** A vote already cast on the request's current stage. */
export interface StageVote {
  approverId: string;
  decision: 'approve' | 'deny';
}

export interface DecisionRead {
  row: RequestRow;
  /** the decider's groups, when the decider was known before reading or looked up with the request */
  groups: string[] | undefined;
  context: RequestContext;
  stageVotes: StageVote[];
  /** the identity linked to the Slack user looked up with the request (null: none is), when one was asked for */
  slackDecider?: { id: string; display_name: string } | null;
}

/**
 * What deciding needs, in one round trip and one snapshot, without a lock: the request, its current stage's votes,
 * the decider's groups, and the application, requester and device its events describe. The decision is written
 * with writeTransition, guarded by the version read here.
 */
export async function readForDecision(
  q: Queryable,
  id: string,
  identityId: string | null,
  slackUserId: string | null = null,
): Promise<DecisionRead> {
  if (!isUuid(id)) throw new AppError('not_found', `No request with id "${id}".`);
  // the SQL text names which decider it looks up, so each form keeps a plan of its own; a Slack user is looked up once
  const [who, decider] = slackUserId
    ? ['(SELECT id FROM w)', `(SELECT json_build_object('id', w.id, 'display_name', w.display_name) FROM w)`]
    : ['$2::uuid', 'NULL::json'];
  const found = await q.maybeOne<
    RequestRow & { decider_groups: string[]; stage_votes: StageVote[]; slack_decider: DecisionRead['slackDecider'] } & Together
  >(
    `${slackUserId ? 'WITH w AS (SELECT id, display_name FROM identities WHERE slack_user_id = $2) ' : ''}
     SELECT r.*, ARRAY(SELECT g.name FROM approver_groups g JOIN approver_group_members m ON m.group_id = g.id
                        WHERE m.identity_id = ${who} ORDER BY g.name) AS decider_groups,
            (SELECT coalesce(json_agg(json_build_object('approverId', d.approver_id, 'decision', d.decision)), '[]'::json)
               FROM request_decisions d WHERE d.request_id = r.id AND d.stage = r.current_stage AND d.approver_id IS NOT NULL) AS stage_votes,
            ${decider} AS slack_decider,
            ${togetherColumns('r.application_id', 'r.requester_id', 'r.device_id')}
       FROM requests r WHERE r.id = $1`,
    [id, slackUserId ?? identityId],
  );
  if (!found) throw new AppError('not_found', `No request with id "${id}".`);
  const { decider_groups, stage_votes, slack_decider, app, identity, device, ...row } = found;
  return {
    row: row as RequestRow,
    groups: identityId || slack_decider ? decider_groups : undefined,
    context: { app: app!, requester: identity, device },
    stageVotes: stage_votes,
    slackDecider: slackUserId ? (slack_decider ?? null) : undefined,
  };
}

const outcomeOf = (row: Pick<RequestRow, 'status' | 'decided_by_label' | 'decided_at'>) =>
  row.status === 'pending'
    ? 'pending'
    : `${row.status}${row.decided_by_label ? ` by ${row.decided_by_label}` : ''}${row.decided_at ? ` at ${readableUtc(row.decided_at)}` : ''}`;

/** If-Match: the caller decided on what it saw at `expected`; anything since (a vote, a decision, an escalation) is 412. */
export function checkVersion(row: RequestRow, expected: ExpectedVersion | undefined): void {
  if (expected === undefined || versionMatches(row.version, expected)) return;
  throw new AppError(
    'precondition_failed',
    `${staleVersion('request', expected, row.version)} (${outcomeOf(row)}). Read it again before deciding.`,
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

/**
 * Orders the install of an approved request now (Install now, a repeated CreateApprovedRequest): the row, its audit
 * row and its event in one statement. The caller holds the row's lock and has read its context.
 */
export async function orderInstall(
  tx: Tx,
  actor: Actor,
  row: RequestRow,
  now: Date,
  why: string,
  ctx: RequestContext,
): Promise<RequestRow> {
  const updated = await writeTransition(tx, row, {
    changes: { install_ordered_at: now, install_due_at: null, updated_at: now },
    versionStep: 1,
    audit: [{ actor, action: 'request.install_ordered', subjectType: 'request', subjectId: row.id, details: { why }, at: now }],
    events: [{ type: 'request.install_ordered', subjectId: row.id, actor, at: now, data: installData(row, ctx, why) }],
  });
  if (!updated) throw new AppError('already_decided', 'This request changed a moment ago.');
  return updated;
}

/**
 * The transition that finishes a request (approve, deny, cancel, expire, reapprove), planned from the row it was
 * decided on. Approval starts the access timers and orders the install, or schedules it for the install window.
 */
export function planFinish(
  actor: Actor,
  row: RequestRow,
  action: RequestAction,
  reason: string | null,
  now: Date,
  ctx: RequestContext,
  /** audit entries of the same command that come first (the vote that settled it), written in the same INSERT */
  auditFirst: AuditEntry[] = [],
  vote?: VoteRecord,
): Transition {
  const to = nextRequestStatus(row.status, action);
  if (to !== 'approved' && to !== 'denied' && to !== 'cancelled' && to !== 'expired') {
    throw new AppError('invalid_transition', `A request cannot be finished as ${to}; revocation has its own path.`);
  }
  const policy = requestPolicy(row);
  const access = to === 'approved' ? accessTimers(policy, now) : { accessExpiresAt: null, accessWarnAt: null, nextReviewAt: null };
  const opening =
    to === 'approved' && row.auto_install && ctx.app.install_window ? nextInstallWindowOpening(ctx.app.install_window, now) : null;
  const orderNow = to === 'approved' && row.auto_install && !opening;
  const changes: RequestChanges = {
    status: to,
    decided_at: now,
    decided_by: actor.id,
    decided_by_label: actor.label,
    decision_reason: reason?.trim() || null,
    next_reminder_at: null,
    escalate_at: null,
    deadline_at: null,
    access_expires_at: access.accessExpiresAt,
    access_warn_at: access.accessWarnAt,
    next_review_at: access.nextReviewAt,
    ...(orderNow ? { install_ordered_at: now, install_due_at: null } : opening ? { install_due_at: opening } : {}),
    updated_at: now,
  };
  // ordering the install is a change of its own that If-Match holders see
  const versionStep = orderNow ? 2 : 1;
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
  const data = {
    ...snapshotOf(afterTransition(row, { changes, versionStep }), ctx.app, ctx.requester, ctx.device),
    previousStatus: row.status,
  };
  const event: AnyNewEvent =
    to === 'approved'
      ? {
          type: 'request.approved',
          subjectId: row.id,
          actor,
          at: now,
          data: { ...data, installReason: orderNow ? (reason ?? 'approved') : null },
        }
      : { type: `request.${to}`, subjectId: row.id, actor, at: now, data };
  return { changes, versionStep, vote, audit: [...auditFirst, audit], events: [event] };
}

/**
 * planFinish written on a row the caller's transaction holds (`lockRequest`), so only one transaction can ever do it;
 * `also` adds audit entries written first and columns the same update sets.
 */
export async function finishRequest(
  tx: Tx,
  actor: Actor,
  row: RequestRow,
  action: RequestAction,
  reason: string | null,
  now: Date,
  ctx: RequestContext,
  also: { auditFirst?: AuditEntry[]; changes?: RequestChanges } = {},
): Promise<RequestRow> {
  const planned = planFinish(actor, row, action, reason, now, ctx, also.auditFirst);
  const updated = await writeTransition(tx, row, { ...planned, changes: { ...also.changes, ...planned.changes } });
  if (!updated) throw new AppError('already_decided', 'This request was decided a moment ago.');
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
): Promise<{ row: RequestRow; ctx: RequestContext }> {
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
  return { row: updated, ctx };
}
