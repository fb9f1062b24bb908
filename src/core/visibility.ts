import type { Queryable } from '../db/database.ts';
import { everyApproverGroup, reviewerGroups } from './approval-rights.ts';
import { groupNamesOf, isAdminIdentity } from './directory.ts';
import type { ReviewView } from './review-queries.ts';
import type { ChangeDetail, RequestDetail } from './views.ts';

/**
 * Who may see an item, in any channel (the web app, a Teams card refreshed or opened from a crafted invoke): a
 * request its requester, members of any approver, escalation or reviewer group of its policy, and admins; a change
 * its author, its approver groups and admins; a review its reviewers, the person whose access it is, and admins.
 * Deciding is another matter (the services check it); this keeps details from everyone else.
 */
export interface Visibility {
  allowed: boolean;
  /** a member of the groups that decide it */
  approver: boolean;
}

async function seenBy(
  db: Queryable,
  identityId: string,
  isAdmin: boolean | undefined,
  owner: string | null | undefined,
  deciders: string[],
  others: string[] = [],
): Promise<Visibility> {
  const mine = await groupNamesOf(db, identityId);
  const approver = deciders.some((g) => mine.includes(g));
  const allowed =
    owner === identityId || approver || others.some((g) => mine.includes(g)) || (isAdmin ?? (await isAdminIdentity(db, identityId)));
  return { allowed, approver };
}

export const requestVisibility = (db: Queryable, identityId: string, request: RequestDetail, isAdmin?: boolean) =>
  seenBy(db, identityId, isAdmin, request.requester?.id, everyApproverGroup(request.policy), reviewerGroups(request.policy));

export const changeVisibility = (db: Queryable, identityId: string, change: ChangeDetail, isAdmin?: boolean) =>
  seenBy(db, identityId, isAdmin, change.requester.id, change.approverGroups);

export const reviewVisibility = (db: Queryable, identityId: string, review: ReviewView, isAdmin?: boolean) =>
  seenBy(db, identityId, isAdmin, review.requester?.id, review.reviewerGroups);
