import type { Database, Queryable, Tx } from '../db/database.ts';
import { eligibleMembers, everyApproverGroup, requireMember, resolveDecider, stageApproverGroups } from './approval-rights.ts';
import { createApprovedRequest, type CreateApprovedInput } from './approved-requests.ts';
import { appendAudit, appendAuditAll, type Actor, type AuditEntry } from './audit-log.ts';
import { readableUtc, type Clock } from './clock.ts';
import { actingFor, lookupForSubmit, maySee, policyOf, type ApplicationRow, type DeviceRow, type IdentityRow } from './directory.ts';
import { AppError, isUniqueViolation } from './errors.ts';
import { emit } from './outbox.ts';
import { describeFieldErrors, evaluateStage, hasFieldErrors, mayRequest, stageTimers, validateSubmission } from './policy-evaluation.ts';
import { policyDefinitionSchema } from './policy-schema.ts';
import {
  countRequests,
  getRequestDetail,
  getRequestView,
  listRequests,
  requestIdFromRef,
  type RequestFilter,
  type RequestRow,
} from './request-queries.ts';
import { alreadyDecided, notThisStage, snapshotOf } from './request-events.ts';
import { checkVersion, finishRequest, lockRequest, lockRequestWithGroups, orderInstall, revokeRequest } from './request-transitions.ts';
import type { Page, RequestDetail, RequestView } from './views.ts';

export type { CreateApprovedInput } from './approved-requests.ts';

export interface SubmitInput {
  applicationId: string;
  requesterId?: string;
  requesterUsername?: string;
  deviceId?: string;
  clientGuid?: string;
  justification?: string | null;
  answers?: Record<string, unknown>;
  source?: 'chat' | 'api' | 'web';
}

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
async function decidable(db: Queryable, row: RequestRow, opts: { stage?: number; expectedVersion?: number }): Promise<void> {
  checkVersion(row, opts.expectedVersion);
  if (row.status !== 'pending') throw alreadyDecided(row);
  if (opts.stage !== undefined && row.current_stage !== opts.stage) throw await notThisStage(db, opts.stage, row);
}

/**
 * Runs each request command in one transaction. Concurrency is settled by locking the request row
 * (`SELECT ... FOR UPDATE`) and by the partial unique indexes, never in memory.
 */
export class RequestService {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  get(id: string): Promise<RequestDetail> {
    return getRequestDetail(this.db, id);
  }

  list(filter: RequestFilter, limit?: number, cursor?: string): Promise<Page<RequestView>> {
    return listRequests(this.db, filter, limit, cursor);
  }

  /** A request id from what someone typed: the id, or a unique prefix of 8 or more characters of it. */
  resolveRef(ref: string): Promise<string> {
    return requestIdFromRef(this.db, ref);
  }

  count(filter: RequestFilter): Promise<number> {
    return countRequests(this.db, filter);
  }

