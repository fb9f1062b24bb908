import type { Database, Tx } from '../db/database.ts';
import { appendAudit, type Actor } from './audit-log.ts';
import { readableUtc, type Clock } from './clock.ts';
import {
  actingFor, applicationById, deviceById, deviceByGuid, groupNamesOf, identityById, membersOfGroups, policyOf, requireApplication,
  requireIdentity, type ApplicationRow, type DeviceRow, type IdentityRow,
} from './directory.ts';
import { AppError, isUniqueViolation } from './errors.ts';
import type { WebhookEmission } from './events.ts';
import { emit } from './outbox.ts';
import {
  accessTimers, describeFieldErrors, evaluateStage, hasFieldErrors, mayRequest, nextInstallWindowOpening, stageTimers,
  validateSubmission,
} from './policy-evaluation.ts';
import { policyDefinitionSchema, type PolicyDefinition } from './policy-schema.ts';
import { countRequests, getRequestDetail, getRequestView, isUuid, listRequests, type RequestFilter, type RequestRow } from './request-queries.ts';
import { alreadyDecided, installData, snapshotOf } from './request-events.ts';
import { nextRequestStatus, type RequestAction } from './request-state.ts';
import type { Page, RequestDetail, RequestView } from './views.ts';

export interface SubmitInput {
  applicationId: string;
  requesterId?: string;
  requesterUsername?: string;
  deviceId?: string;
  clientGuid?: string;
  justification?: string | null;
  answers?: Record<string, unknown>;
  source?: 'chat' | 'api';
}

export interface CreateApprovedInput {
  applicationId: string;
  clientGuid: string;
  username?: string;
  comments?: string;
  autoInstall?: boolean;
}

export type DecisionOutcome = 'recorded' | 'stage_approved' | 'approved' | 'denied' | 'revoked' | 'reapproved';

export interface DecisionResult {
  outcome: DecisionOutcome;
  request: RequestView;
}

/** The policy used for machine pre-approvals of applications that have none. */
const preApprovalPolicy: PolicyDefinition = policyDefinitionSchema.parse({ justification: 'none', stages: [{ approvers: ['(pre-approved)'] }] });

/**
 * Runs each request command in one transaction. Concurrency is settled by locking the request row
 * (`SELECT ... FOR UPDATE`) and by the partial unique indexes, never in memory.
 */
/** Every group that may decide some stage of a policy, escalation groups included. */
const everyApproverGroup = (policy: PolicyDefinition): string[] => [...new Set([...policy.stages.flatMap((st) => st.approvers), ...(policy.escalateTo ?? [])])];

const stageSettled = (stage: number, row: RequestRow) =>
  new AppError('already_decided', `Stage ${stage + 1} of this request is already settled; it is now at stage ${row.current_stage + 1}.`, { status: row.status, stage: row.current_stage });

export class RequestService {
  constructor(private readonly db: Database, private readonly clock: Clock) {}

  get(id: string): Promise<RequestDetail> {
    return getRequestDetail(this.db, id);
  }

  list(filter: RequestFilter, limit?: number, cursor?: string): Promise<Page<RequestView>> {
    return listRequests(this.db, filter, limit, cursor);
  }

  count(filter: RequestFilter): Promise<number> {
    return countRequests(this.db, filter);
  }

