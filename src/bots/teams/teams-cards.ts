import { readableUtc } from '../../core/clock.ts';
import type { ChangeView, DiffEntry, RequestDetail } from '../../core/views.ts';
import type { Question } from '../../core/policy-schema.ts';
import type { ReviewView } from '../../core/review-queries.ts';
import { clip, localTime, plainText, renderTemplate, said, toneStyle, type AdaptiveCard, type Banner } from './teams-card-template.ts';

// the prompt cards approvers and requesters see (requests, changes, reviews): what each viewer may see and do

// the card template helpers and the personal-chat forms live beside this file; importers keep one entry point
export * from './teams-card-template.ts';
export * from './teams-form-cards.ts';

export interface RequestCardInput {
  request: RequestDetail;
  can: { decide: boolean; cancel: boolean; installNow: boolean };
  /** AAD object ids whose Teams client refreshes the card for a per-viewer version; empty once decided */
  refreshUserIds: string[];
  banner?: Banner;
  /** the form asked for with "revoke <id>" / "reapprove <id>": a reason and one button, bound to this version */
  reversal?: 'revoke' | 'reapprove';
}

const reversals = {
  revoke: {
    title: 'Revoke',
    label: 'Why is the access revoked? (required)',
    note: 'Revoking takes the access back; the application is uninstalled if it was installed.',
  },
  reapprove: {
    title: 'Reapprove',
    label: 'Why is it approved after all? (required)',
    note: 'Reapproving grants the access and orders the install.',
  },
};

/** A decided card keeps no buttons; approvers who change their mind use the commands, named on the card. */
function reversalHint(r: RequestDetail): string | null {
  const ref = r.id.slice(0, 8);
  if (r.status === 'approved') return `Approvers can take this back: send "revoke ${ref}" to Signoff.`;
  if (r.status === 'denied' || r.status === 'revoked') return `Approvers can approve it after all: send "reapprove ${ref}" to Signoff.`;
  return null;
}

const requestStatus: Record<string, { label: string; color: string; header: string }> = {
  pending: { label: 'Waiting for approval', color: 'accent', header: 'emphasis' },
  approved: { label: 'Approved', color: 'good', header: 'good' },
  denied: { label: 'Denied', color: 'attention', header: 'attention' },
  cancelled: { label: 'Cancelled', color: 'default', header: 'default' },
  expired: { label: 'Expired: nobody decided before the deadline', color: 'warning', header: 'warning' },
  revoked: { label: 'Access revoked', color: 'attention', header: 'attention' },
};

function answerText(q: Question | undefined, value: unknown): string {
  if (Array.isArray(value)) return value.join(', ');
  if (value === undefined || value === null || value === '') return q?.required === false ? '(not answered)' : '—';
  return String(value);
}