  async submit(actor: Actor, input: SubmitInput): Promise<RequestView> {
    const now = this.clock.now();
    const id = await this.db.tx(async (tx) => {
      const requesterRef = {
        id: input.requesterId ?? (input.requesterUsername ? undefined : (actor.id ?? undefined)),
        username: input.requesterUsername,
      };
      // requester with groups, application and device in one round trip; checked in the order people expect
      const found = await lookupForSubmit(tx, {
        applicationId: input.applicationId,
        identityId: requesterRef.id,
        username: requesterRef.id ? undefined : requesterRef.username,
        deviceId: input.deviceId,
        clientGuid: input.deviceId ? undefined : input.clientGuid,
      });
      const requester = found.identity;
      if (!requester)
        throw new AppError(
          'not_found',
          `No identity "${requesterRef.username ?? requesterRef.id}" is known; add it under identities first.`,
          { field: 'username' },
        );
      // a key bound to one person submits for that person only
      if (actor.channel === 'api' && actor.id && requester.id !== actor.id) await actingFor(tx, actor, requester.username, 'username');
      const app = found.app;
      // a hidden application the requester may not see is refused exactly as an unknown id is
      if (!app || !(await maySee(tx, app, requester.id)))
        throw new AppError('not_found', `No application with id "${input.applicationId}" is in the catalog.`, { field: 'applicationId' });
      const policy = policyOf(app);
      if (!mayRequest(policy, { username: requester.username, isGuest: requester.is_guest, groups: requester.group_names })) {
        throw new AppError('not_requestable', `${requester.display_name} is not allowed to request ${app.name}.`);
      }
      const device = app.per_device ? this.checkDevice(input, requester, app, found.device) : null;
      const problems = validateSubmission(policy, { justification: input.justification, answers: input.answers });
      if (hasFieldErrors(problems)) {
        throw new AppError('validation_failed', `The request is incomplete: ${describeFieldErrors(problems)}.`, { fields: problems });
      }
      const t = stageTimers(policy, now, now);
      let row: RequestRow & { approved_id?: string | null };
      try {
        row = await tx.one<RequestRow & { approved_id: string | null }>(
          `INSERT INTO requests (application_id, requester_id, device_id, source, status, current_stage, justification, answers, policy,
                                 deadline_at, stage_started_at, next_reminder_at, escalate_at, created_at, updated_at)
           VALUES ($1,$2,$3,$4,'pending',0,$5,$6,$7,$8,$9,$10,$11,$9,$9)
           RETURNING *, (SELECT id FROM requests a WHERE a.application_id = $1 AND a.requester_id = $2 AND a.device_id IS NOT DISTINCT FROM $3 AND a.status = 'approved' LIMIT 1) AS approved_id`,
          [
            app.id,
            requester.id,
            device?.id ?? null,
            input.source ?? (actor.channel === 'api' ? 'api' : actor.channel === 'web' ? 'web' : 'chat'),
            input.justification?.trim() || null,
            JSON.stringify(input.answers ?? {}),
            JSON.stringify(policy),
            t.deadlineAt,
            now,
            t.nextReminderAt,
            t.escalateAt,
          ],
        );
      } catch (e) {
        if (isUniqueViolation(e)) throw await this.duplicateError(app, requester, device);
        throw e;
      }
      if (row.approved_id) {
        throw new AppError(
          'already_approved',
          `${app.name} is already approved for ${requester.display_name}${device ? ` on ${device.name}` : ''}.`,
          { requestId: row.approved_id },
        );
      }
      delete row.approved_id;
      const snapshot = snapshotOf(row, app, requester, device);
      await appendAudit(tx, {
        actor,
        action: 'request.submitted',
        subjectType: 'request',
        subjectId: row.id,
        after: { status: 'pending', stage: 0 },
        details: { justification: row.justification, answers: row.answers },
        at: now,
      });
      await emit(tx, { type: 'request.submitted', subjectId: row.id, actor, at: now, data: snapshot });
      return row.id;
    });
    return getRequestView(this.db, id);
  }

  private checkDevice(input: SubmitInput, requester: IdentityRow, app: ApplicationRow, device: DeviceRow | null): DeviceRow {
    if (!input.deviceId && !input.clientGuid) {
      throw new AppError('validation_failed', `${app.name} is installed per device: say which device (clientGuid).`, {
        field: 'clientGuid',
      });
    }
    if (!device) throw new AppError('not_found', `No device "${input.clientGuid ?? input.deviceId}" is known.`, { field: 'clientGuid' });
    if (device.primary_user_id && device.primary_user_id !== requester.id) {
      throw new AppError('forbidden', `${device.name} is not ${requester.display_name}'s device.`, { field: 'clientGuid' });
    }
    return device;
  }

  private async duplicateError(app: ApplicationRow, requester: IdentityRow | null, device: DeviceRow | null): Promise<AppError> {
    const existing = await this.db.maybeOne<{ id: string; created_at: Date }>(
      `SELECT id, created_at FROM requests WHERE application_id = $1 AND requester_id IS NOT DISTINCT FROM $2 AND device_id IS NOT DISTINCT FROM $3 AND status = 'pending'`,
      [app.id, requester?.id ?? null, device?.id ?? null],
    );
    return new AppError(
      'already_pending',
      `A request for ${app.name}${device ? ` on ${device.name}` : ''} is already pending${existing ? ` (since ${readableUtc(existing.created_at)})` : ''}.`,
      { requestId: existing?.id, status: 'pending' },
    );
  }

  /**
   * Approve or deny a pending request: the given stage, else the stage pending when the row is locked. On a request
   * that is no longer pending nothing changes and the caller is told who decided and when (409), so a call that
   * lost a race can never turn into a revoke or a reapproval.
   */
  async decide(
    actor: Actor,
    id: string,
    decision: 'approve' | 'deny',
    reason?: string | null,
    opts: DecideOptions = {},
  ): Promise<DecisionResult> {
    const outcome = await this.db.tx(async (tx) => {
      // a decider known up front (a chat user, a key bound to a person) has their groups read with the row lock
      const known = actor.id && !opts.approverUsername ? actor.id : null;
      const { row, groups } = known ? await lockRequestWithGroups(tx, id, known) : { row: await lockRequest(tx, id), groups: undefined };
      const acting = await resolveDecider(tx, actor, opts.approverUsername, 'approver');
      // whatever the state, a requester is told they may never decide their own request (not who beat them to it)
      if (acting.id === row.requester_id) throw new AppError('self_approval', 'You cannot decide your own request.');
      // read once the row is ours, so decisions that queued on it are stamped in the order they happened
      const now = this.clock.now();
      await decidable(tx, row, opts);
      return this.voteLocked(tx, acting, row, decision, reason ?? null, now, opts.denyNeedsReason ?? false, groups);
    });
    return { outcome, request: await getRequestView(this.db, id) };
  }

