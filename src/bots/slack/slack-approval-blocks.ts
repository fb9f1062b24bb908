import type { ReviewView } from '../../core/review-queries.ts';
import type { ChangeView, RequestDetail } from '../../core/views.ts';
import type { Blocks } from './slack-api.ts';
import {
  button,
  clip,
  context,
  esc,
  fields,
  formatAnswer,
  header,
  jsonInline,
  mention,
  plainDates,
  quote,
  section,
  slackDate,
} from './slack-format.ts';
import { ACTION, promptValue } from './slack-ids.ts';

/** Pure Block Kit renderers: approval prompts, their decided state, change prompts and requester DMs. */
export interface Rendered {
  text: string;
  blocks: Blocks;
}

const outcome: Record<string, { icon: string; verb: string }> = {
  approved: { icon: ':white_check_mark:', verb: 'Approved' },
  denied: { icon: ':no_entry:', verb: 'Denied' },
  rejected: { icon: ':no_entry:', verb: 'Rejected' },
  cancelled: { icon: ':no_entry_sign:', verb: 'Cancelled' },
  expired: { icon: ':hourglass:', verb: 'Expired' },
  revoked: { icon: ':leftwards_arrow_with_hook:', verb: 'Revoked' },
  pending: { icon: ':hourglass_flowing_sand:', verb: 'Pending' },
};

export const statusLabel = (status: string) => `${outcome[status]?.icon ?? ''} ${outcome[status]?.verb ?? status}`.trim();

export interface RequestPromptInput {
  request: RequestDetail;
  requesterSlackId: string | null;
  /** the stage this copy of the prompt was posted for */
  stage: number;
  /** set when this message replaces one that could no longer be updated */
  replacesLost?: boolean;
}

function requestDetails(r: RequestDetail, requesterSlackId: string | null): Blocks {
  const who = r.requester
    ? `${mention(requesterSlackId, r.requester.displayName)} (${esc(r.requester.displayName)}, \`${esc(r.requester.username)}\`)`
    : '_machine pre-approval_';
  const stage = r.stages[r.currentStage];
  const pairs: [string, string][] = [
    ['Requester', who],
    ['Device', r.device ? `${esc(r.device.name)}\n\`${esc(r.device.clientGuid)}\`` : '_not per device_'],
    ['Stage', `${r.currentStage + 1} of ${r.stageCount}${stage ? ` · ${esc(stage.approverGroups.join(', '))}` : ''}`],
    ['Submitted', slackDate(r.createdAt)],
  ];
  if (r.status === 'pending' && r.deadlineAt) pairs.push(['Decide by', slackDate(r.deadlineAt)]);
  const blocks: Blocks = [header(`Software request: ${r.application.name}`), fields(pairs)];
  blocks.push(section(`*Justification*\n${r.justification ? quote(clip(r.justification, 2500)) : '_none given_'}`));
  const answered = r.policy.questions.map((q) => `*${esc(q.text)}*\n${formatAnswer(r.answers[q.id])}`);
  if (answered.length) blocks.push(section(answered.join('\n\n')));
  return blocks;
}

function votesLine(r: RequestDetail, stage: number): string | null {
  const decisions = r.stages[stage]?.decisions ?? [];
  if (!decisions.length) return null;
  return decisions
    .map(
      (d) =>
        `${d.decision === 'approve' ? ':white_check_mark:' : ':no_entry:'} ${esc(d.approver.label)} ${slackDate(d.at)}${d.reason ? `: “${esc(clip(d.reason, 300))}”` : ''}`,
    )
    .join('\n');
}

function decidedLine(r: RequestDetail): string {
  const o = outcome[r.status] ?? { icon: '', verb: r.status };
  if (r.status === 'expired') return `${o.icon} *Expired*: nobody decided before the deadline (${slackDate(r.decidedAt ?? r.updatedAt)}).`;
  const by = r.decidedBy ? ` by *${esc(r.decidedBy)}*` : '';
  const why = r.decisionReason ? `\n${quote(clip(r.decisionReason, 1500))}` : '';
  return `${o.icon} *${o.verb}*${by} ${slackDate(r.decidedAt ?? r.updatedAt)}${why}`;
}

