import type { AppContext } from '../../app-context.ts';
import { eligibleMembers, pendingApprovers, pendingReviewers } from '../../core/approval-rights.ts';
import { groupsByNames, identityById, membersOfGroups, type IdentityRow } from '../../core/directory.ts';
import { exhaustive, type ChangeEvent, type DomainEvent, type RequestEvent } from '../../core/events.ts';
import type { ChatNotifier } from '../../core/ports.ts';
import type { ChangeView, RequestDetail } from '../../core/views.ts';
import { originOf, personOf, promptTargets, requesterPlan } from '../../notifications/notification-plan.ts';
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
import { liveRefs, markGone, postedFor, recordSent, type Purpose, type SlackRef, type SubjectType } from './slack-refs.ts';

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

export class SlackNotifier implements ChatNotifier {
  readonly platform = 'slack' as const;

  constructor(
    private readonly ctx: AppContext,
    private readonly api: SlackApi,
  ) {}

  async handle(event: DomainEvent): Promise<void> {
    if (event.subjectType === 'request') return this.handleRequest(event);
    if (event.subjectType === 'change') return this.handleChange(event);
  }

  private async handleRequest(event: RequestEvent): Promise<void> {
    const r = await this.ctx.requests.get(event.subjectId);
    const requester = r.requester ? await identityById(this.ctx.db, r.requester.id) : undefined;
    const tellRequester = this.tells(event, requester, originOf(r.history, 'request.submitted'));
    switch (event.type) {
      case 'request.submitted':
        await this.postPrompts(event, r, r.currentStage, r.stages[r.currentStage]?.approverGroups ?? [], requester);
        if (tellRequester) await this.postOnce(event, 'request', r.id, 'requester', requesterTarget(requester!), renderRequesterStatus(r));
        return;
      case 'request.stage_advanced':
        await this.refreshRequest(r, requester);
        await this.postPrompts(event, r, r.currentStage, r.stages[r.currentStage]?.approverGroups ?? [], requester);
        return;
      case 'request.decision_recorded':
        await this.refreshRequest(r, requester);
        return;
      case 'request.reminder':
      case 'request.escalated':
        return this.threadReplies(event, r, requester);
      case 'request.install_ordered':
        if (tellRequester)
          await this.postOnce(event, 'request', r.id, 'notice', requesterTarget(requester!), renderInstallOrdered(r, event.data.reason));
        return;
      case 'request.access_expiring':
        if (tellRequester) await this.postOnce(event, 'request', r.id, 'notice', requesterTarget(requester!), renderAccessExpiring(r));
        return;
      case 'request.review_started':
        return this.postReviewPrompts(event, event.data.reviewId);
      case 'request.review_reminder':
        return this.remindReviewers(event, event.data.reviewId);
      case 'request.review_decided':
        return this.refreshReview(event.data.reviewId);
      case 'request.approved':
      case 'request.denied':
      case 'request.cancelled':
      case 'request.expired':
      case 'request.revoked':
        await this.refreshRequest(r, requester);
        // someone who cancelled their own request already knows
        if (tellRequester) {
          await this.postOnce(event, 'request', r.id, 'outcome', requesterTarget(requester!), renderRequesterOutcome(r));
        }
        return;
      default:
        exhaustive(event);
    }
  }

  private async handleChange(event: ChangeEvent): Promise<void> {
    const c = await this.ctx.changes.get(event.subjectId);
    const requester = c.requester.id ? await identityById(this.ctx.db, c.requester.id) : undefined;
    const tellRequester = this.tells(event, requester, originOf(c.history, 'change.submitted'));
    switch (event.type) {
      case 'change.submitted': {
        const prompt = renderChangePrompt({ change: c, requesterSlackId: requester?.slack_user_id ?? null });
        for (const t of await this.approverTargets('change', c.approverGroups, c.requester.id, false)) {
          await this.postOnce(event, 'change', c.id, 'prompt', t, prompt);
        }
        if (tellRequester)
          await this.postOnce(event, 'change', c.id, 'requester', requesterTarget(requester!), renderChangeRequesterStatus(c));
        return;
      }
      case 'change.approved':
      case 'change.rejected':
      case 'change.cancelled':
        await this.refreshChange(c, requester);
        if (tellRequester) {
          await this.postOnce(event, 'change', c.id, 'outcome', requesterTarget(requester!), renderChangeRequesterStatus(c));
        }
        return;
      default:
        exhaustive(event);
    }
  }

