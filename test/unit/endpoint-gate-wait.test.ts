import { describe, expect, it } from 'vitest';
import { gateWaitMs } from '../../src/integrations/webhooks/endpoint-gate.ts';

const settings = { cooldownMs: 30_000, concurrency: 4 };
const mid = () => 0.5;

describe('how long a delivery blocked by its endpoint waits', () => {
  it('waits out an open circuit until its cool-down ends, spread by at most a tenth of it', () => {
    const w = gateWaitMs({ ok: false, reason: 'open', waitMs: 12_000, latencyMs: null }, 0, settings, mid);
    expect(w).toBeGreaterThanOrEqual(12_000);
    expect(w).toBeLessThanOrEqual(12_000 + 3_250);
  });

  it('waits for a busy slow endpoint about as long as its attempts take per slot, longer each time, capped', () => {
    const slow = (waits: number) => gateWaitMs({ ok: false, reason: 'busy', waitMs: 0, latencyMs: 20_000 }, waits, settings, mid);
    expect(slow(0)).toBe(5_000);
    expect(slow(1)).toBeGreaterThan(slow(0));
    expect(slow(20)).toBeLessThanOrEqual(30_000 * 1.5);
  });

  it('never waits longer than the cool-down for a probe in flight', () => {
    const w = gateWaitMs({ ok: false, reason: 'probing', waitMs: 0, latencyMs: 60_000 }, 10, settings, () => 1);
    expect(w).toBeLessThanOrEqual(settings.cooldownMs * 1.5);
  });
});
