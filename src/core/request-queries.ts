import type { Queryable } from '../db/database.ts';
import { AppError } from './errors.ts';
import { policyNamesDeciderSql, requestPolicy, type PolicyDefinition } from './policy-schema.ts';
import type { RequestStatus } from './request-state.ts';
import type { DecisionView, HistoryEntry, Page, RequestDetail, RequestView, StageView } from './views.ts';

export interface RequestRow {
  id: string;
  application_id: string;
  requester_id: string | null;
  device_id: string | null;
  source: 'chat' | 'api' | 'approved-request' | 'web';
  status: RequestStatus;
  current_stage: number;
  justification: string | null;
  answers: Record<string, unknown>;
  policy: PolicyDefinition;
  auto_install: boolean;
  install_ordered_at: Date | null;
  install_due_at: Date | null;
  uninstall_ordered_at: Date | null;
  decided_at: Date | null;
  decided_by: string | null;
  decided_by_label: string | null;
  decision_reason: string | null;
  deadline_at: Date | null;
  stage_started_at: Date | null;
  next_reminder_at: Date | null;
  escalate_at: Date | null;
  escalated_at: Date | null;
  access_expires_at: Date | null;
  access_warn_at: Date | null;
  next_review_at: Date | null;
  version: number;
  created_at: Date;
  updated_at: Date;
}

interface JoinedRow extends RequestRow {
  app_name: string;
  r_username: string | null;
  r_display_name: string | null;
  r_email: string | null;
  d_client_guid: string | null;
  d_name: string | null;
}

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

const joined = `
  SELECT r.*, a.name AS app_name, i.username AS r_username, i.display_name AS r_display_name, i.email AS r_email,
         d.client_guid AS d_client_guid, d.name AS d_name
    FROM requests r
    JOIN applications a ON a.id = r.application_id
    LEFT JOIN identities i ON i.id = r.requester_id
    LEFT JOIN devices d ON d.id = r.device_id`;

function toView(r: JoinedRow): RequestView {
  const policy = requestPolicy(r);
  return {
    id: r.id,
    status: r.status,
    source: r.source,
    application: { id: r.application_id, name: r.app_name },
    requester: r.requester_id ? { id: r.requester_id, username: r.r_username!, displayName: r.r_display_name!, email: r.r_email } : null,
    device: r.device_id ? { id: r.device_id, clientGuid: r.d_client_guid!, name: r.d_name! } : null,
    justification: r.justification,
    answers: r.answers ?? {},
    currentStage: r.current_stage,
    stageCount: policy.stages.length,
    autoInstall: r.auto_install,
    installOrderedAt: iso(r.install_ordered_at),
    installDueAt: iso(r.install_due_at),
    decidedAt: iso(r.decided_at),
    decidedBy: r.decided_by_label,
    decisionReason: r.decision_reason,
    deadlineAt: iso(r.deadline_at),
    escalated: r.escalated_at !== null,
    accessExpiresAt: iso(r.access_expires_at),
    version: r.version,
    createdAt: iso(r.created_at)!,
    updatedAt: iso(r.updated_at)!,
  };
}

/** The view of a row the caller already holds with its application, requester and device: no read. */
export const requestViewOf = (
  row: RequestRow,
  ctx: {
    app: { name: string };
    requester: { username: string; display_name: string; email: string | null } | null;
    device: { client_guid: string; name: string } | null;
  },
): RequestView =>
  toView({
    ...row,
    app_name: ctx.app.name,
    r_username: ctx.requester?.username ?? null,
    r_display_name: ctx.requester?.display_name ?? null,
    r_email: ctx.requester?.email ?? null,
    d_client_guid: ctx.device?.client_guid ?? null,
    d_name: ctx.device?.name ?? null,
  });

export async function getRequestView(db: Queryable, id: string): Promise<RequestView> {
  if (!isUuid(id)) throw new AppError('not_found', `No request with id "${id}".`);
  const row = await db.maybeOne<JoinedRow>(`${joined} WHERE r.id = $1`, [id]);
  if (!row) throw new AppError('not_found', `No request with id "${id}".`);
  return toView(row);
}

