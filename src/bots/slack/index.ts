import type { Express } from 'express';
import type { AppContext } from '../../app-context.ts';
import type { ChatNotifier } from '../../core/ports.ts';
import { App } from '@slack/bolt';
import { SlackApi } from './slack-api.ts';
import { registerSlackListeners } from './slack-listeners.ts';
import { SlackNotifier } from './slack-notifier.ts';
import { boltLogger, SlackReceiver } from './slack-receiver.ts';
import type { SlackDeps } from './slack-replies.ts';

export interface SlackAdapterOptions {
  /** ms before an empty acknowledgement goes out regardless of handler progress; Slack's limit is 3000 */
  ackBudgetMs?: number;
  /** ms a modal may take to build before a "Loading…" placeholder opens in its place (trigger_ids expire in 3 s) */
  modalBudgetMs?: number;
  now?: () => number;
}

export interface SlackAdapter {
  /** Adds POST /slack/events; call before any JSON body parser, the signature covers the raw bytes. */
  mount(app: Express): void;
  notifier: ChatNotifier;
}

/**
 * The Slack front of Signoff: a Bolt `App` (slash command, App Home, interactivity; see slack-listeners.ts) on a
 * receiver mounted on Signoff's Express server, and the outbox notifier.
 */
export function createSlackAdapter(ctx: AppContext, opts: SlackAdapterOptions = {}): SlackAdapter {
  const { SLACK_SIGNING_SECRET, SLACK_BOT_TOKEN, SLACK_API_URL, MAX_BODY_BYTES } = ctx.config;
  if (!SLACK_SIGNING_SECRET || !SLACK_BOT_TOKEN) throw new Error('Slack is not configured: set SLACK_SIGNING_SECRET and SLACK_BOT_TOKEN');
  const api = new SlackApi(SLACK_BOT_TOKEN, { apiUrl: SLACK_API_URL, logger: ctx.logger, now: opts.now });
  const notifier = new SlackNotifier(ctx, api);
  const responseOrigins = new Set(['https://hooks.slack.com']);
  if (SLACK_API_URL) responseOrigins.add(new URL(SLACK_API_URL).origin);
  const deps: SlackDeps = { ctx, api, notifier, responseOrigins, modalBudgetMs: opts.modalBudgetMs ?? 1500 };
  const receiver = new SlackReceiver({
    signingSecret: SLACK_SIGNING_SECRET,
    ackBudgetMs: opts.ackBudgetMs ?? 2500,
    maxBodyBytes: MAX_BODY_BYTES,
    logger: ctx.logger,
    now: opts.now,
  });
  const bolt = new App({
    receiver,
    // one workspace, one bot token: no auth.test round trip, no OAuth installation store
    authorize: async () => ({ botToken: SLACK_BOT_TOKEN }),
    clientOptions: { slackApiUrl: SLACK_API_URL },
    logger: boltLogger(ctx.logger),
    // Signoff listens to no message events, so there is nothing of its own to ignore and no conversation state
    ignoreSelf: false,
    convoStore: false,
  });
  registerSlackListeners(bolt, deps);
  return {
    notifier,
    mount(app) {
      app.post('/slack/events', ...receiver.handlers());
    },
  };
}
