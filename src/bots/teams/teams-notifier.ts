import type { AppContext } from '../../app-context.ts';
import { pendingApprovers, pendingReviewers } from '../../core/approval-rights.ts';
import { groupsByNames, identityById, type IdentityRow } from '../../core/directory.ts';
import type { ChangeEvent, DomainEvent, RequestEvent } from '../../core/events.ts';
import type { ReviewView } from '../../core/review-queries.ts';
import type { ChangeView, RequestDetail } from '../../core/views.ts';
import type { CopyView } from '../../notifications/message-store.ts';
import { PlannedNotifier, type RequesterTold, type Told } from '../../notifications/planned-notifier.ts';
import { promptTargets } from '../../notifications/notification-plan.ts';
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
export class TeamsNotifier extends PlannedNotifier {
  private readonly messenger: TeamsMessenger;

  constructor(
    ctx: AppContext,
    client: BotConnectorClient,
    private readonly views: TeamsViews,
  ) {
    super(ctx, 'teams');
    this.messenger = new TeamsMessenger(ctx, client, this.store);
  }

  // the submitter's copy already says "submitted" (the invoke answer); the same card again, not a flash without it
  protected redrawRequest(event: RequestEvent, r: RequestDetail): Promise<void> {
    return this.updateCopies({ type: 'request', id: r.id }, r, event.type === 'request.submitted' ? submittedBanner.request : undefined);
  }

  protected redrawChange(event: ChangeEvent, c: ChangeView): Promise<void> {
    return this.updateCopies(
      { type: 'change', id: c.id },
      undefined,
      event.type === 'change.submitted' ? submittedBanner.change : undefined,
    );
  }

  // every copy, in each channel and each personal chat, shows the outcome with no buttons left
  protected redrawReview(reviewId: string): Promise<void> {
    return this.updateCopies({ type: 'review', id: reviewId });
  }

  protected postStage(event: RequestEvent, r: RequestDetail): Promise<void> {
    return this.postPrompts(event, r, r.currentStage);
  }

  // the stage's groups now include those escalated to; channels that already have the card get none
  protected postEscalation(event: RequestEvent, r: RequestDetail): Promise<void> {
    return this.postPrompts(event, r, r.currentStage);
  }

  protected async postChange(event: ChangeEvent, c: ChangeView): Promise<void> {
    const { channels } = promptTargets('teams', 'change', { channels: await this.channelsOf(c.approverGroups), people: [], direct: false });
    for (const channel of channels) {
      await this.postCopy(event, { type: 'change', id: c.id }, `prompt:${channel}`, { kind: 'channel', id: channel }, 'base', {
        purpose: 'prompt',
      });
    }
  }

  protected async remindApprovers(event: RequestEvent, r: RequestDetail, kind: 'reminder' | 'escalation'): Promise<void> {
    const mentions = await this.mentionsOf(await pendingApprovers(this.ctx.db, r));
    await this.replyInThreads(event, { type: 'request', id: r.id }, r.currentStage, reminderNotice(r, kind === 'escalation', mentions));
  }

  protected async remindReviewers(event: RequestEvent, v: ReviewView): Promise<void> {
    const mentions = await this.mentionsOf(await pendingReviewers(this.ctx.db, v));
    await this.replyInThreads(event, { type: 'review', id: v.id }, null, reviewReminderNotice(v, mentions));
  }

  protected async postReview(event: RequestEvent, v: ReviewView): Promise<void> {
    await this.postReviewPrompts(event, { type: 'review', id: v.id }, v.reviewerGroups, await pendingReviewers(this.ctx.db, v));
  }

  /**
   * The requester's own card in their personal chat (unless their form already became it), or a notice where they
   * have their copy, so someone told in Slack is not told twice; `copy-else-dm` opens their personal chat instead.
   */
  protected async tellRequester(event: DomainEvent, told: Told, how: RequesterTold): Promise<void> {
    const subject: Subject = told.kind === 'request' ? { type: 'request', id: told.request.id } : { type: 'change', id: told.change.id };
    if (how.purpose === 'status') return this.postRequesterCopy(event, subject, how.requester);
    const notice = told.kind === 'change' ? changeOutcomeNotice(told.change) : requestNotice(event, told.request);
    const copy = await this.requesterCopy(subject);
    const to = copy
      ? ({ kind: 'conversation', id: copy.conversation_id, serviceUrl: copy.data.serviceUrl } as const)
      : how.where === 'copy-else-dm' && how.requester.teams_aad_id
        ? ({ kind: 'personal', identity: how.requester } as const)
        : undefined;
    if (!to) return;
    await this.messenger.post(
      { eventId: event.id, key: `notice:${event.type}` },
      to,
      subject,
      async () => cardActivity(noticeCard(notice), notice.title),
      { purpose: 'notice', recipientId: copy?.recipient_id ?? how.requester.id },
    );
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

  private async postRequesterCopy(event: DomainEvent, subject: Subject, requester: IdentityRow): Promise<void> {
    if (!requester.teams_aad_id || (await this.requesterCopy(subject))) return;
    await this.postCopy(event, subject, 'requester', { kind: 'personal', identity: requester }, 'requester', {
      purpose: 'requester',
      recipientId: requester.id,
    });
  }

  private async requesterCopy(subject: Subject) {
    return (await this.store.live(subject.type, subject.id, ['requester']))[0];
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

function requestNotice(event: DomainEvent, r: RequestDetail): NoticeInput {
  if (event.type === 'request.stage_advanced') return stageAdvancedNotice(r);
  if (event.type === 'request.install_ordered') return installOrderedNotice(r);
  if (event.type === 'request.access_expiring') return accessExpiringNotice(r);
  return outcomeNotice(r);
}
