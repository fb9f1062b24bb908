import type { AppContext } from '../../app-context.ts';
import { pendingApprovers, pendingReviewers } from '../../core/approval-rights.ts';
import { groupsByNames, identityById, type IdentityRow } from '../../core/directory.ts';
import { exhaustive, type ChangeEvent, type DomainEvent } from '../../core/events.ts';
import type { ChatNotifier } from '../../core/ports.ts';
import { readableUtc } from '../../core/clock.ts';
import type { RequestDetail } from '../../core/views.ts';
import { originOf, personOf, promptTargets, requesterPlan, type RequesterDelivery } from '../../notifications/notification-plan.ts';
import { noticeCard, plainText, submittedBanner, type AdaptiveCard, type Banner, type NoticeInput } from './teams-cards.ts';
import { type BotConnectorClient, TeamsSendError, type Activity } from './teams-connector.ts';
import {
  alreadyDelivered,
  anyConversationRef,
  auditSent,
  cardCopies,
  conversationRef,
  insertMessageRef,
  moveMessageRef,
  refreshIdsFor,
  saveConversationRef,
  touchMessageRef,
  type CopyView,
  type MessageRef,
  type Purpose,
  type StoredReference,
} from './teams-store.ts';
import type { TeamsViews, Viewer } from './teams-views.ts';

type Subject = { type: 'request' | 'change' | 'review'; id: string };

export const cardActivity = (card: AdaptiveCard, summary?: string): Activity => ({
  type: 'message',
  summary,
  attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: card }],
});

/**
 * Turns domain events into Teams messages: prompts in approver channels (and approvers' personal chats when
 * the stage says so), the requester's own copy, in-place updates of every copy, and thread replies for
 * reminders and escalations. Idempotent per event: each delivery is recorded under (event id, key) and
 * skipped on a retry; updates re-render the current state, so repeating them is harmless. Transient
 * failures throw TeamsSendError (retryable, with retryAfterMs) so the queue retries the event.
 */
export class TeamsNotifier implements ChatNotifier {
  readonly platform = 'teams' as const;

  constructor(
    private readonly ctx: AppContext,
    private readonly client: BotConnectorClient,
    private readonly views: TeamsViews,
  ) {}

