import { webApi } from '@slack/bolt';
import type { Logger } from '../../logger.ts';
import type { OutboundError } from '../../notifications/outbound-error.ts';
import { slackFetch } from './slack-http.ts';

/** Errors after which the message is gone for good: post a fresh one instead of retrying the update. */
export const GONE_ERRORS = new Set([
  'message_not_found',
  'cant_update_message',
  'channel_not_found',
  'is_archived',
  'not_in_channel',
  'edit_window_closed',
]);

/**
 * One Slack Web API failure. `transient` failures (429, 5xx, network) are thrown on to the outbox queue,
 * which retries them; `retryAfterMs` tells it how long Slack asked us to wait.
 */
export class SlackApiError extends Error implements OutboundError {
  constructor(
    readonly method: string,
    readonly slackError: string,
    readonly transient: boolean,
    readonly retryAfterMs?: number,
  ) {
    super(`Slack ${method} failed: ${slackError}${retryAfterMs !== undefined ? ` (retry after ${Math.ceil(retryAfterMs / 1000)}s)` : ''}`);
    this.name = 'SlackApiError';
  }
  get gone(): boolean {
    return GONE_ERRORS.has(this.slackError);
  }
  get retryable(): boolean {
    return this.transient;
  }
}

export type Blocks = Record<string, unknown>[];
export interface SlackView {
  type: 'modal' | 'home';
  callback_id?: string;
  private_metadata?: string;
  title?: { type: 'plain_text'; text: string };
  submit?: { type: 'plain_text'; text: string };
  close?: { type: 'plain_text'; text: string };
  blocks: Blocks;
  [k: string]: unknown;
}

export interface PostArgs {
  channel: string;
  text: string;
  blocks?: Blocks;
  thread_ts?: string;
}

/** The few Web API methods Signoff uses, with errors mapped once and Slack's rate limits honoured. */
export class SlackApi {
  private readonly client: webApi.WebClient;
  /** Slack said "wait": until then we fail fast instead of hammering it (per process, per method). */
  private readonly pausedUntil = new Map<string, number>();
  private readonly dmChannels = new Map<string, string>();
  private readonly now: () => number;
  private readonly logger: Logger;

  constructor(token: string, opts: { apiUrl?: string; logger: Logger; timeoutMs?: number; now?: () => number }) {
    this.now = opts.now ?? Date.now;
    this.logger = opts.logger;
    this.client = new webApi.WebClient(token, {
      slackApiUrl: opts.apiUrl,
      // retries belong to the queue (durable, visible) rather than to a hidden in-memory loop
      retryConfig: { retries: 0 },
      rejectRateLimitedCalls: true,
      timeout: opts.timeoutMs ?? 10_000,
      logLevel: webApi.LogLevel.ERROR,
      fetch: slackFetch as unknown as typeof fetch,
    });
  }

  async call<T = Record<string, unknown>>(method: string, args: Record<string, unknown>): Promise<T> {
    const until = this.pausedUntil.get(method) ?? 0;
    const wait = until - this.now();
    if (wait > 0) throw new SlackApiError(method, 'ratelimited', true, wait);
    try {
      return (await this.client.apiCall(method, args)) as T;
    } catch (e) {
      throw this.mapError(method, e);
    }
  }

  private mapError(method: string, e: unknown): SlackApiError {
    const err = e as { code?: string; retryAfter?: number; data?: { error?: string }; statusCode?: number; message?: string };
    switch (err.code) {
      case webApi.ErrorCode.RateLimitedError: {
        const ms = Math.max(1, err.retryAfter ?? 1) * 1000;
        this.pausedUntil.set(method, this.now() + ms);
        this.logger.warn({ method, retryAfterMs: ms }, 'slack rate limited');
        return new SlackApiError(method, 'ratelimited', true, ms);
      }
      case webApi.ErrorCode.PlatformError: {
        const code = err.data?.error ?? 'unknown_error';
        const transient = ['internal_error', 'fatal_error', 'service_unavailable', 'request_timeout', 'ratelimited'].includes(code);
        return new SlackApiError(method, code, transient);
      }
      case webApi.ErrorCode.HTTPError:
        return new SlackApiError(method, `http_${err.statusCode ?? 'error'}`, (err.statusCode ?? 500) >= 500 || err.statusCode === 408);
      default:
        return new SlackApiError(method, `network: ${err.message ?? String(e)}`, true);
    }
  }

  async postMessage(args: PostArgs): Promise<{ channel: string; ts: string }> {
    const r = await this.call<{ channel: string; ts: string }>('chat.postMessage', { ...args, unfurl_links: false, unfurl_media: false });
    return { channel: r.channel, ts: r.ts };
  }

  async update(args: { channel: string; ts: string; text: string; blocks: Blocks }): Promise<void> {
    await this.call('chat.update', args);
  }

  async postEphemeral(args: { channel: string; user: string; text: string; blocks?: Blocks; thread_ts?: string }): Promise<void> {
    await this.call('chat.postEphemeral', args);
  }

  async openDm(userId: string): Promise<string> {
    const known = this.dmChannels.get(userId);
    if (known) return known;
    const r = await this.call<{ channel: { id: string } }>('conversations.open', { users: userId });
    this.dmChannels.set(userId, r.channel.id);
    return r.channel.id;
  }

  async viewsOpen(triggerId: string, view: SlackView): Promise<{ id: string }> {
    const r = await this.call<{ view: { id: string } }>('views.open', { trigger_id: triggerId, view });
    return { id: r.view.id };
  }

  async viewsUpdate(viewId: string, view: SlackView): Promise<void> {
    await this.call('views.update', { view_id: viewId, view });
  }

  async viewsPush(triggerId: string, view: SlackView): Promise<void> {
    await this.call('views.push', { trigger_id: triggerId, view });
  }

  async viewsPublish(userId: string, view: SlackView): Promise<void> {
    await this.call('views.publish', { user_id: userId, view });
  }

  /** Replies through a slash command's or action's response_url (works where the bot is not a member). */
  async respond(url: string, body: Record<string, unknown>): Promise<void> {
    const res = await slackFetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(body),
      signal: AbortSignal.timeout(10_000),
    });
    if (!res.ok) throw new SlackApiError('response_url', `http_${res.status}`, res.status >= 500 || res.status === 429);
  }
}
