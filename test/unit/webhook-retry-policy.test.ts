import { describe, expect, it } from 'vitest';
import { classifyStatus, parseRetryAfter, retryDelayMs } from '../../src/integrations/webhooks/retry-policy.ts';

describe('webhook retry policy', () => {
  it('classifies statuses', () => {
    expect([200, 201, 204].map(classifyStatus)).toEqual(['succeeded', 'succeeded', 'succeeded']);
    expect([500, 502, 503, 504, 408, 429].map(classifyStatus)).toEqual(Array(6).fill('retry'));
    expect([400, 401, 403, 404, 422, 301, 302, 307].map(classifyStatus)).toEqual(Array(8).fill('failed'));
    expect(classifyStatus(410)).toBe('gone');
  });

  it('backs off exponentially with jitter, within bounds', () => {
    const opts = { baseMs: 1000, maxMs: 60_000 };
    expect(retryDelayMs(1, opts, null, () => 0)).toBe(500);
    expect(retryDelayMs(1, opts, null, () => 1)).toBe(1000);
    expect(retryDelayMs(4, opts, null, () => 0)).toBe(4000);
    expect(retryDelayMs(4, opts, null, () => 1)).toBe(8000);
    expect(retryDelayMs(20, opts, null, () => 1)).toBe(60_000);
    const spread = new Set(Array.from({ length: 20 }, () => retryDelayMs(3, opts)));
    expect(spread.size).toBeGreaterThan(1);
  });

  it('honours Retry-After in seconds or as a date when it asks for longer', () => {
    const now = Date.parse('2026-01-05T09:00:00Z');
    expect(parseRetryAfter('120', now)).toBe(120_000);
    expect(parseRetryAfter('Mon, 05 Jan 2026 09:00:30 GMT', now)).toBe(30_000);
    expect(parseRetryAfter('soon', now)).toBeNull();
    expect(retryDelayMs(1, { baseMs: 100, maxMs: 1000 }, 30_000, () => 0)).toBe(30_000);
    expect(retryDelayMs(5, { baseMs: 10_000, maxMs: 600_000 }, 1000, () => 0)).toBe(80_000);
  });
});
