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
  | 'change.cancelled';

export interface WebhookEmission {
  type: WebhookEventType;
  data: Record<string, unknown>;
}

export interface DomainEvent {
  /** the outbox row id */
  id: string;
  type: DomainEventType;
  occurredAt: string;
  subjectType: 'request' | 'change';
  subjectId: string;
  /** who caused it (label) and through which channel */
  actor: { id: string | null; label: string; channel: string };
  data: Record<string, unknown>;
  webhooks: WebhookEmission[];
}
