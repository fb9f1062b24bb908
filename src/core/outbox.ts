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
  const insert = outboxInsert(events, 1);
  const rows = await tx.query<{ id: string }>(insert.sql, insert.params);
  return rows.map((r) => r.id);
}

/** The INSERT of a command's events returning their ids, its parameters numbered from `first`; `where` as auditInsert's. */
export function outboxInsert(events: AnyNewEvent[], first: number, where = ''): { sql: string; params: unknown[] } {
  const [a, b, c, d, e] = [0, 1, 2, 3, 4].map((i) => `$${first + i}`);
  return {
    sql: `INSERT INTO outbox (type, subject_type, subject_id, payload, created_at, available_at)
     SELECT type, subject_type, subject_id, payload, at, at
       FROM unnest(${a}::text[], ${b}::text[], ${c}::text[], ${d}::jsonb[], ${e}::timestamptz[]) WITH ORDINALITY AS e(type, subject_type, subject_id, payload, at, n)${where ? ` WHERE ${where}` : ''}
      ORDER BY n RETURNING id`,
    params: [
      events.map((e) => e.type),
      events.map((e) => subjectTypeOf(e.type)),
      events.map((e) => e.subjectId),
      events.map((e) => JSON.stringify(payloadOf(e))),
      events.map((e) => e.at.toISOString()),
    ],
  };
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
