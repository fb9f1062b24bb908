import type { Actor } from '../../core/audit-log.ts';
import { previewDecision, type DecisionPreview } from '../../core/decision-preview.ts';
import type { IdentityRow } from '../../core/directory.ts';
import { AppError, isAppError } from '../../core/errors.ts';
import type { RequestDetail } from '../../core/views.ts';
import { requestVisibility } from '../../core/visibility.ts';
import type { SlackView } from './slack-api.ts';
import type { ReviewView } from '../../core/review-queries.ts';
import { reviewQuestion, statusLabel } from './slack-approval-blocks.ts';
import { buildRequestModal, openModal } from './slack-commands.ts';
import { clip, context, esc, section, slackDate } from './slack-format.ts';
import { publishHome, requestableApplications } from './slack-home.ts';
import { parsePromptValue } from './slack-ids.ts';
import type { Ack } from './slack-receiver.ts';
import { appOption, infoModal, reasonModal, type ReasonMeta, type ViewState } from './slack-request-modal.ts';
import {
  actorOf,
  errorText,
  logUnexpected,
  notLinkedText,
  replyPrivately,
  resolveUser,
  type ReplyTarget,
  type SlackDeps,
} from './slack-replies.ts';

// block_actions (buttons) and block_suggestion; view submissions (modals) are in slack-submissions.ts

/** The one element a block_actions payload is about (Bolt's `action`). */
export interface BlockAction {
  action_id: string;
  value?: string;
  selected_option?: { value: string } | null;
}

export interface InteractionPayload {
  type: 'block_actions' | 'view_submission' | 'view_closed' | 'block_suggestion';
  user: { id: string };
  trigger_id?: string;
  response_url?: string;
  channel?: { id: string };
  container?: { type: string; channel_id?: string; view_id?: string };
  view?: { id: string; type: string; callback_id?: string; private_metadata?: string; state?: { values: ViewState } };
  actions?: BlockAction[];
  action_id?: string;
  block_id?: string;
  value?: string;
}

/** The searchable application select: options filtered by what the user typed, only apps they may request. */
export async function suggestApplications(deps: SlackDeps, p: InteractionPayload, ack: Ack): Promise<void> {
  const who = await resolveUser(deps, p.user.id);
  if (!who) {
    await ack({ options: [] });
    return;
  }
  const q = (p.value ?? '').trim().toLowerCase();
  const apps = (await requestableApplications(deps, who)).filter((a) => !q || a.name.toLowerCase().includes(q) || a.id.toLowerCase() === q);
  await ack({ options: apps.slice(0, 100).map(appOption) });
}

function replyTarget(p: InteractionPayload): ReplyTarget {
  return { user: p.user.id, channel: p.channel?.id ?? p.container?.channel_id ?? null, responseUrl: p.response_url ?? null };
}

/** What an action listener works with once the person who clicked is known. */
export interface ActionCall {
  deps: SlackDeps;
  p: InteractionPayload;
  action: BlockAction;
  /** the button's value (a request, change or review id) */
  id: string;
  who: IdentityRow;
  actor: Actor;
  target: ReplyTarget;
  say(text: string): Promise<void>;
  fromHome: boolean;
}

/** `changed`: something was decided, so a Home tab it came from is redrawn; `modal`: a modal opened, nothing changed yet. */
export type ActionOutcome = 'changed' | 'modal';
export type ActionHandler = (c: ActionCall) => Promise<ActionOutcome>;

/** Runs one button's handler (already acknowledged): resolves the clicker, words any refusal, refreshes the Home tab. */
export async function runAction(deps: SlackDeps, p: InteractionPayload, action: BlockAction, handler: ActionHandler): Promise<void> {
  const target = replyTarget(p);
  const say = (text: string) => replyPrivately(deps, target, text).catch((e) => logUnexpected(deps, e, 'ephemeral reply'));
  let who: IdentityRow | undefined;
  try {
    who = await resolveUser(deps, p.user.id);
  } catch (e) {
    // the database away before we know who clicked: say so rather than nothing
    logUnexpected(deps, e, `action ${action.action_id}`);
    return say(errorText(e, p.user.id));
  }
  if (!who) return say(notLinkedText(p.user.id));
  const fromHome = p.view?.type === 'home';
  let outcome: ActionOutcome = 'changed';
  try {
    outcome = await handler({ deps, p, action, id: action.value ?? '', who, actor: actorOf(who), target, say, fromHome });
  } catch (e) {
    logUnexpected(deps, e, `action ${action.action_id}`);
    await say(errorText(e, p.user.id));
  }
  if (fromHome && outcome === 'changed') await publishHome(deps, p.user.id, who).catch((e) => logUnexpected(deps, e, 'home refresh'));
}