  async submit(actor: Actor, input: SubmitInput): Promise<RequestView> {
    const now = this.clock.now();
    const id = await this.db.tx(async (tx) => {
      const app = await requireApplication(tx, input.applicationId);
      const policy = policyOf(app);
      const requester = await requireIdentity(tx, { id: input.requesterId ?? (input.requesterUsername ? undefined : actor.id ?? undefined), username: input.requesterUsername });
      // a key bound to one person submits for that person only
      if (actor.channel === 'api' && actor.id && requester.id !== actor.id) await actingFor(tx, actor, requester.username, 'username');
      if (!mayRequest(policy, { username: requester.username, isGuest: requester.is_guest, groups: await groupNamesOf(tx, requester.id) })) {
        throw new AppError('not_requestable', `${requester.display_name} is not allowed to request ${app.name}.`);
      }
      const device = app.per_device ? await this.resolveDevice(tx, input, requester, app) : null;
      const problems = validateSubmission(policy, { justification: input.justification, answers: input.answers });
      if (hasFieldErrors(problems)) {
        throw new AppError('validation_failed', `The request is incomplete: ${describeFieldErrors(problems)}.`, { fields: problems });
      }
      const t = stageTimers(policy, now, now);
      let row: RequestRow;
      try {
        row = await tx.one<RequestRow>(
          `INSERT INTO requests (application_id, requester_id, device_id, source, status, current_stage, justification, answers, policy,
                                 deadline_at, stage_started_at, next_reminder_at, escalate_at, created_at, updated_at)
           VALUES ($1,$2,$3,$4,'pending',0,$5,$6,$7,$8,$9,$10,$11,$9,$9) RETURNING *`,
          [app.id, requester.id, device?.id ?? null, input.source ?? (actor.channel === 'api' ? 'api' : 'chat'),
           input.justification?.trim() || null, JSON.stringify(input.answers ?? {}), JSON.stringify(policy),
           t.deadlineAt, now, t.nextReminderAt, t.escalateAt],
        );
      } catch (e) {
        if (isUniqueViolation(e)) throw await this.duplicateError(app, requester, device);
        throw e;
      }
      const approved = await tx.maybeOne<{ id: string }>(
        `SELECT id FROM requests WHERE application_id = $1 AND requester_id = $2 AND device_id IS NOT DISTINCT FROM $3 AND status = 'approved'`,
        [app.id, requester.id, device?.id ?? null],
      );
      if (approved) {
        throw new AppError('already_approved', `${app.name} is already approved for ${requester.display_name}${device ? ` on ${device.name}` : ''}.`, { requestId: approved.id });
      }
      const snapshot = snapshotOf(row, app, requester, device);
      await appendAudit(tx, { actor, action: 'request.submitted', subjectType: 'request', subjectId: row.id, after: { status: 'pending', stage: 0 }, details: { justification: row.justification, answers: row.answers }, at: now });
      await emit(tx, { type: 'request.submitted', subjectType: 'request', subjectId: row.id, actor, at: now, data: snapshot, webhooks: [{ type: 'request.submitted', data: snapshot }] });
      return row.id;
    });
    return getRequestView(this.db, id);
  }

  private async resolveDevice(tx: Tx, input: SubmitInput, requester: IdentityRow, app: ApplicationRow): Promise<DeviceRow> {
    if (!input.deviceId && !input.clientGuid) {
      throw new AppError('validation_failed', `${app.name} is installed per device: say which device (clientGuid).`, { field: 'clientGuid' });
    }
    const device = input.deviceId ? await deviceById(tx, input.deviceId) : await deviceByGuid(tx, input.clientGuid!);
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
    return new AppError('already_pending', `A request for ${app.name}${device ? ` on ${device.name}` : ''} is already pending${existing ? ` (since ${readableUtc(existing.created_at)})` : ''}.`, { requestId: existing?.id, status: 'pending' });
  }

