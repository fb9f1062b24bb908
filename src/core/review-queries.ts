import type { Queryable } from '../db/database.ts';
import { AppError } from './errors.ts';
import { decodeCursor, encodeCursor, isUuid } from './request-queries.ts';
import type { RequestStatus } from './request-state.ts';
import type { DeviceRef, IdentityRef, Page } from './views.ts';

export const reviewStatuses = ['pending', 'kept', 'removed', 'lapsed', 'closed'] as const;
export type ReviewStatus = (typeof reviewStatuses)[number];

/** One periodic access review as the API and the chat renderers see it. */
export interface ReviewView {
  id: string;
  requestId: string;
  status: ReviewStatus;
  /** approver groups whose members may answer */
  reviewerGroups: string[];
  application: { id: string; name: string };
  requester: IdentityRef | null;
  device: DeviceRef | null;
  /** the approval under review */
  approvedAt: string | null;
  approvedBy: string | null;
  /** the request's status now (revoked after a removal) */
  requestStatus: RequestStatus;
  dueAt: string;
  createdAt: string;
  decidedAt: string | null;
  decidedBy: { id: string | null; label: string } | null;
  reason: string | null;
}

export interface ReviewFilter {
  status?: ReviewStatus;
  requestId?: string;
  /** pending reviews this identity may answer: a member of a reviewer group, not the one whose access it is */
  reviewerId?: string;
}

interface JoinedReview {
  id: string;
  request_id: string;
  status: ReviewStatus;
  reviewer_groups: string[];
  due_at: Date;
  created_at: Date;
  decided_at: Date | null;
  decided_by: string | null;
  decided_by_label: string | null;
  decider_name: string | null;
  reason: string | null;
  approved_at: Date | null;
  approved_by_label: string | null;
  r_status: RequestStatus;
  r_decided_at: Date | null;
  r_decided_by_label: string | null;
  r_stages: unknown;
  application_id: string;
  app_name: string;
  requester_id: string | null;
  i_username: string | null;
  i_display_name: string | null;
  i_email: string | null;
  device_id: string | null;
  d_client_guid: string | null;
  d_name: string | null;
}

const joined = `
  SELECT v.*, x.display_name AS decider_name, r.status AS r_status, r.decided_at AS r_decided_at, r.decided_by_label AS r_decided_by_label,
         r.policy->'stages' AS r_stages, r.application_id, a.name AS app_name, r.requester_id, i.username AS i_username,
         i.display_name AS i_display_name, i.email AS i_email, r.device_id, d.client_guid AS d_client_guid, d.name AS d_name
    FROM access_reviews v
    JOIN requests r ON r.id = v.request_id
    JOIN applications a ON a.id = r.application_id
    LEFT JOIN identities i ON i.id = r.requester_id
    LEFT JOIN devices d ON d.id = r.device_id
    LEFT JOIN identities x ON x.id = v.decided_by`;

const iso = (d: Date | null) => (d ? new Date(d).toISOString() : null);

function toView(v: JoinedReview): ReviewView {
  // reviews started before reviewer groups were recorded fall back to the last stage's approvers
  const stages = Array.isArray(v.r_stages) ? (v.r_stages as { approvers?: string[] }[]) : [];
  const groups = v.reviewer_groups?.length ? v.reviewer_groups : (stages.at(-1)?.approvers ?? []);
  const decidedLabel = v.decided_by_label ?? v.decider_name;
  return {
    id: v.id,
    requestId: v.request_id,
    status: v.status,
    reviewerGroups: groups,
    application: { id: v.application_id, name: v.app_name },
    requester: v.requester_id ? { id: v.requester_id, username: v.i_username!, displayName: v.i_display_name!, email: v.i_email } : null,
    device: v.device_id ? { id: v.device_id, clientGuid: v.d_client_guid!, name: v.d_name! } : null,
    approvedAt: iso(v.approved_at) ?? (v.r_status === 'approved' ? iso(v.r_decided_at) : null),
    approvedBy: v.approved_by_label ?? (v.r_status === 'approved' ? v.r_decided_by_label : null),
    requestStatus: v.r_status,
    dueAt: iso(v.due_at)!,
    createdAt: iso(v.created_at)!,
    decidedAt: iso(v.decided_at),
    decidedBy: decidedLabel || v.decided_by ? { id: v.decided_by, label: decidedLabel ?? 'someone' } : null,
    reason: v.reason,
  };
}

export async function getReviewView(db: Queryable, id: string): Promise<ReviewView> {
  if (!isUuid(id)) throw new AppError('not_found', `No access review with id "${id}".`);
  const row = await db.maybeOne<JoinedReview>(`${joined} WHERE v.id = $1`, [id]);
  if (!row) throw new AppError('not_found', `No access review with id "${id}".`);
  return toView(row);
}

/** Keyset pagination over (created_at, id), newest first. */
export async function listReviews(db: Queryable, filter: ReviewFilter, limit = 50, cursor?: string): Promise<Page<ReviewView>> {
  const where: string[] = [];
  const params: unknown[] = [];
  if (filter.status) {
    params.push(filter.status);
    where.push(`v.status = $${params.length}`);
  }
  if (filter.requestId) {
    if (!isUuid(filter.requestId)) return { items: [], nextCursor: null };
    params.push(filter.requestId);
    where.push(`v.request_id = $${params.length}`);
  }
  if (filter.reviewerId) {
    if (!isUuid(filter.reviewerId)) return { items: [], nextCursor: null };
    params.push(filter.reviewerId);
    const me = `$${params.length}::uuid`;
    where.push(`v.status = 'pending' AND r.requester_id IS DISTINCT FROM ${me} AND v.reviewer_groups && ARRAY(
      SELECT g.name FROM approver_group_members m JOIN approver_groups g ON g.id = m.group_id WHERE m.identity_id = ${me})`);
  }
  if (cursor) {
    const [ts, id] = decodeCursor(cursor);
    params.push(ts, id);
    where.push(`(v.created_at, v.id) < ($${params.length - 1}::timestamptz, $${params.length}::uuid)`);
  }
  params.push(limit + 1);
  const rows = await db.query<JoinedReview>(
    `${joined} ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY v.created_at DESC, v.id DESC LIMIT $${params.length}`,
    params,
  );
  const items = rows.slice(0, limit).map(toView);
  const last = rows.length > limit ? rows[limit - 1]! : undefined;
  return { items, nextCursor: last ? encodeCursor(last.created_at, last.id) : null };
}