  /**
   * Refuses, changing nothing, an approve or deny that could not be made now (state, stage, version, rights), so chat
   * can say so before anyone types a reason. decide() checks again under the row lock.
   */
  async checkDecision(actor: Actor, id: string, opts: Omit<DecideOptions, 'denyNeedsReason'> = {}): Promise<RequestDetail> {
    const row = await lockRequest(this.db, id, false);
    const acting = await resolveDecider(this.db, actor, opts.approverUsername, 'approver');
    if (acting.id === row.requester_id) throw new AppError('self_approval', 'You cannot decide your own request.');
    await decidable(this.db, row, opts);
    await this.authorizeStage(this.db, acting, row);
    return getRequestDetail(this.db, id);
  }

  /** Approved → revoked by one of the policy's approvers, with a reason; orders the uninstall when an install was ordered. */
  async revoke(actor: Actor, id: string, reason: string | null | undefined, opts: ReverseOptions = {}): Promise<DecisionResult> {
    await this.db.tx(async (tx) => {
      const row = await lockRequest(tx, id);
      const acting = await this.mayReverse(tx, actor, row, 'revoke', opts);
      await revokeRequest(tx, acting, row, requireReason(reason, 'revoking'), this.clock.now(), 'revoke');
    });
    return { outcome: 'revoked', request: await getRequestView(this.db, id) };
  }

  /**
   * Denied or revoked → approved. The stage that said no (or the last one, after a revoke) may overturn it, with a
   * reason; an earlier stage's approvers cannot overrule a later one.
   */
  async reapprove(actor: Actor, id: string, reason: string | null | undefined, opts: ReverseOptions = {}): Promise<DecisionResult> {
    await this.db.tx(async (tx) => {
      const row = await lockRequest(tx, id);
      const acting = await this.mayReverse(tx, actor, row, 'reapprove', opts);
      const why = requireReason(reason, 'reapproving');
      try {
        await finishRequest(tx, acting, row, 'reapprove', why, this.clock.now());
      } catch (e) {
        if (isUniqueViolation(e))
          throw new AppError('already_approved', 'Another request for the same application, user and device is already approved.');
        throw e;
      }
    });
    return { outcome: 'reapproved', request: await getRequestView(this.db, id) };
  }

  /**
   * Refuses, changing nothing, a revoke or reapproval that could not be made now (state, version, rights), so chat
   * can say so before anyone types a reason. revoke() and reapprove() check again under the row lock.
   */
  async checkReversal(actor: Actor, id: string, verb: 'revoke' | 'reapprove', opts: ReverseOptions = {}): Promise<RequestDetail> {
    await this.mayReverse(this.db, actor, await lockRequest(this.db, id, false), verb, opts);
    return getRequestDetail(this.db, id);
  }

  private async mayReverse(
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
    await this.authorizeStage(db, acting, row);
    return acting;
  }

  /** Identities allowed to decide the current stage (the stage's groups, plus escalation groups once escalated). */
  eligibleApprovers(tx: Tx, row: RequestRow): Promise<IdentityRow[]> {
    const policy = policyDefinitionSchema.parse(row.policy);
    return eligibleMembers(tx, stageApproverGroups(policy, row.current_stage, Boolean(row.escalated_at)), row.requester_id);
  }

  private authorizeStage(tx: Queryable, actor: Actor & { id: string }, row: RequestRow, actorGroups?: string[]): Promise<void> {
    const policy = policyDefinitionSchema.parse(row.policy);
    return requireMember(tx, actor, stageApproverGroups(policy, row.current_stage, Boolean(row.escalated_at)), {
      subjectId: row.requester_id,
      selfMessage: 'You cannot decide your own request.',
      what: `decide this stage (stage ${row.current_stage + 1})`,
      actorGroups,
    });
  }

