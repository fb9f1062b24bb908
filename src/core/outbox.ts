import type { Tx } from '../db/database.ts';
import type { Actor } from './audit-log.ts';
import { subjectTypeOf, type DomainEvent, type DomainEventPayloads, type DomainEventType } from './events.ts';

export interface NewEvent<K extends DomainEventType> {
  type: K;
  subjectId: string;
  actor: Actor;
  data: DomainEventPayloads[K];
  at: Date;
}

/** Any one event, checked against its own payload type (for lists of events of several types). */
export type AnyNewEvent = { [K in DomainEventType]: NewEvent<K> }[DomainEventType];

/** What an outbox row's payload holds: the event without its id (the row's). */
export type StoredEvent = Omit<DomainEvent, 'id'>;

/** Writes the event as an outbox row inside the caller's transaction; the relay delivers it after commit. */
export async function emit<K extends DomainEventType>(tx: Tx, e: NewEvent<K>): Promise<string> {
  return (await emitAll(tx, [e as unknown as AnyNewEvent]))[0]!;
}

/** Every event of a command in one INSERT, in order (their seq follows the array). */
export async function emitAll(tx: Tx, events: AnyNewEvent[]): Promise<string[]> {
  if (events.length === 0) return [];
  const rows = await tx.query<{ id: string }>(
    `INSERT INTO outbox (type, subject_type, subject_id, payload, created_at, available_at)
     SELECT type, subject_type, subject_id, payload, at, at
       FROM unnest($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::timestamptz[]) WITH ORDINALITY AS e(type, subject_type, subject_id, payload, at, n)
      ORDER BY n RETURNING id`,
    [
      events.map((e) => e.type),
      events.map((e) => subjectTypeOf(e.type)),
      events.map((e) => e.subjectId),
      events.map((e) => JSON.stringify(payloadOf(e))),
      events.map((e) => e.at.toISOString()),
    ],
  );
  return rows.map((r) => r.id);
}

function payloadOf(e: AnyNewEvent): StoredEvent {
  return {
    type: e.type,
    occurredAt: e.at.toISOString(),
    subjectType: subjectTypeOf(e.type),
    subjectId: e.subjectId,
    actor: { id: e.actor.id, label: e.actor.label, channel: e.actor.channel },
    data: e.data,
  } as StoredEvent;
}

interface LegacyWebhook {
  type: string;
  data: Record<string, unknown>;
}

export function toDomainEvent(row: { id: string; payload: StoredEvent }): DomainEvent {
  const { webhooks, ...payload } = row.payload as StoredEvent & { webhooks?: LegacyWebhook[] };
  const event = { id: row.id, ...payload } as DomainEvent;
  return webhooks ? fromLegacy(event, webhooks) : event;
}

/**
 * Rows written before webhooks were derived stored them beside `data`; the few facts only they held are moved
 * into `data`, so an event still in the outbox at an upgrade is handled (and its webhooks sent) unchanged.
 */
function fromLegacy(event: DomainEvent, webhooks: LegacyWebhook[]): DomainEvent {
  const reasonOf = (type: string) => {
    const hook = webhooks.find((w) => w.type === type);
    return hook ? String(hook.data.reason ?? '') : null;
  };
  switch (event.type) {
    case 'request.approved':
      return { ...event, data: { ...event.data, installReason: event.data.installReason ?? reasonOf('app.install') } };
    case 'request.revoked':
      return { ...event, data: { ...event.data, uninstallReason: event.data.uninstallReason ?? reasonOf('app.uninstall') } };
    case 'request.install_ordered': {
      const install = webhooks.find((w) => w.type === 'app.install');
      return install ? { ...event, data: { ...(install.data as unknown as typeof event.data) } } : event;
    }
    default:
      return event;
  }
}
