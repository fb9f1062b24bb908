import type { Tx } from '../db/database.ts';
import { type AuditEntry, auditInsert } from './audit-log.ts';
import { type AnyNewEvent, outboxInsert } from './outbox.ts';

/**
 * What a command leaves behind, its audit entries and its events, written in one statement (the audit INSERT as a
 * data-modifying CTE of the outbox INSERT): one round trip where two were, on every decision. Returns the events' ids.
 */
export async function recordCommand(tx: Tx, audit: AuditEntry[], events: AnyNewEvent[]): Promise<string[]> {
  const a = auditInsert(audit, 1);
  const e = outboxInsert(events, 1 + a.params.length);
  const rows = await tx.query<{ id: string }>(`WITH audit AS (${a.sql}) ${e.sql}`, [...a.params, ...e.params]);
  return rows.map((r) => r.id);
}