  /** Approve or deny. Approve on a denied/revoked request reapproves it; deny on an approved one revokes it. */
  async decide(
    actor: Actor, id: string, decision: 'approve' | 'deny', reason?: string | null,
    // denyNeedsReason: chat denials always say why (checked after who may decide, so others hear that first)
    opts: { approverUsername?: string; promptStage?: number; denyNeedsReason?: boolean } = {},
  ): Promise<DecisionResult> {
    // what the caller could have known: a request that was pending when the call came and was decided while it
    // waited for the row lost a race; its deny must not revoke, nor its approve reapprove or vote on the next stage
    const seen = opts.promptStage === undefined && isUuid(id)
      ? await this.db.maybeOne<{ status: string; current_stage: number }>('SELECT status, current_stage FROM requests WHERE id = $1', [id])
      : undefined;
    const outcome = await this.db.tx(async (tx) => {
      const acting = await actingFor(tx, actor, opts.approverUsername, 'approver');
      const row = await this.lock(tx, id);
      // read once the row is ours, so decisions that queued on it are stamped in the order they happened
      const now = this.clock.now();
      if (seen?.status === 'pending') {
        if (row.status !== 'pending') throw alreadyDecided(row);
        if (row.current_stage !== seen.current_stage) throw stageSettled(seen.current_stage, row);
      }
      // a button on a prompt decides that prompt only: a stale copy must never revoke or reapprove
      if (opts.promptStage !== undefined) {
        if (row.status !== 'pending') throw alreadyDecided(row);
        if (row.current_stage !== opts.promptStage) throw stageSettled(opts.promptStage, row);
      }
      if (row.status === 'approved' && decision === 'deny') return this.revokeLocked(tx, acting, row, reason ?? null, now, 'revoke');
      if ((row.status === 'denied' || row.status === 'revoked') && decision === 'approve') return this.reapproveLocked(tx, acting, row, reason ?? null, now);
      if (row.status !== 'pending') throw alreadyDecided(row);
      return this.voteLocked(tx, acting, row, decision, reason ?? null, now, opts.denyNeedsReason ?? false);
    });
    return { outcome, request: await getRequestView(this.db, id) };
  }

  private async lock(tx: Tx, id: string): Promise<RequestRow> {
    if (!isUuid(id)) throw new AppError('not_found', `No request with id "${id}".`);
    const row = await tx.maybeOne<RequestRow>('SELECT * FROM requests WHERE id = $1 FOR UPDATE', [id]);
    if (!row) throw new AppError('not_found', `No request with id "${id}".`);
    return row;
  }

  /** Identities allowed to decide the current stage (the stage's groups, plus escalation groups once escalated). */
  async eligibleApprovers(tx: Tx, row: RequestRow): Promise<IdentityRow[]> {
    const policy = policyDefinitionSchema.parse(row.policy);
    const stage = policy.stages[row.current_stage]!;
    const groups = row.escalated_at && policy.escalateTo ? [...stage.approvers, ...policy.escalateTo] : stage.approvers;
    return (await membersOfGroups(tx, groups)).filter((m) => m.id !== row.requester_id);
  }

  private async authorize(tx: Tx, actor: Actor, row: RequestRow, anyStage = false): Promise<void> {
    if (actor.id && actor.id === row.requester_id) {
      throw new AppError('self_approval', 'You cannot decide your own request.');
    }
    if (!actor.id) {
      // a trusted system (API key, CLI) acts as an administrator
      if (actor.channel === 'api' || actor.channel === 'cli' || actor.channel === 'system') return;
      throw new AppError('identity_not_linked', 'Link your chat account to a directory identity before deciding.');
    }
    const policy = policyDefinitionSchema.parse(row.policy);
    const groups = [...new Set(anyStage
      ? everyApproverGroup(policy)
      : row.escalated_at && policy.escalateTo
        ? [...policy.stages[row.current_stage]!.approvers, ...policy.escalateTo]
        : policy.stages[row.current_stage]!.approvers)];
    const mine = await groupNamesOf(tx, actor.id);
    if (!groups.some((g) => mine.includes(g))) {
      throw new AppError('not_an_approver', `Only members of ${groups.join(', ')} can decide this${anyStage ? '' : ` stage (stage ${row.current_stage + 1})`}.`, { approverGroups: groups });
    }
  }

