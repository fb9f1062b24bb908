/**
 * Domain events: one outbox row per committed state change. Adapters react to `type`; the webhook fan-out
 * sends each entry of `webhooks` (Standard Webhooks event types from the spec) to subscribed endpoints.
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

export type DomainEventType =
  | 'request.submitted'
  | 'request.stage_advanced'
  | 'request.approved'
  | 'request.denied'
  | 'request.revoked'
  | 'request.expired'
  | 'request.cancelled'
  | 'request.decision_recorded'
  | 'request.reminder'
  | 'request.escalated'
  | 'request.install_ordered'
  | 'request.access_expiring'
  | 'request.review_started'
  | 'request.review_reminder'
  | 'request.review_decided'
  | 'change.submitted'
  | 'change.approved'
  | 'change.rejected'
  | 'change.cancelled'
  | 'audit.checkpoint';

export interface WebhookEmission {
  type: WebhookEventType;
  data: Record<string, unknown>;
}

export interface DomainEvent {
  /** the outbox row id */
  id: string;
  type: DomainEventType;
  occurredAt: string;
  subjectType: 'request' | 'change' | 'audit';
  subjectId: string;
  /** who caused it (label) and through which channel */
  actor: { id: string | null; label: string; channel: string };
  data: Record<string, unknown>;
  webhooks: WebhookEmission[];
}
