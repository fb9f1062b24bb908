import {
  ActivityHandler,
  TurnContext,
  type Activity as BfActivity,
  type AdaptiveCardInvokeResponse,
  type AdaptiveCardInvokeValue,
  type InvokeResponse,
} from 'botbuilder';
import type { AppContext } from '../../app-context.ts';
import type { Actor } from '../../core/audit-log.ts';
import { identityByTeamsId, type IdentityRow } from '../../core/directory.ts';
import { toAppError } from '../../core/errors.ts';
import { noticeCard, welcomeCard, type AdaptiveCard } from './teams-cards.ts';
import { appPicker, changeForm, myRequests, requestForm } from './teams-forms.ts';
import { errorResponse, type TeamsInvokeHandler } from './teams-invoke.ts';
import type { TeamsViews } from './teams-views.ts';
import { baseConversationId } from './teams-connector.ts';
import { auditSent, rememberTeamsUser, saveConversationRef, type ConversationKind, type StoredReference } from './teams-store.ts';

const attach = (card: AdaptiveCard, summary?: string): Partial<BfActivity> => ({
  type: 'message',
  summary,
  attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: card }],
});

/**
 * The conversational side: personal-chat commands, the welcome card on install, and a stored conversation
 * reference for every conversation the bot hears from (so it can post there later without being asked).
 */
export class SignoffTeamsBot extends ActivityHandler {
  constructor(
    private readonly ctx: AppContext,
    private readonly invokes: TeamsInvokeHandler,
    private readonly views: TeamsViews,
  ) {
    super();
    this.onMessage(async (turn, next) => {
      await this.onText(turn);
      await next();
    });
    // Teams sends both installationUpdate and conversationUpdate on install; the reference is stored for
    // either (in run), and the welcome goes out once, for the conversationUpdate that adds the bot
    this.onMembersAdded(async (turn, next) => {
      const botAdded = (turn.activity.membersAdded ?? []).some((m) => m.id === turn.activity.recipient?.id);
      if (botAdded) await this.welcome(turn);
      await next();
    });
  }

  async run(turn: TurnContext): Promise<void> {
    try {
      await this.remember(turn.activity);
    } catch (e) {
      // the database away: the turn still runs, so the person is told (the reference is stored on a later turn)
      if (toAppError(e).code !== 'dependency_unavailable') throw e;
    }
    turn.onSendActivities(async (c, activities, next) => {
      const res = await next();
      for (let i = 0; i < activities.length; i++) {
        if (activities[i]!.type !== 'message') continue;
        await auditSent(
          this.ctx.db,
          this.ctx.clock.now(),
          { type: 'conversation', id: baseConversationId(c.activity.conversation.id) },
          {
            operation: 'reply',
            conversationId: c.activity.conversation.id,
            activityId: res[i]?.id ?? null,
            to: c.activity.from?.aadObjectId ?? null,
          },
        );
      }
      return res;
    });
    await super.run(turn);
  }

  /**
   * Stores where this conversation lives (personal chats under the user's AAD object id, channels under their
   * id) and the sender's Teams user id, which cards name in `refresh.userIds`.
   */
  private async remember(a: Partial<BfActivity>): Promise<void> {
    if (a.from?.aadObjectId && a.from.id) await rememberTeamsUser(this.ctx.db, a.from.aadObjectId, a.from.id);
    if (!a.serviceUrl || !a.conversation?.id) return;
    const cd = (a.channelData ?? {}) as { channel?: { id?: string }; team?: { id?: string }; tenant?: { id?: string } };
    const tenantId = a.conversation.tenantId ?? cd.tenant?.id;
    const ref = (conversationId: string, conversationType?: string): StoredReference => ({
      serviceUrl: a.serviceUrl!,
      channelId: a.channelId ?? 'msteams',
      conversation: { id: conversationId, conversationType, tenantId, isGroup: conversationType !== 'personal' },
      bot: a.recipient ? { id: a.recipient.id, name: a.recipient.name } : undefined,
      tenantId,
    });
    const save = (key: string, kind: ConversationKind, r: StoredReference) => saveConversationRef(this.ctx.db, key, kind, r);
    const type = a.conversation.conversationType;
    if (type === 'personal') {
      if (a.from?.aadObjectId) await save(a.from.aadObjectId, 'personal', ref(a.conversation.id, 'personal'));
      return;
    }
    if (type === 'channel' || cd.team?.id) {
      const channelId = cd.channel?.id ?? baseConversationId(a.conversation.id);
      await save(channelId, 'channel', ref(channelId, 'channel'));
      // the team's General channel has the team's id
      if (cd.team?.id && cd.team.id !== channelId) await save(cd.team.id, 'team', ref(cd.team.id, 'channel'));
      return;
    }
    await save(baseConversationId(a.conversation.id), 'groupChat', ref(baseConversationId(a.conversation.id), type));
  }

  protected async onInvokeActivity(turn: TurnContext): Promise<InvokeResponse> {
    const value = turn.activity.value as { action?: unknown } | undefined;
    // botbuilder reads value.action.type unguarded and turns a malformed invoke into an empty 501
    if (
      turn.activity.name === 'adaptiveCard/action' &&
      (!value || typeof value !== 'object' || typeof value.action !== 'object' || value.action === null)
    ) {
      return {
        status: 400,
        body: errorResponse(400, 'BadRequest', 'The invoke has no action: expected value.action with type Action.Execute and a verb.'),
      };
    }
    const res = await super.onInvokeActivity(turn);
    // botbuilder answers invokes nobody handles with 501; for a caller that is a request we do not take, not our failure
    if (res.status === 501) {
      return {
        status: 400,
        body: errorResponse(400, 'BadRequest', `Signoff does not handle the invoke "${String(turn.activity.name ?? '')}".`),
      };
    }
    return res;
  }

