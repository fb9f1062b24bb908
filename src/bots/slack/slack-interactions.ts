import type { Actor } from '../../core/audit-log.ts';
import { applicationById, policyOf, type IdentityRow } from '../../core/directory.ts';
import { isAppError } from '../../core/errors.ts';
import { validateSubmission } from '../../core/policy-evaluation.ts';
import type { RequestDetail } from '../../core/views.ts';
import type { SlackView } from './slack-api.ts';
import type { ReviewView } from '../../core/review-queries.ts';
import { reviewQuestion, statusLabel } from './slack-approval-blocks.ts';
import { changeFieldBlock, parseChangeSubmission } from './slack-change-modal.ts';
import { buildRequestModal, openModal } from './slack-commands.ts';
import { clip, context, esc, section, slackDate } from './slack-format.ts';
import { publishHome, requestableApplications } from './slack-home.ts';
import { BLOCK, parsePromptValue } from './slack-ids.ts';
import type { Ack } from './slack-receiver.ts';
import {
  appOption,
  fieldErrorsToBlocks,
  infoModal,
  parseRequestSubmission,
  readReason,
  reasonModal,
  type ReasonMeta,
  type RequestModalMeta,
  type ViewState,
} from './slack-request-modal.ts';
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

const parseMeta = <T>(raw: string | undefined): T => {
  try {
    return JSON.parse(raw || '{}') as T;
  } catch {
    return {} as T;
  }
};

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

export const showHistory: ActionHandler = async ({ deps, p, id }) => {
  await openModal(deps, p.trigger_id!, deps.ctx.requests.get(id).then(historyModal));
  return 'modal';
};

/** Approve or Deny on a prompt: a reason modal when one is needed, else the decision at once. */
export const decideRequest =
  (decision: 'approve' | 'deny'): ActionHandler =>
  async ({ deps, p, id, actor, target, say, fromHome }) => {
    const prompt = parsePromptValue(id);
    // refused here (decided, another stage, own request, not an approver) before anyone types a reason; decide() checks again
    const r = await deps.ctx.requests.checkDecision(actor, prompt.id, { stage: prompt.stage });
    const stage = prompt.stage ?? r.currentStage;
    const needsReason = decision === 'deny' || (r.stages[stage]?.approverJustification ?? false);
    if (needsReason) {
      const meta: ReasonMeta = {
        kind: 'request',
        id: r.id,
        decision,
        channel: target.channel ?? undefined,
        stage,
        home: fromHome || undefined,
      };
      await deps.api.viewsOpen(p.trigger_id!, reasonModal(meta, requestSummary(r), true));
      return 'modal';
    }
    const result = await deps.ctx.requests.decide(actor, r.id, 'approve', null, { stage });
    await say(decidedText(result.outcome, result.request.application.name, result.request.requester?.displayName));
    return 'changed';
  };

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

function requestSummary(r: RequestDetail): string {
  return (
    `*${esc(r.application.name)}* for *${esc(r.requester?.displayName ?? 'a device')}*${r.device ? ` on ${esc(r.device.name)}` : ''}` +
    `${r.justification ? `\n>${esc(clip(r.justification, 500))}` : ''}`
  );
}

