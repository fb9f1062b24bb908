import { recordCommand } from './command-record.ts';
import type { Database, Queryable } from '../db/database.ts';
import type { Actor } from './audit-log.ts';
import { readableUtc, type Clock } from './clock.ts';
import { requireMember, resolveDecider } from './approval-rights.ts';
import { actingFor, groupNamesOf, isAdminIdentity } from './directory.ts';
import { diffJson } from './diff.ts';
import { AppError, isUniqueViolation } from './errors.ts';
import type { ChangeSnapshot } from './events.ts';
import { historyOf, isUuid, encodeCursor, decodeCursor } from './request-queries.ts';
import { nextChangeStatus, type ChangeAction, type ChangeStatus } from './request-state.ts';
import { withinLimit } from './validation.ts';
import type { ChangeDetail, ChangeView, DiffEntry, Page } from './views.ts';
import { type ExpectedVersion, staleVersion, versionMatches } from './versions.ts';

export interface ChangeInput {
  resourceType: string;
  resourceId: string;
  before: unknown;
  after: unknown;
  justification: string;
  /** an API caller may submit on behalf of a directory identity */
  requestedBy?: string;
}

interface ChangeRow {
  id: string;
  resource_type: string;
  resource_id: string;
  before: unknown;
  after: unknown;
  diff: DiffEntry[];
  justification: string;
  requester_id: string | null;
  requester_label: string;
  change_policy_id: string | null;
  approvers: string[];
  status: ChangeStatus;
  decided_at: Date | null;
  decided_by: string | null;
  decided_by_label: string | null;
  decision_notes: string | null;
  source: string;
  version: number;
  created_at: Date;
  updated_at: Date;
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

function toView(r: ChangeRow): ChangeView {
  return {
    id: r.id,
    status: r.status,
    resourceType: r.resource_type,
    resourceId: r.resource_id,
    before: r.before,
    after: r.after,
    diff: r.diff,
    justification: r.justification,
    requester: { id: r.requester_id, label: r.requester_label },
    approverGroups: r.approvers,
    decidedAt: iso(r.decided_at),
    decidedBy: r.decided_by_label,
    decisionNotes: r.decision_notes,
    version: r.version,
    createdAt: iso(r.created_at)!,
    updatedAt: iso(r.updated_at)!,
  };
}

export interface ChangeDecisionOptions {
  /** the admin a trusted caller decides for (REST `approver`) */
  approverUsername?: string;
  /** If-Match: the version the caller saw */
  expectedVersion?: ExpectedVersion;
  /** chat rejections always say why (checked after who may decide, so others hear that first) */
  notesRequired?: boolean;
}

/** Multi-admin approval (Intune MAA): one approver from the protecting policy's groups, never the requester. */
export class ChangeService {
  constructor(
    private readonly db: Database,
    private readonly clock: Clock,
  ) {}

  async get(id: string): Promise<ChangeDetail> {
    const row = await this.find(this.db, id);
    return { ...toView(row), history: await historyOf(this.db, 'change', id) };
  }

  async list(
    filter: { status?: ChangeStatus; resourceType?: string; resourceId?: string; visibleToId?: string },
    limit = 50,
    cursor?: string,
  ): Promise<Page<ChangeView>> {
    const where: string[] = [];
    const params: unknown[] = [];
    if (filter.status) where.push(`status = $${params.push(filter.status)}`);
    if (filter.visibleToId) {
      // what this person may see (core/visibility.ts): their own, their groups' to approve, or any as an admin
      const me = `$${params.push(filter.visibleToId)}::uuid`;
      where.push(`(requester_id = ${me} OR EXISTS (SELECT 1 FROM identities a WHERE a.id = ${me} AND a.is_admin)
        OR approvers && ARRAY(SELECT g.name FROM approver_group_members m JOIN approver_groups g ON g.id = m.group_id WHERE m.identity_id = ${me}))`);
    }
    // resource ids and types name the same resource in any letter case (paths on Windows, GUIDs)
    if (filter.resourceType) where.push(`lower(resource_type) = lower($${params.push(filter.resourceType)})`);
    if (filter.resourceId) where.push(`lower(resource_id) = lower($${params.push(filter.resourceId)})`);
    if (cursor) {
      const [ts, id] = decodeCursor(cursor);
      where.push(`(created_at, id) < ($${params.push(ts)}::timestamptz, $${params.push(id)}::uuid)`);
    }
    const rows = await this.db.query<ChangeRow>(
      `SELECT * FROM changes ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT $${params.push(limit + 1)}`,
      params,
    );
    const last = rows.length > limit ? rows[limit - 1]! : undefined;
    return { items: rows.slice(0, limit).map(toView), nextCursor: last ? encodeCursor(last.created_at, last.id) : null };
  }

