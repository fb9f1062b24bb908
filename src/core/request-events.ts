import type { Queryable } from '../db/database.ts';
import { readableUtc } from './clock.ts';
import type { DeviceRow, IdentityRow, ApplicationRow } from './directory.ts';
import type { InstallOrder, RequestSnapshot } from './events.ts';
import { AppError } from './errors.ts';
import type { RequestRow } from './request-queries.ts';

/** Payloads of request events and the "already decided" answer, shared by the request and timer services. */
export function alreadyDecided(row: Pick<RequestRow, 'status' | 'decided_by_label' | 'decided_at'>): AppError {
  const who = row.decided_by_label ?? 'someone';
  const when = row.decided_at ? readableUtc(row.decided_at) : 'earlier';
  return new AppError('already_decided', `This request was already ${row.status} by ${who} at ${when}.`, {
    status: row.status,
    decidedBy: row.decided_by_label,
    decidedAt: row.decided_at ? new Date(row.decided_at).toISOString() : null,
  });
}

/**
 * A prompt, link or caller bound to another stage than the pending one: an earlier stage is settled (say by whom and
 * when, from its last decision), a later one has not started.
 */
export async function notThisStage(
  db: Queryable,
  stage: number,
  row: Pick<RequestRow, 'id' | 'status' | 'current_stage'>,
): Promise<AppError> {
  if (stage > row.current_stage) {
    return new AppError(
      'invalid_transition',
      `Stage ${stage + 1} of this request has not started; it is at stage ${row.current_stage + 1}.`,
      { status: row.status, stage: row.current_stage },
    );
  }
  const last = await db.maybeOne<{ approver_label: string; decision: 'approve' | 'deny'; created_at: Date }>(
    'SELECT approver_label, decision, created_at FROM request_decisions WHERE request_id = $1 AND stage = $2 ORDER BY created_at DESC, seq DESC LIMIT 1',
    [row.id, stage],
  );
  const how = last
    ? ` (${last.decision === 'approve' ? 'approved' : 'denied'} by ${last.approver_label} at ${readableUtc(last.created_at)})`
    : '';
  return new AppError(
    'already_decided',
    `Stage ${stage + 1} of this request is already settled${how}; it is now at stage ${row.current_stage + 1}.`,
    {
      status: row.status,
      stage: row.current_stage,
      decidedBy: last?.approver_label ?? null,
      decidedAt: last ? new Date(last.created_at).toISOString() : null,
    },
  );
}

/** What every request event carries; only the fields a snapshot shows are needed (a submission has no row yet). */
export type SnapshotFields = Pick<
  RequestRow,
  'id' | 'status' | 'justification' | 'answers' | 'current_stage' | 'decided_by_label' | 'decided_at' | 'decision_reason'
>;

export function snapshotOf(
  row: SnapshotFields,
  app: ApplicationRow,
  requester: IdentityRow | null,
  device: DeviceRow | null,
): RequestSnapshot {
  return {
    requestId: row.id,
    status: row.status,
    applicationId: app.id,
    applicationName: app.name,
    username: requester?.username ?? null,
    requesterName: requester?.display_name ?? null,
    clientGuid: device?.client_guid ?? null,
    deviceName: device?.name ?? null,
    justification: row.justification,
    answers: row.answers,
    stage: row.current_stage,
    decidedBy: row.decided_by_label,
    decidedAt: row.decided_at ? new Date(row.decided_at).toISOString() : null,
    reason: row.decision_reason,
  };
}

export function installData(
  row: RequestRow,
  ctx: { app: ApplicationRow; requester: IdentityRow | null; device: DeviceRow | null },
  reason: string,
): InstallOrder {
  return {
    requestId: row.id,
    applicationId: ctx.app.id,
    applicationName: ctx.app.name,
    clientGuid: ctx.device?.client_guid ?? null,
    deviceName: ctx.device?.name ?? null,
    username: ctx.requester?.username ?? null,
    reason,
  };
}
