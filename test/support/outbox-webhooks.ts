import { webhookEmissions, type WebhookEmission } from '../../src/core/events.ts';
import { toDomainEvent } from '../../src/core/outbox.ts';

/** The Standard Webhooks an outbox row sends (derived from its event, as the relay does). */
export const webhooksOfRow = (row: { id?: string; payload: any }): (WebhookEmission & { data: any })[] =>
  webhookEmissions(toDomainEvent({ id: row.id ?? '', payload: row.payload }));