  async handle(event: DomainEvent): Promise<void> {
    // audit checkpoints are for webhooks only
    if (event.subjectType === 'audit') return;
    const subject: Subject = { type: event.subjectType, id: event.subjectId };
    if (event.subjectType === 'change') return this.handleChange(event, subject);
    switch (event.type) {
      case 'request.review_started':
        return this.postReviewPrompts(event, event.data.reviewId);
      case 'request.review_reminder': {
        const v = await this.ctx.reviews.get(event.data.reviewId);
        if (v.status !== 'pending') return;
        return this.replyInThreads(event, { type: 'review', id: v.id }, null, {
          mentions: await this.mentionsOf(await pendingReviewers(this.ctx.db, v)),
          title: 'Reminder: access review still open',
          text: `Does ${v.requester?.displayName ?? 'this device'} still need ${v.application.name}${v.device ? ` on ${v.device.name}` : ''}? Keep or remove it before ${readableUtc(v.dueAt)}; if nobody answers, the review lapses and the access is kept.`,
          tone: 'info',
        });
      }
      case 'request.review_decided':
        // every copy, in each channel and each personal chat, shows the outcome with no buttons left
        return this.updateCopies({ type: 'review', id: event.data.reviewId });
      case 'request.submitted': {
        const r = await this.ctx.requests.get(subject.id);
        // the submitter's copy already says "submitted" (the invoke answer); the same card again, not a flash without it
        await this.updateCopies(subject, r, submittedBanner.request);
        await this.postPrompts(event, r, r.currentStage);
        if ((await this.plan(event, r.requester?.id ?? null, r.history, 'request.submitted'))?.where === 'dm')
          await this.confirmToRequester(event, subject, r);
        return;
      }
      case 'request.decision_recorded':
        await this.updateCopies(subject);
        return;
      case 'request.stage_advanced': {
        const r = await this.ctx.requests.get(subject.id);
        await this.updateCopies(subject, r);
        await this.postPrompts(event, r, r.currentStage);
        if (await this.plan(event, r.requester?.id ?? null, r.history, 'request.submitted'))
          await this.tellRequester(event, subject, {
            title: `${r.application.name}: stage ${r.currentStage} approved`,
            text: `Your request moved on to stage ${r.currentStage + 1} of ${r.stageCount}.`,
            tone: 'info',
          });
        return;
      }
      case 'request.approved':
      case 'request.denied':
      case 'request.cancelled':
      case 'request.expired':
      case 'request.revoked': {
        const r = await this.ctx.requests.get(subject.id);
        await this.updateCopies(subject, r);
        if (await this.plan(event, r.requester?.id ?? null, r.history, 'request.submitted'))
          await this.tellRequester(event, subject, outcomeNotice(r));
        return;
      }
      case 'request.reminder':
      case 'request.escalated': {
        const r = await this.ctx.requests.get(subject.id);
        if (r.status !== 'pending') return;
        const escalated = event.type === 'request.escalated';
        if (escalated) await this.updateCopies(subject, r);
        await this.replyInThreads(event, subject, r.currentStage, {
          mentions: await this.mentionsOf(await pendingApprovers(this.ctx.db, r)),
          title: escalated ? 'Escalated: still waiting for a decision' : 'Reminder: waiting for a decision',
          text: `${r.requester?.displayName ?? 'A machine'}'s request for ${r.application.name}${r.device ? ` on ${r.device.name}` : ''} has waited since ${readableUtc(r.createdAt)}.${r.deadlineAt ? ` Decide before ${readableUtc(r.deadlineAt)}.` : ''}`,
          tone: escalated ? 'warning' : 'info',
        });
        if (escalated) await this.postPrompts(event, r, r.currentStage);
        return;
      }
      case 'request.install_ordered': {
        const r = await this.ctx.requests.get(subject.id);
        await this.updateCopies(subject, r);
        if (await this.plan(event, r.requester?.id ?? null, r.history, 'request.submitted'))
          await this.tellRequester(event, subject, {
            title: `Installing ${r.application.name}`,
            text: `The install${r.device ? ` on ${r.device.name}` : ''} has been ordered. It usually starts within a few minutes.`,
            tone: 'success',
          });
        return;
      }
      case 'request.access_expiring': {
        const r = await this.ctx.requests.get(subject.id);
        const notice: NoticeInput = {
          title: `${r.application.name} access is expiring`,
          text: `Your access${r.device ? ` on ${r.device.name}` : ''} ends ${r.accessExpiresAt ? `on ${readableUtc(r.accessExpiresAt)}` : 'soon'}; it will be uninstalled then. Request it again if you still need it.`,
          tone: 'warning',
        };
        const where = (await this.plan(event, r.requester?.id ?? null, r.history, 'request.submitted'))?.where;
        if (await this.hasRequesterCopy(subject)) await this.tellRequester(event, subject, notice);
        else if (where === 'copy-else-dm') await this.tellRequesterPersonally(event, subject, r, notice);
        return;
      }
      default:
        exhaustive(event);
    }
  }

  private async handleChange(event: ChangeEvent, subject: Subject): Promise<void> {
    const c = await this.ctx.changes.get(subject.id);
    const told = await this.plan(event, c.requester.id, c.history, 'change.submitted');
    await this.updateCopies(subject, undefined, event.type === 'change.submitted' ? submittedBanner.change : undefined);
    if (event.type === 'change.submitted') {
      const { channels } = promptTargets('teams', 'change', {
        channels: (await groupsByNames(this.ctx.db, c.approverGroups)).map((g) => g.teams_channel ?? ''),
        people: [],
        direct: false,
      });
      for (const channel of channels) {
        await this.deliver(event, subject, `prompt:${channel}`, { kind: 'channel', key: channel }, 'prompt', null, 'base', null);
      }
      const requester = c.requester.id ? await identityById(this.ctx.db, c.requester.id) : undefined;
      if (requester && told?.where === 'dm' && !(await this.hasRequesterCopy(subject))) {
        await this.postRequesterCopy(event, subject, requester);
      }
      return;
    }
    if (told) {
      const verb = c.status === 'approved' ? 'approved' : c.status === 'rejected' ? 'rejected' : 'cancelled';
      await this.tellRequester(event, subject, {
        title: `Your change to ${c.resourceType} "${c.resourceId}" was ${verb}`,
        text: `${c.decidedBy ?? 'Signoff'} ${verb} it.${c.decisionNotes ? ` Notes: "${c.decisionNotes}"` : ''}${c.status === 'approved' ? ' It is being applied.' : ''}`,
        tone: c.status === 'approved' ? 'success' : 'error',
      });
    }
  }