/** The user picked another application in the request modal: redraw it with that app's fields. */
export const redrawRequestModal: ActionHandler = async ({ deps, p, action, who }) => {
  if (p.view) await deps.api.viewsUpdate(p.view.id, await buildRequestModal(deps, who, { appId: action.selected_option?.value }));
  return 'modal';
};

export const openRequestModal: ActionHandler = async ({ deps, p, who }) => {
  await openModal(deps, p.trigger_id!, buildRequestModal(deps, who, {}));
  return 'modal';
};

export const requestApp: ActionHandler = async ({ deps, p, who, id }) => {
  await openModal(deps, p.trigger_id!, buildRequestModal(deps, who, { appId: id }));
  return 'modal';
};

export const showHistory: ActionHandler = async ({ deps, p, id, who }) => {
  const build = deps.ctx.requests.get(id).then(async (request) => {
    // the same rule as the web app and Teams: a hand-made click shows nothing of another's request
    if (!(await requestVisibility(deps.ctx.db, who.id, request)).allowed) {
      throw new AppError('not_found', `No request with id "${id}" that you can open.`);
    }
    return historyModal(request);
  });
  await openModal(deps, p.trigger_id!, build);
  return 'modal';
};

/**
 * Approve or Deny on a prompt. An approval is decided at once: the core refuses, in the read its write is guarded
 * by, what may not be decided (decided, another stage, own request, not an approver), and a stage that wants the
 * approver's justification refuses it too, which is when the reason modal opens. A denial always asks why.
 */
export const decideRequest =
  (decision: 'approve' | 'deny'): ActionHandler =>
  async (c) => {
    if (decision === 'approve') {
      try {
        return await approveNow(c.deps, c.actor, c.id, c.say);
      } catch (e) {
        if (!asksForReason(e)) throw e;
      }
    }
    return askReason(decision)(c);
  };

async function approveNow(deps: SlackDeps, actor: Actor, value: string, say: (text: string) => Promise<void>): Promise<'changed'> {
  const prompt = parsePromptValue(value);
  const result = await deps.ctx.requests.decide(actor, prompt.id, 'approve', null, { stage: prompt.stage });
  await say(decidedText(result.outcome, result.request.application.name, result.request.requester?.displayName));
  return 'changed';
}

/**
 * Approve on a prompt in a channel or DM, in the fewest round trips: who clicked is looked up with the request in
 * decide()'s read rather than first. A click on the Home tab (redrawn for the clicker after) and an approval whose
 * stage wants a justification (a modal, opened for the clicker) look the person up first, as every other button.
 */
export async function runApprove(deps: SlackDeps, p: InteractionPayload, action: BlockAction): Promise<void> {
  if (p.view?.type === 'home') return runAction(deps, p, action, decideRequest('approve'));
  const say = (text: string) => replyPrivately(deps, replyTarget(p), text).catch((e) => logUnexpected(deps, e, 'ephemeral reply'));
  try {
    await approveNow(deps, { id: null, label: `slack:${p.user.id}`, channel: 'slack', slackUserId: p.user.id }, action.value ?? '', say);
  } catch (e) {
    if (asksForReason(e)) return runAction(deps, p, action, askReason('approve'));
    logUnexpected(deps, e, `action ${action.action_id}`);
    await say(errorText(e, p.user.id));
  }
}

/** Opens the reason modal for a decision, once the core has said the clicker may make it. */
const askReason =
  (decision: 'approve' | 'deny'): ActionHandler =>
  async ({ deps, p, id, actor, target, fromHome }) => {
    const prompt = parsePromptValue(id);
    // refused here before anyone types a reason, in one read; decide() checks again when the modal is submitted
    const r = await previewDecision(deps.ctx.db, actor, prompt.id, { stage: prompt.stage });
    const meta: ReasonMeta = {
      kind: 'request',
      id: r.id,
      decision,
      channel: target.channel ?? undefined,
      stage: r.stage,
      home: fromHome || undefined,
    };
    await deps.api.viewsOpen(p.trigger_id!, reasonModal(meta, requestSummary(r), true));
    return 'modal';
  };

/** The core's refusal of an approval without the justification its stage asks for. */
const asksForReason = (e: unknown): boolean =>
  isAppError(e) && e.code === 'validation_failed' && (e.details as { field?: string } | undefined)?.field === 'reason';

export const cancelRequest: ActionHandler = async ({ deps, id, actor, say }) => {
  const r = await deps.ctx.requests.cancel(actor, id, null);
  await say(`:no_entry_sign: Your request for *${esc(r.application.name)}* is cancelled.`);
  return 'changed';
};

