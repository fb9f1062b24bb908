export type AttemptVerdict = 'succeeded' | 'retry' | 'failed' | 'gone';

/** 2xx succeeds; 408, 429, 5xx and network errors retry; 410 disables the endpoint; anything else (3xx, 4xx) fails at once. */
export function classifyStatus(status: number): AttemptVerdict {
  if (status >= 200 && status < 300) return 'succeeded';
  if (status === 410) return 'gone';
  if (status === 408 || status === 429 || status >= 500) return 'retry';
  return 'failed';
}

export interface BackoffOptions {
  /** delay before the second attempt; doubles with each further attempt */
  baseMs: number;
  maxMs: number;
}

export const defaultBackoff: BackoffOptions = { baseMs: 5_000, maxMs: 60 * 60_000 };

/** Retry-After is seconds or an HTTP date. */
export function parseRetryAfter(value: string | null, now: number = Date.now()): number | null {
  if (!value) return null;
  const trimmed = value.trim();
  if (/^\d+$/.test(trimmed)) return Number(trimmed) * 1000;
  const at = Date.parse(trimmed);
  return Number.isNaN(at) ? null : Math.max(0, at - now);
}

/**
 * Exponential backoff with jitter ("equal jitter": half fixed, half random) so a receiver coming back up is
 * not hit by every sender at the same instant. A Retry-After from the receiver wins when it asks for longer.
 */
export function retryDelayMs(
  attempt: number,
  opts: BackoffOptions,
  retryAfterMs: number | null = null,
  random: () => number = Math.random,
): number {
  const exp = Math.min(opts.maxMs, opts.baseMs * 2 ** Math.max(0, attempt - 1));
  const jittered = exp / 2 + random() * (exp / 2);
  if (retryAfterMs !== null) return Math.min(Math.max(jittered, retryAfterMs), Math.max(opts.maxMs, retryAfterMs));
  return Math.round(jittered);
}
