/**
 * The one shape every outbound notification failure has, whatever the platform (Slack, Teams, email): the
 * notify queue reads it to retry, wait or give up, and notifiers read `gone` to post a fresh copy instead of
 * updating one that no longer exists. SlackApiError and TeamsSendError implement it.
 */
export interface OutboundError {
  /** 429, 5xx, timeouts and network failures: trying again later can work */
  readonly retryable: boolean;
  /** the message or conversation is no longer there (deleted, archived, bot removed): post anew or give up on it */
  readonly gone: boolean;
  /** how long the platform asked us to wait (Retry-After), when it did */
  readonly retryAfterMs?: number;
}

/**
 * Reads any thrown value as an OutboundError. Errors that say nothing (a plain Error, a socket reset) are
 * retryable and not gone, so a failure of unknown kind is tried again rather than dropped.
 */
export function outboundFailure(err: unknown): OutboundError {
  const e = (typeof err === 'object' && err !== null ? err : {}) as Partial<Record<keyof OutboundError, unknown>>;
  const ms = e.retryAfterMs;
  return {
    retryable: e.retryable !== false,
    gone: e.gone === true,
    retryAfterMs: typeof ms === 'number' && Number.isFinite(ms) && ms > 0 ? ms : undefined,
  };
}
