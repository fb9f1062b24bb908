import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import * as ACData from 'adaptivecards-templating';
import { readableUtc } from '../../core/clock.ts';
import type { ChangeView, DiffEntry, RequestDetail } from '../../core/views.ts';
import type { Question } from '../../core/policy-schema.ts';
import type { ReviewView } from '../../core/review-queries.ts';

/**
 * Pure renderers: view data in, Adaptive Card JSON out. Layout lives in cards/*.json so an admin can restyle
 * without touching code; these functions only decide what the viewer may see and do.
 */
export type AdaptiveCard = Record<string, unknown> & { type: 'AdaptiveCard' };
export type CardName =
  | 'request'
  | 'change'
  | 'request-form'
  | 'app-picker'
  | 'welcome'
  | 'my-requests'
  | 'notice'
  | 'change-form'
  | 'review';
export type Tone = 'info' | 'success' | 'error' | 'warning';

const cardsDir = fileURLToPath(new URL('../../../cards/', import.meta.url));
const templates = new Map<CardName, unknown>();

function template(name: CardName): unknown {
  let t = templates.get(name);
  if (!t) {
    t = JSON.parse(readFileSync(`${cardsDir}${name}.json`, 'utf8'));
    templates.set(name, t);
  }
  return t;
}

/** Binds a template; properties whose `$when` was false come back as null and are dropped. */
export function renderTemplate(name: CardName, data: Record<string, unknown>): AdaptiveCard {
  const expanded = new ACData.Template(template(name)).expand({ $root: data }) as Record<string, unknown>;
  return dropNulls(expanded) as AdaptiveCard;
}

function dropNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(dropNulls);
  if (v && typeof v === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) if (x !== null && x !== undefined) out[k] = dropNulls(x);
    return out;
  }
  return v;
}

// Teams shows a card of at most ~28 KB; user-supplied text is capped so a long justification cannot break it.
const clip = (s: string, n = 600) => (s.length > n ? `${s.slice(0, n - 1)}…` : s);

const ZW = '\u200B';
/**
 * What people typed, shown as typed: Teams renders markdown and expands {{DATE()}} in card text, so a
 * justification could carry a disguised link ("[Approve here](https://…)") into an approver's card. A zero-width
 * space breaks each construct without changing what is read.
 */
