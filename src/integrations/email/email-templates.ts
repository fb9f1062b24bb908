import type { MailMessage } from '../../core/ports.ts';
import type { RequestDetail } from '../../core/views.ts';

export const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

function facts(r: RequestDetail): [string, string][] {
  return [
    ['Application', r.application.name],
    ['Requested by', r.requester ? `${r.requester.displayName} (${r.requester.username})` : 'device pre-approval'],
    ...(r.device ? [['Device', r.device.name] as [string, string]] : []),
    ['Justification', r.justification ?? '(none)'],
    ...Object.entries(r.answers).map(([k, v]) => [k, Array.isArray(v) ? v.join(', ') : String(v)] as [string, string]),
    ['Stage', `${r.currentStage + 1} of ${r.stageCount}`],
  ];
}

/** Approval prompt; the links only open a confirmation page, deciding takes a POST from there. */
export function renderApprovalEmail(r: RequestDetail, opts: { to: string[]; approveUrl?: string; denyUrl?: string; reminder?: boolean }): MailMessage {
  const subject = `${opts.reminder ? 'Reminder: ' : ''}Approve ${r.application.name} for ${r.requester?.displayName ?? r.device?.name ?? 'a device'}?`;
  const lines = facts(r).map(([k, v]) => `${k}: ${v}`);
  const links = opts.approveUrl ? ['', `Approve: ${opts.approveUrl}`, `Deny: ${opts.denyUrl}`, '', 'Each link works once.'] : ['', 'Decide in Slack, Teams or with your personal email links.'];
  const rows = facts(r).map(([k, v]) => `<tr><th align="left">${escapeHtml(k)}</th><td>${escapeHtml(v)}</td></tr>`).join('');
  const buttons = opts.approveUrl
    ? `<p><a href="${escapeHtml(opts.approveUrl)}">Approve</a> &nbsp; <a href="${escapeHtml(opts.denyUrl!)}">Deny</a></p><p>Each link works once.</p>`
    : '';
  return { to: opts.to, subject, text: [...lines, ...links].join('\n'), html: `<table>${rows}</table>${buttons}` };
}

const outcomeWord: Record<string, string> = {
  approved: 'approved', denied: 'denied', revoked: 'revoked', expired: 'expired without a decision', cancelled: 'cancelled', pending: 'pending',
};

export function renderOutcomeEmail(r: RequestDetail, to: string): MailMessage {
  const word = outcomeWord[r.status] ?? r.status;
  const by = r.decidedBy && r.status !== 'expired' ? ` by ${r.decidedBy}` : '';
  const why = r.decisionReason ? `\nReason: ${r.decisionReason}` : '';
  const text = `Your request for ${r.application.name}${r.device ? ` on ${r.device.name}` : ''} was ${word}${by}.${why}`;
  return { to: [to], subject: `${r.application.name}: request ${word}`, text, html: `<p>${escapeHtml(text).replace(/\n/g, '<br>')}</p>` };
}
