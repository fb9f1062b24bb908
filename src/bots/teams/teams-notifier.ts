import type { AppContext } from '../../app-context.ts';
import { pendingApprovers, pendingReviewers } from '../../core/approval-rights.ts';
import { groupsByNames, identityById, type IdentityRow } from '../../core/directory.ts';
import type { ChangeEvent, DomainEvent, RequestEvent } from '../../core/events.ts';
import type { ChatNotifier } from '../../core/ports.ts';
import type { RequestDetail } from '../../core/views.ts';
import { type CopyView, MessageStore, notifierActor } from '../../notifications/message-store.ts';
import {
  originOf,
  personOf,
  promptPlan,
  promptTargets,
  requesterPlan,
  type RequesterDelivery,
} from '../../notifications/notification-plan.ts';
import { type AdaptiveCard, type Banner, type NoticeInput, noticeCard, submittedBanner } from './teams-cards.ts';
import type { BotConnectorClient } from './teams-connector.ts';
import { cardActivity, type Subject, TeamsMessenger } from './teams-messenger.ts';
import {
  accessExpiringNotice,
  changeOutcomeNotice,
  installOrderedNotice,
  outcomeNotice,
  reminderNotice,
  reviewReminderNotice,
  stageAdvancedNotice,
} from './teams-notices.ts';
import { refreshIdsFor } from './teams-store.ts';
import type { TeamsViews, Viewer } from './teams-views.ts';

export { cardActivity } from './teams-messenger.ts';

/**
 * Turns domain events into Teams messages by following the notification plans: every copy redrawn in place for its
 * audience, thread replies for reminders and escalations, prompts in approver channels (and approvers' personal
 * chats when the stage says so), and what the requester is told on their own copy. Each delivery is recorded once
 * per event (the message store's rule); transient failures throw TeamsSendError for the queue to retry the event.
 */
export class TeamsNotifier implements ChatNotifier {
  readonly platform = 'teams' as const;
  private readonly messenger: TeamsMessenger;
  private readonly store: MessageStore;

  constructor(
    private readonly ctx: AppContext,
    client: BotConnectorClient,
    private readonly views: TeamsViews,
  ) {
    this.store = new MessageStore(ctx.db, 'teams', notifierActor('teams'), ctx.clock);
    this.messenger = new TeamsMessenger(ctx, client, this.store);
  }

  async handle(event: DomainEvent): Promise<void> {
    if (event.subjectType === 'request') return this.handleRequest(event);
    if (event.subjectType === 'change') return this.handleChange(event);
  }

  private async handleRequest(event: RequestEvent): Promise<void> {
    const plan = promptPlan(event.type);
    if (plan.post === 'review' || plan.reply === 'review_reminder' || plan.update === 'review') {
      const { reviewId } = event.data as { reviewId: string };
      const subject: Subject = { type: 'review', id: reviewId };
      // every copy, in each channel and each personal chat, shows the outcome with no buttons left
      if (plan.update === 'review') return this.updateCopies(subject);
      const v = await this.ctx.reviews.get(reviewId);
      if (v.status !== 'pending') return;
      if (plan.post === 'review') return this.postReviewPrompts(event, subject, v.reviewerGroups, await pendingReviewers(this.ctx.db, v));
      return this.replyInThreads(
        event,
        subject,
        null,
        reviewReminderNotice(v, await this.mentionsOf(await pendingReviewers(this.ctx.db, v))),
      );
    }
    const subject: Subject = { type: 'request', id: event.subjectId };
    const r = await this.ctx.requests.get(subject.id);
    // the submitter's copy already says "submitted" (the invoke answer); the same card again, not a flash without it
    if (plan.update === 'subject')
      await this.updateCopies(subject, r, event.type === 'request.submitted' ? submittedBanner.request : undefined);
    if (plan.reply && r.status === 'pending') {
      const mentions = await this.mentionsOf(await pendingApprovers(this.ctx.db, r));
      await this.replyInThreads(event, subject, r.currentStage, reminderNotice(r, plan.reply === 'escalation', mentions));
    }
    if (plan.post === 'stage' || (plan.post === 'escalation' && r.status === 'pending')) await this.postPrompts(event, r, r.currentStage);
    const told = await this.told(event, r.requester?.id ?? null, r.history, 'request.submitted');
    if (!told) return;
    if (told.purpose === 'status') return this.postRequesterCopy(event, subject, told);
    const notice =
      event.type === 'request.stage_advanced'
        ? stageAdvancedNotice(r)
        : event.type === 'request.install_ordered'
          ? installOrderedNotice(r)
          : event.type === 'request.access_expiring'
            ? accessExpiringNotice(r)
            : outcomeNotice(r);
    await this.tellRequester(event, subject, notice, told);
  }