export async function decisionsOf(db: Queryable, requestId: string): Promise<DecisionView[]> {
  const rows = await db.query<{
    stage: number;
    approver_id: string | null;
    approver_label: string;
    decision: 'approve' | 'deny';
    reason: string | null;
    channel: string;
    created_at: Date;
  }>(
    'SELECT stage, approver_id, approver_label, decision, reason, channel, created_at FROM request_decisions WHERE request_id = $1 ORDER BY created_at, seq',
    [requestId],
  );
  return rows.map((d) => ({
    stage: d.stage,
    approver: { id: d.approver_id, label: d.approver_label },
    decision: d.decision,
    reason: d.reason,
    channel: d.channel,
    at: iso(d.created_at)!,
  }));
}

export async function historyOf(db: Queryable, subjectType: string, subjectId: string): Promise<HistoryEntry[]> {
  const rows = await db.query<{ occurred_at: Date; action: string; actor_label: string; channel: string; details: unknown }>(
    'SELECT occurred_at, action, actor_label, channel, details FROM audit_events WHERE subject_type = $1 AND subject_id = $2 ORDER BY id',
    [subjectType, subjectId],
  );
  return rows.map((h) => ({ at: iso(h.occurred_at)!, action: h.action, actor: h.actor_label, channel: h.channel, details: h.details }));
}

export async function getRequestDetail(db: Queryable, id: string): Promise<RequestDetail> {
  const view = await getRequestView(db, id);
  const row = await db.one<{ policy: unknown; escalated_at: Date | null }>('SELECT policy, escalated_at FROM requests WHERE id = $1', [id]);
  const policy = requestPolicy(row);
  const decisions = await decisionsOf(db, id);
  const stages: StageView[] = policy.stages.map((s, index) => {
    const mine = decisions.filter((d) => d.stage === index);
    let status: StageView['status'];
    if (index < view.currentStage) status = 'approved';
    else if (index > view.currentStage) status = view.status === 'pending' ? 'not_started' : 'skipped';
    else if (view.status === 'pending') status = 'waiting';
    else if (view.status === 'approved' || view.status === 'revoked') status = 'approved';
    else if (view.status === 'denied') status = 'denied';
    // the stage was waiting when the request ended: it expired, or its requester withdrew it
    else if (view.status === 'expired' || view.status === 'cancelled') status = view.status;
    else status = 'skipped';
    const groups =
      index === view.currentStage && row.escalated_at && policy.escalateTo
        ? [...new Set([...s.approvers, ...policy.escalateTo])]
        : s.approvers;
    return { index, approverGroups: groups, quorum: s.quorum, approverJustification: s.approverJustification, status, decisions: mine };
  });
  return { ...view, policy, stages, decisions, history: await historyOf(db, 'request', id) };
}

export interface RequestFilter {
  status?: RequestStatus;
  applicationId?: string;
  username?: string;
  requesterId?: string;
  clientGuid?: string;
  /** requests waiting on this identity's decision */
  pendingForApproverId?: string;
  /** only what this person may see (core/visibility.ts): a key bound to them reads as they would */
  visibleToId?: string;
}

/** How many requests match, for "10 of 94" when a chat list shows only the first page. */
export async function countRequests(db: Queryable, filter: RequestFilter): Promise<number> {
  const { where, params } = whereOf(filter);
  const row = await db.one<{ n: string }>(
    `SELECT count(*) AS n FROM (${joined} ${where.length ? `WHERE ${where.join(' AND ')}` : ''}) x`,
    params,
  );
  return Number(row.n);
}

