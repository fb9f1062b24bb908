import type { AdaptiveCardInvokeResponse, AdaptiveCardInvokeValue, TurnContext } from 'botbuilder';
import type { AppContext } from '../../app-context.ts';
import type { Actor } from '../../core/audit-log.ts';
import { identityByTeamsId, type IdentityRow } from '../../core/directory.ts';
import { AppError, toAppError } from '../../core/errors.ts';
import { isUuid } from '../../core/request-queries.ts';
import type { ReviewView } from '../../core/review-queries.ts';
import type { ChangeDetail, RequestDetail } from '../../core/views.ts';
import { changeVisibility, requestVisibility, reviewVisibility } from '../../core/visibility.ts';
import { MessageStore, notifierActor } from '../../notifications/message-store.ts';
import { notLinkedText, submittedBanner, type AdaptiveCard, type Banner } from './teams-cards.ts';
import { changeForm, myRequests, requestForm, appPicker, submitChangeFromCard, submitRequestFromCard } from './teams-forms.ts';
import { postedIn } from './teams-store.ts';
import type { TeamsViews, Viewer } from './teams-views.ts';

/**
 * Answers `adaptiveCard/action` invokes (Universal Actions, Action.Execute) inline with the card the clicker
 * should see next. Errors a person can act on come back on the card as a banner; malformed invokes get the
 * Bot Framework error body. All within one database transaction per action, far below Teams' 10 s limit.
 */
export const cardResponse = (card: AdaptiveCard): AdaptiveCardInvokeResponse => ({
  statusCode: 200,
  type: 'application/vnd.microsoft.card.adaptive',
  value: card as never,
});

export const errorResponse = (statusCode: number, code: string, message: string): AdaptiveCardInvokeResponse => ({
  statusCode,
  type: 'application/vnd.microsoft.error',
  value: { code, message } as never,
});

const errorCodeFor = (status: number) =>
  status === 400
    ? 'BadRequest'
    : status === 401
      ? 'Unauthorized'
      : status === 403
        ? 'Forbidden'
        : status === 404
          ? 'NotFound'
          : status === 409
            ? 'Conflict'
            : status === 429
              ? 'TooManyRequests'
              : 'InternalServerError';

/** The one place an AppError becomes what a Teams user sees: a banner on the item's card, or an error body. */
export function bannerFor(e: AppError): Banner {
  switch (e.code) {
    case 'already_decided':
    case 'precondition_failed':
      return { text: e.message, tone: 'info' };
    case 'self_approval':
    case 'not_an_approver':
    case 'forbidden':
    case 'identity_not_linked':
    case 'invalid_transition':
    case 'already_approved':
    case 'validation_failed':
      return { text: e.message, tone: 'error' };
    default:
      return { text: e.message, tone: 'error' };
  }
}

export function appErrorResponse(e: AppError): AdaptiveCardInvokeResponse {
  return errorResponse(Math.min(e.status, 500), errorCodeFor(e.status), e.message);
}

export const TEAMS_UNAVAILABLE_TEXT = 'Signoff cannot reach its database right now, so it could not do that. Please try again in a minute.';

type Data = Record<string, unknown>;
const str = (v: unknown) => (typeof v === 'string' ? v : undefined);

/** The stage a card names (a number as cards send it, or text from older ones); undefined when it names none. */
const cardStage = (data: Data): number | undefined =>
  data.stage === undefined || data.stage === null || data.stage === '' ? undefined : Number(data.stage);

export class TeamsInvokeHandler {
  constructor(
    private readonly ctx: AppContext,
    private readonly views: TeamsViews,
  ) {}

  async handle(turn: TurnContext, value: AdaptiveCardInvokeValue): Promise<AdaptiveCardInvokeResponse> {
    const verb = value.action?.verb ?? '';
    const data = (value.action?.data ?? {}) as Data;
    const aad = turn.activity.from?.aadObjectId;
    try {
      const identity = aad ? await identityByTeamsId(this.ctx.db, aad) : undefined;
      return await this.dispatch(turn, verb, data, identity);
    } catch (e) {
      const err = toAppError(e);
      if (err.code === 'internal') this.ctx.logger.error({ err: e, verb }, 'teams: invoke failed');
      if (err.code === 'dependency_unavailable') {
        this.ctx.logger.warn({ err: (e as Error)?.message, verb }, 'teams: invoke refused, database unavailable');
        return errorResponse(503, 'ServiceUnavailable', TEAMS_UNAVAILABLE_TEXT);
      }
      return appErrorResponse(err);
    }
  }

  private actorOf(identity: IdentityRow | undefined, aadObjectId?: string): Actor {
    if (!identity) throw new AppError('identity_not_linked', notLinkedText(aadObjectId));
    return { id: identity.id, label: identity.display_name, channel: 'teams' };
  }