  /** Posts the stage's prompt to each approver channel, and to each approver's personal chat when the stage asks for it. */
  private async postPrompts(event: DomainEvent, r: RequestDetail, stageIndex: number): Promise<void> {
    const stage = r.stages[stageIndex];
    if (!stage) return;
    const subject: Subject = { type: 'request', id: r.id };
    const existing = await cardCopies(this.ctx.db, 'request', r.id);
    const direct = r.policy.stages[stageIndex]?.notifyApproversDirectly ?? false;
    const approvers = direct ? await pendingApprovers(this.ctx.db, r) : [];
    const targets = promptTargets('teams', 'stage', {
      channels: (await groupsByNames(this.ctx.db, stage.approverGroups)).map((g) => g.teams_channel ?? ''),
      people: approvers.map((a) => ({ id: a.id, address: a.teams_aad_id })),
      direct,
    });
    for (const channel of targets.channels) {
      // an escalation to a group already prompted in this channel needs no second card there
      if (existing.some((m) => m.purpose === 'prompt' && m.stage === stageIndex && m.data.key === `prompt:${stageIndex}:${channel}`))
        continue;
      await this.deliver(
        event,
        subject,
        `prompt:${stageIndex}:${channel}`,
        { kind: 'channel', key: channel },
        'prompt',
        stageIndex,
        'base',
        null,
      );
    }
    for (const approver of approvers.filter((a) => targets.direct.some((t) => t.id === a.id))) {
      const key = `prompt:${stageIndex}:dm:${approver.id}`;
      if (existing.some((m) => m.data.key === key)) continue;
      await this.deliver(event, subject, key, { kind: 'personal', identity: approver }, 'prompt', stageIndex, 'approver', approver.id);
    }
  }

  /** What the notification plan tells the requester in Teams for this event; undefined: nothing. */
  private async plan(
    event: DomainEvent,
    requesterId: string | null,
    history: { action: string; channel: string }[],
    submitted: 'request.submitted' | 'change.submitted',
  ): Promise<RequesterDelivery | undefined> {
    const requester = requesterId ? await identityById(this.ctx.db, requesterId) : undefined;
    const registered = [...new Set([...this.ctx.notifiers.map((n) => n.platform), this.platform])];
    return requesterPlan({ event, requester: requester ? personOf(requester) : null, origin: originOf(history, submitted), registered })
      .teams;
  }

  private async hasRequesterCopy(subject: Subject): Promise<boolean> {
    return (await cardCopies(this.ctx.db, subject.type, subject.id)).some((m) => m.purpose === 'requester');
  }

  private async confirmToRequester(event: DomainEvent, subject: Subject, r: RequestDetail): Promise<void> {
    if (!r.requester || (await this.hasRequesterCopy(subject))) return;
    const requester = await identityById(this.ctx.db, r.requester.id);
    if (!requester?.teams_aad_id) return;
    await this.postRequesterCopy(event, subject, requester);
  }

  /** The requester's own card in their personal chat. */
  private postRequesterCopy(event: DomainEvent, subject: Subject, requester: IdentityRow): Promise<void> {
    return this.deliver(
      event,
      subject,
      'requester',
      { kind: 'personal', identity: requester },
      'requester',
      null,
      'requester',
      requester.id,
    );
  }

