import type { Queryable } from '../db/database.ts';
import type { Actor } from './audit-log.ts';
import { groupNamesOf, membersOfGroups, requireIdentity, type IdentityRow } from './directory.ts';
import { AppError } from './errors.ts';
import type { PolicyDefinition } from './policy-schema.ts';
import type { ReviewView } from './review-queries.ts';
import type { ChangeView, RequestDetail } from './views.ts';

/**
 * Who may decide what, computed once for every channel (chat, email links, REST, CLI, web). There is no exception
 * for trusted callers: every approve, deny, revoke, reapprove, change decision and review answer is made by a
 * directory identity the policy names.
 */

/** Every group that may decide some stage of a policy, escalation groups included. */
export const everyApproverGroup = (policy: PolicyDefinition): string[] => [
  ...new Set([...policy.stages.flatMap((st) => st.approvers), ...(policy.escalateTo ?? [])]),
];

/** The groups deciding a stage now: its approvers, plus the escalation groups once the request was escalated. */
export const stageApproverGroups = (policy: PolicyDefinition, stage: number, escalated: boolean): string[] => [
  ...new Set([...(policy.stages[stage]?.approvers ?? []), ...(escalated ? (policy.escalateTo ?? []) : [])]),
];

/** Who reviews: the policy's reviewers, or when it names none the approvers of its last stage. */
export const reviewerGroups = (policy: PolicyDefinition): string[] =>
  policy.reviewers?.length ? [...new Set(policy.reviewers)] : [...new Set(policy.stages.at(-1)?.approvers ?? [])];

/** Who answers one review: the groups fixed when it opened, else (older rows) the policy's reviewers. */
export const reviewGroups = (review: { reviewer_groups: string[] | null }, policy: PolicyDefinition): string[] =>
  review.reviewer_groups?.length ? review.reviewer_groups : reviewerGroups(policy);

/** Members of the groups who could act, the person the decision is about left out. */
export async function eligibleMembers(db: Queryable, groups: string[], excludeId: string | null): Promise<IdentityRow[]> {
  return (await membersOfGroups(db, groups)).filter((m) => m.id !== excludeId);
}

export type DeciderField = 'approver' | 'reviewer';

/**
 * The person making a decision. Chat users, email-link approvers, web users, the CLI's `--as` and keys bound to a
 * person already are one; a trusted key (not bound) must name them with `approver`/`reviewer`, and is then
 * recorded with the person: `Ada Admin (api:cm-connector)`.
 */
export async function resolveDecider(
  db: Queryable,
  actor: Actor,
  username: string | undefined,
  field: DeciderField,
): Promise<Actor & { id: string }> {
  if (actor.id) {
    if (username) {
      const named = await requireIdentity(db, { username }, field);
      if (named.id !== actor.id) {
        throw new AppError('forbidden', `This API key is bound to one person and acts only as them; it cannot act for ${named.username}.`, {
          field,
        });
      }
    }
    return actor as Actor & { id: string };
  }
  if (actor.channel === 'slack' || actor.channel === 'teams' || actor.channel === 'email') {
    throw new AppError('identity_not_linked', 'Link your chat account to a directory identity before deciding.');
  }
  if (!username) {
    throw new AppError(
      'approver_required',
      field === 'reviewer'
        ? 'Name the person answering this review: send `reviewer` with the username of an eligible reviewer, or use an API key bound to a person (apikey create --identity).'
        : 'Name the person deciding: send `approver` with the username of an eligible approver, or use an API key bound to a person (apikey create --identity).',
      { field },
    );
  }
  const who = await requireIdentity(db, { username }, field);
  return { id: who.id, label: actor.channel === 'api' ? `${who.display_name} (${actor.label})` : who.display_name, channel: actor.channel };
}

/** Refuses the subject of a decision and anyone outside the groups; `what` words the refusal. */
export async function requireMember(
  db: Queryable,
  actor: Actor & { id: string },
  groups: string[],
  opts: {
    subjectId: string | null;
    selfMessage: string;
    what: string;
    code?: 'not_an_approver';
    detailsKey?: string;
    /** the actor's group names when the caller has read them already */
    actorGroups?: string[];
  },
): Promise<void> {
  if (opts.subjectId && actor.id === opts.subjectId) throw new AppError('self_approval', opts.selfMessage);
  const mine = opts.actorGroups ?? (await groupNamesOf(db, actor.id));
  if (!groups.some((g) => mine.includes(g))) {
    throw new AppError('not_an_approver', `Only members of ${groups.join(', ') || '(no group)'} can ${opts.what}.`, {
      [opts.detailsKey ?? 'approverGroups']: groups,
    });
  }
}

/** Reviewer rights: a member of the review's groups, never the person whose access it is. */
export function requireReviewer(
  db: Queryable,
  reviewer: Actor & { id: string },
  requesterId: string | null,
  groups: string[],
): Promise<void> {
  return requireMember(db, reviewer, groups, {
    subjectId: requesterId,
    selfMessage: 'You cannot review your own access.',
    what: 'review this access',
    detailsKey: 'reviewerGroups',
  });
}

/**
 * Who may still decide a request's current stage: members of its groups (escalation groups included once escalated;
 * the view's stage already lists them), never the requester, not those who already voted on this stage.
 */
export async function pendingApprovers(db: Queryable, r: RequestDetail): Promise<IdentityRow[]> {
  if (r.status !== 'pending') return [];
  const stage = r.stages[r.currentStage];
  if (!stage) return [];
  const voted = new Set(stage.decisions.map((d) => d.approver.id));
  return (await eligibleMembers(db, stage.approverGroups, r.requester?.id ?? null)).filter((m) => !voted.has(m.id));
}

/** Who may still decide a change: members of its approver groups, never its author. */
export async function pendingChangeApprovers(db: Queryable, c: ChangeView): Promise<IdentityRow[]> {
  if (c.status !== 'pending') return [];
  return eligibleMembers(db, c.approverGroups, c.requester.id);
}

/** Who may still answer a review: members of its reviewer groups, never the person whose access it is. */
export async function pendingReviewers(db: Queryable, v: ReviewView): Promise<IdentityRow[]> {
  if (v.status !== 'pending') return [];
  return eligibleMembers(db, v.reviewerGroups, v.requester?.id ?? null);
}