  /** Changes waiting on this identity (member of the approver groups, not the requester). */
  async pendingFor(identityId: string): Promise<ChangeView[]> {
    const groups = await groupNamesOf(this.db, identityId);
    const rows = await this.db.query<ChangeRow>(
      `SELECT * FROM changes WHERE status = 'pending' AND approvers && $1::text[] AND requester_id IS DISTINCT FROM $2 ORDER BY created_at`,
      [groups, identityId],
    );
    return rows.map(toView);
  }

  /** This person's own changes still waiting for another admin, newest first. */
  async pendingBy(requesterId: string, limit: number): Promise<ChangeView[]> {
    const rows = await this.db.query<ChangeRow>(
      `SELECT * FROM changes WHERE status = 'pending' AND requester_id = $1 ORDER BY created_at DESC LIMIT $2`,
      [requesterId, limit],
    );
    return rows.map(toView);
  }

  async submit(actor: Actor, input: ChangeInput): Promise<ChangeView> {
    const now = this.clock.now();
    withinLimit('resourceType', input.resourceType);
    withinLimit('resourceId', input.resourceId);
    withinLimit('justification', input.justification);
    if (!input.justification?.trim())
      throw new AppError('validation_failed', 'A business justification is required.', { field: 'justification' });
    const id = await this.db.tx(async (tx) => {
      // a key bound to one admin submits as that admin only: naming another would let them approve it themselves
      const by = await actingFor(tx, actor, input.requestedBy, 'requestedBy');
      // `Script` is the protected type `script`: stored in the policy's spelling, so a case cannot slip past protection
      const policy = await tx.maybeOne<{ id: string; name: string; approvers: string[]; resource_type: string }>(
        `SELECT p.id, p.name, p.approvers, t AS resource_type FROM change_policies p, unnest(p.resource_types) t
          WHERE lower(t) = lower($1) ORDER BY p.name LIMIT 1`,
        [input.resourceType],
      );
      if (!policy) {
        throw new AppError(
          'validation_failed',
          `No change policy protects resource type "${input.resourceType}", so it needs no approval.`,
          { field: 'resourceType' },
        );
      }
      // an admin change is proposed by an admin: one with `admin: true`, or an approver of its policy (whom a second
      // approver then checks). Anyone else could block the real admins with a pending change of their own
      if (by.id && !(await isAdminIdentity(tx, by.id)) && !(await groupNamesOf(tx, by.id)).some((g) => policy.approvers.includes(g))) {
        throw new AppError(
          'forbidden',
          `Only admins and the approvers of change policy "${policy.name}" (${policy.approvers.join(', ')}) propose changes to ${policy.resource_type}.`,
          { approverGroups: policy.approvers },
        );
      }
      const diff = diffJson(input.before ?? null, input.after ?? null);
      if (diff.length === 0)
        throw new AppError('validation_failed', '"before" and "after" are the same: there is no change to approve.', { field: 'after' });
      let row: ChangeRow;
      try {
        row = await tx.one<ChangeRow>(
          `INSERT INTO changes (resource_type, resource_id, before, after, diff, justification, requester_id, requester_label, change_policy_id, approvers, status, source, created_at, updated_at)
           VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,'pending',$11,$12,$12) RETURNING *`,
          [
            policy.resource_type,
            input.resourceId,
            JSON.stringify(input.before ?? null),
            JSON.stringify(input.after ?? null),
            JSON.stringify(diff),
            input.justification.trim(),
            by.id,
            by.label,
            policy.id,
            policy.approvers,
            actor.channel,
            now,
          ],
        );
      } catch (e) {
        if (isUniqueViolation(e)) {
          const existing = await this.db.maybeOne<{ id: string; resource_id: string; requester_label: string }>(
            `SELECT id, resource_id, requester_label FROM changes WHERE lower(resource_type) = lower($1) AND lower(resource_id) = lower($2) AND status = 'pending'`,
            [policy.resource_type, input.resourceId],
          );
          const same = existing && existing.resource_id !== input.resourceId ? ` as "${existing.resource_id}"` : '';
          throw new AppError(
            'already_pending',
            `A change to ${policy.resource_type} "${input.resourceId}" is already pending${same}${existing ? ` (by ${existing.requester_label})` : ''}.`,
            { changeId: existing?.id, status: 'pending' },
          );
        }
        throw e;
      }
      await recordCommand(
        tx,
        [
          {
            actor: by,
            action: 'change.submitted',
            subjectType: 'change',
            subjectId: row.id,
            after: { status: 'pending' },
            details: { resourceType: row.resource_type, resourceId: row.resource_id, diff, justification: row.justification },
            at: now,
          },
        ],
        [{ type: 'change.submitted', subjectId: row.id, actor: by, at: now, data: changeData(row) }],
      );
      return row.id;
    });
    return toView(await this.find(this.db, id));
  }

