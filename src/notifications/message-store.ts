import { appendAudit, type Actor } from '../core/audit-log.ts';
import type { Clock } from '../core/clock.ts';
import type { Database, Tx } from '../db/database.ts';
import type { Platform } from './notification-plan.ts';

/**
 * The one store of what Signoff has sent, for every platform (message_refs): each posted copy of a prompt, each
 * requester copy, notice, reply and email, so later events can update copies in place and reply in their threads.
 *
 * The one dedupe rule: a delivery is named by (platform, event id, key), where the key says what was delivered to
 * whom (`prompt:C0APPROVE`, `requester`, `mail:outcome:bob@example.com`). It is recorded in the same row as the
 * message, right after the platform accepted it; a retried event skips every delivery already recorded, and a
 * partial unique index keeps one row when two runs of the same event race.
 */

export type SubjectType = 'request' | 'change' | 'review';
export type Purpose = 'prompt' | 'requester' | 'outcome' | 'reminder' | 'notice' | 'reply';
/** Which audience a Teams card copy is rendered for. */
export type CopyView = 'base' | 'approver' | 'requester';

export interface MessageData {
  view?: CopyView;
  serviceUrl?: string;
  gone?: boolean;
  goneReason?: string;
  replaces?: string;
}

export interface MessageRef {
  id: string;
  subject_type: SubjectType;
  subject_id: string;
  purpose: Purpose;
  stage: number | null;
  conversation_id: string;
  message_id: string;
  recipient_id: string | null;
  event_id: string | null;
  delivery_key: string | null;
  data: MessageData;
}

export interface NewMessage {
  subjectType: SubjectType;
  subjectId: string;
  purpose: Purpose;
  stage?: number | null;
  conversationId: string;
  messageId: string;
  recipientId?: string | null;
  data?: MessageData;
}

/** What one event delivers to one place; see the dedupe rule above. */
export interface Delivery {
  eventId: string;
  key: string;
}

const columns = `id, subject_type, subject_id, purpose, stage, conversation_id, message_id, recipient_id, event_id, delivery_key, data`;

/** One platform's view of the store; every message it records is audited as `message.sent` by `actor`. */
export class MessageStore {
  constructor(
    private readonly db: Database,
    readonly platform: Platform,
    private readonly actor: Actor,
    private readonly clock: Clock,
  ) {}

  async delivered(d: Delivery): Promise<boolean> {
    const row = await this.db.maybeOne(`SELECT 1 FROM message_refs WHERE platform = $1 AND event_id = $2 AND delivery_key = $3`, [
      this.platform,
      d.eventId,
      d.key,
    ]);
    return Boolean(row);
  }

  /**
   * Sends unless this delivery is already recorded, then records it.
   * @returns false when `send` gave up for good (it returns undefined), true when delivered now or before
   */
  async once(d: Delivery, send: () => Promise<{ message: NewMessage; audit?: Record<string, unknown> } | undefined>): Promise<boolean> {
    if (await this.delivered(d)) return true;
    const sent = await send();
    if (!sent) return false;
    await this.record(sent.message, { delivery: d, audit: sent.audit });
    return true;
  }

  /** Records a sent message (and its audit entry unless `audit` is false) in one transaction. */
  async record(m: NewMessage, opts: { delivery?: Delivery; key?: string; audit?: Record<string, unknown> | false } = {}): Promise<void> {
    const key = opts.delivery?.key ?? opts.key ?? null;
    await this.db.tx(async (tx) => {
      // a second run of the same delivery, or a message already known, keeps the row there is; created_at is the
      // database's time, not the injected clock, so copies keep the order they were posted in
      await tx.query(
        `INSERT INTO message_refs (subject_type, subject_id, platform, purpose, stage, conversation_id, message_id, recipient_id, event_id, delivery_key, data)
         VALUES ($1,$2,$3,$4,$5,$6,$7,$8,$9,$10,$11) ON CONFLICT DO NOTHING`,
        [
          m.subjectType,
          m.subjectId,
          this.platform,
          m.purpose,
          m.stage ?? null,
          m.conversationId,
          m.messageId,
          m.recipientId ?? null,
          opts.delivery?.eventId ?? null,
          key,
          JSON.stringify(m.data ?? {}),
        ],
      );
      if (opts.audit !== false) {
        await this.audit(tx, m, 'post', { eventId: opts.delivery?.eventId ?? null, key, ...opts.audit });
      }
    });
  }

  /** Copies of a subject still there to update or reply under, oldest first. */
  live(subjectType: SubjectType, subjectId: string, purposes: Purpose[]): Promise<MessageRef[]> {
    return this.db.query<MessageRef>(
      `SELECT ${columns} FROM message_refs
        WHERE platform = $1 AND subject_type = $2 AND subject_id = $3 AND purpose = ANY($4) AND NOT coalesce((data->>'gone')::boolean, false)
        ORDER BY created_at, id`,
      [this.platform, subjectType, subjectId, purposes],
    );
  }

  /** A copy updated in place: its time and an audit entry. */
  async updated(ref: MessageRef, audit: Record<string, unknown> = {}): Promise<void> {
    await this.db.tx(async (tx) => {
      await tx.query(`UPDATE message_refs SET updated_at = $2 WHERE id = $1`, [ref.id, this.clock.now()]);
      await this.audit(tx, toNew(ref), 'update', audit);
    });
  }

  /** A copy reposted because the platform lost it: later updates go to the new message. */
  async moved(ref: MessageRef, messageId: string): Promise<void> {
    await this.db.query(`UPDATE message_refs SET message_id = $2, updated_at = $3 WHERE id = $1`, [ref.id, messageId, this.clock.now()]);
  }

  /** A copy that can no longer be updated; it is never tried again. */
  async gone(ref: MessageRef, reason: string): Promise<void> {
    await this.db.query(`UPDATE message_refs SET data = data || $2::jsonb, updated_at = $3 WHERE id = $1`, [
      ref.id,
      JSON.stringify({ gone: true, goneReason: reason }),
      this.clock.now(),
    ]);
  }

  private audit(tx: Tx, m: NewMessage, operation: 'post' | 'update', details: Record<string, unknown>) {
    return appendAudit(tx, {
      actor: this.actor,
      action: 'message.sent',
      subjectType: m.subjectType,
      subjectId: m.subjectId,
      at: this.clock.now(),
      details: {
        platform: this.platform,
        operation,
        purpose: m.purpose,
        stage: m.stage ?? null,
        conversationId: m.conversationId,
        messageId: m.messageId,
        ...details,
      },
    });
  }
}

const toNew = (ref: MessageRef): NewMessage => ({
  subjectType: ref.subject_type,
  subjectId: ref.subject_id,
  purpose: ref.purpose,
  stage: ref.stage,
  conversationId: ref.conversation_id,
  messageId: ref.message_id,
  recipientId: ref.recipient_id,
});

/** Who sends what Signoff posts on a platform, in the audit log. */
export const notifierActor = (platform: Platform): Actor => ({ id: null, label: 'Signoff', channel: platform });
