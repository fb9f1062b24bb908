import type { AppContext } from '../../app-context.ts';
import { pendingApprovers, pendingChangeApprovers, pendingReviewers } from '../../core/approval-rights.ts';
import { identityById, type IdentityRow } from '../../core/directory.ts';
import type { ReviewView } from '../../core/review-queries.ts';
import type { ChangeView, RequestDetail } from '../../core/views.ts';
import { changeCard, requestCard, reviewCard, type AdaptiveCard, type Banner } from './teams-cards.ts';
import { refreshIdsFor } from './teams-store.ts';

/** Whose card: the shared copy in a channel (`base`), or one person's own view. */
export type Viewer = { kind: 'base' } | { kind: 'identity'; identity: IdentityRow | undefined };

/**
 * Decides, from the database, what one viewer may do with a request or change, and renders that card.
 * Used for the cards the bot posts, for Universal Actions refreshes and for invoke answers, so every
 * path shows the same thing to the same person. Who may act comes from core/approval-rights.ts.
 */
export class TeamsViews {
  constructor(private readonly ctx: AppContext) {}

  async requestCardFor(
    idOrDetail: string | RequestDetail,
    viewer: Viewer,
    banner?: Banner,
    reversal?: 'revoke' | 'reapprove',
  ): Promise<AdaptiveCard> {
    const r = typeof idOrDetail === 'string' ? await this.ctx.requests.get(idOrDetail) : idOrDetail;
    const approvers = await pendingApprovers(this.ctx.db, r);
    const requester = r.requester ? await identityById(this.ctx.db, r.requester.id) : undefined;
    const me = viewer.kind === 'identity' ? viewer.identity : undefined;
    const isRequester = Boolean(me && r.requester && me.id === r.requester.id);
    const can = {
      decide: Boolean(me && approvers.some((a) => a.id === me.id)),
      cancel: isRequester,
      installNow: isRequester && r.status === 'approved' && !r.installOrderedAt,
    };
    const refreshUserIds =
      r.status === 'pending' || can.installNow ? await this.refreshIds([...approvers, ...(requester ? [requester] : [])]) : [];
    return requestCard({ request: r, can, refreshUserIds, banner, reversal });
  }

  async changeCardFor(idOrView: string | ChangeView, viewer: Viewer, banner?: Banner): Promise<AdaptiveCard> {
    const c = typeof idOrView === 'string' ? await this.ctx.changes.get(idOrView) : idOrView;
    const approvers = await pendingChangeApprovers(this.ctx.db, c);
    const me = viewer.kind === 'identity' ? viewer.identity : undefined;
    const isRequester = Boolean(me && c.requester.id && me.id === c.requester.id);
    const can = { decide: Boolean(me && approvers.some((a) => a.id === me.id)), cancel: isRequester };
    const requester = c.requester.id ? await identityById(this.ctx.db, c.requester.id) : undefined;
    const refreshUserIds = c.status === 'pending' ? await this.refreshIds([...approvers, ...(requester ? [requester] : [])]) : [];
    return changeCard({ change: c, can, refreshUserIds, banner });
  }

  /** Reviewers see Keep / Remove; everyone else (the requester included) a read-only card. */
  async reviewCardFor(idOrView: string | ReviewView, viewer: Viewer, banner?: Banner): Promise<AdaptiveCard> {
    const v = typeof idOrView === 'string' ? await this.ctx.reviews.get(idOrView) : idOrView;
    const reviewers = await pendingReviewers(this.ctx.db, v);
    const me = viewer.kind === 'identity' ? viewer.identity : undefined;
    const can = { decide: Boolean(me && reviewers.some((r) => r.id === me.id)) };
    const refreshUserIds = await this.refreshIds(reviewers);
    return reviewCard({ review: v, can, refreshUserIds, banner });
  }

  /** Who gets an automatic refresh into their own view: linked Teams users, by their Teams user id when known. */
  private refreshIds(people: IdentityRow[]): Promise<string[]> {
    return refreshIdsFor(
      this.ctx.db,
      people.map((i) => i.teams_aad_id).filter((x): x is string => Boolean(x)),
    );
  }

  cardFor(kind: 'request' | 'change' | 'review', id: string, viewer: Viewer, banner?: Banner): Promise<AdaptiveCard> {
    if (kind === 'review') return this.reviewCardFor(id, viewer, banner);
    return kind === 'request' ? this.requestCardFor(id, viewer, banner) : this.changeCardFor(id, viewer, banner);
  }
}
