import { applicationById, policyOf } from '../../core/directory.ts';
import { isAppError } from '../../core/errors.ts';
import { validateSubmission } from '../../core/policy-evaluation.ts';
import { changeFieldBlock, parseChangeSubmission } from './slack-change-modal.ts';
import { buildRequestModal } from './slack-commands.ts';
import { clip, context, esc, section } from './slack-format.ts';
import { publishHome, requestableApplications } from './slack-home.ts';
import { BLOCK } from './slack-ids.ts';
import { decidedText, reviewDecidedText, type InteractionPayload } from './slack-interactions.ts';
import type { Ack } from './slack-receiver.ts';
import {
  fieldErrorsToBlocks,
  infoModal,
  parseRequestSubmission,
  readReason,
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

// view_submission: the request, decision-reason and change modals; buttons and suggestions are in slack-interactions.ts

const parseMeta = <T>(raw: string | undefined): T => {
  try {
    return JSON.parse(raw || '{}') as T;
  } catch {
    return {} as T;
  }
};

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
