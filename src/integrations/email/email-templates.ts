import { readableUtc } from '../../core/clock.ts';
import type { MailMessage } from '../../core/ports.ts';
import type { ReviewView } from '../../core/review-queries.ts';
import type { RequestDetail } from '../../core/views.ts';

export const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function facts(r: RequestDetail): [string, string][] {
  return [
    ['Application', r.application.name],
    ['Requested by', r.requester ? `${r.requester.displayName} (${r.requester.username})` : 'device pre-approval'],
    ...(r.device ? [['Device', r.device.name] as [string, string]] : []),
    ['Justification', r.justification ?? '(none)'],
    // each answer under its question's text, as the approver saw it asked
    ...Object.entries(r.answers).map(
      ([k, v]) => [r.policy.questions.find((q) => q.id === k)?.text ?? k, Array.isArray(v) ? v.join(', ') : String(v)] as [string, string],
    ),
    ['Stage', `${r.currentStage + 1} of ${r.stageCount}`],
  ];
}

/** Approval prompt; the links only open a confirmation page, deciding takes a POST from there. */
export function renderApprovalEmail(
  r: RequestDetail,
  opts: { to: string[]; approveUrl?: string; denyUrl?: string; reminder?: boolean; pageUrl?: string },
): MailMessage {
  const subject = `${opts.reminder ? 'Reminder: ' : ''}Approve ${r.application.name} for ${r.requester?.displayName ?? r.device?.name ?? 'a device'}?`;
  const lines = facts(r).map(([k, v]) => `${k}: ${v}`);
  const stale = 'Each link works once, for this stage; if the request is decided first, the link says who decided and when.';
  // the web page is where a decided request is revoked or reapproved later: links decide this stage only
  const page = opts.pageUrl ? [`Open in Signoff (history, and Revoke or Reapprove once decided): ${opts.pageUrl}`] : [];
  const links = opts.approveUrl
    ? ['', `Approve: ${opts.approveUrl}`, `Deny: ${opts.denyUrl}`, '', stale, ...page]
    : ['', 'Decide in Slack, Teams, on the web or with your personal email links.', ...page];
  const rows = facts(r)
    .map(([k, v]) => `<tr><th align="left">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`)
    .join('');
  const pageLink = opts.pageUrl
    ? `<p><a href="${escapeHtml(opts.pageUrl)}">Open in Signoff</a> (history, and Revoke or Reapprove once decided)</p>`
    : '';
  const buttons =
    (opts.approveUrl
      ? `<p><a href="${escapeHtml(opts.approveUrl)}">Approve</a> &nbsp; <a href="${escapeHtml(opts.denyUrl!)}">Deny</a></p><p>${escapeHtml(stale)}</p>`
      : '') + pageLink;
  return { to: opts.to, subject, text: [...lines, ...links].join('\n'), html: `<table>${rows}</table>${buttons}` };
}

const outcomeWord: Record<string, string> = {
  approved: 'approved',
  denied: 'denied',
  revoked: 'revoked',
  expired: 'expired without a decision',
  cancelled: 'cancelled',
  pending: 'pending',
};

export function renderOutcomeEmail(r: RequestDetail, to: string, pageUrl?: string): MailMessage {
  const word = outcomeWord[r.status] ?? r.status;
  const by = r.decidedBy && r.status !== 'expired' ? ` by ${r.decidedBy}` : '';
  const why = r.decisionReason ? `\nReason: ${r.decisionReason}` : '';
  const text = `Your request for ${r.application.name}${r.device ? ` on ${r.device.name}` : ''} was ${word}${by}.${why}${pageUrl ? `\nDetails: ${pageUrl}` : ''}`;
  return { to: [to], subject: `${r.application.name}: request ${word}`, text, html: `<p>${escapeHtml(text).replace(/\n/g, '<br>')}</p>` };
}

/** Access review question. No links: a review is answered in Slack, Teams or through the API. */
export function renderReviewEmail(v: ReviewView, to: string[], opts: { reminder?: boolean } = {}): MailMessage {
  const who = v.requester?.displayName ?? 'this device';
  const on = v.device ? ` on ${v.device.name}` : '';
  const approved = v.approvedAt ? ` It was approved on ${readableUtc(v.approvedAt)}${v.approvedBy ? ` by ${v.approvedBy}` : ''}.` : '';
  const rows: [string, string][] = [
    ['Application', v.application.name],
    ['Requester', v.requester ? `${v.requester.displayName} (${v.requester.username})` : 'device pre-approval'],
    ...(v.device ? [['Device', v.device.name] as [string, string]] : []),
    ['Reviewers', v.reviewerGroups.join(', ')],
    ['Answer by', readableUtc(v.dueAt)],
    ['Review id', v.id],
  ];
  const how = [
    'Answer Keep or Remove on the review prompt in Slack or Teams, or through the Signoff API:',
    `POST /api/v1/reviews/${v.id}/keep or POST /api/v1/reviews/${v.id}/remove {"reason": "..."}.`,
    'Remove revokes the access and uninstalls the application. With no answer by the date above, access is kept.',
  ];
  const question = `Does ${who} still need ${v.application.name}${on}?${approved}`;
  const text = [question, '', ...rows.map(([k, val]) => `${k}: ${val}`), '', ...how].join('\n');
  const html =
    `<p>${escapeHtml(question)}</p><table>${rows.map(([k, val]) => `<tr><th align="left">${escapeHtml(k)}</th><td>${escapeHtml(val)}</td></tr>`).join('')}</table>` +
    `<p>${how.map(escapeHtml).join('<br>')}</p>`;
  return {
    to,
    subject: `${opts.reminder ? 'Reminder: ' : ''}Access review: does ${who} still need ${v.application.name}${on}?`,
    text,
    html,
  };
}