  private async voteLocked(
    tx: Tx,
    actor: Actor & { id: string },
    row: RequestRow,
    decision: 'approve' | 'deny',
    reason: string | null,
    now: Date,
    denyNeedsReason: boolean,
    actorGroups?: string[],
  ): Promise<DecisionOutcome> {
    await this.authorizeStage(tx, actor, row, actorGroups);
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
      if (isUniqueViolation(e))
        throw new AppError('already_decided', `You already decided stage ${row.current_stage + 1} of this request.`);
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
    const eligible =
      stage.quorum === 'any' || votes.some((v) => v.decision === 'deny') ? 1 : (await this.eligibleApprovers(tx, row)).length;
    const result = evaluateStage(stage, votes, eligible);

    if (result === 'waiting') {
      // a recorded vote changes what the request shows (its stage's decisions): If-Match holders must see it
      await tx.query('UPDATE requests SET version = version + 1, updated_at = $2 WHERE id = $1', [row.id, now]);
      await appendAudit(tx, voteAudit);
      await emit(tx, {
        type: 'request.decision_recorded',
        subjectId: row.id,
        actor,
        at: now,
        data: { requestId: row.id, stage: row.current_stage, decision, reason },
      });
      return 'recorded';
    }
    if (result === 'denied') {
      await finishRequest(tx, actor, row, 'deny', reason, now, [voteAudit]);
      return 'denied';
    }
    if (row.current_stage + 1 < policy.stages.length) {
      const t = stageTimers(policy, row.created_at, now);
      await tx.query(
        `UPDATE requests SET current_stage = current_stage + 1, stage_started_at = $2, next_reminder_at = $3, escalate_at = $4, escalated_at = NULL,
                version = version + 1, updated_at = $2 WHERE id = $1 AND status = 'pending' AND current_stage = $5`,
        [row.id, now, t.nextReminderAt, t.escalateAt, row.current_stage],
      );
      await appendAuditAll(tx, [
        voteAudit,
        {
          actor,
          action: 'request.stage_advanced',
          subjectType: 'request',
          subjectId: row.id,
          before: { stage: row.current_stage },
          after: { stage: row.current_stage + 1 },
          at: now,
        },
      ]);
      await emit(tx, {
        type: 'request.stage_advanced',
        subjectId: row.id,
        actor,
        at: now,
        data: { requestId: row.id, completedStage: row.current_stage, stage: row.current_stage + 1 },
      });
      return 'stage_approved';
    }
    await finishRequest(tx, actor, row, 'approve', reason, now, [voteAudit]);
    return 'approved';
  }

  async cancel(actor: Actor, id: string, reason?: string | null, opts: { expectedVersion?: number } = {}): Promise<RequestView> {
    const now = this.clock.now();
    await this.db.tx(async (tx) => {
      const row = await lockRequest(tx, id);
      if (actor.id && actor.id !== row.requester_id) throw new AppError('forbidden', 'Only the requester can cancel a request.');
      if (!actor.id && actor.channel !== 'api' && actor.channel !== 'cli')
        throw new AppError('identity_not_linked', 'Link your chat account first.');
      checkVersion(row, opts.expectedVersion);
      if (row.status !== 'pending')
        throw row.status === 'cancelled'
          ? alreadyDecided(row)
          : new AppError('invalid_transition', `A request that is ${row.status} cannot be cancelled.`, { status: row.status });
      await finishRequest(tx, actor, row, 'cancel', reason ?? null, now);
    });
    return getRequestView(this.db, id);
  }

  /** The requester (or an API caller) asks for the install of an approved request now, ignoring the window. */
  async installNow(actor: Actor, id: string): Promise<RequestView> {
    const now = this.clock.now();
    await this.db.tx(async (tx) => {
      const row = await lockRequest(tx, id);
      if (actor.id && actor.id !== row.requester_id) throw new AppError('forbidden', 'Only the requester can ask for the install.');
      if (row.status !== 'approved')
        throw new AppError('invalid_transition', `A request that is ${row.status} cannot be installed.`, { status: row.status });
      await orderInstall(tx, actor, row, now, 'requested by user');
    });
    return getRequestView(this.db, id);
  }

  /** Configuration Manager's CreateApprovedRequest (see approved-requests.ts). */
  createApproved(actor: Actor, input: CreateApprovedInput): Promise<{ request: RequestView; created: boolean }> {
    return createApprovedRequest(this.db, this.clock, actor, input);
  }
}

const requireReason = (reason: string | null | undefined, doing: string): string => {
  const why = reason?.trim();
  if (!why) throw new AppError('validation_failed', `Say why (reason) before ${doing}: the requester is told.`, { field: 'reason' });
  return why;
};

export { snapshotOf } from './request-events.ts';
