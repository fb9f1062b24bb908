import { type DomainEventType, exhaustive } from '../core/events.ts';

/**
 * Who is told what, and where, for one domain event: decided here, once, for every platform. Pure (no database,
 * no network), so the cross-platform rules can be read and tested in one place; the notifiers load the inputs,
 * follow the plan, and keep rendering, posting, message references and per-event dedupe to themselves.
 */

export type Platform = 'slack' | 'teams' | 'email';

/** What a platform knows someone by; null when they have not linked that platform. */
export interface Person {
  id: string;
  slack?: string | null;
  teams?: string | null;
  email?: string | null;
}

export interface PlanInput {
  event: { type: DomainEventType; actor: { id: string | null; channel: string } };
  /** the person the request or change is for; null for machine requests */
  requester: Person | null;
  /** the channel the subject was submitted from (its `*.submitted` history entry): 'slack', 'teams', 'api', ... */
  origin: string | null;
  /** the platforms with a notifier running */
  registered: readonly Platform[];
}

/**
 * How the requester is told on one platform. `status` is their own copy of the card (posted once, updated in
 * place later); `outcome` and `notice` are one-off messages. `where`: `dm` a direct/personal chat, `copy` as a
 * follow-up where they already have their copy (nothing when they have none), `copy-else-dm` the copy or else
 * a personal chat, `mail` an email.
 */
export interface RequesterDelivery {
  purpose: 'status' | 'outcome' | 'notice';
  where: 'dm' | 'copy' | 'copy-else-dm' | 'mail';
}

export type RequesterPlan = Partial<Record<Platform, RequesterDelivery>>;

/** The subject was submitted in a chat platform: that platform answers the requester, the others stay quiet. */
export const originOf = (
  history: { action: string; channel: string }[],
  submitted: 'request.submitted' | 'change.submitted',
): string | null => history.find((h) => h.action === submitted)?.channel ?? null;

const outcomeTypes = new Set<DomainEventType>([
  'request.approved',
  'request.denied',
  'request.cancelled',
  'request.expired',
  'request.revoked',
  'change.approved',
  'change.rejected',
  'change.cancelled',
]);

/**
 * Slack tells a requester with a linked Slack account in a DM, unless they asked in Teams (Teams answers them
 * there). Teams answers on the requester's own card copy, and opens a personal chat only for subjects submitted
 * outside chat (API, email) or for an expiry notice nobody else delivers. Email tells the requester the outcome.
 */
export function requesterPlan(input: PlanInput): RequesterPlan {
  const { event, requester, origin, registered } = input;
  const plan: RequesterPlan = {};
  if (!requester) return plan;
  const type = event.type;
  const selfCaused = event.actor.id === requester.id;
  const outcome = outcomeTypes.has(type);
  const fromChat = origin === 'slack' || origin === 'teams';

  if (registered.includes('slack') && requester.slack && origin !== 'teams') {
    if (type === 'request.submitted' || type === 'change.submitted') plan.slack = { purpose: 'status', where: 'dm' };
    else if (type === 'request.install_ordered' || type === 'request.access_expiring') plan.slack = { purpose: 'notice', where: 'dm' };
    // someone who cancelled their own request already knows
    else if (outcome && !selfCaused) plan.slack = { purpose: 'outcome', where: 'dm' };
  }

  if (registered.includes('teams')) {
    const teams = requester.teams;
    if (type === 'request.submitted' || type === 'change.submitted') {
      // a Teams submitter's form already turned into their copy; a Slack submitter is confirmed in Slack
      if (teams && !fromChat) plan.teams = { purpose: 'status', where: 'dm' };
    } else if (type === 'request.stage_advanced' || type === 'request.install_ordered') {
      plan.teams = { purpose: 'notice', where: 'copy' };
    } else if (type === 'request.access_expiring') {
      // someone Slack already tells is not told twice
      const slackTells = Boolean(requester.slack) && registered.includes('slack');
      plan.teams = { purpose: 'notice', where: teams && !slackTells ? 'copy-else-dm' : 'copy' };
    } else if (outcome && !(selfCaused && (type === 'request.cancelled' || type === 'change.cancelled'))) {
      plan.teams = { purpose: 'outcome', where: 'copy' };
    }
  }

  if (registered.includes('email') && requester.email && type.startsWith('request.') && outcome) {
    plan.email = { purpose: 'outcome', where: 'mail' };
  }
  return plan;
}