export function requestCard(input: RequestCardInput): AdaptiveCard {
  const r = input.request;
  const st = requestStatus[r.status] ?? requestStatus.pending!;
  const stageNote = r.stageCount > 1 ? ` · stage ${r.currentStage + 1} of ${r.stageCount}` : '';
  const facts: { title: string; value: string }[] = [
    { title: 'Requester', value: r.requester ? `${r.requester.displayName} (${r.requester.username})` : 'Machine pre-approval' },
    { title: 'Application', value: r.application.name },
  ];
  if (r.device) facts.push({ title: 'Device', value: r.device.name });
  for (const q of r.policy.questions) facts.push({ title: clip(q.text, 120), value: said(answerText(q, r.answers[q.id]), 300) });
  facts.push({ title: 'Requested', value: readableUtc(r.createdAt) });
  if (r.status === 'pending') {
    const stage = r.stages[r.currentStage];
    if (stage) facts.push({ title: 'Approvers', value: stage.approverGroups.join(', ') });
    if (r.deadlineAt) facts.push({ title: 'Decide by', value: readableUtc(r.deadlineAt) });
  }
  if (r.status === 'approved') {
    if (r.installOrderedAt) facts.push({ title: 'Install', value: `ordered ${readableUtc(r.installOrderedAt)}` });
    else if (r.installDueAt) facts.push({ title: 'Install', value: `in the next maintenance window (${readableUtc(r.installDueAt)})` });
    if (r.accessExpiresAt) facts.push({ title: 'Access until', value: readableUtc(r.accessExpiresAt) });
  }

  const decisions = r.decisions.map((d) => ({
    text: `${d.decision === 'approve' ? '✅' : '⛔'} ${d.approver.label} ${d.decision === 'approve' ? 'approved' : 'denied'}${r.stageCount > 1 ? ` stage ${d.stage + 1}` : ''} · ${localTime(d.at)}${d.reason ? ` · "${said(d.reason, 300)}"` : ''}`,
  }));

  let outcome: { text: string; reason: string | null; style: string } | null = null;
  if (r.status !== 'pending') {
    const who = r.decidedBy ?? 'Signoff';
    const when = r.decidedAt ? ` on ${localTime(r.decidedAt)}` : '';
    const verb: Record<string, string> = {
      approved: 'Approved',
      denied: 'Denied',
      cancelled: 'Cancelled',
      expired: 'Expired',
      revoked: 'Revoked',
    };
    outcome = {
      text: r.status === 'expired' ? `Expired${when}: no decision before the deadline` : `${verb[r.status] ?? r.status} by ${who}${when}`,
      reason: r.decisionReason ? said(r.decisionReason, 1000) : null,
      style: st.header,
    };
  }
  const stage = r.stages[r.currentStage];
  return renderTemplate('request', {
    id: r.id,
    shortId: r.id.slice(0, 8),
    stage: r.currentStage,
    title: r.requester ? `${r.application.name} for ${r.requester.displayName}` : r.application.name,
    statusLabel: r.status === 'pending' ? `${st.label}${stageNote}${r.escalated ? ' · escalated' : ''}` : st.label,
    statusColor: st.color,
    headerStyle: st.header,
    banner: input.banner ? clip(input.banner.text, 600) : null,
    bannerStyle: input.banner ? toneStyle[input.banner.tone] : 'default',
    facts,
    justification: r.justification ? said(r.justification, 2000) : null,
    decisions,
    outcome,
    canDecide: input.can.decide && r.status === 'pending',
    // a denial always says why, as in Slack's Deny modal
    reasonLabel: stage?.approverJustification ? 'Reason (required)' : 'Reason (required to deny)',
    canCancel: input.can.cancel && r.status === 'pending',
    canInstallNow: input.can.installNow && r.status === 'approved',
    reversal: input.reversal ? { verb: input.reversal, version: r.version, ...reversals[input.reversal] } : null,
    reversalHint: input.reversal ? null : reversalHint(r),
    refresh: input.refreshUserIds.length > 0,
    userIds: input.refreshUserIds.slice(0, 60),
  });
}

const changeStatus: Record<string, { label: string; color: string; header: string; verb: string }> = {
  pending: { label: 'Waiting for another admin', color: 'accent', header: 'emphasis', verb: 'Pending' },
  approved: { label: 'Approved', color: 'good', header: 'good', verb: 'Approved' },
  rejected: { label: 'Rejected', color: 'attention', header: 'attention', verb: 'Rejected' },
  cancelled: { label: 'Cancelled', color: 'default', header: 'default', verb: 'Cancelled' },
};

const shown = (v: unknown) => (v === undefined ? '' : said(typeof v === 'string' ? JSON.stringify(v) : (JSON.stringify(v) ?? 'null'), 300));
const opLabel: Record<DiffEntry['op'], { text: string; color: string }> = {
  add: { text: 'added', color: 'good' },
  remove: { text: 'removed', color: 'attention' },
  replace: { text: 'changed', color: 'warning' },
};
const MAX_DIFF_ROWS = 30;

export interface ChangeCardInput {
  change: ChangeView;
  can: { decide: boolean; cancel: boolean };
  refreshUserIds: string[];
  banner?: Banner;
}

