import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { systemClock } from '../../src/core/clock.ts';
import { EndpointGate, type GateSettings } from '../../src/integrations/webhooks/endpoint-gate.ts';
import { cleanupRedis } from '../support/queue-harness.ts';
import { testQueuePrefix } from '../support/test-db.ts';
import { waitFor } from '../support/wait.ts';

// Two EndpointGates on their own connections stand for two worker processes sharing one endpoint's slots.
const prefix = testQueuePrefix();
const connections: Redis[] = [];
const gates: EndpointGate[] = [];
const gate = (settings: Partial<GateSettings> = {}) => {
  const redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
  connections.push(redis);
  const g = new EndpointGate(redis, prefix, systemClock, {
    concurrency: 4,
    failureThreshold: 3,
    cooldownMs: 60_000,
    leaseMs: 60_000,
    ...settings,
  });
  gates.push(g);
  return g;
};
let endpoints = 0;
const endpoint = () => `ep-${++endpoints}`;

// a test on fake timers that fails by timing out must not leave them to the cleanup
afterEach(() => {
  vi.useRealTimers();
});
afterAll(async () => {
  await Promise.allSettled(gates.map((g) => g.close()));
  for (const c of connections) c.disconnect();
  await cleanupRedis(prefix);
});

describe('a process leases a share of an endpoint’s slots', () => {
  it('two processes never have more attempts in flight than the limit, and both get through', async () => {
    const [a, b] = [gate(), gate()];
    const id = endpoint();
    let inFlight = 0;
    let most = 0;
    const done = { a: 0, b: 0 };
    const run = async (g: EndpointGate, who: 'a' | 'b', n: number) => {
      for (let i = 0; i < n; i++) {
        const holder = `${who}-${i}`;
        for (;;) {
          const r = await g.acquireOrWait(id, holder, { maxWaitMs: 50 });
          if (r.ok) break;
          expect(r.reason).toBe('busy');
        }
        most = Math.max(most, ++inFlight);
        await new Promise((resolve) => setTimeout(resolve, i % 3));
        inFlight--;
        await g.release(id, holder, 'ok', 2);
        done[who]++;
      }
    };
    await Promise.all([...[0, 1, 2].map(() => run(a, 'a', 15)), ...[0, 1, 2].map(() => run(b, 'b', 15))]);
    expect(done).toEqual({ a: 45, b: 45 });
    expect(most).toBeLessThanOrEqual(4);
    const view = (await a.view([id])).get(id)!;
    expect(view.state).toBe('closed');
    expect(view.inFlight).toBeLessThanOrEqual(4);
  });

  it('a duplicate run of a delivery shares its slot without freeing it when the duplicate ends first', async () => {
    const g = gate({ concurrency: 1 });
    const id = endpoint();
    expect((await g.acquire(id, 'delivery-1')).ok).toBe(true);
    // the same delivery run again (a duplicate job): admitted on the same slot, finds the delivery leased, ends
    expect((await g.acquire(id, 'delivery-1')).ok).toBe(true);
    await g.release(id, 'delivery-1', 'neutral');
    // the first run is still sending: the endpoint's one slot is still taken
    expect(await g.acquire(id, 'delivery-2')).toMatchObject({ ok: false, reason: 'busy' });
    await g.release(id, 'delivery-1', 'ok', 5);
    expect((await g.acquire(id, 'delivery-2')).ok).toBe(true);
  });

  it('a slot given back goes to the longest waiter alone: the others are not woken to ask again', async () => {
    const g = gate({ concurrency: 1 });
    const id = endpoint();
    expect((await g.acquire(id, 'w-0')).ok).toBe(true);
    // only releases may wake the waiters here (their polling timers never fire), so every ask is counted
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout'] });
    try {
      const asks = vi.spyOn(g, 'acquire');
      const order: number[] = [];
      const waiters = Array.from({ length: 20 }, (_, i) =>
        g.acquireOrWait(id, `w-${i + 1}`, { maxWaitMs: 600_000 }).then((r) => {
          expect(r.ok).toBe(true);
          order.push(i + 1);
        }),
      );
      await new Promise((resolve) => setImmediate(resolve));
      for (let i = 0; i < 20; i++) {
        await g.release(id, `w-${i}`, 'ok', 1);
        await waiters[i];
      }
      expect(order).toEqual(Array.from({ length: 20 }, (_, i) => i + 1));
      // each waiter asked once on arrival; woken all at once, they asked 210 times
      expect(asks).toHaveBeenCalledTimes(20);
      await g.release(id, 'w-20', 'ok', 1);
    } finally {
      vi.useRealTimers();
    }
  });

  it('two runs of one delivery waiting for slots share the first handed to them, and the second goes on', async () => {
    const g = gate({ concurrency: 2 });
    const id = endpoint();
    expect((await g.acquire(id, 'h-0')).ok).toBe(true);
    expect((await g.acquire(id, 'h-1')).ok).toBe(true);
    // a duplicate job of the same delivery (after a Redis wipe) waits beside the first
    const runs = [g.acquireOrWait(id, 'dup', { maxWaitMs: 60_000 }), g.acquireOrWait(id, 'dup', { maxWaitMs: 60_000 })];
    await new Promise((resolve) => setImmediate(resolve));
    await g.release(id, 'h-0', 'ok', 1);
    await g.release(id, 'h-1', 'ok', 1);
    for (const r of await Promise.all(runs)) expect(r.ok).toBe(true);
    await g.release(id, 'dup', 'ok', 1);
    await g.release(id, 'dup', 'ok', 1);
    // both slots are free again: none was lost to the duplicate
    expect((await g.acquire(id, 'a')).ok).toBe(true);
    expect((await g.acquire(id, 'b')).ok).toBe(true);
  });

  it('slots one process holds but no longer uses go to the process that was refused', async () => {
    const [a, b] = [gate(), gate()];
    const id = endpoint();
    expect((await a.acquire(id, 'a-1')).ok).toBe(true);
    // the first process took a share of the limit at once: the second is refused while it keeps it
    const refused = await b.acquire(id, 'b-1');
    expect(refused).toMatchObject({ ok: false, reason: 'busy' });
    await a.release(id, 'a-1', 'ok', 5);
    await waitFor(async () => (await b.acquire(id, 'b-1')).ok, 'a slot given back to the refused process');
  });
});