  /** Outcome messages go where the requester already has their copy of the card, so Slack users are not told twice. */
  private async tellRequester(event: DomainEvent, subject: Subject, notice: NoticeInput): Promise<void> {
    const copy = (await cardCopies(this.ctx.db, subject.type, subject.id)).find((m) => m.purpose === 'requester');
    if (!copy?.recipient_id) return;
    const key = `notice:${event.type}`;
    if (await alreadyDelivered(this.ctx.db, subject.id, event.id, key)) return;
    const ref = await this.referenceFor({ kind: 'conversation', id: copy.conversation_id, serviceUrl: copy.data.serviceUrl });
    if (!ref) return;
    const sent = await this.send(
      subject,
      ref,
      () => this.client.sendToConversation(ref.serviceUrl, copy.conversation_id, cardActivity(noticeCard(notice), notice.title)),
      { purpose: 'notice', key },
    );
    if (sent)
      await insertMessageRef(this.ctx.db, {
        subjectType: subject.type,
        subjectId: subject.id,
        purpose: 'notice',
        conversationId: copy.conversation_id,
        messageId: sent,
        recipientId: copy.recipient_id,
        data: { eventId: event.id, key, serviceUrl: ref.serviceUrl },
      });
  }

  /**
   * A notice in the requester's personal chat with the bot when they have no copy of the request in Teams (they
   * asked through the API, or long ago). Someone Slack already tells is not told twice.
   */
  private async tellRequesterPersonally(event: DomainEvent, subject: Subject, r: RequestDetail, notice: NoticeInput): Promise<void> {
    const requester = r.requester ? await identityById(this.ctx.db, r.requester.id) : undefined;
    if (!requester?.teams_aad_id) return;
    const key = `notice:${event.type}`;
    if (await alreadyDelivered(this.ctx.db, subject.id, event.id, key)) return;
    const conv = await this.personalConversation(requester, subject);
    if (!conv) return;
    const sent = await this.send(
      subject,
      conv.ref,
      () => this.client.sendToConversation(conv.ref.serviceUrl, conv.id, cardActivity(noticeCard(notice), notice.title)),
      { purpose: 'notice', key },
    );
    if (sent)
      await insertMessageRef(this.ctx.db, {
        subjectType: subject.type,
        subjectId: subject.id,
        purpose: 'notice',
        conversationId: conv.id,
        messageId: sent,
        recipientId: requester.id,
        data: { eventId: event.id, key, serviceUrl: conv.ref.serviceUrl },
      });
  }

  /** A review goes to the reviewer groups' channels; when none has a channel, to each reviewer's personal chat. */
  private async postReviewPrompts(event: DomainEvent, reviewId: string): Promise<void> {
    const review = await this.ctx.reviews.get(reviewId);
    if (review.status !== 'pending') return;
    const subject: Subject = { type: 'review', id: review.id };
    const reviewers = await pendingReviewers(this.ctx.db, review);
    const targets = promptTargets('teams', 'review', {
      channels: (await groupsByNames(this.ctx.db, review.reviewerGroups)).map((g) => g.teams_channel ?? ''),
      people: reviewers.map((p) => ({ id: p.id, address: p.teams_aad_id })),
      direct: false,
    });
    for (const channel of targets.channels) {
      await this.deliver(event, subject, `review:${channel}`, { kind: 'channel', key: channel }, 'prompt', null, 'base', null);
    }
    for (const reviewer of reviewers.filter((p) => targets.direct.some((t) => t.id === p.id))) {
      await this.deliver(
        event,
        subject,
        `review:dm:${reviewer.id}`,
        { kind: 'personal', identity: reviewer },
        'prompt',
        null,
        'approver',
        reviewer.id,
      );
    }
  }

  /** The people to @mention in a thread reply, by the id Teams knows them by. */
  private async mentionsOf(people: IdentityRow[]): Promise<{ id: string; name: string }[]> {
    const linked = people.filter((p) => p.teams_aad_id);
    const ids = await Promise.all(linked.map((p) => refreshIdsFor(this.ctx.db, [p.teams_aad_id!])));
    return linked.map((p, i) => ({ id: ids[i]![0]!, name: p.display_name }));
  }