export function changeCard(input: ChangeCardInput): AdaptiveCard {
  const c = input.change;
  const st = changeStatus[c.status] ?? changeStatus.pending!;
  const diff = c.diff.slice(0, MAX_DIFF_ROWS).map((d) => ({
    path: d.path || '(whole resource)',
    op: opLabel[d.op].text,
    color: opLabel[d.op].color,
    before: d.op === 'add' ? '—' : shown(d.before),
    after: d.op === 'remove' ? '—' : shown(d.after),
  }));
  if (c.diff.length > MAX_DIFF_ROWS)
    diff.push({ path: `… ${c.diff.length - MAX_DIFF_ROWS} more`, op: '', color: 'default', before: '', after: '' });
  const facts = [
    { title: 'Resource', value: `${c.resourceType} "${said(c.resourceId, 200)}"` },
    { title: 'Requested by', value: c.requester.label },
    { title: 'Approvers', value: c.approverGroups.join(', ') },
    { title: 'Requested', value: readableUtc(c.createdAt) },
  ];
  const outcome =
    c.status === 'pending'
      ? null
      : {
          text: `${st.verb} by ${c.decidedBy ?? 'Signoff'}${c.decidedAt ? ` on ${localTime(c.decidedAt)}` : ''}`,
          reason: c.decisionNotes ? said(c.decisionNotes, 1000) : null,
          style: st.header,
        };
  return renderTemplate('change', {
    id: c.id,
    shortId: c.id.slice(0, 8),
    title: `Change to ${c.resourceType} "${said(c.resourceId, 120)}"`,
    statusLabel: st.label,
    statusColor: st.color,
    headerStyle: st.header,
    banner: input.banner ? clip(input.banner.text, 600) : null,
    bannerStyle: input.banner ? toneStyle[input.banner.tone] : 'default',
    facts,
    justification: said(c.justification, 2000),
    diff,
    outcome,
    canDecide: input.can.decide && c.status === 'pending',
    canCancel: input.can.cancel && c.status === 'pending',
    refresh: input.refreshUserIds.length > 0,
    userIds: input.refreshUserIds.slice(0, 60),
  });
}

export interface ReviewCardInput {
  review: ReviewView;
  can: { decide: boolean };
  /** AAD object ids of the reviewers who may still answer; empty once answered */
  refreshUserIds: string[];
  banner?: Banner;
}

const reviewStatus: Record<string, { label: string; color: string; header: string }> = {
  pending: { label: 'Access review: waiting for an answer', color: 'accent', header: 'emphasis' },
  kept: { label: 'Access kept', color: 'good', header: 'good' },
  removed: { label: 'Access removed', color: 'attention', header: 'attention' },
  lapsed: { label: 'Lapsed: nobody answered, access kept', color: 'warning', header: 'warning' },
  closed: { label: 'Closed: the access ended first', color: 'default', header: 'default' },
};

/** A periodic access review: Keep / Remove for reviewers while it is open; the outcome, who and when afterwards. */
export function reviewCard(input: ReviewCardInput): AdaptiveCard {
  const v = input.review;
  const st = reviewStatus[v.status] ?? reviewStatus.pending!;
  const who = v.requester?.displayName ?? 'this device';
  const approved = v.approvedAt ? ` Approved on ${readableUtc(v.approvedAt)}${v.approvedBy ? `, by ${v.approvedBy}` : ''}.` : '';
  const facts = [
    { title: 'Requester', value: v.requester ? `${v.requester.displayName} (${v.requester.username})` : 'Machine pre-approval' },
    { title: 'Application', value: v.application.name },
    ...(v.device ? [{ title: 'Device', value: v.device.name }] : []),
    { title: 'Reviewers', value: v.reviewerGroups.join(', ') || '—' },
    v.status === 'pending' ? { title: 'Answer by', value: readableUtc(v.dueAt) } : { title: 'Started', value: readableUtc(v.createdAt) },
  ];
  let outcome: { text: string; reason: string | null; style: string } | null = null;
  if (v.status !== 'pending') {
    const when = v.decidedAt ? ` on ${localTime(v.decidedAt)}` : '';
    const text =
      v.status === 'lapsed'
        ? `Lapsed${when}: nobody answered in time, so the access is kept`
        : v.status === 'closed'
          ? `Closed${when}: ${v.reason ? plainText(v.reason) : 'the access ended before anyone answered'}`
          : `${v.status === 'kept' ? 'Kept' : 'Removed'} by ${v.decidedBy?.label ?? 'someone'}${when}${v.status === 'removed' ? '; the access is revoked and the application will be uninstalled' : ''}`;
    outcome = { text, reason: (v.status === 'kept' || v.status === 'removed') && v.reason ? said(v.reason, 1000) : null, style: st.header };
  }
  return renderTemplate('review', {
    id: v.id,
    shortId: v.id.slice(0, 8),
    requestShortId: v.requestId.slice(0, 8),
    title: `Access review: ${v.application.name}`,
    question: `Does ${who} still need ${v.application.name}${v.device ? ` on ${v.device.name}` : ''}?${approved}`,
    statusLabel: st.label,
    statusColor: st.color,
    headerStyle: st.header,
    banner: input.banner ? clip(input.banner.text, 600) : null,
    bannerStyle: input.banner ? toneStyle[input.banner.tone] : 'default',
    facts,
    outcome,
    canDecide: input.can.decide && v.status === 'pending',
    refresh: input.refreshUserIds.length > 0,
    userIds: input.refreshUserIds.slice(0, 60),
  });
}
