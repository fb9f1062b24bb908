import type { ChangeStatus, RequestStatus } from './request-state.ts';
import type { DiffEntry } from './views.ts';
import type { Checkpoint } from './audit-checkpoint.ts';

/**
 * Domain events: one outbox row per committed state change. Every event type has one payload type
 * (`DomainEventPayloads`); `DomainEvent` is the discriminated union of them, so `switch (event.type)` narrows
 * `event.data`. The Standard Webhooks a device manager receives are derived from the event (`webhookEmissions`),
 * never stored beside it.
 */
export const webhookEventTypes = [
  'app.install',
  'app.uninstall',
  'change.apply',
  'request.submitted',
  'request.approved',
  'request.denied',
  'request.revoked',
  'request.expired',
  'request.cancelled',
  'change.submitted',
  'change.approved',
  'change.rejected',
  'change.cancelled',
  // a signed checkpoint of the audit chain, emitted periodically by the sealer (keep it somewhere else)
  'audit.checkpoint',
] as const;
export type WebhookEventType = (typeof webhookEventTypes)[number];

/** A request as it stands after the event: the body of the request.* webhooks. */
export interface RequestSnapshot {
  requestId: string;
  status: RequestStatus;
  applicationId: string;
  applicationName: string;
  username: string | null;
  requesterName: string | null;
  clientGuid: string | null;
  deviceName: string | null;
  justification: string | null;
  answers: Record<string, unknown>;
  stage: number;
  decidedBy: string | null;
  decidedAt: string | null;
  reason: string | null;
}

/** What a device manager needs to install or uninstall: the body of app.install and app.uninstall. */
export interface InstallOrder {
  requestId: string;
  applicationId: string;
  applicationName: string;
  clientGuid: string | null;
  deviceName: string | null;
  username: string | null;
  reason: string;
}

/** A change as it stands after the event: the body of the change.* webhooks (and change.apply). */
export interface ChangeSnapshot {
  changeId: string;
  status: ChangeStatus;
  resourceType: string;
  resourceId: string;
  before: unknown;
  after: unknown;
  diff: DiffEntry[];
  justification: string;
  requestedBy: string;
  decidedBy: string | null;
  decidedAt: string | null;
  notes: string | null;
}

export type RevokeWhy = 'revoke' | 'access_expired' | 'review_removed';

type RequestDecided = RequestSnapshot & { previousStatus: RequestStatus };

/** The one map of event type to payload. Add a type here and the compiler names every switch that must handle it. */
export interface DomainEventPayloads {
  'request.submitted': RequestSnapshot;
  'request.stage_advanced': { requestId: string; completedStage: number; stage: number };
  /** `installReason` is set when the install was ordered with the approval (null: none, or it waits for its window) */
  'request.approved': RequestDecided & { installReason: string | null };
  'request.denied': RequestDecided;
  'request.cancelled': RequestDecided;
  'request.expired': RequestDecided;
  /** `uninstallReason` is set when an install had been ordered, so the uninstall is ordered now */
  'request.revoked': RequestSnapshot & { why: RevokeWhy; uninstallReason: string | null };
  'request.decision_recorded': { requestId: string; stage: number; decision: 'approve' | 'deny'; reason: string | null };
  'request.reminder': { requestId: string; stage: number; approverGroups: string[]; deadlineAt: string | null };
  'request.escalated': { requestId: string; stage: number; escalateTo: string[]; approverGroups: string[] };
  'request.install_ordered': InstallOrder;
  'request.access_expiring': RequestSnapshot & { accessExpiresAt: string | null };
  'request.review_started': RequestSnapshot & {
    reviewId: string;
    reviewers: string[];
    reviewerUsernames: string[];
    approvedAt: string | null;
    approvedBy: string | null;
    dueAt: string;
  };
  'request.review_reminder': { requestId: string; reviewId: string; reviewers: string[]; dueAt: string; reviewerUsernames: string[] };
  'request.review_decided': {
    requestId: string;
    reviewId: string;
    outcome: 'kept' | 'removed' | 'lapsed' | 'closed';
    reason: string | null;
    decidedBy: string | null;
    decidedAt: string;
  };
  'change.submitted': ChangeSnapshot;
  'change.approved': ChangeSnapshot;
  'change.rejected': ChangeSnapshot;
  'change.cancelled': ChangeSnapshot;
  /** a signed checkpoint of the audit chain, emitted periodically by the sealer */
  'audit.checkpoint': Checkpoint;
}

