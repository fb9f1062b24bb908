import { describe, expect, it } from 'vitest';
import { SlackApiError } from '../../src/bots/slack/slack-api.ts';
import { TeamsSendError } from '../../src/bots/teams/teams-connector.ts';
import { outboundFailure } from '../../src/notifications/outbound-error.ts';

describe('one outbound error shape for every channel', () => {
  it('Slack and Teams failures say the same three things', () => {
    expect(outboundFailure(new SlackApiError('chat.postMessage', 'ratelimited', true, 3000))).toEqual({
      retryable: true,
      gone: false,
      retryAfterMs: 3000,
    });
    expect(outboundFailure(new SlackApiError('chat.update', 'message_not_found', false))).toEqual({
      retryable: false,
      gone: true,
      retryAfterMs: undefined,
    });
    expect(outboundFailure(new TeamsSendError('429', 429, true, 1500))).toEqual({ retryable: true, gone: false, retryAfterMs: 1500 });
    expect(outboundFailure(new TeamsSendError('gone', 404, false))).toEqual({ retryable: false, gone: true, retryAfterMs: undefined });
    expect(outboundFailure(new TeamsSendError('gone', 410, false)).gone).toBe(true);
    expect(outboundFailure(new TeamsSendError('forbidden', 403, false))).toEqual({
      retryable: false,
      gone: false,
      retryAfterMs: undefined,
    });
  });

  it('a failure of unknown kind (SMTP, a socket reset) is retried, not dropped', () => {
    expect(outboundFailure(new Error('ECONNRESET'))).toEqual({ retryable: true, gone: false, retryAfterMs: undefined });
    expect(outboundFailure('boom')).toEqual({ retryable: true, gone: false, retryAfterMs: undefined });
    expect(outboundFailure({ retryable: true, retryAfterMs: -5 }).retryAfterMs).toBeUndefined();
  });
});
