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

/** What an outbox row (a domain event) is about, for the live pages. */
export function outboxSubject(db: Queryable, outboxId: string): Promise<{ subject_type: string; subject_id: string } | undefined> {
  return db.maybeOne<{ subject_type: string; subject_id: string }>('SELECT subject_type, subject_id FROM outbox WHERE id = $1', [outboxId]);
}
