import type { Queryable } from '../../db/database.ts';

// Reads only the web pages make; requests, deliveries and audit rows come from the core's query modules.

export interface SentMessageRow {
  platform: string;
  purpose: string;
  stage: number | null;
  conversation_id: string;
  created_at: Date;
  updated_at: Date;
}

/** Every chat message sent about a subject (message_refs), oldest first. */
export function messagesSentFor(db: Queryable, subjectType: string, subjectId: string): Promise<SentMessageRow[]> {
  return db.query<SentMessageRow>(
    'SELECT platform, purpose, stage, conversation_id, created_at, updated_at FROM message_refs WHERE subject_type = $1 AND subject_id = $2 ORDER BY created_at',
    [subjectType, subjectId],
  );
}

/** Domain events from `afterSeq` on, with what each is about, for the live pages (outbox_seq_idx). */
export function outboxSubjectsSince(
  db: Queryable,
  afterSeq: string,
  limit: number,
): Promise<{ seq: string; subject_type: string | null; subject_id: string | null }[]> {
  return db.query('SELECT seq, subject_type, subject_id FROM outbox WHERE seq > $1 ORDER BY seq LIMIT $2', [afterSeq, limit]);
}

/** The newest domain event's position, where the live pages start listening from. */
export async function latestOutboxSeq(db: Queryable): Promise<string> {
  return (await db.one<{ seq: string }>('SELECT coalesce(max(seq), 0)::text AS seq FROM outbox')).seq;
}
