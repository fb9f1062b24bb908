import type { Database, Queryable, Tx } from '../db/database.ts';
import { auditEventColumns, type AuditEventRow } from './audit-log.ts';

/** An audit row as the export reads it: with its chain position and hashes once sealed, nulls before. */
export interface AuditExportRow extends AuditEventRow {
  seq: string | null;
  prev_hash: string | null;
  hash: string | null;
}

export type AuditExportFilter = { subjectType?: string; subjectId?: string; since?: string };

function where(filter: AuditExportFilter, params: unknown[]): string {
  const w: string[] = [];
  if (filter.subjectType) w.push(`e.subject_type = $${params.push(filter.subjectType)}`);
  if (filter.subjectId) w.push(`e.subject_id = $${params.push(filter.subjectId)}`);
  if (filter.since) w.push(`e.occurred_at >= $${params.push(filter.since)}::timestamptz`);
  return w.map((x) => ` AND ${x}`).join('');
}

/** Sealed rows after a chain sequence, in chain order. */
export function sealedAuditPage(tx: Tx, filter: AuditExportFilter, afterSeq: string, limit: number): Promise<AuditExportRow[]> {
  const params: unknown[] = [afterSeq];
  const w = where(filter, params);
  return tx.query<AuditExportRow>(
    `SELECT c.seq, c.prev_hash, c.hash, ${auditEventColumns} FROM audit_chain c JOIN audit_events e ON e.id = c.event_id
      WHERE c.seq > $1${w} ORDER BY c.seq LIMIT $${params.push(limit)}`,
    params,
  );
}

/** Rows past the sealer's cursor, by id. */
export function unsealedAuditPage(tx: Tx, filter: AuditExportFilter, afterId: string, limit: number): Promise<AuditExportRow[]> {
  const params: unknown[] = [afterId];
  const w = where(filter, params);
  return tx.query<AuditExportRow>(
    `WITH h AS (SELECT event_xid, event_id FROM audit_chain WHERE event_xid IS NOT NULL ORDER BY seq DESC LIMIT 1)
     SELECT NULL AS seq, NULL AS prev_hash, NULL AS hash, ${auditEventColumns} FROM audit_events e
      WHERE (e.xid, e.id) > (coalesce((SELECT event_xid FROM h), '0'::xid8), coalesce((SELECT event_id FROM h), 0))
        AND e.id > $1${w} ORDER BY e.id LIMIT $${params.push(limit)}`,
    params,
  );
}

/** A consistent view across several statements: a row sealed meanwhile is neither lost nor read twice. */
export function inReadSnapshot<T>(db: Database, fn: (tx: Tx) => Promise<T>): Promise<T> {
  return db.tx(async (tx) => {
    await tx.query('SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY');
    return fn(tx);
  });
}

export interface RecentAuditEvent {
  id: string;
  occurred_at: Date;
  actor_label: string;
  channel: string;
  action: string;
  subject_type: string;
  subject_id: string;
}

/** The newest audit rows, newest first. */
export function recentAuditEvents(db: Queryable): Promise<RecentAuditEvent[]> {
  return db.query<RecentAuditEvent>(
    'SELECT id, occurred_at, actor_label, channel, action, subject_type, subject_id FROM audit_events ORDER BY id DESC LIMIT 50',
  );
}

export interface CheckpointRow {
  sequence: string;
  head_hash: string;
  signed_at: Date;
  key_id: string;
}

/** The latest signed checkpoint the sealer wrote, if any. */
export function latestCheckpoint(db: Queryable): Promise<CheckpointRow | undefined> {
  return db.maybeOne<CheckpointRow>('SELECT sequence, head_hash, signed_at, key_id FROM audit_checkpoints ORDER BY id DESC LIMIT 1');
}