export const installNow: ActionHandler = async ({ deps, id, actor, say }) => {
  const r = await deps.ctx.requests.installNow(actor, id);
  await say(
    `:package: The installation of *${esc(r.application.name)}*${r.device ? ` on ${esc(r.device.name)}` : ''} has been ordered now.`,
  );
  return 'changed';
};

/** Approve or Reject on a change: refused here before anyone types notes, then a notes modal. */
export const decideChange =
  (decision: 'approve' | 'reject'): ActionHandler =>
  async ({ deps, p, id, actor, target, fromHome }) => {
    const c = await deps.ctx.changes.checkDecision(actor, id);
    const meta: ReasonMeta = { kind: 'change', id, decision, channel: target.channel ?? undefined, home: fromHome || undefined };
    await deps.api.viewsOpen(
      p.trigger_id!,
      reasonModal(
        meta,
        `*${esc(c.resourceType)}* \`${esc(c.resourceId)}\` requested by *${esc(c.requester.label)}*: ${c.diff.length} change(s).\n>${esc(clip(c.justification, 500))}`,
        decision === 'reject',
      ),
    );
    return 'modal';
  };

export const cancelChange: ActionHandler = async ({ deps, id, actor, say }) => {
  const c = await deps.ctx.changes.cancel(actor, id, null);
  await say(`:no_entry_sign: Your change to ${esc(c.resourceType)} \`${esc(c.resourceId)}\` is cancelled.`);
  return 'changed';
};

export const keepAccess: ActionHandler = async ({ deps, id, actor, say }) => {
  await deps.ctx.reviews.decide(actor, id, 'keep', null);
  await say(reviewDecidedText(await deps.ctx.reviews.get(id)));
  return 'changed';
};

/** Refused here (not a reviewer, own access, already answered) before anyone types a reason. */
export const removeAccess: ActionHandler = async ({ deps, p, id, actor, target, fromHome }) => {
  const v = await deps.ctx.reviews.checkReviewer(actor, id);
  const meta: ReasonMeta = { kind: 'review', id, decision: 'remove', channel: target.channel ?? undefined, home: fromHome || undefined };
  await deps.api.viewsOpen(
    p.trigger_id!,
    reasonModal(meta, `${reviewQuestion(v)}\nRemoving revokes the access and uninstalls the application.`, true),
  );
  return 'modal';
};

function requestSummary(r: DecisionPreview): string {
  return (
    `*${esc(r.applicationName)}* for *${esc(r.requesterName ?? 'a device')}*${r.deviceName ? ` on ${esc(r.deviceName)}` : ''}` +
    `${r.justification ? `\n>${esc(clip(r.justification, 500))}` : ''}`
  );
}

export function decidedText(outcome: string, app: string, requester?: string): string {
  const forWhom = requester ? ` for *${esc(requester)}*` : '';
  switch (outcome) {
    case 'recorded':
      return `:ballot_box_with_check: Your approval of *${esc(app)}*${forWhom} is recorded; more approvals are needed for this stage.`;
    case 'stage_approved':
      return `:white_check_mark: You approved this stage of *${esc(app)}*${forWhom}; it moves to the next stage.`;
    case 'approved':
      return `:white_check_mark: You approved *${esc(app)}*${forWhom}.`;
    case 'reapproved':
      return `:white_check_mark: You approved *${esc(app)}*${forWhom} again; it will be installed.`;
    case 'denied':
      return `:no_entry: You denied *${esc(app)}*${forWhom}.`;
    case 'revoked':
      return `:leftwards_arrow_with_hook: You revoked *${esc(app)}*${forWhom}; it will be uninstalled.`;
    default:
      return `Done: ${esc(outcome)}.`;
  }
}

export function reviewDecidedText(v: ReviewView): string {
  const what = `*${esc(v.application.name)}* for *${esc(v.requester?.displayName ?? 'a device')}*${v.device ? ` on ${esc(v.device.name)}` : ''}`;
  return v.status === 'removed'
    ? `:leftwards_arrow_with_hook: You removed ${what}; the access is revoked and the application will be uninstalled.`
    : `:white_check_mark: You kept ${what}; the access stays as it is.`;
}

function historyModal(r: RequestDetail): SlackView {
  const lines = r.history.map(
    (h) => `• ${slackDate(h.at)} *${esc(h.action.replace(/^request\./, ''))}* by ${esc(h.actor)} (${esc(h.channel)})`,
  );
  return infoModal('Request history', [
    section(
      `*${esc(r.application.name)}*${r.device ? ` on ${esc(r.device.name)}` : ''} for ${esc(r.requester?.displayName ?? 'a device')}: ${statusLabel(r.status)}`,
    ),
    section(clip(lines.join('\n') || '_No history._', 3000)),
    context(`Request \`${r.id}\``),
  ]);
}