  protected async onAdaptiveCardInvoke(turn: TurnContext, value: AdaptiveCardInvokeValue): Promise<AdaptiveCardInvokeResponse> {
    return this.invokes.handle(turn, value);
  }

  private async welcome(turn: TurnContext): Promise<void> {
    const a = turn.activity;
    if (a.conversation?.conversationType === 'personal') {
      const me = a.from?.aadObjectId ? await identityByTeamsId(this.ctx.db, a.from.aadObjectId) : undefined;
      await turn.sendActivity(
        attach(
          welcomeCard({ name: me?.display_name, linked: Boolean(me), welcome: true, aadObjectId: a.from?.aadObjectId }),
          'Welcome to Signoff',
        ),
      );
      return;
    }
    const cd = (a.channelData ?? {}) as { channel?: { id?: string }; team?: { id?: string; name?: string } };
    const channelId = cd.channel?.id ?? baseConversationId(a.conversation.id);
    // what an IT admin needs to route an approver group here
    await turn.sendActivity(
      attach(
        noticeCard({
          title: 'Signoff is ready in this channel',
          text: `To send an approver group's prompts here, set its teamsChannel to ${channelId} (in the catalog YAML or through the admin API). People request software in a personal chat with Signoff.`,
          tone: 'info',
          facts: [{ title: 'Channel id', value: channelId }, ...(cd.team?.id ? [{ title: 'Team id', value: cd.team.id }] : [])],
        }),
        'Signoff is ready',
      ),
    );
  }

  private async onText(turn: TurnContext): Promise<void> {
    const a = turn.activity;
    if (a.value && !a.text) return; // legacy Action.Submit payloads: every card here uses Action.Execute
    // an image or a file alone comes without text: answered with help like an empty message
    // the bot's own @mention is not part of the command, with or without the mention entity Teams sends
    const text = a.text
      ? (TurnContext.removeRecipientMention(a as BfActivity) ?? a.text)
          .replace(/<at>[^<]*<\/at>/gi, ' ')
          .replace(/\s+/g, ' ')
          .trim()
      : '';
    const lower = text.toLowerCase();
    const me = a.from?.aadObjectId ? await identityByTeamsId(this.ctx.db, a.from.aadObjectId) : undefined;
    const reply = (card: AdaptiveCard, summary?: string) => turn.sendActivity(attach(card, summary));
    if (lower === '' || lower === 'help' || lower === '?' || lower === 'hi' || lower === 'hello') {
      await reply(
        welcomeCard({ name: me?.display_name, linked: Boolean(me), welcome: false, aadObjectId: a.from?.aadObjectId }),
        'Signoff help',
      );
      return;
    }
    // "my" and "pending" are the Slack words for the same list
    const command = /^(request|my requests|requests|my|pending|change|revoke|reapprove)\b\s*(.*)$/.exec(lower);
    if (!command) {
      await reply(
        welcomeCard({ name: me?.display_name, linked: Boolean(me), welcome: false, aadObjectId: a.from?.aadObjectId }),
        `I did not understand "${text.slice(0, 50)}"`,
      );
      return;
    }
    if (!me) {
      await reply(welcomeCard({ linked: false, welcome: false, aadObjectId: a.from?.aadObjectId }), 'Your account is not linked');
      return;
    }
    // forms and someone's own lists are private: in a channel or group chat everyone would see them
    if (a.conversation?.conversationType && a.conversation.conversationType !== 'personal') {
      await reply(
        noticeCard({
          title: 'Ask me in our personal chat',
          text: `"${command[1]}" shows your own requests and forms, so I answer it in your personal chat with Signoff, not here. Open Signoff in the Teams app bar, or chat with it directly.`,
          tone: 'info',
        }),
      );
      return;
    }
    const actor: Actor = { id: me.id, label: me.display_name, channel: 'teams' };
    try {
      await reply(await this.commandCard(command[1]!, text.slice(command[1]!.length).trim(), me, actor));
    } catch (e) {
      const err = toAppError(e);
      if (err.code === 'internal') this.ctx.logger.error({ err: e }, 'teams: command failed');
      await reply(noticeCard({ title: 'That did not work', text: err.message, tone: 'error' }));
    }
  }

  private async commandCard(command: string, rest: string, me: IdentityRow, actor: Actor): Promise<AdaptiveCard> {
    switch (command) {
      case 'revoke':
      case 'reapprove': {
        // a decided card keeps no buttons: this form, bound to the version it shows, is where an approver changes their mind
        if (!rest)
          return noticeCard({
            title: `Which request?`,
            text: `Send "${command} <request id>" with the id at the bottom of its card, e.g. "${command} 1a2b3c4d".`,
            tone: 'info',
          });
        const id = await this.ctx.requests.resolveRef(rest);
        await this.ctx.requests.checkReversal(actor, id, command);
        return this.views.requestCardFor(id, { kind: 'identity', identity: me }, undefined, command);
      }
      case 'request':
        return rest ? requestForm(this.ctx, actor, rest) : appPicker(this.ctx, actor);
      case 'change':
        return changeForm(this.ctx, {});
      default:
        return myRequests(this.ctx, actor);
    }
  }
}