function decidedText(outcome: string, app: string, requester?: string): string {
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

function reviewDecidedText(v: ReviewView): string {
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

/** Validation answers inline, before any Slack API call; a slow submit closes the modal and the DM follows. */
export async function submitRequest(deps: SlackDeps, p: InteractionPayload, ack: Ack): Promise<void> {
  const state: ViewState = p.view?.state?.values ?? {};
  const who = await resolveUser(deps, p.user.id);
  if (!who) return void (await ack({ response_action: 'errors', errors: { [BLOCK.app]: clip(notLinkedText(p.user.id), 300) } }));
  const meta = parseMeta<RequestModalMeta>(p.view?.private_metadata);
  const firstPass = parseRequestSubmission(state, undefined, meta);
  if (!firstPass.appId) return void (await ack({ response_action: 'errors', errors: { [BLOCK.app]: 'Choose an application.' } }));
  const allowed = (await requestableApplications(deps, who)).some((a) => a.id === firstPass.appId);
  const app = allowed ? await applicationById(deps.ctx.db, firstPass.appId) : undefined;
  if (!app) return void (await ack({ response_action: 'errors', errors: { [BLOCK.app]: 'This application is not available to you.' } }));
  if (meta.appId !== app.id) {
    // the form on screen belongs to another app (the select changed but the redraw has not landed yet)
    return void (await ack({ response_action: 'update', view: await buildRequestModal(deps, who, { appId: app.id }) }));
  }
  const policy = policyOf(app);
  const input = parseRequestSubmission(state, policy, meta);
  const errors = fieldErrorsToBlocks(validateSubmission(policy, input));
  if (app.per_device && !input.deviceId) {
    // the field is there when the user has devices (nothing chosen); without one there is nothing to choose
    if (state[BLOCK.device]) errors[BLOCK.device] = 'Choose the device to install on.';
    else
      errors[BLOCK.app] = 'No device of yours is registered, and this application is installed per device. Ask IT to register your device.';
  }
  if (Object.keys(errors).length) return void (await ack({ response_action: 'errors', errors }));

  try {
    const r = await deps.ctx.requests.submit(actorOf(who), {
      applicationId: app.id,
      requesterId: who.id,
      deviceId: app.per_device ? input.deviceId : undefined,
      justification: input.justification ?? null,
      answers: input.answers,
      source: 'chat',
    });
    const done = infoModal('Request submitted', [
      section(
        `:inbox_tray: Your request for *${esc(r.application.name)}*${r.device ? ` on ${esc(r.device.name)}` : ''} is submitted and waits for the approvers. I'll message you when it is decided.`,
      ),
      context(`Request \`${r.id}\``),
    ]);
    await ack({ response_action: 'update', view: done });
  } catch (e) {
    logUnexpected(deps, e, 'request submission');
    const block = submitErrorBlock(e, app.per_device && Boolean(state[BLOCK.device]));
    if (await ack({ response_action: 'errors', errors: { [block]: inlineError(e) } })) return;
    await replyPrivately(deps, { user: p.user.id }, errorText(e, p.user.id));
  }
}

/** Inline modal errors are plain text: the core's own sentence, never internals. */
function inlineError(e: unknown): string {
  return clip(isAppError(e) ? e.message : 'Something went wrong on our side; it has been logged. Please try again.', 300);
}

function submitErrorBlock(e: unknown, hasDeviceBlock: boolean): string {
  if (!isAppError(e)) return BLOCK.app;
  const field = (e.details as { field?: string } | undefined)?.field;
  if (field === 'clientGuid' && hasDeviceBlock) return BLOCK.device;
  if (field === 'justification') return BLOCK.justification;
  if ((e.code === 'already_pending' || e.code === 'already_approved') && hasDeviceBlock) return BLOCK.device;
  return BLOCK.app;
}

export async function submitDecision(deps: SlackDeps, p: InteractionPayload, ack: Ack): Promise<void> {
  const state: ViewState = p.view?.state?.values ?? {};
  const meta = parseMeta<ReasonMeta>(p.view?.private_metadata);
  const reason = readReason(state);
  const required = meta.kind === 'request' || meta.kind === 'review' || meta.decision === 'reject';
  if (required && !reason)
    return void (await ack({
      response_action: 'errors',
      errors: {
        [BLOCK.reason]:
          meta.decision === 'approve' ? 'This stage needs a justification from the approver.' : 'Say why, so the requester knows.',
      },
    }));
  const target: ReplyTarget = { user: p.user.id, channel: meta.channel ?? null };
  const who = await resolveUser(deps, p.user.id);
  if (!who) return void (await ack({ response_action: 'errors', errors: { [BLOCK.reason]: clip(notLinkedText(p.user.id), 300) } }));
  try {
    let text: string;
    if (meta.kind === 'review') {
      await deps.ctx.reviews.decide(actorOf(who), meta.id, 'remove', reason);
      text = reviewDecidedText(await deps.ctx.reviews.get(meta.id));
    } else if (meta.kind === 'request' && (meta.decision === 'revoke' || meta.decision === 'reapprove')) {
      const opts = { expectedVersion: meta.version };
      const result =
        meta.decision === 'revoke'
          ? await deps.ctx.requests.revoke(actorOf(who), meta.id, reason, opts)
          : await deps.ctx.requests.reapprove(actorOf(who), meta.id, reason, opts);
      text = decidedText(result.outcome, result.request.application.name, result.request.requester?.displayName);
    } else if (meta.kind === 'request') {
      const result = await deps.ctx.requests.decide(actorOf(who), meta.id, meta.decision === 'approve' ? 'approve' : 'deny', reason, {
        stage: meta.stage ?? -1,
      });
      text = decidedText(result.outcome, result.request.application.name, result.request.requester?.displayName);
    } else {
      const c =
        meta.decision === 'approve'
          ? await deps.ctx.changes.approve(actorOf(who), meta.id, reason || null)
          : await deps.ctx.changes.reject(actorOf(who), meta.id, reason || null);
      text = `${c.status === 'approved' ? ':white_check_mark: You approved' : ':no_entry: You rejected'} the change to ${esc(c.resourceType)} \`${esc(c.resourceId)}\`.`;
    }
    await ack({ response_action: 'clear' });
    await replyPrivately(deps, target, text);
    if (meta.home) await publishHome(deps, p.user.id, who).catch((e) => logUnexpected(deps, e, 'home refresh'));
  } catch (e) {
    logUnexpected(deps, e, 'decision');
    if (isAppError(e) && e.code === 'validation_failed') {
      if (await ack({ response_action: 'errors', errors: { [BLOCK.reason]: clip(e.message, 300) } })) return;
    }
    await ack({ response_action: 'clear' });
    await replyPrivately(deps, target, errorText(e, p.user.id));
  }
}

export async function submitChange(deps: SlackDeps, p: InteractionPayload, ack: Ack): Promise<void> {
  const state: ViewState = p.view?.state?.values ?? {};
  const { value, errors } = parseChangeSubmission(state);
  if (Object.keys(errors).length) return void (await ack({ response_action: 'errors', errors }));
  const who = await resolveUser(deps, p.user.id);
  if (!who) return void (await ack({ response_action: 'errors', errors: { [BLOCK.changeId]: clip(notLinkedText(p.user.id), 300) } }));
  try {
    const c = await deps.ctx.changes.submit(actorOf(who), {
      resourceType: value.resourceType!,
      resourceId: value.resourceId!,
      before: value.before,
      after: value.after,
      justification: value.justification!,
    });
    await ack({
      response_action: 'update',
      view: infoModal('Change submitted', [
        section(
          `:inbox_tray: Your change to ${esc(c.resourceType)} \`${esc(c.resourceId)}\` (${c.diff.length} change(s)) waits for another admin in ${esc(c.approverGroups.join(', '))}.`,
        ),
        context(`Change \`${c.id}\``),
      ]),
    });
  } catch (e) {
    logUnexpected(deps, e, 'change submission');
    const field = isAppError(e) ? (e.details as { field?: string } | undefined)?.field : undefined;
    const block = isAppError(e) && e.code === 'already_pending' ? BLOCK.changeId : changeFieldBlock(field);
    if (await ack({ response_action: 'errors', errors: { [block]: inlineError(e) } })) return;
    await replyPrivately(deps, { user: p.user.id }, errorText(e, p.user.id));
  }
}
