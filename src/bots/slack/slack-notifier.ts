import type { AppContext } from '../../app-context.ts';
import { eligibleMembers, pendingApprovers, pendingReviewers } from '../../core/approval-rights.ts';
import { groupsByNames, membersOfGroups, type IdentityRow } from '../../core/directory.ts';
import type { ChangeEvent, DomainEvent, RequestEvent } from '../../core/events.ts';
import type { ReviewView } from '../../core/review-queries.ts';
import type { ChangeView, RequestDetail } from '../../core/views.ts';
import { promptTargets } from '../../notifications/notification-plan.ts';
import {
  renderAccessExpiring,
  renderChangePrompt,
  renderChangeRequesterStatus,
  renderInstallOrdered,
  renderReminder,
  renderRequesterOutcome,
  renderRequesterStatus,
  renderRequestPrompt,
  renderReviewPrompt,
  renderReviewReminder,
  type Rendered,
} from './slack-approval-blocks.ts';
import { SlackApiError, type SlackApi } from './slack-api.ts';
import type { MessageRef, Purpose, SubjectType } from '../../notifications/message-store.ts';
import { PlannedNotifier, type RequesterTold, type Told } from '../../notifications/planned-notifier.ts';

interface Target {
  /** a channel id, or a user id to DM */
  channel?: string;
  user?: string;
  recipientId?: string | null;
}

/**
 * Turns domain events into Slack messages. Called by the outbox relay after commit, possibly more than once
 * per event: posts are guarded by a per-event marker in message_refs, updates are naturally idempotent, and
 * transient Slack failures are thrown so the queue retries the event.
 */
/** The requester's own DM (the plan only tells a requester who has a Slack link). */
const requesterTarget = (requester: IdentityRow): Target => ({ user: requester.slack_user_id!, recipientId: requester.id });

/** What Slack adds to a message's audit entry: the Web API method and Slack's own names for where it is. */
const slackAudit = (method: 'chat.postMessage' | 'chat.update', channel: string, ts: string) => ({ method, channel, ts });

export class SlackNotifier extends PlannedNotifier {
  constructor(
    ctx: AppContext,
    private readonly api: SlackApi,
  ) {
    super(ctx, 'slack');
  }

  protected postStage(event: RequestEvent, r: RequestDetail, requester: IdentityRow | undefined): Promise<void> {
    return this.postPrompts(event, r, r.currentStage, r.stages[r.currentStage]?.approverGroups ?? [], requester);
  }

  protected async postChange(event: ChangeEvent, c: ChangeView, requester: IdentityRow | undefined): Promise<void> {
    const prompt = renderChangePrompt({ change: c, requesterSlackId: requester?.slack_user_id ?? null });
    for (const t of await this.approverTargets('change', c.approverGroups, c.requester.id, false)) {
      await this.postOnce(event, 'change', c.id, 'prompt', t, prompt);
    }
  }

  /** The requester's DM: their status message, an outcome or a notice. */
  protected async tellRequester(event: DomainEvent, subject: Told, told: RequesterTold): Promise<void> {
    const purpose = told.purpose === 'status' ? 'requester' : told.purpose;
    const to = requesterTarget(told.requester);
    if (subject.kind === 'change') {
      return void (await this.postOnce(event, 'change', subject.change.id, purpose, to, renderChangeRequesterStatus(subject.change)));
    }
    const r = subject.request;
    const msg =
      told.purpose === 'status'
        ? renderRequesterStatus(r)
        : event.type === 'request.install_ordered'
          ? renderInstallOrdered(r, event.data.reason)
          : event.type === 'request.access_expiring'
            ? renderAccessExpiring(r)
            : renderRequesterOutcome(r);
    await this.postOnce(event, 'request', r.id, purpose, to, msg);
  }

  /** Where a prompt goes, as the notification plan says: each group's channel, plus approvers' DMs. */
  private async approverTargets(
    kind: 'stage' | 'review' | 'change',
    groups: string[],
    requesterId: string | null,
    direct: boolean,
  ): Promise<Target[]> {
    const rows = await groupsByNames(this.ctx.db, groups);
    const people = (await eligibleMembers(this.ctx.db, groups, requesterId)).map((m) => ({ id: m.id, address: m.slack_user_id }));
    const plan = promptTargets('slack', kind, { channels: rows.map((g) => g.slack_channel ?? ''), people, direct });
    const targets: Target[] = [
      ...plan.channels.map((channel) => ({ channel })),
      ...plan.direct.map((p) => ({ user: p.address, recipientId: p.id })),
    ];
    if (targets.length === 0) this.ctx.logger.warn({ groups }, 'slack: no channel and no linked member to send the approval prompt to');
    return targets;
  }

