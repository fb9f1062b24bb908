import type { Queryable, Tx } from '../db/database.ts';
import { eligibleMembers, everyApproverGroup, requireMember, resolveDecider, stageApproverGroups } from './approval-rights.ts';
import type { Actor, AuditEntry } from './audit-log.ts';
import { recordCommand } from './command-record.ts';
import type { IdentityRow } from './directory.ts';
import { AppError, isUniqueViolation } from './errors.ts';
import { evaluateStage, stageTimers } from './policy-evaluation.ts';
import { policyDefinitionSchema } from './policy-schema.ts';
import type { RequestRow } from './request-queries.ts';
import { alreadyDecided, notThisStage } from './request-events.ts';
import { checkVersion, finishRequest, type RequestContext } from './request-transitions.ts';
import type { RequestView } from './views.ts';

export type DecisionOutcome = 'recorded' | 'stage_approved' | 'approved' | 'denied' | 'revoked' | 'reapproved';

export interface DecisionResult {
  outcome: DecisionOutcome;
  request: RequestView;
}

export interface ReverseOptions {
  /** the person a trusted caller decides for (REST `approver`) */
  approverUsername?: string;
  /** If-Match: the version the caller saw */
  expectedVersion?: number;
}

export interface DecideOptions extends ReverseOptions {
  /** decide only while this stage is the pending one: a prompt, link or caller bound to a stage */
  stage?: number;
  /** chat denials always say why (checked after who may decide, so others hear that first) */
  denyNeedsReason?: boolean;
}

/** A pending request at the caller's stage and version; anything else is refused before rights are looked at. */
export async function decidable(db: Queryable, row: RequestRow, opts: { stage?: number; expectedVersion?: number }): Promise<void> {
  checkVersion(row, opts.expectedVersion);
  if (row.status !== 'pending') throw alreadyDecided(row);
  if (opts.stage !== undefined && row.current_stage !== opts.stage) throw await notThisStage(db, opts.stage, row);
}

/**
 * Who decides an approve or deny, refused before anything changes: their own request whatever its state (a requester
 * is never told who beat them to it), then the state, stage and version. decide() and previewDecision() share it.
 */
export async function deciderFor(
  db: Queryable,
  actor: Actor,
  row: RequestRow,
  opts: { approverUsername?: string; stage?: number; expectedVersion?: number },
): Promise<Actor & { id: string }> {
  const acting = await resolveDecider(db, actor, opts.approverUsername, 'approver');
  if (acting.id === row.requester_id) throw new AppError('self_approval', 'You cannot decide your own request.');
  await decidable(db, row, opts);
  return acting;
}

/** Who may revoke (any of the policy's approvers) or reapprove (the current stage's); the state is checked first. */
export async function mayReverse(
  db: Queryable,
  actor: Actor,
  row: RequestRow,
  verb: 'revoke' | 'reapprove',
  opts: ReverseOptions,
): Promise<Actor & { id: string }> {
  const acting = await resolveDecider(db, actor, opts.approverUsername, 'approver');
  checkVersion(row, opts.expectedVersion);
  if (verb === 'revoke') {
    if (row.status === 'revoked') throw alreadyDecided(row);
    if (row.status !== 'approved') {
      throw new AppError(
        'invalid_transition',
        `A request that is ${row.status} cannot be revoked${row.status === 'pending' ? '; deny it instead' : ''}.`,
        { status: row.status },
      );
    }
    const policy = policyDefinitionSchema.parse(row.policy);
    await requireMember(db, acting, everyApproverGroup(policy), {
      subjectId: row.requester_id,
      selfMessage: 'You cannot revoke your own access; another approver must.',
      what: 'revoke this approval',
    });
    return acting;
  }
  if (row.status === 'approved') throw alreadyDecided(row);
  if (row.status !== 'denied' && row.status !== 'revoked') {
    throw new AppError(
      'invalid_transition',
      `A request that is ${row.status} cannot be reapproved${row.status === 'pending' ? '; approve it instead' : ''}.`,
      { status: row.status },
    );
  }
  await authorizeStage(db, acting, row);
  return acting;
}

/** Identities allowed to decide the current stage (the stage's groups, plus escalation groups once escalated). */
export function eligibleApprovers(tx: Tx, row: RequestRow): Promise<IdentityRow[]> {
  const policy = policyDefinitionSchema.parse(row.policy);
  return eligibleMembers(tx, stageApproverGroups(policy, row.current_stage, Boolean(row.escalated_at)), row.requester_id);
}

export function authorizeStage(tx: Queryable, actor: Actor & { id: string }, row: RequestRow, actorGroups?: string[]): Promise<void> {
  const policy = policyDefinitionSchema.parse(row.policy);
  return requireMember(tx, actor, stageApproverGroups(policy, row.current_stage, Boolean(row.escalated_at)), {
    subjectId: row.requester_id,
    selfMessage: 'You cannot decide your own request.',
    what: `decide this stage (stage ${row.current_stage + 1})`,
    actorGroups,
  });
}

