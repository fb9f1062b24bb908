import type { BackoffStrategy } from 'bullmq';
import { outboundFailure } from '../../notifications/outbound-error.ts';
import { retryDelayMs } from '../webhooks/retry-policy.ts';

/** The custom BullMQ backoff type of the notify queue; the notify worker registers the strategy for it. */
export const NOTIFY_BACKOFF = 'notify-retry-after';

/** Longest wait between two notification attempts when the platform does not ask for longer. */
const MAX_BACKOFF_MS = 15 * 60_000;

/**
 * What a notifier's error says about retrying, read from the one outbound error shape (notifications/outbound-error.ts)
 * that Slack, Teams and email failures share. Anything that does not say otherwise (a plain Error, a network
 * failure) is retried.
 */
export function notifyErrorPolicy(err: unknown): { permanent: boolean; retryAfterMs: number | null } {
  const f = outboundFailure(err);
  return { permanent: !f.retryable, retryAfterMs: f.retryAfterMs ?? null };
}

/**
 * Exponential backoff with equal jitter from the job's `backoff.delay`, but never sooner than the platform's
 * Retry-After: BullMQ schedules the next attempt this many ms after the failed one finished.
 */
export const notifyBackoffStrategy: BackoffStrategy = (attemptsMade, _type, err, job) => {
  const opts = job?.opts.backoff;
  const base = typeof opts === 'object' && opts.delay ? opts.delay : typeof opts === 'number' ? opts : 2000;
  const { retryAfterMs } = notifyErrorPolicy(err);
  return Math.ceil(retryDelayMs(attemptsMade, { baseMs: base, maxMs: MAX_BACKOFF_MS }, retryAfterMs));
};
