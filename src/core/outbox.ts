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
  return (await emitAll(tx, [e]))[0]!;
}

/** Every event of a command in one INSERT, in order (their seq follows the array). */
export async function emitAll(tx: Tx, events: NewEvent[]): Promise<string[]> {
  if (events.length === 0) return [];
  const rows = await tx.query<{ id: string }>(
    `INSERT INTO outbox (type, subject_type, subject_id, payload, created_at, available_at)
     SELECT type, subject_type, subject_id, payload, at, at
       FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[]) WITH ORDINALITY AS e(type, subject_type, subject_id, payload, at, n)
      ORDER BY n RETURNING id`,
    [events.map((e) => e.type), events.map((e) => e.subjectType), events.map((e) => e.subjectId), events.map((e) => JSON.stringify(payloadOf(e))), events.map((e) => e.at.toISOString())],
  );
  return rows.map((r) => r.id);
}

function payloadOf(e: NewEvent): Omit<DomainEvent, 'id'> {
  return {
    type: e.type,
    occurredAt: e.at.toISOString(),
    subjectType: e.subjectType,
    subjectId: e.subjectId,
    actor: { id: e.actor.id, label: e.actor.label, channel: e.actor.channel },
    data: e.data,
    webhooks: e.webhooks ?? [],
  };
}

export function toDomainEvent(row: { id: string; payload: Omit<DomainEvent, 'id'> }): DomainEvent {
  return { id: row.id, ...row.payload };
}
