import type { Question } from '../../core/policy-schema.ts';
import { clip, renderTemplate, toneStyle, type AdaptiveCard, type Tone } from './teams-card-template.ts';

/** Forms, lists and notices a person opens in personal chat (pure, like the prompt cards in teams-cards.ts). */
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