  approve(actor: Actor, id: string, notes?: string | null, opts: ChangeDecisionOptions = {}) {
    return this.decide(actor, id, 'approve', notes ?? null, opts);
  }

  reject(actor: Actor, id: string, notes?: string | null, opts: ChangeDecisionOptions = {}) {
    return this.decide(actor, id, 'reject', notes ?? null, opts);
  }

  async cancel(actor: Actor, id: string, notes?: string | null, opts: { expectedVersion?: ExpectedVersion } = {}): Promise<ChangeView> {
    return this.decide(actor, id, 'cancel', notes ?? null, opts);
  }

  private async decide(
    actor: Actor,
    id: string,
    action: ChangeAction,
    notes: string | null,
    opts: ChangeDecisionOptions,
  ): Promise<ChangeView> {
    withinLimit('reason', notes, 'notes');
    const now = this.clock.now();
    await this.db.tx(async (tx) => {
      // approve and reject are a second admin's decision: a person the change policy names, whatever the channel
      const row = await this.find(tx, id, true);
      const acting = action === 'cancel' ? actor : await resolveDecider(tx, actor, opts.approverUsername, 'approver');
      decidable(row, opts.expectedVersion);
      if (action === 'cancel') this.mayCancel(acting, row);
      else await requireChangeApprover(tx, acting as Actor & { id: string }, row);
      if (action === 'reject' && opts.notesRequired && !notes?.trim()) {
        throw new AppError('validation_failed', 'Say why (Approver notes) before rejecting, so the requester knows.', { field: 'notes' });
      }
      const to = nextChangeStatus(row.status, action);
      const updated = await tx.maybeOne<ChangeRow>(
        `UPDATE changes SET status = $2, decided_at = $3, decided_by = $4, decided_by_label = $5, decision_notes = $6, version = version + 1, updated_at = $3
          WHERE id = $1 AND status = 'pending' RETURNING *`,
        [row.id, to, now, acting.id, acting.label, notes?.trim() || null],
      );
      if (!updated) throw new AppError('already_decided', 'This change was decided a moment ago.');
      if (to !== 'approved' && to !== 'rejected' && to !== 'cancelled')
        throw new AppError('invalid_transition', `A change cannot be decided as ${to}.`);
      await recordCommand(
        tx,
        [
          {
            actor: acting,
            action: `change.${to}`,
            subjectType: 'change',
            subjectId: row.id,
            before: { status: 'pending' },
            after: { status: to },
            details: notes ? { notes } : null,
            at: now,
          },
        ],
        [{ type: `change.${to}`, subjectId: row.id, actor: acting, at: now, data: changeData(updated) }],
      );
    });
    return toView(await this.find(this.db, id));
  }

