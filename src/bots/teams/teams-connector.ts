import { ConfigurationServiceClientCredentialFactory } from 'botbuilder';
import type { Config } from '../../config.ts';
import type { OutboundError } from '../../notifications/outbound-error.ts';

/**
 * Outbound calls to the Bot Connector REST API (v3) for proactive messages. botbuilder's ConnectorClient
 * retries 429s and 5xx in-process (sleeping through Retry-After inside the queue worker); here every failure
 * surfaces at once as a TeamsSendError so the outbox queue owns retries and backoff.
 */
export class TeamsSendError extends Error implements OutboundError {
  constructor(
    message: string,
    readonly status: number | null,
    /** true for 429, 5xx and network failures: the queue should retry the event */
    readonly retryable: boolean,
    /** from Retry-After on a 429/503, for the queue's next attempt */
    readonly retryAfterMs?: number,
  ) {
    super(message);
    this.name = 'TeamsSendError';
  }
  get notFound(): boolean {
    return this.status === 404;
  }
  /** the conversation or activity is no longer there */
  get gone(): boolean {
    return this.status === 404 || this.status === 410;
  }
}

export interface Activity {
  type: string;
  [key: string]: unknown;
}

export interface ConversationParameters {
  isGroup: boolean;
  bot?: { id: string; name?: string };
  members?: { id: string; aadObjectId?: string }[];
  tenantId?: string;
  channelData?: Record<string, unknown>;
  activity?: Activity;
}

export type TokenProvider = () => Promise<string | null>;

/** Signs outbound calls with the bot's app credentials; none in emulator mode (no MICROSOFT_APP_ID). */
export function tokenProviderFor(config: Config): TokenProvider {
  if (!config.MICROSOFT_APP_ID) return async () => null;
  const factory = new ConfigurationServiceClientCredentialFactory({
    MicrosoftAppId: config.MICROSOFT_APP_ID,
    MicrosoftAppPassword: config.MICROSOFT_APP_PASSWORD,
    MicrosoftAppType: config.MICROSOFT_APP_TYPE,
    MicrosoftAppTenantId: config.MICROSOFT_APP_TENANT_ID,
  });
  const loginEndpoint =
    config.MICROSOFT_APP_TYPE === 'SingleTenant' && config.MICROSOFT_APP_TENANT_ID
      ? `https://login.microsoftonline.com/${config.MICROSOFT_APP_TENANT_ID}`
      : 'https://login.microsoftonline.com/botframework.com';
  let credentials: Promise<{ getToken?: (force?: boolean) => Promise<string> }> | undefined;
  return async () => {
    credentials ??= factory.createCredentials(config.MICROSOFT_APP_ID!, 'https://api.botframework.com', loginEndpoint, true) as never;
    const c = await credentials;
    return c.getToken ? c.getToken() : null;
  };
}

function retryAfterMs(header: string | null): number | undefined {
  if (!header) return undefined;
  const secs = Number(header);
  if (Number.isFinite(secs)) return Math.max(0, secs * 1000);
  const at = Date.parse(header);
  return Number.isNaN(at) ? undefined : Math.max(0, at - Date.now());
}

/** The channel id without Teams' ";messageid=" thread suffix: rate limits apply per conversation. */
export const baseConversationId = (id: string) => id.split(';')[0]!;

export class BotConnectorClient {
  private readonly nextSlot = new Map<string, number>();

  constructor(
    private readonly tokens: TokenProvider,
    private readonly opts: {
      timeoutMs?: number /** spacing between sends to one conversation: Teams allows ~7/s */;
      minIntervalMs?: number;
    } = {},
  ) {}

  /** Spaces sends per conversation so a burst (many copies, reminders) stays under Teams' limit instead of earning 429s. */
  private async throttle(conversationId: string): Promise<void> {
    const key = baseConversationId(conversationId);
    const interval = this.opts.minIntervalMs ?? 150;
    const now = Date.now();
    const slot = Math.max(now, this.nextSlot.get(key) ?? 0);
    this.nextSlot.set(key, slot + interval);
    if (this.nextSlot.size > 5000) for (const [k, t] of this.nextSlot) if (t < now) this.nextSlot.delete(k);
    if (slot > now) await new Promise((r) => setTimeout(r, slot - now));
  }

  private async call<T>(method: 'POST' | 'PUT', serviceUrl: string, path: string, body: unknown, conversationId: string): Promise<T> {
    await this.throttle(conversationId);
    const url = `${serviceUrl.replace(/\/+$/, '')}${path}`;
    const headers: Record<string, string> = { 'content-type': 'application/json; charset=utf-8' };
    const token = await this.tokens();
    if (token) headers.authorization = `Bearer ${token}`;
    let res: Response;
    try {
      res = await fetch(url, {
        method,
        headers,
        body: JSON.stringify(body),
        redirect: 'manual',
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 15_000),
      });
    } catch (e) {
      throw new TeamsSendError(`Bot Connector ${method} ${path} failed: ${(e as Error).message}`, null, true);
    }
    const text = await res.text();
    if (!res.ok) {
      const retryable = res.status === 429 || res.status === 408 || res.status >= 500;
      throw new TeamsSendError(
        `Bot Connector ${method} ${path} answered ${res.status}: ${text.slice(0, 300)}`,
        res.status,
        retryable,
        retryAfterMs(res.headers.get('retry-after')),
      );
    }
    try {
      return (text ? JSON.parse(text) : {}) as T;
    } catch {
      return {} as T;
    }
  }

  sendToConversation(serviceUrl: string, conversationId: string, activity: Activity): Promise<{ id?: string }> {
    return this.call('POST', serviceUrl, `/v3/conversations/${encodeURIComponent(conversationId)}/activities`, activity, conversationId);
  }

  replyToActivity(serviceUrl: string, conversationId: string, activityId: string, activity: Activity): Promise<{ id?: string }> {
    return this.call(
      'POST',
      serviceUrl,
      `/v3/conversations/${encodeURIComponent(conversationId)}/activities/${encodeURIComponent(activityId)}`,
      { ...activity, replyToId: activityId },
      conversationId,
    );
  }

  updateActivity(serviceUrl: string, conversationId: string, activityId: string, activity: Activity): Promise<{ id?: string }> {
    return this.call(
      'PUT',
      serviceUrl,
      `/v3/conversations/${encodeURIComponent(conversationId)}/activities/${encodeURIComponent(activityId)}`,
      { ...activity, id: activityId },
      conversationId,
    );
  }

  createConversation(
    serviceUrl: string,
    params: ConversationParameters,
  ): Promise<{ id: string; activityId?: string; serviceUrl?: string }> {
    return this.call('POST', serviceUrl, '/v3/conversations', params, `create:${params.members?.[0]?.id ?? 'channel'}`);
  }
}