  private async dispatch(
    turn: TurnContext,
    verb: string,
    data: Data,
    identity: IdentityRow | undefined,
  ): Promise<AdaptiveCardInvokeResponse> {
    switch (verb) {
      case 'refresh':
      case 'open':
      case 'approve':
      case 'deny':
      case 'cancel':
      case 'installNow':
      case 'revoke':
      case 'reapprove':
      case 'reviewKeep':
      case 'reviewRemove':
        return this.onItem(turn, verb, data, identity);
      case 'startRequest':
        return cardResponse(await appPicker(this.ctx, this.actorOf(identity, turn.activity.from?.aadObjectId)));
      case 'chooseApp': {
        const appId = str(data.applicationId);
        if (!appId)
          return cardResponse(
            await appPicker(this.ctx, this.actorOf(identity, turn.activity.from?.aadObjectId), 'Choose an application first.'),
          );
        return cardResponse(await requestForm(this.ctx, this.actorOf(identity, turn.activity.from?.aadObjectId), appId));
      }
      case 'submitRequest': {
        const result = await submitRequestFromCard(this.ctx, this.actorOf(identity, turn.activity.from?.aadObjectId), data);
        if ('form' in result) return cardResponse(result.form);
        await this.recordRequesterCopy(turn, 'request', result.id, identity!);
        return cardResponse(await this.views.requestCardFor(result.id, { kind: 'identity', identity }, submittedBanner.request));
      }
      case 'myRequests':
        return cardResponse(await myRequests(this.ctx, this.actorOf(identity, turn.activity.from?.aadObjectId)));
      case 'startChange':
        return cardResponse(await changeForm(this.ctx, {}));
      case 'submitChange': {
        const result = await submitChangeFromCard(this.ctx, this.actorOf(identity, turn.activity.from?.aadObjectId), data);
        if ('form' in result) return cardResponse(result.form);
        await this.recordRequesterCopy(turn, 'change', result.id, identity!);
        return cardResponse(await this.views.changeCardFor(result.id, { kind: 'identity', identity }, submittedBanner.change));
      }
      default:
        return errorResponse(400, 'BadRequest', `Unknown action "${verb}". The card may be from an older version of Signoff.`);
    }
  }

  /** Acts on a request or change and answers with the clicker's own, fresh view of it. */
  private async onItem(
    turn: TurnContext,
    verb: string,
    data: Data,
    identity: IdentityRow | undefined,
  ): Promise<AdaptiveCardInvokeResponse> {
    const kind = data.kind === 'change' ? 'change' : data.kind === 'request' ? 'request' : data.kind === 'review' ? 'review' : undefined;
    const id = str(data.id);
    if (!kind || !id || !isUuid(id)) return errorResponse(400, 'BadRequest', 'This card does not name a request, change or review.');
    // Keep / Remove answer reviews only, and a review has nothing to approve, deny, cancel or install
    const reviewVerb = verb === 'reviewKeep' || verb === 'reviewRemove';
    if (verb !== 'refresh' && verb !== 'open' && reviewVerb !== (kind === 'review')) {
      return errorResponse(400, 'BadRequest', `"${verb}" does not apply to a ${kind}.`);
    }
    if ((verb === 'revoke' || verb === 'reapprove') && kind !== 'request')
      return errorResponse(400, 'BadRequest', `"${verb}" applies to requests only.`);
    const viewer: Viewer = { kind: 'identity', identity };
    // a card's stage pins a decision to that prompt: one that names no stage there is refused, never read as "any"
    const stage = cardStage(data);
    if (stage !== undefined && !(Number.isInteger(stage) && stage >= 0 && stage < 3)) {
      return errorResponse(400, 'BadRequest', 'This card names no approval stage (1 to 3); open the request again.');
    }
    // a missing item, or one the clicker may not see, is an error body: the web's rule, unless a copy of the card was
    // posted in this conversation, whose members see it anyway (they get it read-only). A crafted invoke in one's own
    // chat reads nothing. Everything after this is shown on the card itself
    const item = await (kind === 'request'
      ? this.ctx.requests.get(id)
      : kind === 'review'
        ? this.ctx.reviews.get(id)
        : this.ctx.changes.get(id));
    const visible =
      identity &&
      (kind === 'request'
        ? await requestVisibility(this.ctx.db, identity.id, item as RequestDetail)
        : kind === 'review'
          ? await reviewVisibility(this.ctx.db, identity.id, item as ReviewView)
          : await changeVisibility(this.ctx.db, identity.id, item as ChangeDetail)
      ).allowed;
    if (!visible && !(await postedIn(this.ctx.db, kind, id, turn.activity.conversation?.id))) {
      if (!identity) return errorResponse(403, 'Forbidden', notLinkedText(turn.activity.from?.aadObjectId));
      return errorResponse(404, 'NotFound', `No ${kind} with id "${id}" that you can open.`);
    }
    if (verb === 'refresh' || verb === 'open') return cardResponse(await this.views.cardFor(kind, id, viewer));
    let banner: Banner;
    const reversal = kind === 'request' && (verb === 'revoke' || verb === 'reapprove') ? verb : undefined;
    try {
      banner = await this.act(kind, verb, id, data, this.actorOf(identity, turn.activity.from?.aadObjectId));
    } catch (e) {
      const err = toAppError(e);
      if (err.code === 'internal' || err.code === 'dependency_unavailable') throw e;
      banner = bannerFor(err);
      // a refused revoke or reapproval keeps its form when it could still be made (a reason was missing)
      if (reversal && err.code === 'validation_failed') return cardResponse(await this.views.requestCardFor(id, viewer, banner, reversal));
    }
    return cardResponse(await this.views.cardFor(kind, id, viewer, banner));
  }

