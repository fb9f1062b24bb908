import type { AppContext } from '../../app-context.ts';
import type { IdentityRow } from '../../core/directory.ts';
import type { Delivery, MessageRef, MessageStore, NewMessage } from '../../notifications/message-store.ts';
import type { AdaptiveCard } from './teams-cards.ts';
import { type Activity, type BotConnectorClient, TeamsSendError } from './teams-connector.ts';
import { anyConversationRef, conversationRef, saveConversationRef, type StoredReference } from './teams-store.ts';

export type Subject = { type: 'request' | 'change' | 'review'; id: string };

export const cardActivity = (card: AdaptiveCard, summary?: string): Activity => ({
  type: 'message',
  summary,
  attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: card }],
});

/** Where a message goes: a channel by its id, someone's personal chat with the bot, or a conversation we have a copy in. */
export type Destination =
  | { kind: 'channel'; id: string }
  | { kind: 'personal'; identity: IdentityRow }
  | { kind: 'conversation'; id: string; serviceUrl?: string };

/**
 * The Teams side of sending: finds or opens the conversation, posts, replies and updates through the Bot Connector,
 * records each delivery in the message store (once per event and key), and sorts failures into permanent (logged,
 * skipped so one bad conversation cannot block the others) and retryable (thrown back to the queue). No policy.
 */
export class TeamsMessenger {
  constructor(
    private readonly ctx: AppContext,
    private readonly client: BotConnectorClient,
    readonly store: MessageStore,
  ) {}

  /** Posts an activity once per delivery and records it as `message`; false when Teams refused for good. */
  post(
    delivery: Delivery,
    to: Destination,
    subject: Subject,
    activity: () => Promise<Activity>,
    message: Omit<NewMessage, 'subjectType' | 'subjectId' | 'conversationId' | 'messageId'>,
  ): Promise<boolean> {
    return this.store.once(delivery, async () => {
      const conv = await this.conversation(to, subject);
      if (!conv) return undefined;
      const body = await activity();
      const id = await this.attempt(subject, () => this.client.sendToConversation(conv.ref.serviceUrl, conv.id, body));
      if (id === undefined) return undefined;
      return {
        message: {
          ...message,
          subjectType: subject.type,
          subjectId: subject.id,
          conversationId: conv.id,
          messageId: id,
          data: { ...message.data, serviceUrl: conv.ref.serviceUrl },
        },
        audit: { activityId: id },
      };
    });
  }

  /** A reply in the thread of a channel copy, or a follow-up message in a personal chat (which has no threads). */
  reply(delivery: Delivery, copy: MessageRef, subject: Subject, activity: Activity): Promise<boolean> {
    return this.store.once(delivery, async () => {
      const ref = await this.referenceFor(copy);
      if (!ref) return undefined;
      const id = await this.attempt(subject, () =>
        copy.data.view === 'base'
          ? this.client.replyToActivity(ref.serviceUrl, copy.conversation_id, copy.message_id, activity)
          : this.client.sendToConversation(ref.serviceUrl, copy.conversation_id, activity),
      );
      if (id === undefined) return undefined;
      const message: NewMessage = {
        subjectType: subject.type,
        subjectId: subject.id,
        purpose: 'reply',
        stage: copy.stage,
        conversationId: copy.conversation_id,
        messageId: id,
        recipientId: copy.recipient_id,
        data: { serviceUrl: ref.serviceUrl },
      };
      return { message, audit: { activityId: id } };
    });
  }

  /** Updates a copy in place; a copy Teams no longer has (deleted by a user, expired) is posted afresh and followed. */
  async update(copy: MessageRef, subject: Subject, activity: Activity): Promise<void> {
    const ref = await this.referenceFor(copy);
    if (!ref) return;
    try {
      await this.client.updateActivity(ref.serviceUrl, copy.conversation_id, copy.message_id, activity);
      await this.store.updated(copy, { activityId: copy.message_id });
      return;
    } catch (e) {
      if (!(e instanceof TeamsSendError && e.gone)) return this.failure(e, subject);
    }
    const fresh = await this.attempt(subject, () => this.client.sendToConversation(ref.serviceUrl, copy.conversation_id, activity));
    if (fresh === undefined) return;
    await this.store.moved(copy, fresh);
    await this.store.updated({ ...copy, message_id: fresh }, { activityId: fresh, replaced: copy.message_id });
  }

  /** Sends once; undefined when Teams refused for good (logged), a thrown TeamsSendError when worth retrying. */
  private async attempt(subject: Subject, fn: () => Promise<{ id?: string }>): Promise<string | undefined> {
    try {
      return (await fn()).id ?? `unknown:${Date.now()}`;
    } catch (e) {
      this.failure(e, subject);
      return undefined;
    }
  }

  /** 403 (the bot was removed from the team) and 400 will not heal by retrying: logged and skipped. */
  private failure(e: unknown, subject: Subject): void {
    if (e instanceof TeamsSendError && !e.retryable) {
      this.ctx.logger.warn({ err: e.message, subject }, 'teams: message could not be delivered; not retrying');
      return;
    }
    throw e;
  }

  private async conversation(to: Destination, subject: Subject): Promise<{ id: string; ref: StoredReference } | undefined> {
    if (to.kind === 'personal') return this.personalConversation(to.identity, subject);
    if (to.kind === 'conversation') {
      const ref = await this.referenceFor({ conversation_id: to.id, data: { serviceUrl: to.serviceUrl } });
      return ref ? { id: to.id, ref } : undefined;
    }
    const ref = (await conversationRef(this.ctx.db, to.id)) ?? (await anyConversationRef(this.ctx.db));
    if (!ref) {
      this.ctx.logger.warn(
        { channelId: to.id },
        'teams: the bot has never been added to Teams, so it cannot post to this channel; add the app to the team',
      );
      return undefined;
    }
    return { id: to.id, ref };
  }

  /** The identity's personal chat with the bot: stored when they wrote to it, else created (the app must be installed for them). */
  async personalConversation(identity: IdentityRow, subject: Subject): Promise<{ id: string; ref: StoredReference } | undefined> {
    const stored = await conversationRef(this.ctx.db, identity.teams_aad_id!);
    if (stored) return { id: stored.conversation.id, ref: stored };
    const any = await anyConversationRef(this.ctx.db);
    if (!any) return undefined;
    const tenantId = any.conversation.tenantId ?? any.tenantId;
    let created: { id: string; serviceUrl?: string };
    try {
      created = await this.client.createConversation(any.serviceUrl, {
        isGroup: false,
        bot: any.bot,
        members: [{ id: identity.teams_aad_id!, aadObjectId: identity.teams_aad_id! }],
        tenantId,
        channelData: { tenant: { id: tenantId } },
      });
    } catch (e) {
      this.failure(e, subject);
      return undefined;
    }
    const ref: StoredReference = {
      serviceUrl: created.serviceUrl ?? any.serviceUrl,
      channelId: 'msteams',
      conversation: { id: created.id, conversationType: 'personal', tenantId },
      bot: any.bot,
      tenantId,
    };
    await saveConversationRef(this.ctx.db, identity.teams_aad_id!, 'personal', ref);
    return { id: created.id, ref };
  }

  private async referenceFor(copy: Pick<MessageRef, 'conversation_id'> & { data: { serviceUrl?: string } }) {
    const serviceUrl = copy.data.serviceUrl;
    if (serviceUrl) return { serviceUrl, channelId: 'msteams', conversation: { id: copy.conversation_id } } as StoredReference;
    return (await conversationRef(this.ctx.db, copy.conversation_id)) ?? (await anyConversationRef(this.ctx.db));
  }
}
