import type { Tx } from '../db/database.ts';
import type { Actor } from './audit-log.ts';
import type { DomainEvent, DomainEventType, WebhookEmission } from './events.ts';

export interface NewEvent {
  type: DomainEventType;
  subjectType: 'request' | 'change' | 'audit';
  subjectId: string;
  actor: Actor;
  data: Record<string, unknown>;
  webhooks?: WebhookEmission[];
  at: Date;
}

/** Writes the event as an outbox row inside the caller's transaction; the relay delivers it after commit. */
export async function emit(tx: Tx, e: NewEvent): Promise<string> {
  const payload: Omit<DomainEvent, 'id'> = {
    type: e.type,
    occurredAt: e.at.toISOString(),
    subjectType: e.subjectType,
    subjectId: e.subjectId,
    actor: { id: e.actor.id, label: e.actor.label, channel: e.actor.channel },
    data: e.data,
    webhooks: e.webhooks ?? [],
  };
  const row = await tx.one<{ id: string }>(
    `INSERT INTO outbox (type, subject_type, subject_id, payload, created_at, available_at) VALUES ($1,$2,$3,$4,$5,$5) RETURNING id`,
    [e.type, e.subjectType, e.subjectId, JSON.stringify(payload), e.at.toISOString()],
  );
  return row.id;
}

export function toDomainEvent(row: { id: string; payload: Omit<DomainEvent, 'id'> }): DomainEvent {
  return { id: row.id, ...row.payload };
}
