import { describe, expect, it } from 'vitest';
import type { MinimalJob } from 'bullmq';
import { SlackApiError } from '../../src/bots/slack/slack-api.ts';
import { TeamsSendError } from '../../src/bots/teams/teams-connector.ts';
import { NOTIFY_BACKOFF, notifyBackoffStrategy, notifyErrorPolicy } from '../../src/integrations/queue/notify-retry.ts';

const job = (delay: number) => ({ opts: { backoff: { type: NOTIFY_BACKOFF, delay } } }) as unknown as MinimalJob;

describe('notify retry policy', () => {
  it('reads permanence and Retry-After from Slack and Teams errors', () => {
    expect(notifyErrorPolicy(new SlackApiError('chat.postMessage', 'ratelimited', true, 3000))).toEqual({
      permanent: false,
      retryAfterMs: 3000,
    });
    expect(notifyErrorPolicy(new SlackApiError('chat.postMessage', 'invalid_auth', false))).toEqual({
      permanent: true,
      retryAfterMs: null,
    });
    expect(notifyErrorPolicy(new TeamsSendError('429', 429, true, 1500))).toEqual({ permanent: false, retryAfterMs: 1500 });
    expect(notifyErrorPolicy(new TeamsSendError('403', 403, false))).toEqual({ permanent: true, retryAfterMs: null });
    expect(notifyErrorPolicy(new Error('ECONNRESET'))).toEqual({ permanent: false, retryAfterMs: null });
  });

  it('backs off exponentially but never sooner than Retry-After', async () => {
    for (let attempt = 1; attempt <= 5; attempt++) {
      const plain = await notifyBackoffStrategy(attempt, NOTIFY_BACKOFF, new Error('x'), job(100));
      expect(plain).toBeGreaterThanOrEqual((100 * 2 ** (attempt - 1)) / 2);
      expect(plain).toBeLessThanOrEqual(100 * 2 ** (attempt - 1));
      expect(
        await notifyBackoffStrategy(attempt, NOTIFY_BACKOFF, new TeamsSendError('429', 429, true, 60_000), job(100)),
      ).toBeGreaterThanOrEqual(60_000);
    }
  });
});