  /** Whether the notification plan tells the requester anything in Slack for this event. */
  private tells(event: DomainEvent, requester: IdentityRow | undefined, origin: string | null): boolean {
    const registered = [...new Set([...this.ctx.notifiers.map((n) => n.platform), this.platform])];
    return Boolean(requesterPlan({ event, requester: requester ? personOf(requester) : null, origin, registered }).slack);
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
  private async postReviewPrompts(event: DomainEvent, reviewId: string): Promise<void> {
    const review = await this.ctx.reviews.get(reviewId);
    // handled late, after it was already answered: a prompt with nothing left to do would only confuse
    if (review.status !== 'pending') return;
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
  private async remindReviewers(event: DomainEvent, reviewId: string): Promise<void> {
    const review = await this.ctx.reviews.get(reviewId);
    if (review.status !== 'pending') return;
    const people = (await pendingReviewers(this.ctx.db, review)).filter((m) => m.slack_user_id);
    const msg = renderReviewReminder(
      review,
      people.map((p) => p.slack_user_id!),
    );
    for (const p of await liveRefs(this.ctx.db, 'review', review.id, ['prompt'])) {
      await this.postOnce(event, 'review', review.id, 'reminder', { channel: p.conversation_id }, msg, { threadTs: p.message_id });
    }
  }

  /** Redraws every copy of a review prompt: the outcome, who and when, no buttons once it is answered. */
  async refreshReview(reviewId: string): Promise<void> {
    const review = await this.ctx.reviews.get(reviewId);
    for (const ref of await liveRefs(this.ctx.db, 'review', review.id, ['prompt'])) {
      await this.updateOrReplace(ref, (replacesLost) => renderReviewPrompt({ review, replacesLost }));
    }
  }

  /**
   * Posts unless this event already posted to this target; the marker is written right after Slack accepts it.
   * @returns false when Slack refused for good (the target cannot be reached), true when posted now or before
   */
  private async postOnce(
    event: DomainEvent,
    subjectType: SubjectType,
    subjectId: string,
    purpose: Purpose,
    target: Target,
    msg: Rendered,
    opts: { stage?: number; threadTs?: string } = {},
  ): Promise<boolean> {
    const key = `${target.channel ?? target.user}${opts.threadTs ? `:${opts.threadTs}` : ''}`;
    if (await postedFor(this.ctx.db, event.id, purpose, key)) return true;
    let channel: string;
    let ts: string;
    try {
      channel = target.channel ?? (await this.api.openDm(target.user!));
      ({ channel, ts } = await this.api.postMessage({ channel, text: msg.text, blocks: msg.blocks, thread_ts: opts.threadTs }));
    } catch (e) {
      if (e instanceof SlackApiError && !e.transient) {
        // a missing channel or a bot not invited will not fix itself by retrying; say so in the logs
        this.ctx.logger.error({ err: e.message, target: key, subjectId, purpose }, 'slack: could not post');
        return false;
      }
      throw e;
    }
    await recordSent(
      this.ctx.db,
      {
        subjectType,
        subjectId,
        purpose,
        stage: opts.stage ?? null,
        channel,
        ts,
        recipientId: target.recipientId ?? null,
        eventId: event.id,
        target: key,
        method: 'chat.postMessage',
      },
      this.ctx.clock.now(),
    );
    return true;
  }

  /** Redraws every copy of a request's prompt and the requester's status message from the current state. */
  async refreshRequest(r: RequestDetail, requester?: IdentityRow): Promise<void> {
    const slackId = requester?.slack_user_id ?? null;
    for (const ref of await liveRefs(this.ctx.db, 'request', r.id, ['prompt', 'requester'])) {
      const render = (replacesLost: boolean) =>
        ref.purpose === 'prompt'
          ? renderRequestPrompt({ request: r, requesterSlackId: slackId, stage: ref.stage ?? r.currentStage, replacesLost })
          : renderRequesterStatus(r);
      await this.updateOrReplace(ref, render);
    }
  }

  async refreshChange(c: ChangeView, requester?: IdentityRow): Promise<void> {
    for (const ref of await liveRefs(this.ctx.db, 'change', c.id, ['prompt', 'requester'])) {
      const render = (replacesLost: boolean) =>
        ref.purpose === 'prompt'
          ? renderChangePrompt({ change: c, requesterSlackId: requester?.slack_user_id ?? null, replacesLost })
          : renderChangeRequesterStatus(c);
      await this.updateOrReplace(ref, render);
    }
  }

  /** chat.update in place; a message that no longer exists is replaced by a fresh one that says so. */
  private async updateOrReplace(ref: SlackRef, render: (replacesLost: boolean) => Rendered): Promise<void> {
    const msg = render(false);
    const now = () => this.ctx.clock.now();
    try {
      await this.api.update({ channel: ref.conversation_id, ts: ref.message_id, text: msg.text, blocks: msg.blocks });
      await recordSent(
        this.ctx.db,
        {
          subjectType: ref.subject_type,
          subjectId: ref.subject_id,
          purpose: ref.purpose,
          stage: ref.stage,
          channel: ref.conversation_id,
          ts: ref.message_id,
          method: 'chat.update',
        },
        now(),
      );
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
      await recordSent(
        this.ctx.db,
        {
          subjectType: ref.subject_type,
          subjectId: ref.subject_id,
          purpose: ref.purpose,
          stage: ref.stage,
          channel: posted.channel,
          ts: posted.ts,
          recipientId: ref.recipient_id,
          method: 'chat.postMessage',
          replaces: ref.message_id,
          eventId: `replace:${ref.id}`,
          target: posted.channel,
        },
        now(),
      );
    } catch (e) {
      if (e instanceof SlackApiError && e.transient) throw e;
      this.ctx.logger.error({ err: (e as Error).message, ref: ref.id }, 'slack: could not replace a lost message');
    }
    await markGone(this.ctx.db, ref.id, 'update failed: message no longer available');
  }

  /** Reminders and escalations: a thread reply under each live prompt of the current stage, mentioning who can act. */
  private async threadReplies(event: DomainEvent, r: RequestDetail, requester: IdentityRow | undefined): Promise<void> {
    if (r.status !== 'pending') return;
    const kind = event.type === 'request.escalated' ? 'escalation' : 'reminder';
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
    const prompts = (await liveRefs(this.ctx.db, 'request', r.id, ['prompt'])).filter((p) => p.stage === r.currentStage);
    for (const p of prompts) {
      await this.postOnce(event, 'request', r.id, 'reminder', { channel: p.conversation_id }, msg, {
        threadTs: p.message_id,
        stage: r.currentStage,
      });
    }
    if (kind === 'escalation') {
      // alternates whose channel has no copy yet get the prompt itself
      const have = new Set(prompts.map((p) => p.conversation_id));
      const prompt = renderRequestPrompt({ request: r, requesterSlackId: requester?.slack_user_id ?? null, stage: r.currentStage });
      for (const t of await this.approverTargets('stage', escalatedTo, r.requester?.id ?? null, false)) {
        if (t.channel && have.has(t.channel)) continue;
        await this.postOnce(event, 'request', r.id, 'prompt', t, prompt, { stage: r.currentStage });
      }
      await this.refreshRequest(r, requester);
    }
  }
}