  private async act(kind: 'request' | 'change' | 'review', verb: string, id: string, data: Data, actor: Actor): Promise<Banner> {
    const reason = str(data.reason)?.trim() || str(data.notes)?.trim() || null;
    if (kind === 'review') {
      if (verb === 'reviewKeep') {
        await this.ctx.reviews.decide(actor, id, 'keep', reason);
        return { text: 'You kept this access; nothing changes for the user.', tone: 'success' };
      }
      // refused before anything is decided, so a reviewer can still keep it or type a reason
      await this.ctx.reviews.checkReviewer(actor, id);
      if (!reason) throw new AppError('validation_failed', 'Say why the access is no longer needed (Reason) before removing it.');
      await this.ctx.reviews.decide(actor, id, 'remove', reason);
      return { text: 'You removed this access; it is revoked and the application will be uninstalled.', tone: 'success' };
    }
    if (kind === 'request') {
      if (verb === 'approve' || verb === 'deny') {
        // the card's stage (checked in onItem) pins the decision to that prompt (cards from before it carried one:
        // the stage pending now)
        const stage = cardStage(data);
        const { outcome, request } = await this.ctx.requests.decide(actor, id, verb, reason, { stage, denyNeedsReason: true });
        const messages: Record<string, string> = {
          recorded: 'Your approval is recorded; more approvals are needed for this stage.',
          stage_approved: `You approved stage ${stage !== undefined ? stage + 1 : request.currentStage}; the next stage's approvers have been asked.`,
          approved: 'You approved this request.',
          denied: 'You denied this request.',
        };
        return { text: verb === 'deny' && outcome === 'recorded' ? 'Your decision is recorded.' : messages[outcome]!, tone: 'success' };
      }
      if (verb === 'revoke' || verb === 'reapprove') {
        // bound to the version the form showed: anything decided since is told, never overridden
        const version = Number(data.version);
        const opts = { expectedVersion: Number.isInteger(version) && version > 0 ? version : undefined };
        if (verb === 'revoke') {
          await this.ctx.requests.revoke(actor, id, reason, opts);
          return { text: 'You revoked this approval; the application will be uninstalled if it was installed.', tone: 'success' };
        }
        await this.ctx.requests.reapprove(actor, id, reason, opts);
        return { text: 'You approved this request after all; the install is ordered.', tone: 'success' };
      }
      if (verb === 'cancel') {
        await this.ctx.requests.cancel(actor, id, reason);
        return { text: 'You cancelled this request.', tone: 'success' };
      }
      await this.ctx.requests.installNow(actor, id);
      return { text: 'Install ordered; it usually starts within a few minutes.', tone: 'success' };
    }
    if (verb === 'approve') {
      await this.ctx.changes.approve(actor, id, reason);
      return { text: 'You approved this change; it is being applied.', tone: 'success' };
    }
    if (verb === 'deny') {
      await this.ctx.changes.reject(actor, id, reason, { notesRequired: true });
      return { text: 'You rejected this change.', tone: 'success' };
    }
    if (verb === 'cancel') {
      await this.ctx.changes.cancel(actor, id, reason);
      return { text: 'You cancelled this change.', tone: 'success' };
    }
    throw new AppError('invalid_transition', 'Changes cannot be installed.');
  }

  /** The form card the requester submitted from becomes their copy; the notifier updates it as the request moves on. */
  private async recordRequesterCopy(turn: TurnContext, kind: 'request' | 'change', id: string, identity: IdentityRow): Promise<void> {
    const messageId = turn.activity.replyToId;
    const conversationId = turn.activity.conversation?.id;
    if (!messageId || !conversationId) return;
    // the invoke answer already drew it: recorded to be updated later, not audited as a message sent
    await new MessageStore(this.ctx.db, 'teams', notifierActor('teams'), this.ctx.clock).record(
      {
        subjectType: kind,
        subjectId: id,
        purpose: 'requester',
        conversationId,
        messageId,
        recipientId: identity.id,
        data: { view: 'requester', serviceUrl: turn.activity.serviceUrl },
      },
      { key: 'requester', audit: false },
    );
  }
}
