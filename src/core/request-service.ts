import { randomUUID } from 'node:crypto';
import type { Database, Tx } from '../db/database.ts';
import { createApprovedRequest, type CreateApprovedInput } from './approved-requests.ts';
import type { Actor, AuditEntry } from './audit-log.ts';
import type { AnyNewEvent } from './outbox.ts';
import { readableUtc, type Clock } from './clock.ts';
import {
  actingFor,
  lookupForSubmit,
  maySee,
  policyOf,
  unknownDevice,
  type ApplicationRow,
  type DeviceRow,
  type IdentityRow,
} from './directory.ts';
import { AppError, isUniqueViolation } from './errors.ts';
import { describeFieldErrors, hasFieldErrors, mayRequest, stageTimers, validateSubmission } from './policy-evaluation.ts';
import {
  deciderFor,
  eligibleApprovers,
  mayReverse,
  requireReason,
  planDecision,
  type DecideOptions,
  type DecisionResult,
  type ReverseOptions,
} from './request-decisions.ts';
import {
  countRequests,
  getRequestDetail,
  isUuid,
  requestViewOf,
  listRequests,
  requestIdFromRef,
  type RequestFilter,
  type RequestRow,
} from './request-queries.ts';
import { alreadyDecided, snapshotOf } from './request-events.ts';
import {
  checkVersion,
  finishRequest,
  lockRequest,
  orderInstall,
  readForDecision,
  requestContext,
  revokeRequest,
  type DecisionRead,
} from './request-transitions.ts';
import { insertRequest, sameSubject, writeTransition } from './request-write.ts';
import { withinLimit } from './validation.ts';
import type { Page, RequestDetail, RequestView } from './views.ts';
import type { ExpectedVersion } from './versions.ts';

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

/** Each failed attempt means another decision on the request was written: a bound, not a wait. */
const MAX_DECISION_ATTEMPTS = 50;

/** The Slack user a decision was read with, as the person acting; refused when no identity is linked to them. */
function slackDecider(actor: Actor, read: DecisionRead): Actor {
  if (!read.slackDecider) throw new AppError('identity_not_linked', 'Link your chat account to a directory identity before deciding.');
  return { id: read.slackDecider.id, label: read.slackDecider.display_name, channel: actor.channel };
}