  private async postPrompts(
    event: DomainEvent,
    r: RequestDetail,
    stage: number,
    groups: string[],
    requester: IdentityRow | undefined,
  ): Promise<void> {
    const direct = r.policy.stages[stage]?.notifyApproversDirectly ?? false;
    const prompt = renderRequestPrompt({ request: r, requesterSlackId: requester?.slack_user_id ?? null, stage });
    const targets = await this.approverTargets('stage', groups, r.requester?.id ?? null, direct);
    let undelivered = false;
    for (const t of targets) {
      if (!(await this.postOnce(event, 'request', r.id, 'prompt', t, prompt, { stage })) && t.channel) undelivered = true;
    }
    if (undelivered) {
      // a channel Signoff cannot post to (private and not invited, deleted) must not leave the request unseen
      const dmed = new Set(targets.filter((t) => t.user).map((t) => t.user));
      for (const t of await this.approverTargets('stage', groups, r.requester?.id ?? null, true)) {
        if (t.user && !dmed.has(t.user)) await this.postOnce(event, 'request', r.id, 'prompt', t, prompt, { stage });
      }
    }
  }

  /** The review question goes where the reviewers' groups get prompts: their channels, else each reviewer's DM. */
  protected async postReview(event: DomainEvent, review: ReviewView): Promise<void> {
    const prompt = renderReviewPrompt({ review });
    const targets = await this.approverTargets('review', review.reviewerGroups, review.requester?.id ?? null, false);
    let undelivered = false;
    for (const t of targets) {
      if (!(await this.postOnce(event, 'review', review.id, 'prompt', t, prompt)) && t.channel) undelivered = true;
    }
    if (undelivered) {
      const dmed = new Set(targets.filter((t) => t.user).map((t) => t.user));
      for (const t of await this.approverTargets('review', review.reviewerGroups, review.requester?.id ?? null, true)) {
        if (t.user && !dmed.has(t.user)) await this.postOnce(event, 'review', review.id, 'prompt', t, prompt);
      }
    }
  }

  /** A thread reply under each live copy of an open review's prompt, mentioning everyone who can still answer it. */
  protected async remindReviewers(event: DomainEvent, review: ReviewView): Promise<void> {
    const people = (await pendingReviewers(this.ctx.db, review)).filter((m) => m.slack_user_id);
    const msg = renderReviewReminder(
      review,
      people.map((p) => p.slack_user_id!),
    );
    for (const p of await this.store.live('review', review.id, ['prompt'])) {
      await this.postOnce(event, 'review', review.id, 'reminder', { channel: p.conversation_id }, msg, { threadTs: p.message_id });
    }
  }

  /** Redraws every copy of a review prompt: the outcome, who and when, no buttons once it is answered. */
  async redrawReview(reviewId: string): Promise<void> {
    const review = await this.ctx.reviews.get(reviewId);
    for (const ref of await this.store.live('review', review.id, ['prompt'])) {
      await this.updateOrReplace(ref, (replacesLost) => renderReviewPrompt({ review, replacesLost }));
    }
  }

  /**
   * Posts unless this event already posted this to this target; the delivery is recorded right after Slack accepts it.
   * @returns false when Slack refused for good (the target cannot be reached), true when posted now or before
   */
  private postOnce(
    event: DomainEvent,
    subjectType: SubjectType,
    subjectId: string,
    purpose: Purpose,
    target: Target,
    msg: Rendered,
    opts: { stage?: number; threadTs?: string } = {},
  ): Promise<boolean> {
    const where = `${target.channel ?? target.user}${opts.threadTs ? `:${opts.threadTs}` : ''}`;
    return this.store.once({ eventId: event.id, key: `${purpose}:${where}` }, async () => {
      let channel: string;
      let ts: string;
      try {
        channel = target.channel ?? (await this.api.openDm(target.user!));
        ({ channel, ts } = await this.api.postMessage({ channel, text: msg.text, blocks: msg.blocks, thread_ts: opts.threadTs }));
      } catch (e) {
        if (e instanceof SlackApiError && !e.transient) {
          // a missing channel or a bot not invited will not fix itself by retrying; say so in the logs
          this.ctx.logger.error({ err: e.message, target: where, subjectId, purpose }, 'slack: could not post');
          return undefined;
        }
        throw e;
      }
      const message = { subjectType, subjectId, purpose, stage: opts.stage ?? null, conversationId: channel, messageId: ts };
      return { message: { ...message, recipientId: target.recipientId ?? null }, audit: slackAudit('chat.postMessage', channel, ts) };
    });
  }

