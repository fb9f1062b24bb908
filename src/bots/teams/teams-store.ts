import type { Database, Queryable } from '../../db/database.ts';
import { appendAudit, type Actor } from '../../core/audit-log.ts';
import { isUniqueViolation } from '../../core/errors.ts';

/**
 * Where the Teams adapter keeps what it needs between turns: conversation references (to post proactively)
 * and message references (one row per posted copy of a card, to update it in place later).
 */
export interface StoredReference {
  serviceUrl: string;
  channelId: string;
  conversation: { id: string; conversationType?: string; tenantId?: string; isGroup?: boolean };
  bot?: { id: string; name?: string };
  tenantId?: string;
}

export type ConversationKind = 'personal' | 'channel' | 'team' | 'groupChat';

export async function saveConversationRef(db: Queryable, key: string, kind: ConversationKind, reference: StoredReference): Promise<void> {
  await db.query(
    `INSERT INTO conversation_refs (platform, key, kind, reference) VALUES ('teams', $1, $2, $3)
     ON CONFLICT (platform, key) DO UPDATE SET kind = EXCLUDED.kind, reference = EXCLUDED.reference, updated_at = now()
     WHERE conversation_refs.reference IS DISTINCT FROM EXCLUDED.reference OR conversation_refs.kind IS DISTINCT FROM EXCLUDED.kind`,
    [key, kind, JSON.stringify(reference)],
  );
}

export async function conversationRef(db: Queryable, key: string): Promise<StoredReference | undefined> {
  const row = await db.maybeOne<{ reference: StoredReference }>(
    `SELECT reference FROM conversation_refs WHERE platform = 'teams' AND key = $1`,
    [key],
  );
  return row?.reference;
}

/** The latest reference of any kind: its serviceUrl, tenant and bot id let us reach conversations not seen yet. */
export async function anyConversationRef(db: Queryable): Promise<StoredReference | undefined> {
  const row = await db.maybeOne<{ reference: StoredReference }>(
    `SELECT reference FROM conversation_refs WHERE platform = 'teams' ORDER BY updated_at DESC LIMIT 1`,
  );
  return row?.reference;
}

/** Remembers a user's Teams id ("29:…") for their AAD object id; written only when it changes. */
export async function rememberTeamsUser(db: Queryable, aadObjectId: string, userId: string): Promise<void> {
  await db.query(
    `INSERT INTO teams_users (aad_object_id, user_id) VALUES (lower($1), $2)
     ON CONFLICT (aad_object_id) DO UPDATE SET user_id = EXCLUDED.user_id, updated_at = now()
     WHERE teams_users.user_id IS DISTINCT FROM EXCLUDED.user_id`,
    [aadObjectId, userId],
  );
}

/**
 * The ids to put in a card's `refresh.userIds`: Teams wants user ids ("29:…"); for someone who has never
 * written to the bot only the AAD object id is known, which is the best there is until they do.
 */
export async function refreshIdsFor(db: Queryable, aadObjectIds: string[]): Promise<string[]> {
  const wanted = [...new Set(aadObjectIds.filter(Boolean))];
  if (wanted.length === 0) return [];
  const rows = await db.query<{ aad_object_id: string; user_id: string }>(
    `SELECT aad_object_id, user_id FROM teams_users WHERE aad_object_id = ANY($1::text[])`,
    [wanted.map((x) => x.toLowerCase())],
  );
  const known = new Map(rows.map((r) => [r.aad_object_id, r.user_id]));
  return [...new Set(wanted.map((aad) => known.get(aad.toLowerCase()) ?? aad))];
}

export type CopyView = 'base' | 'approver' | 'requester';
export type Purpose = 'prompt' | 'requester' | 'notice' | 'reply';

export interface MessageRef {
  id: string;
  subject_type: 'request' | 'change' | 'review';
  subject_id: string;
  purpose: Purpose;
  stage: number | null;
  conversation_id: string;
  message_id: string;
  recipient_id: string | null;
  data: { eventId?: string; key?: string; view?: CopyView; serviceUrl?: string };
}

export interface NewMessageRef {
  subjectType: 'request' | 'change' | 'review';
  subjectId: string;
  purpose: Purpose;
  stage?: number | null;
  conversationId: string;
  messageId: string;
  recipientId?: string | null;
  data: MessageRef['data'];
}

export async function insertMessageRef(db: Queryable, m: NewMessageRef): Promise<void> {
  try {
    await db.query(
      `INSERT INTO message_refs (subject_type, subject_id, platform, purpose, stage, conversation_id, message_id, recipient_id, data)
       VALUES ($1,$2,'teams',$3,$4,$5,$6,$7,$8)`,
      [
        m.subjectType,
        m.subjectId,
        m.purpose,
        m.stage ?? null,
        m.conversationId,
        m.messageId,
        m.recipientId ?? null,
        JSON.stringify(m.data),
      ],
    );
  } catch (e) {
    if (!isUniqueViolation(e)) throw e; // the same activity recorded twice (an invoke and a retry): one row is enough
  }
}

/** Copies of a subject's card that are updated in place (prompts and the requester's copy). */
export const cardCopies = (db: Queryable, subjectType: string, subjectId: string) =>
  db.query<MessageRef>(
    `SELECT id, subject_type, subject_id, purpose, stage, conversation_id, message_id, recipient_id, data FROM message_refs
      WHERE platform = 'teams' AND subject_type = $1 AND subject_id = $2 AND purpose IN ('prompt', 'requester') ORDER BY created_at, id`,
    [subjectType, subjectId],
  );

/** True when this event already produced the delivery named by `key`: a queue retry must not post it again. */
export async function alreadyDelivered(db: Queryable, subjectId: string, eventId: string, key: string): Promise<boolean> {
  const row = await db.maybeOne(
    `SELECT 1 FROM message_refs WHERE platform = 'teams' AND subject_id = $1 AND data->>'eventId' = $2 AND data->>'key' = $3 LIMIT 1`,
    [subjectId, eventId, key],
  );
  return Boolean(row);
}

export async function moveMessageRef(db: Queryable, id: string, messageId: string): Promise<void> {
  await db.query(`UPDATE message_refs SET message_id = $2, updated_at = now() WHERE id = $1`, [id, messageId]);
}

export async function touchMessageRef(db: Queryable, id: string): Promise<void> {
  await db.query(`UPDATE message_refs SET updated_at = now() WHERE id = $1`, [id]);
}

export const teamsBotActor: Actor = { id: null, label: 'Signoff', channel: 'teams' };

/** Every message the bot sends or updates is in the audit log. */
export async function auditSent(
  db: Database,
  at: Date,
  subject: { type: string; id: string },
  details: Record<string, unknown>,
  actor: Actor = teamsBotActor,
): Promise<void> {
  await db.tx((tx) =>
    appendAudit(tx, {
      actor,
      action: 'message.sent',
      subjectType: subject.type,
      subjectId: subject.id,
      details: { platform: 'teams', ...details },
      at,
    }),
  );
}
