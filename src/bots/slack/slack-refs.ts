import type { Database } from '../../db/database.ts';
import { appendAudit, type Actor } from '../../core/audit-log.ts';

/**
 * message_refs for Slack: one row per posted message (conversation_id = channel, message_id = ts).
 * `data.eventId` + `data.target` mark which outbox event posted it, so a retried event never posts twice.
 */
export type SubjectType = 'request' | 'change' | 'review';
export type Purpose = 'prompt' | 'requester' | 'outcome' | 'reminder' | 'notice';

export interface SlackRef {
  id: string;
  subject_type: SubjectType;
  subject_id: string;
  purpose: Purpose;
  stage: number | null;
  conversation_id: string;
  message_id: string;
  recipient_id: string | null;
  data: { eventId?: string; target?: string; gone?: boolean; [k: string]: unknown };
}

export const slackActor: Actor = { id: null, label: 'Signoff', channel: 'slack' };

export function liveRefs(db: Database, subjectType: SubjectType, subjectId: string, purposes: Purpose[]): Promise<SlackRef[]> {
  return db.query<SlackRef>(
    `SELECT id, subject_type, subject_id, purpose, stage, conversation_id, message_id, recipient_id, data FROM message_refs
      WHERE platform = 'slack' AND subject_type = $1 AND subject_id = $2 AND purpose = ANY($3) AND NOT coalesce((data->>'gone')::boolean, false)
      ORDER BY created_at, id`,
    [subjectType, subjectId, purposes],
  );
}

export async function postedFor(db: Database, eventId: string, purpose: Purpose, target: string): Promise<boolean> {
  const row = await db.maybeOne(
    `SELECT 1 FROM message_refs WHERE platform = 'slack' AND purpose = $1 AND data->>'eventId' = $2 AND data->>'target' = $3 LIMIT 1`,
    [purpose, eventId, target],
  );
  return Boolean(row);
}

export interface NewRef {
  subjectType: SubjectType;
  subjectId: string;
  purpose: Purpose;
  stage?: number | null;
  channel: string;
  ts: string;
  recipientId?: string | null;
  eventId?: string;
  target?: string;
  method: 'chat.postMessage' | 'chat.update';
  replaces?: string;
}

/** Records the message and its audit entry together: every message Signoff sends is in the audit log. */
export async function recordSent(db: Database, ref: NewRef, at: Date): Promise<void> {
  await db.tx(async (tx) => {
    if (ref.method === 'chat.postMessage') {
      await tx.query(
        `INSERT INTO message_refs (subject_type, subject_id, platform, purpose, stage, conversation_id, message_id, recipient_id, data, created_at, updated_at)
         VALUES ($1,$2,'slack',$3,$4,$5,$6,$7,$8,$9,$9) ON CONFLICT (platform, conversation_id, message_id) DO NOTHING`,
        [
          ref.subjectType,
          ref.subjectId,
          ref.purpose,
          ref.stage ?? null,
          ref.channel,
          ref.ts,
          ref.recipientId ?? null,
          JSON.stringify({ eventId: ref.eventId, target: ref.target, replaces: ref.replaces }),
          at,
        ],
      );
    } else {
      await tx.query(`UPDATE message_refs SET updated_at = $3 WHERE platform = 'slack' AND conversation_id = $1 AND message_id = $2`, [
        ref.channel,
        ref.ts,
        at,
      ]);
    }
    await appendAudit(tx, {
      actor: slackActor,
      action: 'message.sent',
      subjectType: ref.subjectType,
      subjectId: ref.subjectId,
      at,
      details: {
        platform: 'slack',
        method: ref.method,
        purpose: ref.purpose,
        channel: ref.channel,
        ts: ref.ts,
        stage: ref.stage ?? null,
        eventId: ref.eventId ?? null,
        replaces: ref.replaces ?? null,
      },
    });
  });
}

export async function markGone(db: Database, refId: string, reason: string): Promise<void> {
  await db.query(`UPDATE message_refs SET data = data || $2::jsonb, updated_at = now() WHERE id = $1`, [
    refId,
    JSON.stringify({ gone: true, goneReason: reason }),
  ]);
}
