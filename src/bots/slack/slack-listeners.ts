import type { App, BlockAction as BoltBlockAction } from '@slack/bolt';
import { handleCommand } from './slack-commands.ts';
import { publishHome } from './slack-home.ts';
import { ACTION, CALLBACK } from './slack-ids.ts';
import {
  cancelChange, cancelRequest, decideChange, decideRequest, installNow, keepAccess, openRequestModal, redrawRequestModal, removeAccess,
  requestApp, runAction, showHistory, submitChange, submitDecision, submitRequest, suggestApplications,
  type ActionHandler, type BlockAction, type InteractionPayload,
} from './slack-interactions.ts';
import { tryAck } from './slack-receiver.ts';
import { logUnexpected, resolveUser, type SlackDeps } from './slack-replies.ts';

/**
 * Every way into Signoff from Slack, one Bolt listener each. Buttons are acknowledged at once (the work may take
 * longer than Slack's 3 s); modals and slash commands answer through `ack` when they can, else privately.
 */
export function registerSlackListeners(app: App, deps: SlackDeps): void {
  const button = (handler: ActionHandler) => async ({ ack, body, action }: { ack: () => Promise<void>; body: BoltBlockAction; action: unknown }) => {
    await tryAck(ack);
    await runAction(deps, body as unknown as InteractionPayload, action as BlockAction, handler);
  };

  app.action<BoltBlockAction>(ACTION.modalApp, button(redrawRequestModal));
  app.action<BoltBlockAction>(ACTION.openRequestModal, button(openRequestModal));
  app.action<BoltBlockAction>(ACTION.requestApp, button(requestApp));
  app.action<BoltBlockAction>(ACTION.history, button(showHistory));
  app.action<BoltBlockAction>(ACTION.approve, button(decideRequest('approve')));
  app.action<BoltBlockAction>(ACTION.deny, button(decideRequest('deny')));
  app.action<BoltBlockAction>(ACTION.cancel, button(cancelRequest));
  app.action<BoltBlockAction>(ACTION.installNow, button(installNow));
  app.action<BoltBlockAction>(ACTION.changeApprove, button(decideChange('approve')));
  app.action<BoltBlockAction>(ACTION.changeReject, button(decideChange('reject')));
  app.action<BoltBlockAction>(ACTION.changeCancel, button(cancelChange));
  app.action<BoltBlockAction>(ACTION.reviewKeep, button(keepAccess));
  app.action<BoltBlockAction>(ACTION.reviewRemove, button(removeAccess));

  // the request modal's searchable application select
  app.options(ACTION.modalApp, async ({ ack, body }) => {
    await suggestApplications(deps, body as unknown as InteractionPayload, (answer) => tryAck(ack, answer));
  });

  app.view(CALLBACK.requestModal, async ({ ack, body }) => {
    await submitRequest(deps, body as unknown as InteractionPayload, (answer) => tryAck(ack, answer));
  });
  for (const callbackId of [CALLBACK.decisionReason, CALLBACK.changeDecision, CALLBACK.reviewRemove]) {
    app.view(callbackId, async ({ ack, body }) => {
      await submitDecision(deps, body as unknown as InteractionPayload, (answer) => tryAck(ack, answer));
    });
  }
  app.view(CALLBACK.changeModal, async ({ ack, body }) => {
    await submitChange(deps, body as unknown as InteractionPayload, (answer) => tryAck(ack, answer));
  });

  app.command('/signoff', async ({ ack, command }) => {
    await handleCommand(deps, command, (answer) => tryAck(ack, answer));
  });

  // Bolt has acknowledged the event before this runs
  app.event('app_home_opened', async ({ event }) => {
    if ((event.tab ?? 'home') !== 'home') return;
    await publishHome(deps, event.user, await resolveUser(deps, event.user));
  });

  app.error(async (e) => {
    logUnexpected(deps, (e as { original?: unknown }).original ?? e, 'slack listener');
  });
}
