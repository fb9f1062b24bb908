import type { Queryable } from '../db/database.ts';
import { eligibleMembers, everyApproverGroup, requireMember, resolveDecider, stageApproverGroups } from './approval-rights.ts';
import type { Actor, AuditEntry } from './audit-log.ts';
import { groupNamesOf, type IdentityRow } from './directory.ts';
import { AppError } from './errors.ts';
import { evaluateStage, stageTimers } from './policy-evaluation.ts';
import { requestPolicy } from './policy-schema.ts';
import type { RequestRow } from './request-queries.ts';
import { alreadyDecided, notThisStage } from './request-events.ts';
import { checkVersion, type DecisionRead, planFinish } from './request-transitions.ts';
import type { Transition, VoteRecord } from './request-write.ts';
import type { RequestView } from './views.ts';
import type { ExpectedVersion } from './versions.ts';

export type DecisionOutcome = 'recorded' | 'stage_approved' | 'approved' | 'denied' | 'revoked' | 'reapproved';

export interface DecisionResult {
  outcome: DecisionOutcome;
  request: RequestView;
}

export interface ReverseOptions {
  /** the person a trusted caller decides for (REST `approver`) */
  approverUsername?: string;
  /** If-Match: the version the caller saw */
  expectedVersion?: ExpectedVersion;
}

export interface DecideOptions extends ReverseOptions {
  /** decide only while this stage is the pending one: a prompt, link or caller bound to a stage */
  stage?: number;
  /** chat denials always say why (checked after who may decide, so others hear that first) */
  denyNeedsReason?: boolean;
}

/** A pending request at the caller's stage and version; anything else is refused before rights are looked at. */
export async function decidable(
  db: Queryable,
  row: RequestRow,
  opts: { stage?: number; expectedVersion?: ExpectedVersion },
): Promise<void> {
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
  opts: { approverUsername?: string; stage?: number; expectedVersion?: ExpectedVersion },
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
    const policy = requestPolicy(row);
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
export function eligibleApprovers(tx: Queryable, row: RequestRow): Promise<IdentityRow[]> {
  const policy = requestPolicy(row);
  return eligibleMembers(tx, stageApproverGroups(policy, row.current_stage, Boolean(row.escalated_at)), row.requester_id);
}

export function authorizeStage(tx: Queryable, actor: Actor & { id: string }, row: RequestRow, actorGroups?: string[]): Promise<void> {
  const policy = requestPolicy(row);
  return requireMember(tx, actor, stageApproverGroups(policy, row.current_stage, Boolean(row.escalated_at)), {
    subjectId: row.requester_id,
    selfMessage: 'You cannot decide your own request.',
    what: `decide this stage (stage ${row.current_stage + 1})`,
    actorGroups,
  });
}

/** The latest stage before the current one whose approvers include the actor, if any. */
async function earlierStageOf(q: Queryable, actor: Actor & { id: string }, row: RequestRow, actorGroups?: string[]) {
  if (row.current_stage === 0) return undefined;
  const policy = requestPolicy(row);
  const mine = actorGroups ?? (await groupNamesOf(q, actor.id));
  for (let stage = row.current_stage - 1; stage >= 0; stage--) {
    if (stageApproverGroups(policy, stage, Boolean(row.escalated_at)).some((g) => mine.includes(g))) return stage;
  }
  return undefined;
}

/**
 * One approver's vote on the request's current stage as read, and what it settles: the stage, the request, or
 * nothing yet. Returns the transition to write (writeTransition, guarded by the version read); nothing is written here.
 */
export async function planDecision(
  q: Queryable,
  actor: Actor & { id: string },
  read: DecisionRead,
  decision: 'approve' | 'deny',
  reason: string | null,
  now: Date,
  denyNeedsReason: boolean,
): Promise<{ outcome: DecisionOutcome; transition: Transition }> {
  const { row, context } = read;
  try {
    await authorizeStage(q, actor, row, read.groups);
  } catch (e) {
    // an approver of a stage already settled (their click or call came after it moved on) hears who settled it
    // and when, not that they may not decide
    const earlier = e instanceof AppError && e.code === 'not_an_approver' ? await earlierStageOf(q, actor, row, read.groups) : undefined;
    throw earlier === undefined ? e : await notThisStage(q, earlier, row);
  }
  const policy = requestPolicy(row);
  const stage = policy.stages[row.current_stage]!;
  if (decision === 'deny' && denyNeedsReason && !reason?.trim()) {
    throw new AppError('validation_failed', 'Say why (Reason) before denying, so the requester knows.', { field: 'reason' });
  }
  // Entra's approver justification: asked for either decision, whatever the channel
  if (stage.approverJustification && !reason?.trim()) {
    throw new AppError('validation_failed', 'This stage needs a justification from the approver.', { field: 'reason' });
  }
  if (read.stageVotes.some((v) => v.approverId === actor.id)) {
    throw new AppError('already_decided', `You already decided stage ${row.current_stage + 1} of this request.`);
  }
  const votes = [...read.stageVotes, { approverId: actor.id, decision }];
  const vote: VoteRecord = {
    stage: row.current_stage,
    approverId: actor.id,
    approverLabel: actor.label,
    decision,
    reason: reason?.trim() || null,
    channel: actor.channel,
    at: now,
  };
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
  const eligible = stage.quorum === 'any' || votes.some((v) => v.decision === 'deny') ? 1 : (await eligibleApprovers(q, row)).length;
  const result = evaluateStage(stage, votes, eligible);

  if (result === 'waiting') {
    // a recorded vote changes what the request shows (its stage's decisions): If-Match holders must see it
    return {
      outcome: 'recorded',
      transition: {
        changes: { updated_at: now },
        versionStep: 1,
        vote,
        audit: [voteAudit],
        events: [
          {
            type: 'request.decision_recorded',
            subjectId: row.id,
            actor,
            at: now,
            data: { requestId: row.id, stage: row.current_stage, decision, reason },
          },
        ],
      },
    };
  }
  if (result === 'denied')
    return { outcome: 'denied', transition: planFinish(actor, row, 'deny', reason, now, context, [voteAudit], vote) };
  if (row.current_stage + 1 < policy.stages.length) {
    const t = stageTimers(policy, row.created_at, now);
    const advanced: AuditEntry = {
      actor,
      action: 'request.stage_advanced',
      subjectType: 'request',
      subjectId: row.id,
      before: { stage: row.current_stage },
      after: { stage: row.current_stage + 1 },
      at: now,
    };
    return {
      outcome: 'stage_approved',
      transition: {
        changes: {
          current_stage: row.current_stage + 1,
          stage_started_at: now,
          next_reminder_at: t.nextReminderAt,
          escalate_at: t.escalateAt,
          escalated_at: null,
          updated_at: now,
        },
        versionStep: 1,
        vote,
        audit: [voteAudit, advanced],
        events: [
          {
            type: 'request.stage_advanced',
            subjectId: row.id,
            actor,
            at: now,
            data: { requestId: row.id, completedStage: row.current_stage, stage: row.current_stage + 1 },
          },
        ],
      },
    };
  }
  return { outcome: 'approved', transition: planFinish(actor, row, 'approve', reason, now, context, [voteAudit], vote) };
}

export const requireReason = (reason: string | null | undefined, doing: string): string => {
  const why = reason?.trim();
  if (!why) throw new AppError('validation_failed', `Say why (reason) before ${doing}: the requester is told.`, { field: 'reason' });
  return why;
};