/** A decided prompt keeps no buttons; approvers who change their mind use the commands, named here. */
function reversalHint(r: RequestDetail): string | null {
  const ref = r.id.slice(0, 8);
  if (r.status === 'approved') return `Approvers can take this back with \`/signoff revoke ${ref}\`.`;
  if (r.status === 'denied' || r.status === 'revoked') return `Approvers can approve it after all with \`/signoff reapprove ${ref}\`.`;
  return null;
}

/** The approver's card: buttons only while this copy's stage is the one waiting for a decision. */
export function renderRequestPrompt(input: RequestPromptInput): Rendered {
  const { request: r, stage } = input;
  const blocks = requestDetails(r, input.requesterSlackId);
  const votes = votesLine(r, stage);
  const live = r.status === 'pending' && r.currentStage === stage;
  let status: string;
  if (live) {
    if (votes) blocks.push(context(votes));
    if (r.escalated) blocks.push(context(':warning: Escalated: alternate approvers may now decide too.'));
    blocks.push({
      type: 'actions',
      block_id: `decide:${r.id}`,
      elements: decisionButtons(r.id, stage),
    });
    status = 'waiting for a decision';
  } else if (r.status === 'pending' && r.currentStage > stage) {
    const s = r.stages[stage];
    const approvedBy = s?.decisions.filter((d) => d.decision === 'approve').map((d) => d.approver.label) ?? [];
    blocks.push(
      section(
        `:white_check_mark: *Stage ${stage + 1} approved* by *${esc(approvedBy.join(', ') || 'someone')}* ${slackDate(s?.decisions.at(-1)?.at)}; now waiting for stage ${r.currentStage + 1} (${esc(r.stages[r.currentStage]?.approverGroups.join(', ') ?? '')}).`,
      ),
    );
    if (votes) blocks.push(context(votes));
    status = `stage ${stage + 1} approved`;
  } else {
    blocks.push(section(decidedLine(r)));
    if (votes && r.status !== 'cancelled') blocks.push(context(votes));
    const reversal = reversalHint(r);
    if (reversal) blocks.push(context(reversal));
    status = (outcome[r.status]?.verb ?? r.status).toLowerCase();
  }
  if (input.replacesLost)
    blocks.push(context(':information_source: The previous message about this request could not be updated, so this one replaces it.'));
  blocks.push(context(`Request \`${r.id}\``));
  return { text: `Software request: ${esc(r.application.name)} for ${esc(r.requester?.displayName ?? 'a device')}: ${status}`, blocks };
}

/** The requester's own copy: what they asked for, where it stands, and what they can do now. */
export function renderRequesterStatus(r: RequestDetail): Rendered {
  const on = r.device ? ` on ${esc(r.device.name)}` : '';
  const blocks: Blocks = [];
  if (r.status === 'pending') {
    const stage = r.stages[r.currentStage];
    blocks.push(
      section(
        `:inbox_tray: Your request for *${esc(r.application.name)}*${on} was submitted ${slackDate(r.createdAt)}.\nIt is waiting for ${esc(stage?.approverGroups.join(', ') ?? 'the approvers')} (stage ${r.currentStage + 1} of ${r.stageCount}).`,
      ),
    );
    blocks.push({
      type: 'actions',
      block_id: `mine:${r.id}`,
      elements: [button('Cancel request', ACTION.cancel, r.id, 'danger'), button('History', ACTION.history, r.id)],
    });
  } else {
    blocks.push(section(`Your request for *${esc(r.application.name)}*${on}:\n${decidedLine(r)}`));
    const elements = [button('History', ACTION.history, r.id)];
    if (r.status === 'approved' && r.device) elements.unshift(button('Install now', ACTION.installNow, r.id, 'primary'));
    blocks.push({ type: 'actions', block_id: `mine:${r.id}`, elements });
  }
  blocks.push(context(`Request \`${r.id}\``));
  return { text: `Your request for ${esc(r.application.name)}: ${(outcome[r.status]?.verb ?? r.status).toLowerCase()}`, blocks };
}