export const plainText = (s: string): string =>
  s
    .replace(/\{\{/g, `{${ZW}{`)
    .replace(/\]\s*\(/g, `]${ZW}(`)
    .replace(/[*_]/g, (m) => `${ZW}${m}`)
    .replace(/^(\s*)([-+]|\d+\.)(\s)/gm, `$1${ZW}$2$3`);
/** User text, neutralised and capped. */
const said = (s: string, n: number) => clip(plainText(s), n);

/** RFC 3339 without milliseconds, as Adaptive Cards' DATE()/TIME() functions need. */
const rfc3339 = (iso: string) => new Date(iso).toISOString().replace(/\.\d{3}Z$/, 'Z');
/** Rendered in each viewer's own locale and time zone by the Teams client. */
export const localTime = (iso: string) => `{{DATE(${rfc3339(iso)}, SHORT)}} {{TIME(${rfc3339(iso)})}}`;

const toneStyle: Record<Tone, string> = { info: 'accent', success: 'good', error: 'attention', warning: 'warning' };

export interface Banner {
  text: string;
  tone: Tone;
}

/** What the submitter's own card says until the first decision; the notifier's first update keeps it. */
export const submittedBanner: Record<'request' | 'change', Banner> = {
  request: { text: 'Request submitted. You will hear here when it is decided.', tone: 'success' },
  change: { text: 'Change submitted for approval by another admin.', tone: 'success' },
};

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

export interface FormQuestion {
  question: Question;
  value?: unknown;
  error?: string;
}

export interface RequestFormInput {
  application: { id: string; name: string; description: string | null; perDevice: boolean };
  devices: { id: string; name: string }[];
  justificationMode: 'required' | 'optional' | 'none';
  values: { deviceId?: string; justification?: string; answers?: Record<string, unknown> };
  questions: Question[];
  errors?: { summary?: string; device?: string; justification?: string; answers?: Record<string, string> };
}

/** Input ids of question answers on the form card. */
export const questionInputId = (id: string) => `q_${id}`;

export function requestFormCard(input: RequestFormInput): AdaptiveCard {
  const e = input.errors ?? {};
  const answers = input.values.answers ?? {};
  return renderTemplate('request-form', {
    applicationId: input.application.id,
    applicationName: input.application.name,
    description: input.application.description,
    perDevice: input.application.perDevice,
    devices: input.devices.map((d) => ({ title: d.name, value: d.id })),
    // a single device is preselected: one click less for most people
    deviceValue: input.values.deviceId ?? (input.devices.length === 1 ? input.devices[0]!.id : null),
    justificationMode: input.justificationMode,
    justification: input.values.justification ?? null,
    questions: input.questions.map((q) => {
      const v = answers[q.id];
      return {
        inputId: questionInputId(q.id),
        text: q.text,
        kind: q.type,
        required: q.required,
        choices: (q.options ?? []).map((o) => ({ title: o, value: o })),
        // multi-select ChoiceSets take their value as a comma-separated string
        value: Array.isArray(v) ? v.join(',') : typeof v === 'string' ? v : null,
        error: e.answers?.[q.id] ?? null,
      };
    }),
    errorSummary: e.summary ?? null,
    errors: { device: e.device ?? null, justification: e.justification ?? null },
  });
}

export function appPickerCard(apps: { id: string; name: string }[], banner?: string): AdaptiveCard {
  return renderTemplate('app-picker', { apps: apps.map((a) => ({ title: a.name, value: a.id })), banner: banner ?? null });
}

export const commands = [
  { command: 'request [app]', description: 'Ask for software, e.g. "request Visio"' },
  { command: 'my requests', description: 'What you asked for, and what waits for your decision' },
  { command: 'change', description: 'Propose a change to a protected script or app (multi-admin approval)' },
  { command: 'revoke <request id>', description: 'Approvers: take back an approval; the app is uninstalled' },
  { command: 'reapprove <request id>', description: 'Approvers: approve a denied or revoked request after all' },
  { command: 'help', description: 'Show this list' },
];

/** What an unlinked Teams user is told, with the id an admin needs (as Slack shows the member id). */
export function notLinkedText(aadObjectId: string | undefined): string {
  const id = aadObjectId ? `\`teams: ${aadObjectId}\`` : 'your Teams (AAD object) id';
  return `Your Teams account is not linked to a directory identity yet, so I cannot act for you. Ask a Signoff admin to add ${id} to your entry under identities: in the Signoff configuration file (then npx signoff apply FILE), or to set it through the admin API (/api/v1/identities).`;
}

export function welcomeCard(opts: { name?: string; linked: boolean; welcome: boolean; aadObjectId?: string }): AdaptiveCard {
  return renderTemplate('welcome', {
    heading: opts.welcome ? `Welcome to Signoff${opts.name ? `, ${opts.name}` : ''}` : 'What I can do',
    intro: 'Request software for your devices and approve requests and admin changes, right here in Teams.',
    banner: opts.linked ? null : notLinkedText(opts.aadObjectId),
    commands,
    linked: opts.linked,
  });
}

export interface ListItem {
  kind: 'request' | 'change' | 'review';
  id: string;
  title: string;
  subtitle: string;
  status?: string;
}

const statusColor: Record<string, string> = {
  pending: 'accent',
  approved: 'good',
  denied: 'attention',
  revoked: 'attention',
  rejected: 'attention',
  expired: 'warning',
  cancelled: 'default',
};

export function myRequestsCard(requests: ListItem[], approvals: ListItem[], approvalsNote: string | null = null): AdaptiveCard {
  return renderTemplate('my-requests', {
    requests: requests.map((r) => ({ ...r, status: r.status ?? '', color: statusColor[r.status ?? ''] ?? 'default' })),
    approvals,
    approvalsNote,
  });
}

export interface NoticeInput {
  title: string;
  text: string;
  tone: Tone;
  facts?: { title: string; value: string }[];
  /** offers "Install now" for an approved request waiting for its maintenance window */
  installNowId?: string;
  /** people to @mention (Teams notifies them): their Teams user id ("29:…") or AAD object id */
  mentions?: { id: string; name: string }[];
}

export function noticeCard(n: NoticeInput): AdaptiveCard {
  const mentions = (n.mentions ?? []).slice(0, 20);
  const card = renderTemplate('notice', {
    title: clip(n.title, 200),
    text: clip(n.text, 1500),
    style: toneStyle[n.tone],
    facts: n.facts ?? [],
    installNowId: n.installNowId ?? null,
    mentionText: mentions.length ? mentions.map((m) => `<at>${m.name}</at>`).join(' ') : null,
  });
  // a reply in a thread notifies nobody unless it mentions them, as Slack's <@U…> does
  if (mentions.length)
    card.msteams = {
      entities: mentions.map((m) => ({ type: 'mention', text: `<at>${m.name}</at>`, mentioned: { id: m.id, name: m.name } })),
    };
  return card;
}

export interface ChangeFormInput {
  resourceTypes: string[];
  values: { resourceType?: string; resourceId?: string; before?: string; after?: string; justification?: string };
  errors?: { summary?: string; resourceType?: string; resourceId?: string; before?: string; after?: string; justification?: string };
}

export function changeFormCard(input: ChangeFormInput): AdaptiveCard {
  const e = input.errors ?? {};
  return renderTemplate('change-form', {
    resourceTypes: input.resourceTypes.map((t) => ({ title: t, value: t })),
    resourceType: input.values.resourceType ?? (input.resourceTypes.length === 1 ? input.resourceTypes[0] : null),
    resourceId: input.values.resourceId ?? null,
    before: input.values.before ?? null,
    after: input.values.after ?? null,
    justification: input.values.justification ?? null,
    errorSummary: e.summary ?? null,
    errors: {
      resourceType: e.resourceType ?? null,
      resourceId: e.resourceId ?? null,
      before: e.before ?? null,
      after: e.after ?? null,
      justification: e.justification ?? null,
    },
  });
}

/** Every Action.Execute in a card, wherever it sits (actions, ActionSets, selectActions, refresh). */
export function executeActions(card: unknown): { verb: string; title?: string; data?: Record<string, unknown> }[] {
  const found: { verb: string; title?: string; data?: Record<string, unknown> }[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (v && typeof v === 'object') {
      const o = v as Record<string, unknown>;
      if (o.type === 'Action.Execute')
        found.push({ verb: String(o.verb), title: o.title as string | undefined, data: o.data as Record<string, unknown> | undefined });
      Object.values(o).forEach(walk);
    }
  };
  walk(card);
  return found;
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
