import { executeActions, questionInputId } from '../../src/bots/teams/teams-cards.ts';
import {
  type ChannelDriver,
  type Copy,
  groupOfChannel,
  normaliseDates,
  PEOPLE,
  type Person,
  type Said,
  type TestApp,
} from './channel-driver.ts';
import type { FakeBotConnector, RecordedCall } from './fake-bot-connector.ts';
import { AAD, cardOf, postActivity, TENANT } from './teams-harness.ts';

/**
 * The contract suite's Teams driver: people act through Bot Framework activities (messages, Action.Execute
 * invokes) to `/api/messages`, and what they see is read back from the fake Bot Connector's calls.
 */
export const TEAMS_AAD: Record<Person, string> = { ada: AAD.ada, bob: AAD.bob, cyd: AAD.cyd, dan: '6f1c2a4e-0000-4000-8000-00000000da00' };

const TEAMS_DECIDED = /^You (approved|denied|revoked)|^Your (approval|decision) is recorded/;

/** Every text a person reads on a card: text blocks and facts, dates normalised. */
function cardText(card: unknown): string {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (!v || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (o.type === 'TextBlock' && typeof o.text === 'string') out.push(o.text);
    if (typeof o.title === 'string' && typeof o.value === 'string') out.push(`${o.title}: ${o.value}`);
    for (const [k, x] of Object.entries(o)) if (k !== 'refresh' && k !== 'actions') walk(x);
  };
  walk(card);
  return normaliseDates(out.join('\n'));
}

/** The banner an invoke answer carries: the one styled container that is neither the header (bleeds) nor the outcome (separated). */
function bannerOf(card: any): string {
  const banner = (card?.body ?? []).find((b: any) => b.type === 'Container' && b.style && !b.bleed && !b.separator);
  return banner ? cardText(banner) : '';
}

export class TeamsDriver implements ChannelDriver {
  readonly name = 'teams' as const;
  private seq = 0;
  /** the form card each request was submitted from: it becomes the requester's copy */
  private readonly requesterCopies = new Map<string, { conversation: string; message: string }>();
  constructor(
    private readonly base: string,
    private readonly connector: FakeBotConnector,
  ) {}

  private activity(who: Person, conversation: string, extra: Record<string, unknown>) {
    return {
      channelId: 'msteams',
      serviceUrl: this.connector.url,
      id: `in-${++this.seq}`,
      timestamp: new Date().toISOString(),
      from: { id: `29:${who}`, aadObjectId: TEAMS_AAD[who], name: who },
      recipient: { id: '28:signoff-bot', name: 'Signoff' },
      conversation: { id: conversation, conversationType: conversation.startsWith('19:') ? 'channel' : 'personal', tenantId: TENANT },
      channelData: { tenant: { id: TENANT } },
      ...extra,
    };
  }
  private send(activity: Record<string, unknown>): Promise<{ status: number; body: any }> {
    return postActivity(`${this.base}/api/messages`, activity);
  }
  private invoke(who: Person, conversation: string, replyToId: string, verb: string, data: Record<string, unknown>) {
    return this.send(
      this.activity(who, conversation, {
        type: 'invoke',
        name: 'adaptiveCard/action',
        replyToId,
        value: { action: { type: 'Action.Execute', verb, data }, trigger: 'manual' },
      }),
    );
  }
  /** `who` writes to Signoff in their personal chat; the card Signoff answers with */
  private async say(who: Person, text: string): Promise<RecordedCall> {
    const mark = this.connector.calls.length;
    await this.send(this.activity(who, `a:personal-${who}`, { type: 'message', text }));
    const reply = this.connector.calls
      .slice(mark)
      .find((c) => c.status < 300 && (c.kind === 'reply' || c.kind === 'send') && c.conversationId === `a:personal-${who}`);
    if (!reply) throw new Error(`Teams did not answer "${text}"`);
    return reply;
  }

  install(channel: string) {
    return this.send({
      ...this.activity('ada', channel, { type: 'conversationUpdate', membersAdded: [{ id: '28:signoff-bot', name: 'Signoff' }] }),
      channelData: {
        tenant: { id: TENANT },
        team: { id: '19:team-it@thread.tacv2', name: 'IT' },
        channel: { id: channel },
        eventType: 'teamMemberAdded',
      },
    });
  }

  /** Personal chats: the one a person wrote from, or one the bot created with them as the member. */
  private personOf(conversation: string): Person | undefined {
    const named = /^a:personal-(\w+)$/.exec(conversation)?.[1] as Person | undefined;
    if (named) return named;
    const created = this.connector.of('create').find((c) => c.id === conversation);
    const aad = created?.body?.members?.[0]?.aadObjectId;
    return PEOPLE.find((p) => TEAMS_AAD[p] === aad);
  }
  private whereOf(conversation: string): string {
    const person = this.personOf(conversation);
    return person ? `dm:${person}` : `channel:${groupOfChannel(conversation)}`;
  }
  private current(conversation: string, message: string, posted: any): { card: any; updates: number } {
    const updates = this.connector.of('update').filter((u) => u.conversationId === conversation && u.activityId === message);
    return { card: cardOf((updates.at(-1) ?? { body: posted }).body), updates: updates.length };
  }
  private prompts(): RecordedCall[] {
    return this.connector.of('send').filter((c) => c.body?.summary === 'Approval needed');
  }