  private async voteLocked(tx: Tx, actor: Actor, row: RequestRow, decision: 'approve' | 'deny', reason: string | null, now: Date, denyNeedsReason: boolean): Promise<DecisionOutcome> {
    await this.authorize(tx, actor, row);
    const policy = policyDefinitionSchema.parse(row.policy);
    const stage = policy.stages[row.current_stage]!;
    if (decision === 'deny' && denyNeedsReason && !reason?.trim()) {
      throw new AppError('validation_failed', 'Say why (Reason) before denying, so the requester knows.', { field: 'reason' });
    }
    // Entra's approver justification: asked for either decision
    if (stage.approverJustification && !reason?.trim()) {
      throw new AppError('validation_failed', 'This stage needs a justification from the approver.', { field: 'reason' });
    }
    try {
      await tx.query(
        `INSERT INTO request_decisions (request_id, stage, approver_id, approver_label, decision, reason, channel, created_at) VALUES ($1,$2,$3,$4,$5,$6,$7,$8)`,
        [row.id, row.current_stage, actor.id, actor.label, decision, reason?.trim() || null, actor.channel, now],
      );
    } catch (e) {
      if (isUniqueViolation(e)) throw new AppError('already_decided', `You already decided stage ${row.current_stage + 1} of this request.`);
      throw e;
    }
    await appendAudit(tx, { actor, action: `request.decision.${decision}`, subjectType: 'request', subjectId: row.id, before: { status: row.status, stage: row.current_stage }, details: { stage: row.current_stage, reason }, at: now });

    // a trusted system's decision is final for the whole request
    const votes = actor.id
      ? await tx.query<{ approverId: string; decision: 'approve' | 'deny' }>(
          `SELECT approver_id AS "approverId", decision FROM request_decisions WHERE request_id = $1 AND stage = $2 AND approver_id IS NOT NULL`,
          [row.id, row.current_stage],
        )
      : [];
    const result = actor.id ? evaluateStage(stage, votes, (await this.eligibleApprovers(tx, row)).length) : decision === 'approve' ? 'approved' : 'denied';

    if (result === 'waiting') {
      await emit(tx, { type: 'request.decision_recorded', subjectType: 'request', subjectId: row.id, actor, at: now, data: { requestId: row.id, stage: row.current_stage, decision, reason } });
      return 'recorded';
    }
    if (result === 'denied') {
      await this.finish(tx, actor, row, 'deny', reason, now);
      return 'denied';
    }
    if (actor.id && row.current_stage + 1 < policy.stages.length) {
      const t = stageTimers(policy, row.created_at, now);
      await tx.query(
        `UPDATE requests SET current_stage = current_stage + 1, stage_started_at = $2, next_reminder_at = $3, escalate_at = $4, escalated_at = NULL,
                version = version + 1, updated_at = $2 WHERE id = $1 AND status = 'pending' AND current_stage = $5`,
        [row.id, now, t.nextReminderAt, t.escalateAt, row.current_stage],
      );
      await appendAudit(tx, { actor, action: 'request.stage_advanced', subjectType: 'request', subjectId: row.id, before: { stage: row.current_stage }, after: { stage: row.current_stage + 1 }, at: now });
      await emit(tx, { type: 'request.stage_advanced', subjectType: 'request', subjectId: row.id, actor, at: now, data: { requestId: row.id, completedStage: row.current_stage, stage: row.current_stage + 1 } });
      return 'stage_approved';
    }
    await this.finish(tx, actor, row, 'approve', reason, now);
    return 'approved';
  }