function whereOf(filter: RequestFilter): { where: string[]; params: unknown[] } {
  const where: string[] = [];
  const params: unknown[] = [];
  const add = (sql: string, v: unknown) => {
    params.push(v);
    where.push(sql.replace('?', `$${params.length}`));
  };
  if (filter.status) add('r.status = ?', filter.status);
  if (filter.applicationId) add('r.application_id = ?', filter.applicationId);
  if (filter.username) add('lower(i.username) = lower(?)', filter.username);
  if (filter.requesterId) add('r.requester_id = ?', filter.requesterId);
  if (filter.clientGuid) add('upper(d.client_guid) = upper(?)', filter.clientGuid);
  if (filter.pendingForApproverId) {
    add(
      `r.status = 'pending' AND r.requester_id IS DISTINCT FROM ?::uuid AND EXISTS (
         SELECT 1 FROM approver_group_members m JOIN approver_groups g ON g.id = m.group_id
          WHERE m.identity_id = $${params.length + 1}::uuid AND (
            (r.policy->'stages'->r.current_stage->'approvers') ? g.name
            OR (r.escalated_at IS NOT NULL AND (r.policy->'escalateTo') ? g.name)))
       AND NOT EXISTS (SELECT 1 FROM request_decisions x WHERE x.request_id = r.id AND x.stage = r.current_stage AND x.approver_id = $${params.length + 1}::uuid)`,
      filter.pendingForApproverId,
    );
    // every placeholder above is the one parameter add() pushed; an extra unused one makes Postgres fail (42P18)
  }
  if (filter.visibleToId) {
    const me = `$${params.length + 1}::uuid`;
    add(
      `(r.requester_id = ?::uuid OR EXISTS (SELECT 1 FROM identities a WHERE a.id = ${me} AND a.is_admin) OR EXISTS (
         SELECT 1 FROM approver_group_members m JOIN approver_groups g ON g.id = m.group_id
          WHERE m.identity_id = ${me} AND ${policyNamesDeciderSql('r.policy', 'g.name')}))`,
      filter.visibleToId,
    );
  }
  return { where, params };
}

/** Keyset pagination over (created_at, id), newest first. */
export async function listRequests(db: Queryable, filter: RequestFilter, limit = 50, cursor?: string): Promise<Page<RequestView>> {
  const { where, params } = whereOf(filter);
  if (cursor) {
    const [ts, id] = decodeCursor(cursor);
    params.push(ts, id);
    where.push(`(r.created_at, r.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
  }
  params.push(limit + 1);
  const rows = await db.query<JoinedRow>(
    `${joined} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY r.created_at DESC, r.id DESC LIMIT $${params.length}`,
    params,
  );
  const items = rows.slice(0, limit).map(toView);
  const last = rows.length > limit ? rows[limit - 1]! : undefined;
  return { items, nextCursor: last ? encodeCursor(last.created_at, last.id) : null };
}

export const encodeCursor = (at: Date, id: string) => Buffer.from(`${new Date(at).toISOString()}|${id}`).toString('base64url');

export function decodeCursor(cursor: string): [string, string] {
  const [ts, id] = Buffer.from(cursor, 'base64url').toString().split('|');
  if (!ts || !id || Number.isNaN(Date.parse(ts)) || !isUuid(id)) {
    throw new AppError('validation_failed', 'The cursor is not one this API returned.', { field: 'cursor' });
  }
  return [ts, id];
}

/**
 * A request named the way people copy it from chat: its id, or the first 8 or more characters of it (cards show
 * "Request 1a2b3c4d"). A prefix that matches more than one request is refused rather than guessed.
 */
export async function requestIdFromRef(db: Queryable, ref: string): Promise<string> {
  const r = ref.trim().replace(/^`|`$/g, '');
  if (isUuid(r)) return r;
  if (!/^[0-9a-f]{8}[0-9a-f-]{0,27}$/i.test(r))
    throw new AppError('not_found', `"${ref}" is not a request id (copy it from the card: "Request 1a2b3c4d").`);
  const rows = await db.query<{ id: string }>(`SELECT id FROM requests WHERE id::text LIKE $1 ORDER BY created_at DESC LIMIT 2`, [
    `${r.toLowerCase()}%`,
  ]);
  if (rows.length === 0) throw new AppError('not_found', `No request starts with "${r}".`);
  if (rows.length > 1) throw new AppError('conflict', `More than one request starts with "${r}"; give more of its id.`);
  return rows[0]!.id;
}

export const isUuid = (s: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);

/** Ids of the 20 requests most recently approved, denied or revoked whose policy names one of these groups as approvers, not the identity's own. */
export async function recentlyDecidedIds(db: Queryable, approverGroups: string[], identityId: string): Promise<string[]> {
  const rows = await db.query<{ id: string }>(
    `SELECT r.id FROM requests r WHERE r.status IN ('approved', 'denied', 'revoked') AND r.requester_id IS DISTINCT FROM $2
        AND EXISTS (SELECT 1 FROM jsonb_array_elements(r.policy->'stages') st WHERE (st->'approvers') ?| $1::text[])
      ORDER BY r.updated_at DESC LIMIT 20`,
    [approverGroups, identityId],
  );
  return rows.map((r) => r.id);
}
