import express, { type Express, type Request, type Response } from 'express';
import type { AppContext } from '../../app-context.ts';
import { AppError, toAppError } from '../../core/errors.ts';
import type { ChatNotifier } from '../../core/ports.ts';
import { createCloudAdapter } from './teams-auth.ts';
import { SignoffTeamsBot } from './teams-bot.ts';
import { BotConnectorClient, tokenProviderFor } from './teams-connector.ts';
import { TEAMS_UNAVAILABLE_TEXT, TeamsInvokeHandler } from './teams-invoke.ts';
import { TeamsNotifier } from './teams-notifier.ts';
import { TeamsViews } from './teams-views.ts';

export interface TeamsAdapter {
  mount(app: Express): void;
  notifier: ChatNotifier;
}

/** The Teams bot: `POST /api/messages` for Bot Framework activities, and the notifier the outbox relay calls. */
export function createTeamsAdapter(ctx: AppContext, opts: { minSendIntervalMs?: number } = {}): TeamsAdapter {
  const adapter = createCloudAdapter(ctx.config);
  const views = new TeamsViews(ctx);
  const bot = new SignoffTeamsBot(ctx, new TeamsInvokeHandler(ctx, views), views);
  const notifier = new TeamsNotifier(
    ctx,
    new BotConnectorClient(tokenProviderFor(ctx.config), { minIntervalMs: opts.minSendIntervalMs }),
    views,
  );

  adapter.onTurnError = async (turn, error) => {
    const unavailable = toAppError(error).code === 'dependency_unavailable';
    if (unavailable) ctx.logger.warn({ err: error?.message, type: turn.activity.type }, 'teams: turn failed, database unavailable');
    else ctx.logger.error({ err: error, type: turn.activity.type }, 'teams: turn failed');
    // an invoke still gets an answer; messages get a short apology rather than silence
    if (turn.activity.type === 'message') {
      await turn
        .sendActivity(unavailable ? TEAMS_UNAVAILABLE_TEXT : 'Something went wrong on our side; it has been logged. Please try again.')
        .catch(() => undefined);
    }
  };

  return {
    notifier,
    mount(app: Express) {
      app.post('/api/messages', express.json({ limit: ctx.config.MAX_BODY_BYTES }), async (req: Request, res: Response) => {
        // botbuilder answers anything but a JSON object with an HTML 400 of its own; refuse it here, as problem+json
        if (!req.is('application/json'))
          throw new AppError('unsupported_media_type', 'A Bot Framework activity is sent as application/json.');
        if (typeof req.body !== 'object' || req.body === null || Array.isArray(req.body))
          throw new AppError('validation_failed', 'Not a Bot Framework activity: the body must be a JSON object.');
        if (typeof req.body.type !== 'string' || !req.body.type.trim())
          throw new AppError('validation_failed', 'Not a Bot Framework activity: missing activity type.', { field: 'type' });
        const shapeProblem = activityShapeProblem(req.body);
        if (shapeProblem)
          throw new AppError('validation_failed', `Not a Bot Framework activity: ${shapeProblem.message}`, { field: shapeProblem.field });
        try {
          await adapter.process(req as never, res as never, (turn) => bot.run(turn));
        } catch (e) {
          // botbuilder throws plain errors for bodies that are not activities; they are the caller's fault
          if (
            !res.headersSent &&
            /validateAndFixActivity|activity/i.test((e as Error).message ?? '') &&
            !(e as { statusCode?: number }).statusCode
          ) {
            throw new AppError(
              'validation_failed',
              `Not a Bot Framework activity: ${(e as Error).message.replace(/^validateAndFixActivity\(\): /, '')}`,
            );
          }
          throw e;
        }
      });
    },
  };
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/**
 * The fields a turn reads, in the types the Bot Framework schema gives them: a sender with an id, a conversation
 * with an id, text as a string, members as lists. A body otherwise shaped failed inside the turn as our error.
 */
function activityShapeProblem(a: Record<string, unknown>): { field: string; message: string } | undefined {
  if (!isObject(a.from) || typeof a.from.id !== 'string') return { field: 'from', message: 'from must name the sender (from.id).' };
  if (!isObject(a.conversation) || typeof a.conversation.id !== 'string')
    return { field: 'conversation', message: 'conversation must name the conversation (conversation.id).' };
  if (a.recipient !== undefined && !isObject(a.recipient)) return { field: 'recipient', message: 'recipient must be an object.' };
  for (const field of ['text', 'serviceUrl', 'channelId', 'name', 'replyToId'] as const) {
    if (a[field] !== undefined && a[field] !== null && typeof a[field] !== 'string')
      return { field, message: `${field} must be a string.` };
  }
  for (const field of ['membersAdded', 'membersRemoved', 'entities', 'attachments'] as const) {
    if (a[field] !== undefined && a[field] !== null && !Array.isArray(a[field])) return { field, message: `${field} must be a list.` };
  }
  return undefined;
}
