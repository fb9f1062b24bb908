import type { AckFn, App, BlockAction as BoltBlockAction } from '@slack/bolt';
import { toAppError } from '../../core/errors.ts';
import { Permits } from '../../integrations/queue/permits.ts';
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
 * Every way into Signoff from Slack, one Bolt listener each. Buttons are acknowledged before their work (which may
 * take longer than Slack's 3 s); modals and slash commands answer through `ack` when they can, else privately.
 */
export function registerSlackListeners(app: App, deps: SlackDeps): void {
  // Clicks are decided after their ack, so nothing else bounds how many wait for a database connection: a burst
  // beyond what the pool serves waits here for its ack (Slack shows the button's spinner; the receiver still acks
  // within its budget) instead of piling up behind the pool until its wait times out and the clicker is told the
  // database is away (half of 6000 back-to-back approve clicks were, at 250 decisions/s). One click per connection:
  // with more, REST calls queue behind the clicks for the same connections (their p99 240–290 ms with one per
  // connection, 300–1000 ms with two or four, `npm run bench -- decide-http`).
  const clicks = new Permits(deps.ctx.db.maxConnections);
  const clicked =
    (run: (p: InteractionPayload, action: BlockAction) => Promise<void>) =>
    async ({ ack, body, action }: { ack: () => Promise<void>; body: BoltBlockAction; action: unknown }) => {
      const slot = await clicks.hold();
      try {
        await tryAck(ack);
        await answerUnavailable(
          deps,
          body,
          () => Promise.resolve(false),
          () => run(body as unknown as InteractionPayload, action as BlockAction),
        );
      } finally {
        slot.giveBack();
      }
    };
  const button = (handler: ActionHandler) => clicked((p, action) => runAction(deps, p, action, handler));
  const submission =
    (submit: (deps: SlackDeps, p: InteractionPayload, ack: Ack) => Promise<void>) =>
    async ({ ack, body }: { ack: AckFn<any>; body: object }) => {
      const answer: Ack = (a) => tryAck(ack, a);
      await answerUnavailable(deps, body, answer, () => submit(deps, body as unknown as InteractionPayload, answer));
    };

  // One Bolt listener per kind, dispatching on the id: Bolt runs every registered listener's middleware (copying its
  // arguments each time) for every event: with one listener per id, a fifth of the server's CPU per approve click.
  const actions = new Map<string, ReturnType<typeof clicked>>([
    [ACTION.modalApp, button(redrawRequestModal)],
    [ACTION.openRequestModal, button(openRequestModal)],
    [ACTION.requestApp, button(requestApp)],
    [ACTION.history, button(showHistory)],
    [ACTION.approve, clicked((p, action) => runApprove(deps, p, action))],
    [ACTION.deny, button(decideRequest('deny'))],
    [ACTION.cancel, button(cancelRequest)],
    [ACTION.installNow, button(installNow)],
    [ACTION.changeApprove, button(decideChange('approve'))],
    [ACTION.changeReject, button(decideChange('reject'))],
    [ACTION.changeCancel, button(cancelChange)],
    [ACTION.reviewKeep, button(keepAccess)],
    [ACTION.reviewRemove, button(removeAccess)],
  ]);
  app.action<BoltBlockAction>(oneOf(actions.keys()), (args) => actions.get((args.action as { action_id: string }).action_id)!(args));

  // the request modal's searchable application select
  app.options(ACTION.modalApp, async ({ ack, body }) => {
    await suggestApplications(deps, body as unknown as InteractionPayload, (answer) => tryAck(ack, answer));
  });

  const views = new Map<string, ReturnType<typeof submission>>([
    [CALLBACK.requestModal, submission(submitRequest)],
    [CALLBACK.decisionReason, submission(submitDecision)],
    [CALLBACK.changeDecision, submission(submitDecision)],
    [CALLBACK.reviewRemove, submission(submitDecision)],
    [CALLBACK.changeModal, submission(submitChange)],
  ]);
  app.view(oneOf(views.keys()), (args) => views.get(args.view.callback_id)!(args));

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

/** Matches exactly one of the ids (Bolt tests a RegExp constraint against the action_id or callback_id). */
function oneOf(ids: Iterable<string>): RegExp {
  return new RegExp(`^(?:${[...ids].map((id) => id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|')})$`);
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