  private async handleChange(event: ChangeEvent): Promise<void> {
    const subject: Subject = { type: 'change', id: event.subjectId };
    const c = await this.ctx.changes.get(subject.id);
    const plan = promptPlan(event.type);
    if (plan.update === 'subject')
      await this.updateCopies(subject, undefined, event.type === 'change.submitted' ? submittedBanner.change : undefined);
    if (plan.post === 'change') {
      const { channels } = promptTargets('teams', 'change', {
        channels: await this.channelsOf(c.approverGroups),
        people: [],
        direct: false,
      });
      for (const channel of channels) {
        await this.postCopy(event, subject, `prompt:${channel}`, { kind: 'channel', id: channel }, 'base', { purpose: 'prompt' });
      }
    }
    const told = await this.told(event, c.requester.id, c.history, 'change.submitted');
    if (!told) return;
    if (told.purpose === 'status') return this.postRequesterCopy(event, subject, told);
    await this.tellRequester(event, subject, changeOutcomeNotice(c), told);
  }

  /** What the notification plan tells the requester in Teams for this event, with who they are; undefined: nothing. */
  private async told(
    event: DomainEvent,
    requesterId: string | null,
    history: { action: string; channel: string }[],
    submitted: 'request.submitted' | 'change.submitted',
  ): Promise<(RequesterDelivery & { requester: IdentityRow }) | undefined> {
    const requester = requesterId ? await identityById(this.ctx.db, requesterId) : undefined;
    if (!requester) return undefined;
    const registered = [...new Set([...this.ctx.notifiers.map((n) => n.platform), this.platform])];
    const plan = requesterPlan({ event, requester: personOf(requester), origin: originOf(history, submitted), registered }).teams;
    return plan && { ...plan, requester };
  }

  private channelsOf = async (groups: string[]) => (await groupsByNames(this.ctx.db, groups)).map((g) => g.teams_channel ?? '');

  /** Posts the stage's prompt to each approver channel, and to each approver's personal chat when the stage asks for it. */
  private async postPrompts(event: DomainEvent, r: RequestDetail, stageIndex: number): Promise<void> {
    const stage = r.stages[stageIndex];
    if (!stage) return;
    const subject: Subject = { type: 'request', id: r.id };
    const existing = new Set((await this.store.live('request', r.id, ['prompt'])).map((m) => m.delivery_key));
    const direct = r.policy.stages[stageIndex]?.notifyApproversDirectly ?? false;
    const approvers = direct ? await pendingApprovers(this.ctx.db, r) : [];
    const people = approvers.map((a) => ({ id: a.id, address: a.teams_aad_id }));
    const targets = promptTargets('teams', 'stage', { channels: await this.channelsOf(stage.approverGroups), people, direct });
    for (const channel of targets.channels) {
      // an escalation to a group already prompted in this channel needs no second card there
      const key = `prompt:${stageIndex}:${channel}`;
      if (!existing.has(key))
        await this.postCopy(event, subject, key, { kind: 'channel', id: channel }, 'base', { purpose: 'prompt', stage: stageIndex });
    }
    for (const approver of approvers.filter((a) => targets.direct.some((t) => t.id === a.id))) {
      const key = `prompt:${stageIndex}:dm:${approver.id}`;
      if (existing.has(key)) continue;
      await this.postCopy(event, subject, key, { kind: 'personal', identity: approver }, 'approver', {
        purpose: 'prompt',
        stage: stageIndex,
        recipientId: approver.id,
      });
    }
  }

  /** A review goes to the reviewer groups' channels; when none has a channel, to each reviewer's personal chat. */
  private async postReviewPrompts(event: DomainEvent, subject: Subject, groups: string[], reviewers: IdentityRow[]): Promise<void> {
    const people = reviewers.map((p) => ({ id: p.id, address: p.teams_aad_id }));
    const targets = promptTargets('teams', 'review', { channels: await this.channelsOf(groups), people, direct: false });
    for (const channel of targets.channels) {
      await this.postCopy(event, subject, `review:${channel}`, { kind: 'channel', id: channel }, 'base', { purpose: 'prompt' });
    }
    for (const reviewer of reviewers.filter((p) => targets.direct.some((t) => t.id === p.id))) {
      await this.postCopy(event, subject, `review:dm:${reviewer.id}`, { kind: 'personal', identity: reviewer }, 'approver', {
        purpose: 'prompt',
        recipientId: reviewer.id,
      });
    }
  }

  /** The requester's own card in their personal chat, unless they already have one (their form became it). */
  private async postRequesterCopy(event: DomainEvent, subject: Subject, told: { requester: IdentityRow }): Promise<void> {
    if (!told.requester.teams_aad_id || (await this.requesterCopy(subject))) return;
    await this.postCopy(event, subject, 'requester', { kind: 'personal', identity: told.requester }, 'requester', {
      purpose: 'requester',
      recipientId: told.requester.id,
    });
  }