/** What an event does to approver-facing messages: post a stage's prompts, reply under them, redraw copies. */
export interface PromptPlan {
  /** post the prompt of the current stage ('escalation': also to the escalation groups), a review's, or a change's */
  post: 'stage' | 'escalation' | 'review' | 'change' | null;
  /** a thread reply under each live prompt, mentioning who can still act */
  reply: 'reminder' | 'escalation' | 'review_reminder' | null;
  /** redraw every copy from the current state */
  update: 'subject' | 'review' | null;
}

export function promptPlan(type: DomainEventType): PromptPlan {
  switch (type) {
    case 'request.submitted':
      return { post: 'stage', reply: null, update: 'subject' };
    case 'request.stage_advanced':
      return { post: 'stage', reply: null, update: 'subject' };
    case 'request.reminder':
      return { post: null, reply: 'reminder', update: null };
    case 'request.escalated':
      return { post: 'escalation', reply: 'escalation', update: 'subject' };
    case 'request.review_started':
      return { post: 'review', reply: null, update: null };
    case 'request.review_reminder':
      return { post: null, reply: 'review_reminder', update: null };
    case 'request.review_decided':
      return { post: null, reply: null, update: 'review' };
    case 'change.submitted':
      return { post: 'change', reply: null, update: 'subject' };
    case 'request.access_expiring':
    case 'audit.checkpoint':
      return { post: null, reply: null, update: null };
    case 'request.decision_recorded':
    case 'request.approved':
    case 'request.denied':
    case 'request.cancelled':
    case 'request.expired':
    case 'request.revoked':
    case 'request.install_ordered':
    case 'change.approved':
    case 'change.rejected':
    case 'change.cancelled':
      return { post: null, reply: null, update: 'subject' };
    default:
      // a new event type must say here what it does to prompts
      exhaustive(type);
      return { post: null, reply: null, update: null };
  }
}

export interface PromptTargetInput {
  /** the platform's channels of the groups being asked (duplicates allowed) */
  channels: string[];
  /** the people who could act, each with their id on this platform */
  people: { id: string; address: string | null }[];
  /** the stage asks for direct messages to approvers as well */
  direct: boolean;
}

export interface PromptTargets {
  channels: string[];
  /** people to prompt in a direct/personal chat */
  direct: { id: string; address: string }[];
}

/**
 * Where a prompt goes on a chat platform: every group channel, plus direct messages when the stage asks for them.
 * Slack also falls back to direct messages when no group has a channel (any prompt); Teams does so for reviews only
 * (a change or stage with no Teams channel is left to the other platforms).
 */
export function promptTargets(platform: 'slack' | 'teams', kind: 'stage' | 'review' | 'change', input: PromptTargetInput): PromptTargets {
  const channels = [...new Set(input.channels.filter(Boolean))];
  const noChannel = channels.length === 0;
  const dm = platform === 'slack' ? input.direct || noChannel : kind === 'review' ? noChannel : kind === 'stage' && input.direct;
  const direct = dm ? input.people.filter((p): p is { id: string; address: string } => Boolean(p.address)) : [];
  return { channels, direct };
}

/** A directory identity as the plan sees it. */
export const personOf = (row: { id: string; slack_user_id: string | null; teams_aad_id: string | null; email: string | null }): Person => ({
  id: row.id,
  slack: row.slack_user_id,
  teams: row.teams_aad_id,
  email: row.email,
});