/** A fresh DM telling the requester the outcome (the notification; the status copy is updated separately). */
export function renderRequesterOutcome(r: RequestDetail): Rendered {
  const on = r.device ? ` on ${esc(r.device.name)}` : '';
  let next = '';
  if (r.status === 'approved') {
    next = r.installOrderedAt
      ? '\nThe installation has been ordered; it will arrive shortly.'
      : r.installDueAt
        ? `\nIt will be installed in the next maintenance window (${slackDate(r.installDueAt)}). Press *Install now* to get it sooner.`
        : '';
    if (r.accessExpiresAt) next += `\nAccess lasts until ${slackDate(r.accessExpiresAt)}.`;
  } else if (r.status === 'revoked') {
    next = '\nThe application will be uninstalled.';
  } else if (r.status === 'expired') {
    next = '\nYou can request it again with `/signoff request`.';
  }
  const rendered = renderRequesterStatus(r);
  // who decided, when and why, as the updated copy says: the notification is what people read
  const decided = r.status === 'pending' ? '' : `\n${decidedLine(r)}`;
  const intro = section(`${statusLabel(r.status)}: your request for *${esc(r.application.name)}*${on}.${decided}${next}`);
  return {
    text: `Your request for ${esc(r.application.name)} was ${(outcome[r.status]?.verb ?? r.status).toLowerCase()}`,
    blocks: [intro, ...rendered.blocks.slice(1)],
  };
}

export function renderInstallOrdered(r: RequestDetail, why: string): Rendered {
  return {
    text: `Installation of ${esc(r.application.name)} ordered`,
    blocks: [
      section(
        `:package: The installation of *${esc(r.application.name)}*${r.device ? ` on ${esc(r.device.name)}` : ''} has been ordered (${esc(why)}).`,
      ),
    ],
  };
}

export function renderAccessExpiring(r: RequestDetail): Rendered {
  return {
    text: `Your access to ${esc(r.application.name)} expires soon`,
    blocks: [
      section(
        `:alarm_clock: Your access to *${esc(r.application.name)}*${r.device ? ` on ${esc(r.device.name)}` : ''} ends ${slackDate(r.accessExpiresAt)}; it will then be uninstalled. Request it again with \`/signoff request ${esc(r.application.name)}\` if you still need it.`,
      ),
    ],
  };
}

/** Thread reply under a prompt: mentions exactly the people who can act now. */
export function renderReminder(
  r: RequestDetail,
  approverSlackIds: string[],
  kind: 'reminder' | 'escalation',
  escalatedTo: string[] = [],
): Rendered {
  const who = approverSlackIds.length ? approverSlackIds.map((u) => `<@${u}>`).join(' ') : 'Approvers';
  const text =
    kind === 'reminder'
      ? `:alarm_clock: Reminder: this request has been waiting since ${slackDate(r.createdAt)}. ${who}, please approve or deny it${r.deadlineAt ? ` before ${slackDate(r.deadlineAt)}` : ''}.`
      : `:warning: Escalated: nobody decided in time, so ${esc(escalatedTo.join(', ') || 'the alternate approvers')} may now decide too. ${who}, please approve or deny it${r.deadlineAt ? ` before ${slackDate(r.deadlineAt)}` : ''}.`;
  return { text: plainDates(text), blocks: [section(text)] };
}

/** A thread reply under an open access review: who can still answer, by when, and what silence means. */
export function renderReviewReminder(v: ReviewView, reviewerSlackIds: string[]): Rendered {
  const who = reviewerSlackIds.length ? reviewerSlackIds.map((u) => `<@${u}>`).join(' ') : 'Reviewers';
  const text = `:alarm_clock: Reminder: this access review is still open. ${who}, please keep or remove the access before ${slackDate(v.dueAt)}; if nobody answers, the review lapses and the access is kept.`;
  return { text: plainDates(text), blocks: [section(text)] };
}