  /** Reminders and escalations go into the prompt's thread in channels, and as a follow-up in personal chats. */
  private async replyInThreads(event: DomainEvent, subject: Subject, stageIndex: number | null, notice: NoticeInput): Promise<void> {
    const prompts = (await cardCopies(this.ctx.db, subject.type, subject.id)).filter(
      (m) => m.purpose === 'prompt' && m.stage === stageIndex,
    );
    for (const copy of prompts) {
      const key = `reply:${copy.id}`;
      if (await alreadyDelivered(this.ctx.db, subject.id, event.id, key)) continue;
      const ref = await this.referenceFor({ kind: 'conversation', id: copy.conversation_id, serviceUrl: copy.data.serviceUrl });
      if (!ref) continue;
      const activity = cardActivity(noticeCard(notice), notice.title);
      const sent = await this.send(
        subject,
        ref,
        () =>
          copy.data.view === 'base'
            ? this.client.replyToActivity(ref.serviceUrl, copy.conversation_id, copy.message_id, activity)
            : this.client.sendToConversation(ref.serviceUrl, copy.conversation_id, activity),
        { purpose: 'reply', key },
      );
      if (sent)
        await insertMessageRef(this.ctx.db, {
          subjectType: subject.type,
          subjectId: subject.id,
          purpose: 'reply',
          stage: stageIndex,
          conversationId: copy.conversation_id,
          messageId: sent,
          recipientId: copy.recipient_id,
          data: { eventId: event.id, key, serviceUrl: ref.serviceUrl },
        });
    }
  }

