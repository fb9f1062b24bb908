import type { AppContext } from '../app-context.ts';
import { identityById, type IdentityRow } from '../core/directory.ts';
import type { ChangeEvent, DomainEvent, RequestEvent } from '../core/events.ts';
import type { ChatNotifier } from '../core/ports.ts';
import type { ReviewView } from '../core/review-queries.ts';
import type { ChangeView, RequestDetail } from '../core/views.ts';
import { MessageStore, notifierActor } from './message-store.ts';
import { originOf, personOf, type Platform, promptPlan, type RequesterDelivery, requesterPlan } from './notification-plan.ts';

/** The requester, and how the plan says they are told on this platform. */
export type RequesterTold = RequesterDelivery & { requester: IdentityRow };

export type Told = { kind: 'request'; request: RequestDetail } | { kind: 'change'; change: ChangeView };

/**
 * Follows the notification plans for one platform, the same way for all of them (what Teleport's access plugins call
 * the base app): it loads the subject, asks `promptPlan` and `requesterPlan` what the event means, and calls the
 * platform's steps in one order: redraw copies, reply under prompts, post new prompts, tell the requester. A platform
 * only says how each step is done on it (render, post, update, reply) through its message store, never whether.
 */
export abstract class PlannedNotifier implements ChatNotifier {
  protected readonly store: MessageStore;

  constructor(
    protected readonly ctx: AppContext,
    readonly platform: Platform,
  ) {
    this.store = new MessageStore(ctx.db, platform, notifierActor(platform), ctx.clock);
  }

  async handle(event: DomainEvent): Promise<void> {
    if (event.subjectType === 'request') return this.followRequest(event);
    if (event.subjectType === 'change') return this.followChange(event);
  }

  /** Redraws every copy of a request (prompts, the requester's own) from its current state. */
  protected abstract redrawRequest(event: RequestEvent, r: RequestDetail, requester: IdentityRow | undefined): Promise<void>;
  protected abstract redrawChange(event: ChangeEvent, c: ChangeView, requester: IdentityRow | undefined): Promise<void>;
  protected abstract redrawReview(reviewId: string): Promise<void>;
  /** The current stage's prompts, where `promptTargets` says. */
  protected abstract postStage(event: RequestEvent, r: RequestDetail, requester: IdentityRow | undefined): Promise<void>;
  /** An escalation: the prompt for those it escalates to, where they have none yet. */
  protected abstract postEscalation(event: RequestEvent, r: RequestDetail, requester: IdentityRow | undefined): Promise<void>;
  protected abstract postChange(event: ChangeEvent, c: ChangeView, requester: IdentityRow | undefined): Promise<void>;
  protected abstract postReview(event: RequestEvent, review: ReviewView): Promise<void>;
  /** A reminder or escalation under each live prompt of the current stage, mentioning who can still act. */
  protected abstract remindApprovers(event: RequestEvent, r: RequestDetail, kind: 'reminder' | 'escalation'): Promise<void>;
  protected abstract remindReviewers(event: RequestEvent, review: ReviewView): Promise<void>;
  protected abstract tellRequester(event: DomainEvent, subject: Told, told: RequesterTold): Promise<void>;

  private async followRequest(event: RequestEvent): Promise<void> {
    const plan = promptPlan(event.type);
    if (plan.post === 'review' || plan.reply === 'review_reminder' || plan.update === 'review') {
      const { reviewId } = event.data as { reviewId: string };
      if (plan.update === 'review') return this.redrawReview(reviewId);
      const review = await this.ctx.reviews.get(reviewId);
      // handled late, after it was answered: a question or reminder with nothing left to do would only confuse
      if (review.status !== 'pending') return;
      return plan.post === 'review' ? this.postReview(event, review) : this.remindReviewers(event, review);
    }
    const r = await this.ctx.requests.get(event.subjectId);
    const requester = r.requester ? await identityById(this.ctx.db, r.requester.id) : undefined;
    if (plan.update === 'subject') await this.redrawRequest(event, r, requester);
    if (r.status === 'pending') {
      if (plan.reply === 'reminder' || plan.reply === 'escalation') await this.remindApprovers(event, r, plan.reply);
      if (plan.post === 'escalation') await this.postEscalation(event, r, requester);
    }
    if (plan.post === 'stage') await this.postStage(event, r, requester);
    const told = this.told(event, requester, originOf(r.history, 'request.submitted'));
    if (told) await this.tellRequester(event, { kind: 'request', request: r }, told);
  }

  private async followChange(event: ChangeEvent): Promise<void> {
    const plan = promptPlan(event.type);
    const c = await this.ctx.changes.get(event.subjectId);
    const requester = c.requester.id ? await identityById(this.ctx.db, c.requester.id) : undefined;
    if (plan.update === 'subject') await this.redrawChange(event, c, requester);
    if (plan.post === 'change') await this.postChange(event, c, requester);
    const told = this.told(event, requester, originOf(c.history, 'change.submitted'));
    if (told) await this.tellRequester(event, { kind: 'change', change: c }, told);
  }

  private told(event: DomainEvent, requester: IdentityRow | undefined, origin: string | null): RequesterTold | undefined {
    if (!requester) return undefined;
    const registered = [...new Set([...this.ctx.notifiers.map((n) => n.platform), this.platform])];
    const plan = requesterPlan({ event, requester: personOf(requester), origin, registered })[this.platform];
    return plan && { ...plan, requester };
  }
}