function diffLines(c: ChangeView, maxRows = 40): string {
  const rows = c.diff
    .slice(0, maxRows)
    .map((d) =>
      d.op === 'add'
        ? `+ ${d.path}: ${jsonInline(d.after)}`
        : d.op === 'remove'
          ? `- ${d.path}: ${jsonInline(d.before)}`
          : `~ ${d.path}: ${jsonInline(d.before)} → ${jsonInline(d.after)}`,
    );
  if (c.diff.length > maxRows) rows.push(`… and ${c.diff.length - maxRows} more`);
  // triple backticks inside user data would end the code block early
  // escaped like any user text: Slack still reads <!channel> and <@U…> inside a code block
  return clip(esc(rows.join('\n')).replace(/```/g, "'''"), 2800);
}

export interface ChangePromptInput {
  change: ChangeView;
  requesterSlackId: string | null;
  replacesLost?: boolean;
}

/** Multi-admin approval prompt: the diff is the point, so it is shown in full (up to Slack's limits). */
export function renderChangePrompt(input: ChangePromptInput): Rendered {
  const c = input.change;
  const blocks: Blocks = [
    header(`Change approval: ${c.resourceType} ${c.resourceId}`),
    fields([
      ['Requested by', mention(input.requesterSlackId, c.requester.label)],
      ['Resource', `${esc(c.resourceType)} \`${esc(c.resourceId)}\``],
      ['Approvers', esc(c.approverGroups.join(', '))],
      ['Submitted', slackDate(c.createdAt)],
    ]),
    section(`*Business justification*\n${quote(clip(c.justification, 2500))}`),
    section(`*Changes* (${c.diff.length})\n\`\`\`${diffLines(c)}\`\`\``),
  ];
  if (c.status === 'pending') {
    blocks.push({
      type: 'actions',
      block_id: `change:${c.id}`,
      elements: [button('Approve', ACTION.changeApprove, c.id, 'primary'), button('Reject', ACTION.changeReject, c.id, 'danger')],
    });
  } else {
    const o = outcome[c.status] ?? { icon: '', verb: c.status };
    blocks.push(
      section(
        `${o.icon} *${o.verb}*${c.decidedBy ? ` by *${esc(c.decidedBy)}*` : ''} ${slackDate(c.decidedAt ?? c.updatedAt)}${c.decisionNotes ? `\n${quote(clip(c.decisionNotes, 1500))}` : ''}`,
      ),
    );
  }
  if (input.replacesLost)
    blocks.push(context(':information_source: The previous message about this change could not be updated, so this one replaces it.'));
  blocks.push(context(`Change \`${c.id}\``));
  return {
    text: `Change approval: ${esc(c.resourceType)} ${esc(c.resourceId)}: ${(outcome[c.status]?.verb ?? c.status).toLowerCase()}`,
    blocks,
  };
}

/** The change requester's copy: status, and Cancel while it is pending. */
export function renderChangeRequesterStatus(c: ChangeView): Rendered {
  const blocks: Blocks = [];
  if (c.status === 'pending') {
    blocks.push(
      section(
        `:inbox_tray: Your change to ${esc(c.resourceType)} \`${esc(c.resourceId)}\` (${c.diff.length} change${c.diff.length === 1 ? '' : 's'}) is waiting for another admin in ${esc(c.approverGroups.join(', '))}. You cannot approve it yourself.`,
      ),
    );
    blocks.push({
      type: 'actions',
      block_id: `mychange:${c.id}`,
      elements: [button('Cancel change', ACTION.changeCancel, c.id, 'danger')],
    });
  } else {
    const o = outcome[c.status] ?? { icon: '', verb: c.status };
    blocks.push(
      section(
        `${o.icon} Your change to ${esc(c.resourceType)} \`${esc(c.resourceId)}\` was *${o.verb.toLowerCase()}*${c.decidedBy ? ` by *${esc(c.decidedBy)}*` : ''} ${slackDate(c.decidedAt ?? c.updatedAt)}.${c.decisionNotes ? `\n${quote(clip(c.decisionNotes, 1500))}` : ''}${c.status === 'approved' ? '\nIt is being applied.' : ''}`,
      ),
    );
  }
  blocks.push(context(`Change \`${c.id}\``));
  return {
    text: `Your change to ${esc(c.resourceType)} ${esc(c.resourceId)}: ${(outcome[c.status]?.verb ?? c.status).toLowerCase()}`,
    blocks,
  };
}

export interface ReviewPromptInput {
  review: ReviewView;
  replacesLost?: boolean;
}

const reviewOutcome: Record<string, { icon: string; verb: string }> = {
  kept: { icon: ':white_check_mark:', verb: 'Kept' },
  removed: { icon: ':leftwards_arrow_with_hook:', verb: 'Removed' },
  lapsed: { icon: ':hourglass:', verb: 'Lapsed' },
  closed: { icon: ':heavy_minus_sign:', verb: 'Closed' },
  pending: { icon: ':hourglass_flowing_sand:', verb: 'Pending' },
};

