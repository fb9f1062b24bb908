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
    status: row.status, decidedBy: row.decided_by_label, decidedAt: row.decided_at ? new Date(row.decided_at).toISOString() : null,
  });
}

export function snapshotOf(row: RequestRow, app: ApplicationRow, requester: IdentityRow | null, device: DeviceRow | null): RequestSnapshot {
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

export function installData(row: RequestRow, ctx: { app: ApplicationRow; requester: IdentityRow | null; device: DeviceRow | null }, reason: string): InstallOrder {
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
