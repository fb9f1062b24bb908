import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { reconcileOnce } from '../../src/integrations/outbox-relay.ts';
import type { DeliveryJob } from '../../src/integrations/queue/queues.ts';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { seedContoso } from '../support/fixtures.ts';
import { approveDevices, cleanupRedis, heldEndpointBacklog } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { waitFor, type Receiver } from '../support/webhook-receiver.ts';

interface Held {
  t: TestContext;
  held: Receiver;
  release(): void;
  workers: RunningWorkers;
  queue: Queue<DeliveryJob>;
}

/**
 * An endpoint that holds its requests open (two at most: its limit) until the test lets it answer, `n` approvals
 * committed for it while no worker runs (the relay then fans the backlog out at once, in bundles of eight), and the
 * workers started. A context of its own per describe.
 */
function heldBacklog(n: number, tag: string, env: Record<string, string>): Held {
  const s = {} as Held;
  beforeAll(async () => {
    // the endpoint never times out meanwhile
    s.t = await createTestContext({ WEBHOOK_TIMEOUT_MS: '120000', WEBHOOK_ENDPOINT_CONCURRENCY: '2', ...env });
    await seedContoso(s.t.tdb.db);
    Object.assign(s, await heldEndpointBacklog(s.t, n, tag));
    s.workers = await startWorkers(s.t.ctx, { sweeper: false, webhookConcurrency: 4 });
    s.queue = s.workers.queues.webhooks as Queue<DeliveryJob>;
  });
  afterAll(async () => {
    s.release?.();
    await s.workers?.stop();
    await s.held?.close();
    if (!s.t) return;
    await cleanupRedis(s.t.ctx.config.QUEUE_PREFIX);
    await s.t.close();
  });
  return s;
}

async function allArriveOnce(s: Held, n: number) {
  s.release();
  await waitFor(() => s.held.accepted.size === n, `all ${n} deliveries accepted`, { state: () => s.held.accepted.size });
  expect(new Set(s.held.received.map((m) => m.id)).size).toBe(n);
  expect(s.held.received.every((m) => m.verified)).toBe(true);
}

describe('a busy endpoint', () => {
  const N = 40;
  // no periodic reconcile: a delivery whose job went missing hangs the wait instead of being re-added later
  const s = heldBacklog(N, 'LINE', { OUTBOX_RECONCILE_MS: '3600000' });

  it('has its queue wait in the lines the gate sent back, and delivered once it answers, each webhook-id once', async () => {
    // two requests are held open (the endpoint's limit); the other 38 deliveries wait in the lines the gate sent
    // back, which merge the relay's bundles (fewer jobs; how few depends on when each came due, so not counted here)
    // — including the ones bundled with the two held open, which go to their line without waiting for those answers
    const lines = async () =>
      (await s.queue.getJobs(['delayed', 'waiting', 'prioritized'])).filter(
        (j) => j.id?.startsWith('bundle-') && (j.data.gateWaits ?? 0) > 0,
      );
    await waitFor(
      async () => {
        if (s.held.received.length !== 2) return false;
        const carried = new Set((await lines()).flatMap((j) => [j.data.deliveryId, ...(j.data.more ?? [])]));
        return carried.size === N - 2;
      },
      'every waiting delivery in a line',
      { state: async () => (await lines()).map((j) => `${j.id?.slice(0, 12)} w${j.data.gateWaits} n${1 + (j.data.more?.length ?? 0)}`) },
    );
    expect(s.held.received).toHaveLength(2);

    // approvals committed meanwhile, one by one: the relay puts their deliveries straight into a line, never in a
    // fresh bundle or a job of their own
    const M = 10;
    await approveDevices(s.t, 'LINE', N, N + M);
    await waitFor(
      async () => (await s.t.tdb.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM webhook_deliveries`)).n === N + M,
      'the new approvals fanned out',
    );
    const fresh = await s.t.tdb.db.query<{ id: string }>(`SELECT id FROM webhook_deliveries ORDER BY created_at DESC LIMIT $1`, [M]);
    const jobs = await s.queue.getJobs(['delayed', 'waiting', 'prioritized', 'active', 'completed']);
    const carriers = (id: string) => jobs.filter((j) => j.data.deliveryId === id || j.data.more?.includes(id));
    expect(fresh.flatMap((d) => carriers(d.id)).filter((j) => !j.data.gateWaits || !j.id?.startsWith('bundle-'))).toEqual([]);
    expect(fresh.every((d) => carriers(d.id).length > 0)).toBe(true);
    await allArriveOnce(s, N + M);
  });
});

describe('a busy endpoint and the reconciler', () => {
  const N = 20;
  // a delivery not tried yet becomes the reconciler's after a second (and it runs every second)
  const s = heldBacklog(N, 'RECON', { OUTBOX_RECONCILE_MS: '1000' });

  it('leaves the queue in its lines: no delivery gets a second job, and each arrives once', async () => {
    await waitFor(() => s.held.received.length === 2, 'the endpoint holding its two slots', { state: () => s.held.received.length });
    // every delivery old enough for the reconciler, none tried: its passes (and two run here) find them all
    await waitFor(
      async () =>
        (
          await s.t.tdb.db.one<{ n: number }>(
            `SELECT count(*)::int AS n FROM webhook_deliveries WHERE status = 'pending' AND attempts = 0 AND created_at < now() - interval '1.5 seconds'`,
          )
        ).n === N,
      'every delivery past the reconciler’s grace',
    );
    await reconcileOnce(s.t.ctx, s.workers.queues);
    await reconcileOnce(s.t.ctx, s.workers.queues);
    const ids = await s.t.tdb.db.query<{ id: string }>(`SELECT id FROM webhook_deliveries`);
    const ownJobs = await Promise.all(ids.map((d) => s.queue.getJob(d.id)));
    expect(ownJobs.filter(Boolean).map((j) => j!.id)).toEqual([]);
    await allArriveOnce(s, N);
  });
});