/** One approver's vote on the locked request's current stage, and what it settles: the stage, the request, or nothing yet. */
export async function voteLocked(
  tx: Tx,
  actor: Actor & { id: string },
  row: RequestRow,
  decision: 'approve' | 'deny',
  reason: string | null,
  now: Date,
  denyNeedsReason: boolean,
  actorGroups?: string[],
  context?: RequestContext,
): Promise<DecisionOutcome> {
  await authorizeStage(tx, actor, row, actorGroups);
  const policy = policyDefinitionSchema.parse(row.policy);
  const stage = policy.stages[row.current_stage]!;
  if (decision === 'deny' && denyNeedsReason && !reason?.trim()) {
    throw new AppError('validation_failed', 'Say why (Reason) before denying, so the requester knows.', { field: 'reason' });
  }
  // Entra's approver justification: asked for either decision, whatever the channel
  if (stage.approverJustification && !reason?.trim()) {
    throw new AppError('validation_failed', 'This stage needs a justification from the approver.', { field: 'reason' });
  }
  let votes: { approverId: string; decision: 'approve' | 'deny' }[];
  try {
    // the vote and the stage's votes so far in one statement (the CTE's row is not visible to the outer SELECT)
    votes = await tx.query<{ approverId: string; decision: 'approve' | 'deny' }>(
      `WITH vote AS (
         INSERT INTO request_decisions (request_id, stage, approver_id, approver_label, decision, reason, channel, created_at)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8) RETURNING approver_id, decision)
       SELECT approver_id AS "approverId", decision FROM vote
       UNION ALL
       SELECT approver_id, decision FROM request_decisions WHERE request_id = $1 AND stage = $2 AND approver_id IS NOT NULL`,
      [row.id, row.current_stage, actor.id, actor.label, decision, reason?.trim() || null, actor.channel, now],
    );
  } catch (e) {
    if (isUniqueViolation(e)) throw new AppError('already_decided', `You already decided stage ${row.current_stage + 1} of this request.`);
    throw e;
  }
  // written with the transition's own audit row below, in one INSERT
  const voteAudit: AuditEntry = {
    actor,
    action: `request.decision.${decision}`,
    subjectType: 'request',
    subjectId: row.id,
    before: { status: row.status, stage: row.current_stage },
    details: { stage: row.current_stage, reason },
    at: now,
  };

  // only a quorum other than "any" needs to know how many may decide
  const eligible = stage.quorum === 'any' || votes.some((v) => v.decision === 'deny') ? 1 : (await eligibleApprovers(tx, row)).length;
  const result = evaluateStage(stage, votes, eligible);

  if (result === 'waiting') {
    // a recorded vote changes what the request shows (its stage's decisions): If-Match holders must see it
    await tx.query('UPDATE requests SET version = version + 1, updated_at = $2 WHERE id = $1', [row.id, now]);
    await recordCommand(
      tx,
      [voteAudit],
      [
        {
          type: 'request.decision_recorded',
          subjectId: row.id,
          actor,
          at: now,
          data: { requestId: row.id, stage: row.current_stage, decision, reason },
        },
      ],
    );
    return 'recorded';
  }
  if (result === 'denied') {
    await finishRequest(tx, actor, row, 'deny', reason, now, [voteAudit], context);
    return 'denied';
  }
  if (row.current_stage + 1 < policy.stages.length) {
    const t = stageTimers(policy, row.created_at, now);
    await tx.query(
      `UPDATE requests SET current_stage = current_stage + 1, stage_started_at = $2, next_reminder_at = $3, escalate_at = $4, escalated_at = NULL,
              version = version + 1, updated_at = $2 WHERE id = $1 AND status = 'pending' AND current_stage = $5`,
      [row.id, now, t.nextReminderAt, t.escalateAt, row.current_stage],
    );
    const advanced: AuditEntry = {
      actor,
      action: 'request.stage_advanced',
      subjectType: 'request',
      subjectId: row.id,
      before: { stage: row.current_stage },
      after: { stage: row.current_stage + 1 },
      at: now,
    };
    await recordCommand(
      tx,
      [voteAudit, advanced],
      [
        {
          type: 'request.stage_advanced',
          subjectId: row.id,
          actor,
          at: now,
          data: { requestId: row.id, completedStage: row.current_stage, stage: row.current_stage + 1 },
        },
      ],
    );
    return 'stage_approved';
  }
  await finishRequest(tx, actor, row, 'approve', reason, now, [voteAudit], context);
  return 'approved';
}

export const requireReason = (reason: string | null | undefined, doing: string): string => {
  const why = reason?.trim();
  if (!why) throw new AppError('validation_failed', `Say why (reason) before ${doing}: the requester is told.`, { field: 'reason' });
  return why;
};
