import { createHash } from 'node:crypto';
import type { Queryable, Tx } from '../db/database.ts';
import { canonicalJson } from './canonical-json.ts';

export type Channel = 'slack' | 'teams' | 'api' | 'email' | 'cli' | 'web' | 'system';

export interface Actor {
  /** the directory identity acting, when there is one */
  id: string | null;
  /** what the audit log and the chat cards show: a display name, `api:<key name>`, `system` */
  label: string;
  channel: Channel;
}

export const systemActor: Actor = { id: null, label: 'Signoff', channel: 'system' };

export interface AuditEntry {
  actor: Actor;
  action: string;
  subjectType: string;
  subjectId: string;
  before?: unknown;
  after?: unknown;
  details?: unknown;
  at: Date;
}

const GENESIS = '0'.repeat(64);
// one lock for the whole chain: appends take turns, so ids follow chain order
const AUDIT_LOCK = 7461627;

function hashOf(prevHash: string, row: {
  occurredAt: string; actorId: string | null; actorLabel: string; channel: string; action: string;
  subjectType: string; subjectId: string; before: unknown; after: unknown; details: unknown;
}): string {
  return createHash('sha256').update(prevHash).update('\n').update(canonicalJson(row)).digest('hex');
}

/**
 * Appends to the hash-chained, append-only audit log inside the caller's transaction. It takes the chain's lock,
 * held until commit: take every row lock the transaction needs before the first append, or two transactions can
 * deadlock (one holding a row and waiting for the chain, the other the reverse).
 */
export async function appendAudit(tx: Tx, entry: AuditEntry): Promise<void> {
  await tx.query('SELECT pg_advisory_xact_lock($1)', [AUDIT_LOCK]);
  const last = await tx.maybeOne<{ hash: string }>('SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1');
  const prevHash = last?.hash ?? GENESIS;
  const row = {
    occurredAt: entry.at.toISOString(),
    actorId: entry.actor.id,
    actorLabel: entry.actor.label,
    channel: entry.actor.channel,
    action: entry.action,
    subjectType: entry.subjectType,
    subjectId: entry.subjectId,
    before: entry.before ?? null,
    after: entry.after ?? null,
    details: entry.details ?? null,
  };
  const hash = hashOf(prevHash, row);
  await tx.query(
    `INSERT INTO audit_events (occurred_at, actor_id, actor_label, channel, action, subject_type, subject_id, before, after, details, prev_hash, hash)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11,$12)`,
    [row.occurredAt, row.actorId, row.actorLabel, row.channel, row.action, row.subjectType, row.subjectId,
     JSON.stringify(row.before), JSON.stringify(row.after), JSON.stringify(row.details), prevHash, hash],
  );
}

export interface AuditVerification {
  ok: boolean;
  checked: number;
  firstBroken?: { id: string; reason: string };
}

interface AuditRow {
  id: string; occurred_at: Date; actor_id: string | null; actor_label: string; channel: string; action: string;
  subject_type: string; subject_id: string; before: unknown; after: unknown; details: unknown; prev_hash: string; hash: string;
}

/** Walks the chain in id order, in pages, and reports the first row whose link or content does not match. */
export async function verifyAudit(db: Queryable, pageSize = 1000): Promise<AuditVerification> {
  let prev = GENESIS;
  let lastId = '0';
  let checked = 0;
  for (;;) {
    const rows = await db.query<AuditRow>('SELECT * FROM audit_events WHERE id > $1 ORDER BY id LIMIT $2', [lastId, pageSize]);
    if (rows.length === 0) return { ok: true, checked };
    for (const r of rows) {
      if (r.prev_hash !== prev) return { ok: false, checked, firstBroken: { id: r.id, reason: 'prev_hash does not match the previous row (a row was removed or reordered)' } };
      const expected = hashOf(prev, {
        occurredAt: new Date(r.occurred_at).toISOString(), actorId: r.actor_id, actorLabel: r.actor_label, channel: r.channel,
        action: r.action, subjectType: r.subject_type, subjectId: r.subject_id, before: r.before, after: r.after, details: r.details,
      });
      if (expected !== r.hash) return { ok: false, checked, firstBroken: { id: r.id, reason: 'content does not match its hash (the row was edited)' } };
      prev = r.hash;
      lastId = r.id;
      checked++;
    }
  }
}
