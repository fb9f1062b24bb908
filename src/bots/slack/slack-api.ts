import { stringify } from 'node:querystring';
import type { Logger } from '../../logger.ts';
import type { OutboundError } from '../../notifications/outbound-error.ts';
import { slackFetch, type SlackHttpResponse } from './slack-http.ts';

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

const USER_AGENT = `signoff node/${process.versions.node}`;
const TRANSIENT_ERRORS = new Set(['internal_error', 'fatal_error', 'service_unavailable', 'request_timeout', 'ratelimited']);

/** A call's arguments as Slack's SDK encodes them: null and undefined left out, objects and arrays as JSON. */
function formOf(args: Record<string, unknown>): string {
  const fields: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(args)) {
    if (v === undefined || v === null) continue;
    fields[k] = typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean' ? v : JSON.stringify(v);
  }
  return stringify(fields);
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

/**
 * The few Web API methods Signoff uses, with errors mapped once and Slack's rate limits honoured. Calls are posted
 * as Slack's own SDK posts them (form-encoded, objects as JSON, the token as a bearer header), without the SDK's
 * WebClient: its request queue, retry machinery and debug logging took about 50 µs of CPU more per call (190 against
 * 140 µs for a chat.postEphemeral to a local stand-in, client and stand-in together), on every prompt, copy update
 * and reply, for retries Signoff leaves to its queues anyway.
 */
export class SlackApi {
  /** Slack said "wait": until then we fail fast instead of hammering it (per process, per method). */
  private readonly pausedUntil = new Map<string, number>();
  private readonly dmChannels = new Map<string, string>();
  private readonly now: () => number;
  private readonly logger: Logger;
  private readonly apiUrl: string;
  private readonly timeoutMs: number;

  constructor(
    private readonly token: string,
    opts: { apiUrl?: string; logger: Logger; timeoutMs?: number; now?: () => number },
  ) {
    this.now = opts.now ?? Date.now;
    this.logger = opts.logger;
    this.apiUrl = opts.apiUrl ?? 'https://slack.com/api/';
    if (!this.apiUrl.endsWith('/')) this.apiUrl += '/';
    this.timeoutMs = opts.timeoutMs ?? 10_000;
  }

  async call<T = Record<string, unknown>>(method: string, args: Record<string, unknown>): Promise<T> {
    const until = this.pausedUntil.get(method) ?? 0;
    const wait = until - this.now();
    if (wait > 0) throw new SlackApiError(method, 'ratelimited', true, wait);
    let res: SlackHttpResponse;
    let text: string;
    try {
      res = await slackFetch(`${this.apiUrl}${method}`, {
        method: 'POST',
        headers: {
          authorization: `Bearer ${this.token}`,
          'content-type': 'application/x-www-form-urlencoded',
          accept: 'application/json',
          'user-agent': USER_AGENT,
        },
        body: formOf(args),
        timeoutMs: this.timeoutMs,
      });
      text = await res.text();
    } catch (e) {
      throw new SlackApiError(method, `network: ${(e as Error).message ?? String(e)}`, true);
    }
    if (res.status === 429) {
      const seconds = Number.parseInt(res.headers.get('retry-after') ?? '', 10);
      const ms = Math.max(1, Number.isNaN(seconds) ? 1 : seconds) * 1000;
      this.pausedUntil.set(method, this.now() + ms);
      this.logger.warn({ method, retryAfterMs: ms }, 'slack rate limited');
      throw new SlackApiError(method, 'ratelimited', true, ms);
    }
    // Slack's Web API answers 200 for everything but rate limits and its own failures
    if (res.status !== 200) throw new SlackApiError(method, `http_${res.status}`, res.status >= 500 || res.status === 408);
    let body: { ok?: boolean; error?: string; response_metadata?: { warnings?: string[] } };
    try {
      body = JSON.parse(text);
    } catch {
      throw new SlackApiError(method, 'network: the answer was not JSON', true);
    }
    if (!body.ok) {
      const code = body.error ?? 'unknown_error';
      throw new SlackApiError(method, code, TRANSIENT_ERRORS.has(code));
    }
    for (const w of body.response_metadata?.warnings ?? []) this.logger.warn({ method, warning: w }, 'slack api warning');
    return body as T;
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
      timeoutMs: 10_000,
    });
    if (!res.ok) throw new SlackApiError('response_url', `http_${res.status}`, res.status >= 500 || res.status === 429);
  }
}