  /** Moves a pending request to its final state, guarded so only one transaction can ever do it. */
  private async finish(tx: Tx, actor: Actor, row: RequestRow, action: RequestAction, reason: string | null, now: Date): Promise<RequestRow> {
    const to = nextRequestStatus(row.status, action);
    const policy = policyDefinitionSchema.parse(row.policy);
    const access = to === 'approved' ? accessTimers(policy, now) : { accessExpiresAt: null, accessWarnAt: null, nextReviewAt: null };
    const updated = await tx.maybeOne<RequestRow>(
      `UPDATE requests SET status = $2, decided_at = $3, decided_by = $4, decided_by_label = $5, decision_reason = $6,
              next_reminder_at = NULL, escalate_at = NULL, deadline_at = CASE WHEN $2 = 'pending' THEN deadline_at ELSE NULL END,
              access_expires_at = $7, access_warn_at = $8, next_review_at = $9, version = version + 1, updated_at = $3
        WHERE id = $1 AND status = $10 RETURNING *`,
      [row.id, to, now, actor.id, actor.label, reason?.trim() || null, access.accessExpiresAt, access.accessWarnAt, access.nextReviewAt, row.status],
    );
    if (!updated) throw alreadyDecided(row);
    await appendAudit(tx, { actor, action: `request.${to}`, subjectType: 'request', subjectId: row.id, before: { status: row.status }, after: { status: to }, details: reason ? { reason } : null, at: now });
    const ctx = await this.context(tx, updated);
    const snapshot = snapshotOf(updated, ctx.app, ctx.requester, ctx.device);
    const webhooks: WebhookEmission[] = [{ type: `request.${to}` as WebhookEmission['type'], data: snapshot }];
    if (to === 'approved') {
      const install = await this.scheduleInstall(tx, updated, ctx.app, now);
      if (install) webhooks.push({ type: 'app.install', data: installData(updated, ctx, reason ?? 'approved') });
    }
    await emit(tx, { type: `request.${to}` as 'request.approved', subjectType: 'request', subjectId: row.id, actor, at: now, data: { ...snapshot, previousStatus: row.status }, webhooks });
    return updated;
  }

  /** Install now unless the application has an install window that is closed; then at its next opening. */
  private async scheduleInstall(tx: Tx, row: RequestRow, app: ApplicationRow, now: Date, force = false): Promise<boolean> {
    if (!row.auto_install && !force) return false;
    const opening = !force && app.install_window ? nextInstallWindowOpening(app.install_window, now) : null;
    if (opening) {
      await tx.query('UPDATE requests SET install_due_at = $2 WHERE id = $1', [row.id, opening]);
      return false;
    }
    await tx.query('UPDATE requests SET install_ordered_at = $2, install_due_at = NULL WHERE id = $1', [row.id, now]);
    return true;
  }

  private async context(tx: Tx, row: RequestRow) {
    const app = (await applicationById(tx, row.application_id))!;
    const requester = row.requester_id ? ((await identityById(tx, row.requester_id)) ?? null) : null;
    const device = row.device_id ? ((await deviceById(tx, row.device_id)) ?? null) : null;
    return { app, requester, device };
  }

  async revoke(actor: Actor, id: string, reason: string | null): Promise<RequestView> {
    const now = this.clock.now();
    await this.db.tx(async (tx) => this.revokeLocked(tx, actor, await this.lock(tx, id), reason, now, 'revoke'));
    return getRequestView(this.db, id);
  }

  /** Used by decide() and by access expiry / reviews; sends app.uninstall when an install was ordered. */
  async revokeLocked(tx: Tx, actor: Actor, row: RequestRow, reason: string | null, now: Date, why: 'revoke' | 'access_expired' | 'review_removed'): Promise<DecisionOutcome> {
    if (row.status !== 'approved') nextRequestStatus(row.status, 'revoke');
    if (why === 'revoke') await this.authorize(tx, actor, row, true);
    const updated = await tx.maybeOne<RequestRow>(
      `UPDATE requests SET status = 'revoked', decided_at = $2::timestamptz, decided_by = $3, decided_by_label = $4, decision_reason = $5,
              install_due_at = NULL, access_expires_at = NULL, access_warn_at = NULL, next_review_at = NULL,
              uninstall_ordered_at = CASE WHEN install_ordered_at IS NOT NULL THEN $2::timestamptz ELSE NULL END,
              version = version + 1, updated_at = $2
        WHERE id = $1 AND status = 'approved' RETURNING *`,
      [row.id, now, actor.id, actor.label, reason?.trim() || null],
    );
    if (!updated) throw alreadyDecided(row);
    // an access review still open for this access has nothing left to decide: close it so its prompts lose their
    // buttons. Row locks come before the audit chain's lock, which every transaction takes last.
    const closeReason = why === 'access_expired' ? 'the access expired first' : 'the access was revoked first';
    const closed = await tx.query<{ id: string }>(
      `UPDATE access_reviews SET status = 'closed', decided_at = $2, reason = $3 WHERE request_id = $1 AND status = 'pending' RETURNING id`,
      [row.id, now, closeReason],
    );
    await appendAudit(tx, { actor, action: 'request.revoked', subjectType: 'request', subjectId: row.id, before: { status: 'approved' }, after: { status: 'revoked' }, details: { reason, why }, at: now });
    const ctx = await this.context(tx, updated);
    const snapshot = { ...snapshotOf(updated, ctx.app, ctx.requester, ctx.device), why };
    const webhooks: WebhookEmission[] = [{ type: 'request.revoked', data: snapshot }];
    if (row.install_ordered_at) webhooks.push({ type: 'app.uninstall', data: installData(updated, ctx, reason ?? why) });
    await emit(tx, { type: 'request.revoked', subjectType: 'request', subjectId: row.id, actor, at: now, data: snapshot, webhooks });
    for (const review of closed) {
      await appendAudit(tx, { actor, action: 'request.review_closed', subjectType: 'request', subjectId: row.id, details: { reviewId: review.id, reason: closeReason }, at: now });
      await emit(tx, {
        type: 'request.review_decided', subjectType: 'request', subjectId: row.id, actor, at: now,
        data: { requestId: row.id, reviewId: review.id, outcome: 'closed', reason: closeReason, decidedBy: null, decidedAt: now.toISOString() },
      });
    }
    return 'revoked';
  }

