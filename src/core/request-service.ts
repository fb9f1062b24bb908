import type { Database, Tx } from '../db/database.ts';
import { recordCommand } from './command-record.ts';
import { createApprovedRequest, type CreateApprovedInput } from './approved-requests.ts';
import type { Actor, AuditEntry } from './audit-log.ts';
import { readableUtc, type Clock } from './clock.ts';
import { actingFor, lookupForSubmit, maySee, policyOf, type ApplicationRow, type DeviceRow, type IdentityRow } from './directory.ts';
import { AppError, isUniqueViolation } from './errors.ts';
import { describeFieldErrors, hasFieldErrors, mayRequest, stageTimers, validateSubmission } from './policy-evaluation.ts';
import {
  deciderFor,
  eligibleApprovers,
  mayReverse,
  requireReason,
  voteLocked,
  type DecideOptions,
  type DecisionResult,
  type ReverseOptions,
} from './request-decisions.ts';
import {
  countRequests,
  getRequestDetail,
  getRequestView,
  listRequests,
  requestIdFromRef,
  type RequestFilter,
  type RequestRow,
} from './request-queries.ts';
import { alreadyDecided, snapshotOf } from './request-events.ts';
import { checkVersion, finishRequest, lockRequest, lockRequestWithGroups, orderInstall, revokeRequest } from './request-transitions.ts';
import type { Page, RequestDetail, RequestView } from './views.ts';

export type { CreateApprovedInput } from './approved-requests.ts';
export type { DecideOptions, DecisionOutcome, DecisionResult, ReverseOptions } from './request-decisions.ts';

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
      const audit: AuditEntry = {
        actor,
        action: 'request.submitted',
        subjectType: 'request',
        subjectId: row.id,
        after: { status: 'pending', stage: 0 },
        details: { justification: row.justification, answers: row.answers },
        at: now,
      };
      await recordCommand(tx, [audit], [{ type: 'request.submitted', subjectId: row.id, actor, at: now, data: snapshot }]);
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
      const { row, groups, context } = known
        ? await lockRequestWithGroups(tx, id, known)
        : { row: await lockRequest(tx, id), groups: undefined, context: undefined };
      const acting = await deciderFor(tx, actor, row, opts);
      // read once the row is ours, so decisions that queued on it are stamped in the order they happened
      const now = this.clock.now();
      return voteLocked(tx, acting, row, decision, reason ?? null, now, opts.denyNeedsReason ?? false, groups, context);
    });
    return { outcome, request: await getRequestView(this.db, id) };
  }

  /** Approved → revoked by one of the policy's approvers, with a reason; orders the uninstall when an install was ordered. */
  async revoke(actor: Actor, id: string, reason: string | null | undefined, opts: ReverseOptions = {}): Promise<DecisionResult> {
    await this.db.tx(async (tx) => {
      const row = await lockRequest(tx, id);
      const acting = await mayReverse(tx, actor, row, 'revoke', opts);
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
      const acting = await mayReverse(tx, actor, row, 'reapprove', opts);
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
    await mayReverse(this.db, actor, await lockRequest(this.db, id, false), verb, opts);
    return getRequestDetail(this.db, id);
  }

  /** Identities allowed to decide the current stage (the stage's groups, plus escalation groups once escalated). */
  eligibleApprovers(tx: Tx, row: RequestRow): Promise<IdentityRow[]> {
    return eligibleApprovers(tx, row);
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

export { snapshotOf } from './request-events.ts';