  async submit(who: Person, app: TestApp, justification: string): Promise<string> {
    const form = await this.say(who, `request ${app.name}`);
    const action = executeActions(cardOf(form.body)).find((a) => a.verb === 'submitRequest');
    if (!action) throw new Error(`no request form for ${app.name}: ${cardText(cardOf(form.body))}`);
    const res = await this.invoke(who, form.conversationId, form.id!, 'submitRequest', {
      ...action.data,
      justification,
      [questionInputId('usage')]: 'Diagrams',
    });
    const id = res.body?.value?.refresh?.action?.data?.id as string | undefined;
    if (!id) throw new Error(`Teams did not confirm the request: ${JSON.stringify(res.body)}`);
    this.requesterCopies.set(id, { conversation: form.conversationId, message: form.id! });
    return id;
  }

  async copiesOf(requestId: string): Promise<Copy[]> {
    const copies: Copy[] = [];
    for (const post of this.prompts()) {
      const posted = cardOf(post.body);
      if (!JSON.stringify(posted).includes(requestId) && !cardText(posted).includes(`Request ${requestId.slice(0, 8)}`)) continue;
      // base cards carry no stage; their status line says which one was waiting when it was posted
      const stage = Number(/stage (\d+) of \d+/.exec(cardText(posted))?.[1] ?? 1) - 1;
      copies.push(this.copy('prompt', post.conversationId, post.id!, post.body, requestId, stage));
    }
    const mine = this.requesterCopies.get(requestId);
    if (mine) {
      const form = this.connector.calls.find((c) => c.id === mine.message);
      copies.push(this.copy('requester', mine.conversation, mine.message, form?.body, requestId, 0));
    }
    return copies;
  }
  private copy(kind: Copy['kind'], conversation: string, message: string, posted: any, requestId: string, stage: number): Copy {
    const { card, updates } = this.current(conversation, message, posted);
    return {
      platform: 'teams',
      kind,
      where: this.whereOf(conversation),
      stage,
      text: cardText(card),
      buttons: executeActions(card).map((a) => a.verb),
      updates,
      ref: { conversation, message, requestId },
    };
  }

  /**
   * Teams shows each approver their own buttons through the card's refresh; the driver does what the client does
   * (a refresh as the clicker) and presses the button there. Someone who is shown none (the requester, a
   * non-member, a settled stage) clicks what a card not yet refreshed still offers: the copy's stage-bound action.
   */
  async click(copy: Copy, verb: 'approve' | 'deny', who: Person, reason?: string): Promise<Said> {
    const { conversation, message, requestId } = copy.ref;
    const refreshed = await this.invoke(who, conversation, message, 'refresh', { kind: 'request', id: requestId });
    const offered = executeActions(refreshed.body?.value).find((a) => a.verb === verb);
    const data = { ...(offered?.data ?? { kind: 'request', id: requestId, stage: copy.stage }), ...(reason ? { reason } : {}) };
    return this.answer(await this.invoke(who, conversation, message, verb, data));
  }
  async remindersUnder(copy: Copy): Promise<string[]> {
    const { conversation, message } = copy.ref;
    const posted = this.connector.calls.find((c) => c.id === message);
    const app = /^Application: (.+)$/m.exec(cardText(cardOf(posted?.body)))?.[1] ?? '';
    const copies = new Set(this.prompts().map((p) => p.id));
    const mentions = (t: string) => t.replace(/<at>([^<]+)<\/at>/g, '@$1');
    // a channel card gets replies in its thread; a personal chat has no threads, so follow-ups naming the same app
    const replies = this.connector.of('reply').filter((c) => c.conversationId === conversation && c.activityId === message);
    const followUps = this.personOf(conversation)
      ? this.connector
          .of('send')
          .filter((c) => c.conversationId === conversation && !copies.has(c.id!) && app && cardText(cardOf(c.body)).includes(app))
      : [];
    return [...replies, ...followUps].map((c) => mentions(cardText(cardOf(c.body))));
  }

  async buttonsFor(copy: Copy, who: Person): Promise<string[]> {
    const { conversation, message, requestId } = copy.ref;
    const card = this.current(conversation, message, this.connector.calls.find((c) => c.id === message)?.body).card;
    const userIds: string[] = card?.refresh?.userIds ?? [];
    // people the card does not name see it as posted; the others get their own view from a refresh
    if (!userIds.includes(`29:${who}`) && !userIds.includes(TEAMS_AAD[who])) return executeActions(card?.body).map((a) => a.verb);
    const refreshed = await this.invoke(who, conversation, message, 'refresh', { kind: 'request', id: requestId });
    return executeActions(refreshed.body?.value?.body).map((a) => a.verb);
  }

  private answer(res: { status: number; body: any }): Said {
    const said = res.body?.type === 'application/vnd.microsoft.error' ? String(res.body.value?.message ?? '') : bannerOf(res.body?.value);
    return { decided: res.status === 200 && TEAMS_DECIDED.test(said), said };
  }

  async repliesTo(who: Person): Promise<string[]> {
    const copies = new Set([...this.prompts().map((p) => p.id), ...[...this.requesterCopies.values()].map((c) => c.message)]);
    return this.connector
      .posted()
      .filter((c) => this.personOf(c.conversationId) === who && !copies.has(c.id!))
      .map((c) => cardText(cardOf(c.body)));
  }

  async command(who: Person, verb: 'revoke' | 'reapprove', requestId: string, reason: string): Promise<Said> {
    const form = await this.say(who, `${verb} ${requestId.slice(0, 8)}`);
    const action = executeActions(cardOf(form.body)).find((a) => a.verb === verb);
    if (!action) return { decided: false, said: cardText(cardOf(form.body)) };
    return this.answer(await this.invoke(who, form.conversationId, form.id!, verb, { ...action.data, reason }));
  }
}