/**
 * The question a review asks, in one line: who, what, where, and the approval being reviewed. Names the requester
 * without a mention: the question goes to reviewers' channels at every review.
 */
export function reviewQuestion(v: ReviewView): string {
  const who = v.requester ? `*${esc(v.requester.displayName)}*` : 'this device';
  const on = v.device ? ` on *${esc(v.device.name)}*` : '';
  const approved = v.approvedAt ? ` Approved ${slackDate(v.approvedAt)}${v.approvedBy ? `, by *${esc(v.approvedBy)}*` : ''}.` : '';
  return `Does ${who} still need *${esc(v.application.name)}*${on}?${approved}`;
}

/** Periodic access review: Keep / Remove while pending; afterwards the outcome, who and when, no buttons. */
export function renderReviewPrompt(input: ReviewPromptInput): Rendered {
  const v = input.review;
  const blocks: Blocks = [
    header(`Access review: ${v.application.name}`),
    section(`:mag: ${reviewQuestion(v)}`),
    fields([
      ['Requester', v.requester ? `${esc(v.requester.displayName)} (\`${esc(v.requester.username)}\`)` : '_machine pre-approval_'],
      ['Device', v.device ? `${esc(v.device.name)}\n\`${esc(v.device.clientGuid)}\`` : '_not per device_'],
      ['Reviewers', esc(v.reviewerGroups.join(', ') || '—')],
      [v.status === 'pending' ? 'Answer by' : 'Started', slackDate(v.status === 'pending' ? v.dueAt : v.createdAt)],
    ]),
  ];
  if (v.status === 'pending') {
    blocks.push(
      context(
        'Keep leaves the access as it is. Remove revokes it and uninstalls the application. With no answer by the date above, access is kept.',
      ),
    );
    blocks.push({
      type: 'actions',
      block_id: `review:${v.id}`,
      elements: [button('Keep', ACTION.reviewKeep, v.id, 'primary'), button('Remove', ACTION.reviewRemove, v.id, 'danger')],
    });
  } else {
    const o = reviewOutcome[v.status] ?? { icon: '', verb: v.status };
    const when = slackDate(v.decidedAt);
    let line: string;
    if (v.status === 'lapsed') line = `${o.icon} *Lapsed*: nobody answered by ${when}; access is kept.`;
    else if (v.status === 'closed') line = `${o.icon} *Closed* ${when}: ${esc(v.reason ?? 'the access ended before anyone answered')}.`;
    else {
      const after = v.status === 'removed' ? ' Access is revoked and the application will be uninstalled.' : '';
      line = `${o.icon} *${o.verb}* by *${esc(v.decidedBy?.label ?? 'someone')}* ${when}.${after}${v.reason ? `\n${quote(clip(v.reason, 1500))}` : ''}`;
    }
    blocks.push(section(line));
  }
  if (input.replacesLost)
    blocks.push(context(':information_source: The previous message about this review could not be updated, so this one replaces it.'));
  blocks.push(context(`Review \`${v.id}\` · request \`${v.requestId}\``));
  const state = (reviewOutcome[v.status]?.verb ?? v.status).toLowerCase();
  return {
    text: `Access review: does ${esc(v.requester?.displayName ?? 'this device')} still need ${esc(v.application.name)}${v.device ? ` on ${esc(v.device.name)}` : ''}? ${v.status === 'pending' ? 'waiting for an answer' : state}`,
    blocks,
  };
}

/** Approve and Deny bound to a request's stage (a click on a later stage's prompt is told it is stale). */
export const decisionButtons = (requestId: string, stage: number) => [
  button('Approve', ACTION.approve, promptValue(requestId, stage), 'primary'),
  button('Deny', ACTION.deny, promptValue(requestId, stage), 'danger'),
];

/** A pending request in a list (App Home, `/signoff pending`): decide it there, or open its details. */
export const pendingRequestActions = (blockId: string, r: { id: string; currentStage: number }) => ({
  type: 'actions',
  block_id: blockId,
  elements: [...decisionButtons(r.id, r.currentStage), button('Details', ACTION.history, r.id)],
});