describe('the breaker with leased slots', () => {
  it('opens after consecutive failures, gives the idle slots back, and refuses until the cool-down ends', async () => {
    const g = gate();
    const id = endpoint();
    for (const h of ['1', '2', '3']) expect((await g.acquire(id, h)).ok).toBe(true);
    for (const h of ['1', '2', '3']) await g.release(id, h, 'fail', 10);
    const view = (await g.view([id])).get(id)!;
    expect(view).toMatchObject({ state: 'open', consecutiveFailures: 3, inFlight: 0, timesOpened: 1 });
    expect(await g.acquire(id, '4')).toMatchObject({ ok: false, reason: 'open' });
  });

  it('counts failures only while they are consecutive: a success in between starts the count again', async () => {
    const g = gate();
    const id = endpoint();
    const attempt = async (h: string, health: 'ok' | 'fail') => {
      expect((await g.acquire(id, h)).ok).toBe(true);
      await g.release(id, h, health, 10);
    };
    await attempt('1', 'fail');
    await attempt('2', 'fail');
    await attempt('3', 'ok');
    await attempt('4', 'fail');
    await attempt('5', 'fail');
    expect((await g.view([id])).get(id)).toMatchObject({ state: 'closed', consecutiveFailures: 2 });
    await attempt('6', 'fail');
    expect((await g.view([id])).get(id)).toMatchObject({ state: 'open' });
  });

  it('a failure reported by another process opens the circuit for this one too, within a tick', async () => {
    const [a, b] = [gate({ concurrency: 8 }), gate({ concurrency: 8 })];
    const id = endpoint();
    expect((await a.acquire(id, 'a-1')).ok).toBe(true);
    await a.release(id, 'a-1', 'ok', 5);
    for (const h of ['1', '2', '3']) {
      expect((await b.acquire(id, h)).ok).toBe(true);
      await b.release(id, h, 'fail', 10);
    }
    // the first process still holds free slots from before; its tick sees the open circuit and gives them back
    await waitFor(async () => {
      const r = await a.acquire(id, 'a-2');
      if (r.ok) await a.release(id, 'a-2', 'neutral');
      return !r.ok;
    }, 'the first process refused by the open circuit');
    expect((await a.view([id])).get(id)).toMatchObject({ state: 'open', inFlight: 0 });
  });
});