/**
 * Runs each request command atomically. Concurrency is settled in Postgres, never in memory: approve and deny read
 * without a lock and write in one statement guarded by the version they read (a loser reads again); the other
 * commands lock the request row (`SELECT ... FOR UPDATE`); the partial unique indexes keep one pending and one
 * approved request per application, person and device.
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
    // reads, then one statement that writes the request with its audit row and event (insertRequest): no transaction
    const requesterRef = {
      id: input.requesterId ?? (input.requesterUsername ? undefined : (actor.id ?? undefined)),
      username: input.requesterUsername,
    };
    // a device is named by its id from a chat form: anything but a uuid is no device of theirs (Postgres would refuse it)
    if (input.deviceId !== undefined && !isUuid(input.deviceId)) throw unknownDevice(input.deviceId);
    // requester with groups, application and device in one round trip; checked in the order people expect
    const found = await lookupForSubmit(this.db, {
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
    if (actor.channel === 'api' && actor.id && requester.id !== actor.id) await actingFor(this.db, actor, requester.username, 'username');
    const app = found.app;
    // a hidden application the requester may not see is refused exactly as an unknown id is
    if (!app || !(await maySee(this.db, app, requester.id)))
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
    const id = randomUUID();
    const justification = input.justification?.trim() || null;
    const answers = input.answers ?? {};
    const pendingRow = {
      id,
      status: 'pending' as const,
      current_stage: 0,
      justification,
      answers,
      decided_by_label: null,
      decided_at: null,
      decision_reason: null,
    };
    const audit: AuditEntry = {
      actor,
      action: 'request.submitted',
      subjectType: 'request',
      subjectId: id,
      after: { status: 'pending', stage: 0 },
      details: { justification, answers },
      at: now,
    };
    const event: AnyNewEvent = {
      type: 'request.submitted',
      subjectId: id,
      actor,
      at: now,
      data: snapshotOf(pendingRow, app, requester, device),
    };
    let row: RequestRow | undefined;
    try {
      row = await insertRequest(
        this.db,
        {
          id,
          applicationId: app.id,
          requesterId: requester.id,
          deviceId: device?.id ?? null,
          source: input.source ?? (actor.channel === 'api' ? 'api' : actor.channel === 'web' ? 'web' : 'chat'),
          justification,
          answers,
          policy,
          deadlineAt: t.deadlineAt,
          now,
          nextReminderAt: t.nextReminderAt,
          escalateAt: t.escalateAt,
        },
        [audit],
        [event],
      );
    } catch (e) {
      if (isUniqueViolation(e)) throw await this.duplicateError(app, requester, device);
      throw e;
    }
    if (!row) {
      const approved = await this.db.maybeOne<{ id: string }>(
        `SELECT id FROM requests r WHERE ${sameSubject('r', '$1::text', '$2::uuid', '$3::uuid')} AND status = 'approved' LIMIT 1`,
        [app.id, requester.id, device?.id ?? null],
      );
      throw new AppError(
        'already_approved',
        `${app.name} is already approved for ${requester.display_name}${device ? ` on ${device.name}` : ''}.`,
        { requestId: approved?.id },
      );
    }
    return requestViewOf(row, { app, requester, device });
  }

  private checkDevice(input: SubmitInput, requester: IdentityRow, app: ApplicationRow, device: DeviceRow | null): DeviceRow {
    if (!input.deviceId && !input.clientGuid) {
      throw new AppError('validation_failed', `${app.name} is installed per device: say which device (clientGuid).`, {
        field: 'clientGuid',
      });
    }
    if (!device) throw unknownDevice(input.clientGuid ?? input.deviceId);
    if (device.primary_user_id && device.primary_user_id !== requester.id) {
      throw new AppError('forbidden', `${device.name} is not ${requester.display_name}'s device.`, { field: 'clientGuid' });
    }
    return device;
  }

  private async duplicateError(app: ApplicationRow, requester: IdentityRow | null, device: DeviceRow | null): Promise<AppError> {
    const existing = await this.db.maybeOne<{ id: string; created_at: Date }>(
      `SELECT id, created_at FROM requests r WHERE ${sameSubject('r', '$1::text', '$2::uuid', '$3::uuid')} AND status = 'pending'`,
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
    withinLimit('reason', reason);
    // a decider known up front (a chat user, a key bound to a person) has their groups read with the request, and a
    // Slack user not looked up yet is looked up there too
    const known = actor.id && !opts.approverUsername ? actor.id : null;
    const slackUser = !actor.id && actor.slackUserId && !opts.approverUsername ? actor.slackUserId : null;
    let pinned = opts;
    for (let attempt = 1; ; attempt++) {
      const read = await readForDecision(this.db, id, known, slackUser);
      const acting = await deciderFor(this.db, slackUser ? slackDecider(actor, read) : actor, read.row, pinned);
      const now = this.clock.now();
      const { outcome, transition } = await planDecision(
        this.db,
        acting,
        read,
        decision,
        reason ?? null,
        now,
        opts.denyNeedsReason ?? false,
      );
      let updated: RequestRow | undefined;
      try {
        updated = await writeTransition(this.db, read.row, transition);
      } catch (e) {
        // only the vote's own index: another unique violation (an approved twin) is not "you already decided"
        if (isUniqueViolation(e, 'request_decisions_one_per_approver'))
          throw new AppError('already_decided', `You already decided stage ${read.row.current_stage + 1} of this request.`);
        throw e;
      }
      if (updated) return { outcome, request: requestViewOf(updated, read.context) };
      // another decision moved the request since it was read: read it again, and the checks above say what follows.
      // The decision stays one on the stage it was made on: a caller that lost stage 1 to another approver is told
      // so, rather than having their vote land on stage 2, which they never saw (a burst of API calls that named no
      // stage approved both stages of a request)
      pinned = { ...pinned, stage: pinned.stage ?? read.row.current_stage };
      if (attempt >= MAX_DECISION_ATTEMPTS) {
        throw new AppError('contended', 'This request is changing too fast to decide right now; try again.');
      }
    }
  }

  /** Approved → revoked by one of the policy's approvers, with a reason; orders the uninstall when an install was ordered. */
  async revoke(actor: Actor, id: string, reason: string | null | undefined, opts: ReverseOptions = {}): Promise<DecisionResult> {
    withinLimit('reason', reason);
    // the view is built from what the command read and wrote, not read again after the commit
    return this.db.tx(async (tx) => {
      const row = await lockRequest(tx, id);
      const acting = await mayReverse(tx, actor, row, 'revoke', opts);
      const revoked = await revokeRequest(tx, acting, row, requireReason(reason, 'revoking'), this.clock.now(), 'revoke');
      return { outcome: 'revoked', request: requestViewOf(revoked.row, revoked.ctx) };
    });
  }

  /**
   * Denied or revoked → approved. The stage that said no (or the last one, after a revoke) may overturn it, with a
   * reason; an earlier stage's approvers cannot overrule a later one.
   */
  async reapprove(actor: Actor, id: string, reason: string | null | undefined, opts: ReverseOptions = {}): Promise<DecisionResult> {
    withinLimit('reason', reason);
    return this.db.tx(async (tx) => {
      const row = await lockRequest(tx, id);
      const acting = await mayReverse(tx, actor, row, 'reapprove', opts);
      const why = requireReason(reason, 'reapproving');
      const ctx = await requestContext(tx, row);
      try {
        const updated = await finishRequest(tx, acting, row, 'reapprove', why, this.clock.now(), ctx);
        return { outcome: 'reapproved', request: requestViewOf(updated, ctx) };
      } catch (e) {
        if (isUniqueViolation(e))
          throw new AppError('already_approved', 'Another request for the same application, user and device is already approved.');
        throw e;
      }
    });
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

  async cancel(actor: Actor, id: string, reason?: string | null, opts: { expectedVersion?: ExpectedVersion } = {}): Promise<RequestView> {
    withinLimit('reason', reason);
    const now = this.clock.now();
    return this.db.tx(async (tx) => {
      const row = await lockRequest(tx, id);
      if (actor.id && actor.id !== row.requester_id) throw new AppError('forbidden', 'Only the requester can cancel a request.');
      if (!actor.id && actor.channel !== 'api' && actor.channel !== 'cli')
        throw new AppError('identity_not_linked', 'Link your chat account first.');
      checkVersion(row, opts.expectedVersion);
      if (row.status !== 'pending')
        throw row.status === 'cancelled'
          ? alreadyDecided(row)
          : new AppError('invalid_transition', `A request that is ${row.status} cannot be cancelled.`, { status: row.status });
      const ctx = await requestContext(tx, row);
      return requestViewOf(await finishRequest(tx, actor, row, 'cancel', reason ?? null, now, ctx), ctx);
    });
  }

  /** The requester (or an API caller) asks for the install of an approved request now, ignoring the window. */
  async installNow(actor: Actor, id: string): Promise<RequestView> {
    const now = this.clock.now();
    return this.db.tx(async (tx) => {
      const row = await lockRequest(tx, id);
      if (actor.id && actor.id !== row.requester_id) throw new AppError('forbidden', 'Only the requester can ask for the install.');
      if (row.status !== 'approved')
        throw new AppError('invalid_transition', `A request that is ${row.status} cannot be installed.`, { status: row.status });
      const ctx = await requestContext(tx, row);
      // the reason names who asked: the requester, or the system whose key made the call
      const why = actor.id ? 'requested by user' : `install now requested by ${actor.label}`;
      return requestViewOf(await orderInstall(tx, actor, row, now, why, ctx), ctx);
    });
  }

  /** Configuration Manager's CreateApprovedRequest (see approved-requests.ts). */
  createApproved(actor: Actor, input: CreateApprovedInput): Promise<{ request: RequestView; created: boolean }> {
    return createApprovedRequest(this.db, this.clock, actor, input);
  }
}

export { snapshotOf } from './request-events.ts';