  private async requesterCopy(subject: Subject) {
    return (await this.store.live(subject.type, subject.id, ['requester']))[0];
  }

  /**
   * Outcomes and notices go where the requester already has their copy of the card, so someone told in Slack is
   * not told twice; `copy-else-dm` opens their personal chat when they have no copy.
   */
  private async tellRequester(
    event: DomainEvent,
    subject: Subject,
    notice: NoticeInput,
    told: RequesterDelivery & { requester: IdentityRow },
  ) {
    const copy = await this.requesterCopy(subject);
    const to = copy
      ? ({ kind: 'conversation', id: copy.conversation_id, serviceUrl: copy.data.serviceUrl } as const)
      : told.where === 'copy-else-dm' && told.requester.teams_aad_id
        ? ({ kind: 'personal', identity: told.requester } as const)
        : undefined;
    if (!to) return;
    await this.messenger.post(
      { eventId: event.id, key: `notice:${event.type}` },
      to,
      subject,
      async () => cardActivity(noticeCard(notice), notice.title),
      { purpose: 'notice', recipientId: copy?.recipient_id ?? told.requester.id },
    );
  }

  /** The people to @mention in a thread reply, by the id Teams knows them by. */
  private async mentionsOf(people: IdentityRow[]): Promise<{ id: string; name: string }[]> {
    const linked = people.filter((p) => p.teams_aad_id);
    const ids = await Promise.all(linked.map((p) => refreshIdsFor(this.ctx.db, [p.teams_aad_id!])));
    return linked.map((p, i) => ({ id: ids[i]![0]!, name: p.display_name }));
  }

  /** Reminders and escalations go into the prompt's thread in channels, and as a follow-up in personal chats. */
  private async replyInThreads(event: DomainEvent, subject: Subject, stageIndex: number | null, notice: NoticeInput): Promise<void> {
    const prompts = (await this.store.live(subject.type, subject.id, ['prompt'])).filter((m) => m.stage === stageIndex);
    for (const copy of prompts) {
      await this.messenger.reply(
        { eventId: event.id, key: `reply:${copy.id}` },
        copy,
        subject,
        cardActivity(noticeCard(notice), notice.title),
      );
    }
  }

  /**
   * Re-renders every copy for its audience and updates it in place; a copy Teams no longer has is posted afresh.
   * `requesterBanner` goes on the requester's own copy only.
   */
  async updateCopies(subject: Subject, detail?: RequestDetail, requesterBanner?: Banner): Promise<void> {
    const copies = await this.store.live(subject.type, subject.id, ['prompt', 'requester']);
    if (copies.length === 0) return;
    const loaded = subject.type === 'request' ? (detail ?? (await this.ctx.requests.get(subject.id))) : undefined;
    for (const copy of copies) {
      const banner = copy.purpose === 'requester' ? requesterBanner : undefined;
      const card = await this.render(subject, copy.data.view ?? 'base', copy.recipient_id, loaded, banner);
      await this.messenger.update(copy, subject, cardActivity(card));
    }
  }

  /** Posts one copy of the subject's card for `view`, once per event and key, and records it for later updates. */
  private postCopy(
    event: DomainEvent,
    subject: Subject,
    key: string,
    to: { kind: 'channel'; id: string } | { kind: 'personal'; identity: IdentityRow },
    view: CopyView,
    message: { purpose: 'prompt' | 'requester'; stage?: number; recipientId?: string },
  ): Promise<boolean> {
    const summary =
      message.purpose === 'requester'
        ? 'Your request'
        : subject.type === 'request'
          ? 'Approval needed'
          : subject.type === 'review'
            ? 'Access review'
            : 'Change approval needed';
    return this.messenger.post(
      { eventId: event.id, key },
      to,
      subject,
      async () => cardActivity(await this.render(subject, view, message.recipientId ?? null), summary),
      { ...message, data: { view } },
    );
  }

  private async render(
    subject: Subject,
    view: CopyView,
    recipientId: string | null,
    detail?: RequestDetail,
    banner?: Banner,
  ): Promise<AdaptiveCard> {
    const viewer: Viewer =
      view === 'base' || !recipientId ? { kind: 'base' } : { kind: 'identity', identity: await identityById(this.ctx.db, recipientId) };
    if (subject.type === 'review') return this.views.reviewCardFor(subject.id, viewer);
    return subject.type === 'request'
      ? this.views.requestCardFor(detail ?? subject.id, viewer, banner)
      : this.views.changeCardFor(subject.id, viewer, banner);
  }
}
