import { randomUUID } from 'node:crypto';
import type { DomainEvent, RequestSnapshot } from '../../core/events.ts';
import type { DeviceManagerConfig } from '../../core/device-manager.ts';
import type { Tx } from '../../db/database.ts';
import { messageIdOf } from '../webhooks/signing.ts';
import type { ConnectorOrder, OrderOperation } from './connector-order.ts';

type Facts = Pick<RequestSnapshot, 'applicationId' | 'applicationName' | 'username' | 'clientGuid' | 'deviceName'>;
const text = (v: string | null | undefined) => (typeof v === 'string' && v.trim() ? v : null);

function orderOf(event: DomainEvent): { operation: OrderOperation; facts: Facts; autoInstall: boolean; comments: string } | null {
  switch (event.type) {
    case 'request.approved': {
      const reason = text(event.data.reason);
      return {
        operation: 'grant',
        facts: event.data,
        autoInstall: event.data.installReason !== null,
        comments: `Approved in Signoff by ${text(event.data.decidedBy) ?? event.actor.label}${reason ? `: ${reason}` : ''}`,
      };
    }
    case 'request.revoked': {
      const reason = text(event.data.reason);
      const why = event.data.why;
      const how = why === 'access_expired' ? 'Access expired' : why === 'review_removed' ? 'Removed in an access review' : 'Revoked';
      return {
        operation: 'revoke',
        facts: event.data,
        autoInstall: false,
        comments: `${how} in Signoff by ${text(event.data.decidedBy) ?? event.actor.label}${reason ? `: ${reason}` : ''}`,
      };
    }
    case 'request.install_ordered':
      return {
        operation: 'install',
        facts: event.data,
        autoInstall: true,
        comments: `Install ordered in Signoff: ${text(event.data.reason) ?? 'requested'}`,
      };
    default:
      return null;
  }
}

const orderedApplication = (event: DomainEvent): string | null => {
  if (event.subjectType !== 'request') return null;
  const o = orderOf(event);
  return o ? text(o.facts.applicationId) : null;
};

/** The device managers of the applications a batch of events may order from, in one statement (absent: none). */
export async function deviceManagersFor(tx: Tx, events: DomainEvent[]): Promise<Map<string, DeviceManagerConfig>> {
  const ids = [...new Set(events.map(orderedApplication).filter((id): id is string => id !== null))];
  if (ids.length === 0) return new Map();
  const rows = await tx.query<{ id: string; device_manager: DeviceManagerConfig }>(
    'SELECT id, device_manager FROM applications WHERE id = ANY($1::text[]) AND device_manager IS NOT NULL',
    [ids],
  );
  return new Map(rows.map((r) => [r.id, r.device_manager]));
}

/**
 * Part of the outbox fan-out, in its transaction: an approval, revocation or install order of a request whose
 * application names a device manager becomes one delivery row for that connector. The unique index on
 * (outbox_id, event_type) makes a second relay of the same event add nothing. `managers` (deviceManagersFor, read
 * in the same transaction) spares a batch one lookup per event. Returns the event's order still pending (the new one,
 * or one an earlier relay left), or null: the batch asks only about events that can have one, since a lookup by
 * status read every pending delivery once a slow endpoint's backlog made that the cheaper-looking plan.
 */
export async function addDeviceManagerOrders(
  tx: Tx,
  outboxId: string,
  event: DomainEvent,
  managers?: Map<string, DeviceManagerConfig>,
): Promise<string | null> {
  const applicationId = orderedApplication(event);
  if (!applicationId) return null;
  const o = orderOf(event)!;
  const manager = managers
    ? managers.get(applicationId)
    : (
        await tx.maybeOne<{ device_manager: DeviceManagerConfig | null }>('SELECT device_manager FROM applications WHERE id = $1', [
          applicationId,
        ])
      )?.device_manager;
  if (!manager) return null;
  const username = text(o.facts.username);
  const person = username
    ? await tx.maybeOne<{ teams_aad_id: string | null }>('SELECT teams_aad_id FROM identities WHERE lower(username) = lower($1)', [
        username,
      ])
    : undefined;
  const order: ConnectorOrder = {
    operation: o.operation,
    requestId: event.subjectId,
    applicationId,
    applicationName: text(o.facts.applicationName) ?? applicationId,
    username,
    userObjectId: person?.teams_aad_id ?? null,
    clientGuid: text(o.facts.clientGuid),
    deviceName: text(o.facts.deviceName),
    autoInstall: o.autoInstall,
    comments: o.comments,
  };
  const id = randomUUID();
  const row = await tx.maybeOne<{ id: string }>(
    `WITH ins AS (INSERT INTO webhook_deliveries (id, message_id, endpoint_id, outbox_id, event_type, body, status, next_attempt_at, connector, application_id, request_id)
     VALUES ($1, $2, NULL, $3, $4, $5, 'pending', now(), $6, $7, $8)
     ON CONFLICT (outbox_id, event_type) WHERE connector IS NOT NULL AND outbox_id IS NOT NULL DO NOTHING RETURNING id)
     SELECT id FROM ins
     UNION ALL
     SELECT id FROM webhook_deliveries
      WHERE outbox_id = $3 AND event_type = $4 AND connector IS NOT NULL AND status = 'pending' AND NOT EXISTS (SELECT 1 FROM ins)`,
    [
      id,
      messageIdOf(id),
      outboxId,
      event.type,
      JSON.stringify({ type: 'device_manager.order', timestamp: event.occurredAt, data: order }),
      manager.kind,
      applicationId,
      event.subjectId,
    ],
  );
  return row?.id ?? null;
}