  /**
   * Refuses, changing nothing, an approve or reject that could not be made now (state, version, rights), so chat can
   * say so before anyone types notes. approve() and reject() check again under the row lock.
   */
  async checkDecision(actor: Actor, id: string, opts: ChangeDecisionOptions = {}): Promise<ChangeView> {
    const row = await this.find(this.db, id);
    const acting = await resolveDecider(this.db, actor, opts.approverUsername, 'approver');
    decidable(row, opts.expectedVersion);
    await requireChangeApprover(this.db, acting, row);
    return toView(row);
  }

  /** The requester withdraws their change; an unbound API key or the CLI is a trusted system that may too. */
  private mayCancel(actor: Actor, row: ChangeRow): void {
    const own = actor.id ? actor.id === row.requester_id : actor.label === row.requester_label && row.requester_id === null;
    const trusted = !actor.id && (actor.channel === 'api' || actor.channel === 'cli');
    if (!own && !trusted) throw new AppError('forbidden', 'Only the requester can cancel a change.');
  }

  private async find(db: Queryable, id: string, lock = false): Promise<ChangeRow> {
    if (!isUuid(id)) throw new AppError('not_found', `No change with id "${id}".`);
    const row = await db.maybeOne<ChangeRow>(`SELECT * FROM changes WHERE id = $1${lock ? ' FOR UPDATE' : ''}`, [id]);
    if (!row) throw new AppError('not_found', `No change with id "${id}".`);
    return row;
  }
}

/** A pending change at the caller's version; anything else is refused before rights are looked at. */
function decidable(row: ChangeRow, expectedVersion: ExpectedVersion | undefined): void {
  if (!versionMatches(row.version, expectedVersion)) {
    throw new AppError(
      'precondition_failed',
      `${staleVersion('change', expectedVersion!, row.version)} (${row.status}${row.decided_by_label ? ` by ${row.decided_by_label}` : ''}). Read it again before deciding.`,
      {
        currentVersion: row.version,
        status: row.status,
        decidedBy: row.decided_by_label,
        decidedAt: iso(row.decided_at),
      },
    );
  }
  if (row.status !== 'pending') {
    throw new AppError(
      'already_decided',
      `This change was already ${row.status}${row.decided_by_label ? ` by ${row.decided_by_label}` : ''}${row.decided_at ? ` at ${readableUtc(row.decided_at)}` : ''}.`,
      {
        status: row.status,
        decidedBy: row.decided_by_label,
        decidedAt: iso(row.decided_at),
      },
    );
  }
}

/** A second admin: a member of the change policy's approver groups, never the change's author. */
const requireChangeApprover = (db: Queryable, acting: Actor & { id: string }, row: ChangeRow) =>
  requireMember(db, acting, row.approvers, {
    subjectId: row.requester_id,
    selfMessage: 'You cannot approve or reject your own change; another admin must.',
    what: 'decide this change',
  });

function changeData(r: ChangeRow): ChangeSnapshot {
  return {
    changeId: r.id,
    status: r.status,
    resourceType: r.resource_type,
    resourceId: r.resource_id,
    before: r.before,
    after: r.after,
    diff: r.diff,
    justification: r.justification,
    requestedBy: r.requester_label,
    decidedBy: r.decided_by_label,
    decidedAt: iso(r.decided_at),
    notes: r.decision_notes,
  };
}