  private async reapproveLocked(tx: Tx, actor: Actor, row: RequestRow, reason: string | null, now: Date): Promise<DecisionOutcome> {
    // the stage that said no (or the last one, for a revoked approval) may overturn it, with its own rules;
    // an earlier stage's approvers cannot overrule a later one
    await this.authorize(tx, actor, row);
    const stage = policyDefinitionSchema.parse(row.policy).stages[row.current_stage];
    if (stage?.approverJustification && !reason?.trim()) {
      throw new AppError('validation_failed', 'This stage needs a justification from the approver.', { field: 'reason' });
    }
    try {
      await this.finish(tx, actor, row, 'reapprove', reason, now);
    } catch (e) {
      if (isUniqueViolation(e)) throw new AppError('already_approved', 'Another request for the same application, user and device is already approved.');
      throw e;
    }
    return 'reapproved';
  }

  async cancel(actor: Actor, id: string, reason?: string | null): Promise<RequestView> {
    const now = this.clock.now();
    await this.db.tx(async (tx) => {
      const row = await this.lock(tx, id);
      if (actor.id && actor.id !== row.requester_id) throw new AppError('forbidden', 'Only the requester can cancel a request.');
      if (!actor.id && actor.channel !== 'api' && actor.channel !== 'cli') throw new AppError('identity_not_linked', 'Link your chat account first.');
      if (row.status !== 'pending') throw row.status === 'cancelled' ? alreadyDecided(row) : new AppError('invalid_transition', `A request that is ${row.status} cannot be cancelled.`, { status: row.status });
      await this.finish(tx, actor, row, 'cancel', reason ?? null, now);
    });
    return getRequestView(this.db, id);
  }

  /** The requester (or an API caller) asks for the install of an approved request now, ignoring the window. */
  async installNow(actor: Actor, id: string): Promise<RequestView> {
    const now = this.clock.now();
    await this.db.tx(async (tx) => {
      const row = await this.lock(tx, id);
      if (actor.id && actor.id !== row.requester_id) throw new AppError('forbidden', 'Only the requester can ask for the install.');
      if (row.status !== 'approved') throw new AppError('invalid_transition', `A request that is ${row.status} cannot be installed.`, { status: row.status });
      await this.orderInstall(tx, actor, row, now, 'requested by user');
    });
    return getRequestView(this.db, id);
  }

