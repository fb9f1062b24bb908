import type { Database, Queryable } from '../../db/database.ts';
import { appendAudit, type Actor } from '../../core/audit-log.ts';
import { notifierActor } from '../../notifications/message-store.ts';

/**
 * Where the Teams adapter keeps what it needs between turns: conversation references (to post proactively)
 * and the Teams user ids cards are refreshed for. Posted copies live in the message store (src/notifications).
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

/** Every message the bot sends or updates is in the audit log. */
export async function auditSent(
  db: Database,
  at: Date,
  subject: { type: string; id: string },
  details: Record<string, unknown>,
  actor: Actor = notifierActor('teams'),
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

/** Whether a copy of the item was posted in the conversation: its members see that card there already. */
export async function postedIn(
  db: Queryable,
  kind: 'request' | 'change' | 'review',
  id: string,
  conversationId: string | undefined,
): Promise<boolean> {
  if (!conversationId) return false;
  const found = await db.maybeOne(
    `SELECT 1 FROM message_refs WHERE platform = 'teams' AND subject_type = $1 AND subject_id = $2 AND conversation_id = $3 LIMIT 1`,
    [kind, id, conversationId],
  );
  return found !== undefined;
}