export type DomainEventType = keyof DomainEventPayloads;
export type SubjectTypeOf<K extends DomainEventType> = K extends `change.${string}`
  ? 'change'
  : K extends `audit.${string}`
    ? 'audit'
    : 'request';

export const subjectTypeOf = <K extends DomainEventType>(type: K): SubjectTypeOf<K> =>
  (type.startsWith('change.') ? 'change' : type.startsWith('audit.') ? 'audit' : 'request') as SubjectTypeOf<K>;

interface Envelope {
  /** the outbox row id */
  id: string;
  occurredAt: string;
  subjectId: string;
  /** who caused it (label) and through which channel */
  actor: { id: string | null; label: string; channel: string };
}

export type DomainEvent = {
  [K in DomainEventType]: Envelope & { type: K; subjectType: SubjectTypeOf<K>; data: DomainEventPayloads[K] };
}[DomainEventType];
export type EventOf<K extends DomainEventType> = Extract<DomainEvent, { type: K }>;
export type RequestEvent = Extract<DomainEvent, { subjectType: 'request' }>;
export type ChangeEvent = Extract<DomainEvent, { subjectType: 'change' }>;

export interface WebhookEmission {
  type: WebhookEventType;
  data: RequestSnapshot | InstallOrder | ChangeSnapshot | Checkpoint;
}

/** For the `default` of a switch over event types: it compiles only when every type has a case. */
export function exhaustive(value: never): void {
  void value;
}

const installOrderOf = (s: RequestSnapshot, reason: string): InstallOrder => ({
  requestId: s.requestId,
  applicationId: s.applicationId,
  applicationName: s.applicationName,
  clientGuid: s.clientGuid,
  deviceName: s.deviceName,
  username: s.username,
  reason,
});

/** The Standard Webhooks one event sends (body `data` of each), in order; most events send none. */
export function webhookEmissions(event: DomainEvent): WebhookEmission[] {
  switch (event.type) {
    case 'request.submitted':
      return [{ type: event.type, data: event.data }];
    case 'request.approved': {
      const { previousStatus: _p, installReason, ...snapshot } = event.data;
      return [
        { type: event.type, data: snapshot },
        ...(installReason !== null ? [{ type: 'app.install' as const, data: installOrderOf(snapshot, installReason) }] : []),
      ];
    }
    case 'request.denied':
    case 'request.cancelled':
    case 'request.expired': {
      const { previousStatus: _p, ...snapshot } = event.data;
      return [{ type: event.type, data: snapshot }];
    }
    case 'request.revoked': {
      const { uninstallReason, ...snapshot } = event.data;
      return [
        { type: event.type, data: snapshot },
        ...(uninstallReason !== null ? [{ type: 'app.uninstall' as const, data: installOrderOf(snapshot, uninstallReason) }] : []),
      ];
    }
    case 'request.install_ordered':
      return [{ type: 'app.install', data: event.data }];
    case 'change.submitted':
    case 'change.rejected':
    case 'change.cancelled':
      return [{ type: event.type, data: event.data }];
    case 'change.approved':
      return [
        { type: event.type, data: event.data },
        { type: 'change.apply', data: event.data },
      ];
    case 'audit.checkpoint':
      return [{ type: event.type, data: event.data }];
    case 'request.stage_advanced':
    case 'request.decision_recorded':
    case 'request.reminder':
    case 'request.escalated':
    case 'request.access_expiring':
    case 'request.review_started':
    case 'request.review_reminder':
    case 'request.review_decided':
      return [];
    default:
      exhaustive(event);
      return [];
  }
}
