import type { AckFn, App, BlockAction as BoltBlockAction } from '@slack/bolt';
import { toAppError } from '../../core/errors.ts';
import { handleCommand } from './slack-commands.ts';
import { publishHome } from './slack-home.ts';
import { ACTION, CALLBACK } from './slack-ids.ts';
import {
  cancelChange,
  cancelRequest,
  decideChange,
  decideRequest,
  installNow,
  keepAccess,
  openRequestModal,
  redrawRequestModal,
  removeAccess,
  requestApp,
  runAction,
  runApprove,
  showHistory,
  suggestApplications,
  type ActionHandler,
  type BlockAction,
  type InteractionPayload,
} from './slack-interactions.ts';
import { tryAck, type Ack } from './slack-receiver.ts';
import { submitChange, submitDecision, submitRequest } from './slack-submissions.ts';
import { logUnexpected, replyPrivately, resolveUser, UNAVAILABLE_TEXT, type SlackDeps } from './slack-replies.ts';

/**
 * Every way into Signoff from Slack, one Bolt listener each. Buttons are acknowledged at once (the work may take
 * longer than Slack's 3 s); modals and slash commands answer through `ack` when they can, else privately.
 */
export function registerSlackListeners(app: App, deps: SlackDeps): void {
  const clicked =
    (run: (p: InteractionPayload, action: BlockAction) => Promise<void>) =>
    async ({ ack, body, action }: { ack: () => Promise<void>; body: BoltBlockAction; action: unknown }) => {
      await tryAck(ack);
      await answerUnavailable(
        deps,
        body,
        () => Promise.resolve(false),
        () => run(body as unknown as InteractionPayload, action as BlockAction),
      );
    };
  const button = (handler: ActionHandler) => clicked((p, action) => runAction(deps, p, action, handler));
  const submission =
    (submit: (deps: SlackDeps, p: InteractionPayload, ack: Ack) => Promise<void>) =>
    async ({ ack, body }: { ack: AckFn<any>; body: object }) => {
      const answer: Ack = (a) => tryAck(ack, a);
      await answerUnavailable(deps, body, answer, () => submit(deps, body as unknown as InteractionPayload, answer));
    };

  app.action<BoltBlockAction>(ACTION.modalApp, button(redrawRequestModal));
  app.action<BoltBlockAction>(ACTION.openRequestModal, button(openRequestModal));
  app.action<BoltBlockAction>(ACTION.requestApp, button(requestApp));
  app.action<BoltBlockAction>(ACTION.history, button(showHistory));
  app.action<BoltBlockAction>(
    ACTION.approve,
    clicked((p, action) => runApprove(deps, p, action)),
  );
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

  app.view(CALLBACK.requestModal, submission(submitRequest));
  app.view(CALLBACK.decisionReason, submission(submitDecision));
  app.view(CALLBACK.changeDecision, submission(submitDecision));
  app.view(CALLBACK.reviewRemove, submission(submitDecision));
  app.view(CALLBACK.changeModal, submission(submitChange));

  app.command('/signoff', async ({ ack, command }) => {
    const answer: Ack = (a) => tryAck(ack, a);
    await answerUnavailable(deps, command, answer, () => handleCommand(deps, command, answer));
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

/**
 * Runs a listener; when the database was away before it could answer (resolving who clicked), the person is told
 * so rather than nothing, and the error goes on to Bolt's error handler.
 */
async function answerUnavailable(deps: SlackDeps, body: object, ack: Ack, run: () => Promise<void>): Promise<void> {
  try {
    await run();
  } catch (e) {
    if (toAppError(e).code === 'dependency_unavailable')
      await sayUnavailable(deps, body, ack).catch((err: unknown) => logUnexpected(deps, err, 'slack unavailable reply'));
    throw e;
  }
}

async function sayUnavailable(deps: SlackDeps, body: object, ack: Ack): Promise<void> {
  const b = body as { command?: string; user_id?: string; channel_id?: string; response_url?: string } & Partial<InteractionPayload>;
  if (b.command) {
    if (await ack({ response_type: 'ephemeral', text: UNAVAILABLE_TEXT })) return;
    await replyPrivately(deps, { user: b.user_id!, channel: b.channel_id, responseUrl: b.response_url }, UNAVAILABLE_TEXT);
  } else if (b.type === 'block_actions' && b.user) {
    await replyPrivately(
      deps,
      { user: b.user.id, channel: b.channel?.id ?? b.container?.channel_id, responseUrl: b.response_url },
      UNAVAILABLE_TEXT,
    );
  } else if (b.type === 'view_submission') {
    await ack({
      response_action: 'update',
      view: {
        type: 'modal',
        title: { type: 'plain_text', text: 'Signoff' },
        blocks: [{ type: 'section', text: { type: 'mrkdwn', text: UNAVAILABLE_TEXT } }],
      },
    });
  }
}