  /** Redraws every copy of a request's prompt and the requester's status message from the current state. */
  protected async redrawRequest(_event: RequestEvent, r: RequestDetail, requester: IdentityRow | undefined): Promise<void> {
    const slackId = requester?.slack_user_id ?? null;
    for (const ref of await this.store.live('request', r.id, ['prompt', 'requester'])) {
      const render = (replacesLost: boolean) =>
        ref.purpose === 'prompt'
          ? renderRequestPrompt({ request: r, requesterSlackId: slackId, stage: ref.stage ?? r.currentStage, replacesLost })
          : renderRequesterStatus(r);
      await this.updateOrReplace(ref, render);
    }
  }

  protected async redrawChange(_event: ChangeEvent, c: ChangeView, requester: IdentityRow | undefined): Promise<void> {
    for (const ref of await this.store.live('change', c.id, ['prompt', 'requester'])) {
      const render = (replacesLost: boolean) =>
        ref.purpose === 'prompt'
          ? renderChangePrompt({ change: c, requesterSlackId: requester?.slack_user_id ?? null, replacesLost })
          : renderChangeRequesterStatus(c);
      await this.updateOrReplace(ref, render);
    }
  }

  /** chat.update in place; a message that no longer exists is replaced by a fresh one that says so. */
  private async updateOrReplace(ref: MessageRef, render: (replacesLost: boolean) => Rendered): Promise<void> {
    const msg = render(false);
    try {
      await this.api.update({ channel: ref.conversation_id, ts: ref.message_id, text: msg.text, blocks: msg.blocks });
      await this.store.updated(ref, slackAudit('chat.update', ref.conversation_id, ref.message_id));
      return;
    } catch (e) {
      if (!(e instanceof SlackApiError) || e.transient) throw e;
      if (!e.gone) {
        this.ctx.logger.error({ err: e.message, ref: ref.id }, 'slack: chat.update refused');
        return;
      }
    }
    const fresh = render(true);
    try {
      const posted = await this.api.postMessage({ channel: ref.conversation_id, text: fresh.text, blocks: fresh.blocks });
      // the replacement becomes the copy future updates go to; the lost one is never tried again
      await this.store.record(
        {
          subjectType: ref.subject_type,
          subjectId: ref.subject_id,
          purpose: ref.purpose,
          stage: ref.stage,
          conversationId: posted.channel,
          messageId: posted.ts,
          recipientId: ref.recipient_id,
          data: { replaces: ref.message_id },
        },
        {
          delivery: { eventId: `replace:${ref.id}`, key: `${ref.purpose}:${posted.channel}` },
          audit: { ...slackAudit('chat.postMessage', posted.channel, posted.ts), replaces: ref.message_id },
        },
      );
    } catch (e) {
      if (e instanceof SlackApiError && e.transient) throw e;
      this.ctx.logger.error({ err: (e as Error).message, ref: ref.id }, 'slack: could not replace a lost message');
    }
    await this.store.gone(ref, 'update failed: message no longer available');
  }

  /** Reminders and escalations: a thread reply under each live prompt of the current stage, mentioning who can act. */
  protected async remindApprovers(event: DomainEvent, r: RequestDetail, kind: 'reminder' | 'escalation'): Promise<void> {
    const escalatedTo = r.policy.escalateTo ?? [];
    // an escalation pings the alternates; a reminder everyone who can still act
    const alternates =
      kind === 'escalation' && escalatedTo.length ? new Set((await membersOfGroups(this.ctx.db, escalatedTo)).map((m) => m.id)) : null;
    const people = (await pendingApprovers(this.ctx.db, r)).filter((m) => m.slack_user_id && (!alternates || alternates.has(m.id)));
    const msg = renderReminder(
      r,
      people.map((p) => p.slack_user_id!),
      kind,
      escalatedTo,
    );
    for (const p of await this.stagePrompts(r)) {
      await this.postOnce(event, 'request', r.id, 'reminder', { channel: p.conversation_id }, msg, {
        threadTs: p.message_id,
        stage: r.currentStage,
      });
    }
  }

  /** An escalation's alternates whose channel has no copy of the prompt yet get the prompt itself. */
  protected async postEscalation(event: DomainEvent, r: RequestDetail, requester: IdentityRow | undefined): Promise<void> {
    const have = new Set((await this.stagePrompts(r)).map((p) => p.conversation_id));
    const prompt = renderRequestPrompt({ request: r, requesterSlackId: requester?.slack_user_id ?? null, stage: r.currentStage });
    for (const t of await this.approverTargets('stage', r.policy.escalateTo ?? [], r.requester?.id ?? null, false)) {
      if (t.channel && have.has(t.channel)) continue;
      await this.postOnce(event, 'request', r.id, 'prompt', t, prompt, { stage: r.currentStage });
    }
  }

  private async stagePrompts(r: RequestDetail): Promise<MessageRef[]> {
    return (await this.store.live('request', r.id, ['prompt'])).filter((p) => p.stage === r.currentStage);
  }
}
