import { createHash } from 'node:crypto';
import type { Database, Tx } from '../db/database.ts';
import { GroupCommit } from '../db/group-commit.ts';
import { canonicalJson } from './canonical-json.ts';

export type Channel = 'slack' | 'teams' | 'api' | 'email' | 'cli' | 'web' | 'system';

export interface Actor {
  /** the directory identity acting, when there is one */
  id: string | null;
  /** what the audit log and the chat cards show: a display name, `api:<key name>`, `system` */
  label: string;
  channel: Channel;
  /**
   * A Slack user not yet looked up in the directory (`id` null): a decision reads who it is together with the
   * request, saving a round trip per click. Nothing is written under such an actor before it is resolved.
   */
  slackUserId?: string;
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

/** prev_hash of the first row of the chain */
export const GENESIS = '0'.repeat(64);

/** What a chain hash covers: the event's content (not its id, transaction or position, which the links fix). */
export interface AuditContent {
  occurredAt: string;
  actorId: string | null;
  actorLabel: string;
  channel: string;
  action: string;
  subjectType: string;
  subjectId: string;
  before: unknown;
  after: unknown;
  details: unknown;
}

export function chainHash(prevHash: string, content: AuditContent): string {
  return createHash('sha256').update(prevHash).update('\n').update(canonicalJson(content)).digest('hex');
}

/** An audit_events row as selected by the chain's readers. */
export interface AuditEventRow {
  id: string;
  occurred_at: Date;
  actor_id: string | null;
  actor_label: string;
  channel: string;
  action: string;
  subject_type: string;
  subject_id: string;
  before: unknown;
  after: unknown;
  details: unknown;
}

export const auditEventColumns =
  'e.id, e.occurred_at, e.actor_id, e.actor_label, e.channel, e.action, e.subject_type, e.subject_id, e.before, e.after, e.details';

export function contentOf(r: AuditEventRow): AuditContent {
  return {
    occurredAt: new Date(r.occurred_at).toISOString(),
    actorId: r.actor_id,
    actorLabel: r.actor_label,
    channel: r.channel,
    action: r.action,
    subjectType: r.subject_type,
    subjectId: r.subject_id,
    before: r.before,
    after: r.after,
    details: r.details,
  };
}

/**
 * Appends to the audit log inside the caller's transaction: a plain insert, no lock, so decisions never wait on
 * each other here. The row carries its transaction's id (column default); the sealer chains it shortly after
 * commit (audit-chain.ts), once every transaction that could still commit a row before it has ended.
 */
export async function appendAudit(tx: Tx, entry: AuditEntry): Promise<void> {
  await tx.query(
    `INSERT INTO audit_events (occurred_at, actor_id, actor_label, channel, action, subject_type, subject_id, before, after, details)
     VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10)`,
    [
      entry.at.toISOString(),
      entry.actor.id,
      entry.actor.label,
      entry.actor.channel,
      entry.action,
      entry.subjectType,
      entry.subjectId,
      JSON.stringify(entry.before ?? null),
      JSON.stringify(entry.after ?? null),
      JSON.stringify(entry.details ?? null),
    ],
  );
}

/**
 * An audit row that belongs to no command transaction (a private chat reply that was sent): rows arriving together
 * share one INSERT, which is one commit instead of one each. Resolves once the row is committed.
 */
export function appendAuditAlone(db: Database, entry: AuditEntry): Promise<void> {
  let batches = aloneBatches.get(db);
  if (!batches) {
    batches = new GroupCommit<AuditEntry, void>(async (entries) => {
      await appendAuditAll(db, entries);
      return entries.map(() => undefined);
    });
    aloneBatches.set(db, batches);
  }
  return batches.submit(entry);
}
const aloneBatches = new WeakMap<Database, GroupCommit<AuditEntry, void>>();

/** appendAudit for many entries in one INSERT, in array order (a batch of timers fired together). */
export async function appendAuditAll(tx: Tx, entries: AuditEntry[]): Promise<void> {
  if (entries.length === 0) return;
  const insert = auditInsert(entries, 1);
  await tx.query(insert.sql, insert.params);
}

/**
 * The INSERT of many audit entries, its parameters numbered from `first` (so it can share a statement); `where`
 * writes them only when it holds, for a guarded write that may change nothing.
 */
export function auditInsert(entries: AuditEntry[], first: number, where = ''): { sql: string; params: unknown[] } {
  const col = <T>(f: (e: AuditEntry) => T) => entries.map(f);
  const json = (v: unknown) => JSON.stringify(v ?? null);
  const types = ['timestamptz', 'uuid', 'text', 'text', 'text', 'text', 'text', 'jsonb', 'jsonb', 'jsonb'];
  return {
    sql: `INSERT INTO audit_events (occurred_at, actor_id, actor_label, channel, action, subject_type, subject_id, before, after, details)
     SELECT * FROM unnest(${types.map((t, i) => `$${first + i}::${t}[]`).join(', ')})${where ? ` WHERE ${where}` : ''}`,
    params: [
      col((e) => e.at.toISOString()),
      col((e) => e.actor.id),
      col((e) => e.actor.label),
      col((e) => e.actor.channel),
      col((e) => e.action),
      col((e) => e.subjectType),
      col((e) => e.subjectId),
      col((e) => json(e.before)),
      col((e) => json(e.after)),
      col((e) => json(e.details)),
    ],
  };
}