  /**
   * Re-renders every copy for its audience and updates it in place; a copy Teams no longer has is posted afresh.
   * `requesterBanner` goes on the requester's own copy only.
   */
  async updateCopies(subject: Subject, detail?: RequestDetail, requesterBanner?: Banner): Promise<void> {
    const copies = await cardCopies(this.ctx.db, subject.type, subject.id);
    if (copies.length === 0) return;
    const loaded = subject.type === 'request' ? (detail ?? (await this.ctx.requests.get(subject.id))) : undefined;
    for (const copy of copies) {
      const card = await this.render(
        subject,
        copy.data.view ?? 'base',
        copy.recipient_id,
        loaded,
        copy.purpose === 'requester' ? requesterBanner : undefined,
      );
      const ref = await this.referenceFor({ kind: 'conversation', id: copy.conversation_id, serviceUrl: copy.data.serviceUrl });
      if (!ref) continue;
      const activity = cardActivity(card);
      try {
        await this.client.updateActivity(ref.serviceUrl, copy.conversation_id, copy.message_id, activity);
        await touchMessageRef(this.ctx.db, copy.id);
        await auditSent(this.ctx.db, this.ctx.clock.now(), subject, {
          operation: 'update',
          conversationId: copy.conversation_id,
          activityId: copy.message_id,
          purpose: copy.purpose,
        });
      } catch (e) {
        if (!(e instanceof TeamsSendError && e.gone)) {
          this.failure(e, subject);
          continue;
        }
        // deleted by a user or expired by Teams: a fresh card keeps the conversation truthful
        const fresh = await this.send(subject, ref, () => this.client.sendToConversation(ref.serviceUrl, copy.conversation_id, activity), {
          purpose: copy.purpose,
          key: `repost:${copy.id}`,
          replaced: copy.message_id,
        });
        if (fresh) await moveMessageRef(this.ctx.db, copy.id, fresh);
      }
    }
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

  /** Posts one copy of the subject's card unless this event already did, and records it for later updates. */
  private async deliver(
    event: DomainEvent,
    subject: Subject,
    key: string,
    target: { kind: 'channel'; key: string } | { kind: 'personal'; identity: IdentityRow },
    purpose: Purpose,
    stage: number | null,
    view: CopyView,
    recipientId: string | null,
  ): Promise<void> {
    if (await alreadyDelivered(this.ctx.db, subject.id, event.id, key)) return;
    const conv =
      target.kind === 'channel' ? await this.channelConversation(target.key) : await this.personalConversation(target.identity, subject);
    if (!conv) return;
    const card = await this.render(subject, view, recipientId);
    const summary = subject.type === 'request' ? 'Approval needed' : subject.type === 'review' ? 'Access review' : 'Change approval needed';
    const id = await this.send(
      subject,
      conv.ref,
      () =>
        this.client.sendToConversation(
          conv.ref.serviceUrl,
          conv.id,
          cardActivity(card, purpose === 'requester' ? 'Your request' : summary),
        ),
      { purpose, key },
    );
    if (!id) return;
    await insertMessageRef(this.ctx.db, {
      subjectType: subject.type,
      subjectId: subject.id,
      purpose,
      stage,
      conversationId: conv.id,
      messageId: id,
      recipientId,
      data: { eventId: event.id, key, view, serviceUrl: conv.ref.serviceUrl },
    });
  }

  /** Sends once; undefined when Teams refused for good (logged), a thrown TeamsSendError when worth retrying. */
  private async send(
    subject: Subject,
    ref: StoredReference,
    fn: () => Promise<{ id?: string }>,
    what: Record<string, string>,
  ): Promise<string | undefined> {
    let res: { id?: string };
    try {
      res = await fn();
    } catch (e) {
      this.failure(e, subject);
      return undefined;
    }
    await auditSent(this.ctx.db, this.ctx.clock.now(), subject, {
      operation: 'post',
      conversationId: ref.conversation.id,
      activityId: res.id ?? null,
      ...what,
    });
    return res.id ?? `unknown:${Date.now()}`;
  }

  /**
   * Permanent failures (403: the bot was removed from the team; 400) are logged and skipped so one bad
   * conversation cannot block the others; everything else is thrown back to the queue.
   */
  private failure(e: unknown, subject: Subject): void {
    if (e instanceof TeamsSendError && !e.retryable) {
      this.ctx.logger.warn({ err: e.message, subject }, 'teams: message could not be delivered; not retrying');
      return;
    }
    throw e;
  }

  private async channelConversation(channelId: string): Promise<{ id: string; ref: StoredReference } | undefined> {
    const ref = (await conversationRef(this.ctx.db, channelId)) ?? (await anyConversationRef(this.ctx.db));
    if (!ref) {
      this.ctx.logger.warn(
        { channelId },
        'teams: the bot has never been added to Teams, so it cannot post to this channel; add the app to the team',
      );
      return undefined;
    }
    return { id: channelId, ref };
  }

  /** The identity's personal chat with the bot: stored when they wrote to it, else created (the app must be installed for them). */
  private async personalConversation(identity: IdentityRow, subject: Subject): Promise<{ id: string; ref: StoredReference } | undefined> {
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

  private async referenceFor(target: { kind: 'conversation'; id: string; serviceUrl?: string }): Promise<StoredReference | undefined> {
    if (target.serviceUrl) return { serviceUrl: target.serviceUrl, channelId: 'msteams', conversation: { id: target.id } };
    return (await conversationRef(this.ctx.db, target.id)) ?? (await anyConversationRef(this.ctx.db));
  }
}

function outcomeNotice(r: RequestDetail): NoticeInput {
  const what = `${r.application.name}${r.device ? ` on ${r.device.name}` : ''}`;
  const by = r.decidedBy ?? 'Signoff';
  const why = r.decisionReason ? ` Reason: "${plainText(r.decisionReason)}".` : '';
  switch (r.status) {
    case 'approved': {
      const install = r.installOrderedAt
        ? ' The install has been ordered.'
        : r.installDueAt
          ? ` It installs in the next maintenance window (${readableUtc(r.installDueAt)}), or now if you ask.`
          : '';
      return {
        title: `${r.application.name} approved`,
        text: `${by} approved ${what}.${why}${install}`,
        tone: 'success',
        installNowId: !r.installOrderedAt && r.installDueAt ? r.id : undefined,
      };
    }
    case 'denied':
      return { title: `${r.application.name} denied`, text: `${by} denied ${what}.${why}`, tone: 'error' };
    case 'revoked':
      return { title: `${r.application.name} access revoked`, text: `${by} revoked ${what}; it will be uninstalled.${why}`, tone: 'error' };
    case 'expired':
      return {
        title: `${r.application.name} request expired`,
        text: `Nobody decided on ${what} before the deadline. You can request it again.`,
        tone: 'warning',
      };
    default:
      return { title: `${r.application.name} request cancelled`, text: `${by} cancelled the request for ${what}.${why}`, tone: 'info' };
  }
}

export type { MessageRef };