  private async orderInstall(tx: Tx, actor: Actor, row: RequestRow, now: Date, why: string): Promise<void> {
    const ctx = await this.context(tx, row);
    await this.scheduleInstall(tx, row, ctx.app, now, true);
    await appendAudit(tx, { actor, action: 'request.install_ordered', subjectType: 'request', subjectId: row.id, details: { why }, at: now });
    await emit(tx, {
      type: 'request.install_ordered', subjectType: 'request', subjectId: row.id, actor, at: now,
      data: { requestId: row.id, why }, webhooks: [{ type: 'app.install', data: installData(row, ctx, why) }],
    });
  }

  /**
   * A trusted system (an unbound key) may create approved requests; a key bound to a person only what that
   * person could approve: an application whose policy names them as an approver, never for themselves.
   */
  private async mayPreApprove(tx: Tx, actor: Actor, app: ApplicationRow, user: IdentityRow | null): Promise<void> {
    if (user && user.id === actor.id) throw new AppError('self_approval', 'You cannot approve your own request.');
    const groups = app.policy_definition ? everyApproverGroup(policyOf(app)) : [];
    const mine = await groupNamesOf(tx, actor.id!);
    if (!groups.some((g) => mine.includes(g))) {
      throw new AppError('not_an_approver', `Only approvers of ${app.name}${groups.length ? ` (${groups.join(', ')})` : ''} or a trusted system key can create approved requests for it.`, { approverGroups: groups });
    }
  }

  /**
   * Configuration Manager's CreateApprovedRequest: approve (or pre-approve, for a device alone) without a
   * prompt. Calling again for the same triple returns the same request and, with autoInstall, orders the install again.
   */
  async createApproved(actor: Actor, input: CreateApprovedInput): Promise<{ request: RequestView; created: boolean }> {
    const now = this.clock.now();
    const result = await this.db.tx(async (tx) => {
      const app = await requireApplication(tx, input.applicationId);
      const device = await deviceByGuid(tx, input.clientGuid);
      if (!device) throw new AppError('not_found', `No device "${input.clientGuid}" is known.`, { field: 'clientGuid' });
      const user = input.username ? await requireIdentity(tx, { username: input.username }) : null;
      if (actor.id) await this.mayPreApprove(tx, actor, app, user);
      // a machine-only pre-approval always installs
      const autoInstall = user ? input.autoInstall !== false : true;
      await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`approved:${app.id}:${user?.id ?? ''}:${device.id}`]);
      const existing = await tx.maybeOne<RequestRow>(
        `SELECT * FROM requests WHERE application_id = $1 AND requester_id IS NOT DISTINCT FROM $2 AND device_id = $3 AND status IN ('approved', 'pending')
          ORDER BY (status = 'approved') DESC LIMIT 1 FOR UPDATE`,
        [app.id, user?.id ?? null, device.id],
      );
      if (existing?.status === 'approved') {
        if (autoInstall) await this.orderInstall(tx, actor, existing, now, input.comments ?? 'approved request created again');
        return { id: existing.id, created: false };
      }
      if (existing) {
        await tx.query('UPDATE requests SET auto_install = $2 WHERE id = $1', [existing.id, autoInstall]);
        await this.finish(tx, actor, { ...existing, auto_install: autoInstall }, 'approve', input.comments ?? null, now);
        return { id: existing.id, created: false };
      }
      const policy = app.policy_definition ? policyOf(app) : preApprovalPolicy;
      const row = await tx.one<RequestRow>(
        `INSERT INTO requests (application_id, requester_id, device_id, source, status, justification, policy, auto_install, created_at, updated_at)
         VALUES ($1,$2,$3,'approved-request','pending',$4,$5,$6,$7,$7) RETURNING *`,
        [app.id, user?.id ?? null, device.id, input.comments ?? null, JSON.stringify(policy), autoInstall, now],
      );
      await appendAudit(tx, { actor, action: 'request.created_approved', subjectType: 'request', subjectId: row.id, details: { comments: input.comments ?? null, autoInstall, machineOnly: !user }, at: now });
      await this.finish(tx, actor, row, 'approve', input.comments ?? null, now);
      return { id: row.id, created: true };
    });
    return { request: await getRequestView(this.db, result.id), created: result.created };
  }
}

export { snapshotOf } from './request-events.ts';
