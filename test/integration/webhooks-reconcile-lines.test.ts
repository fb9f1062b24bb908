import type { Queue } from 'bullmq';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { reconcileOnce } from '../../src/integrations/outbox-relay.ts';
import type { DeliveryJob } from '../../src/integrations/queue/queues.ts';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { seedContoso } from '../support/fixtures.ts';
import { cleanupRedis, heldEndpointBacklog } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { waitFor, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let workers: RunningWorkers | undefined;
let held: Receiver | undefined;
let release: () => void = () => undefined;
const N = 20;

beforeAll(async () => {
  t = await createTestContext({
    // a delivery not tried yet becomes the reconciler's after a second (and it runs every second)
    OUTBOX_RECONCILE_MS: '1000',
    WEBHOOK_TIMEOUT_MS: '120000',
    WEBHOOK_ENDPOINT_CONCURRENCY: '2',
  });
  await seedContoso(t.tdb.db);
});
afterAll(async () => {
  release();
  await workers?.stop();
  await held?.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

it('the reconciler leaves a busy endpoint’s queue in its lines: no delivery gets a second job, each arrives once', async () => {
  const backlog = await heldEndpointBacklog(t, N, 'RECON');
  held = backlog.held;
  release = backlog.release;
  workers = await startWorkers(t.ctx, { sweeper: false, webhookConcurrency: 4 });
  const queue = workers.queues.webhooks as Queue<DeliveryJob>;
  await waitFor(() => held!.received.length === 2, 'the endpoint holding its two slots', { state: () => held!.received.length });

  // every delivery is now old enough for the reconciler, none tried: its passes (and two run here) find them all
  await waitFor(
    async () =>
      (
        await t.tdb.db.one<{ n: number }>(
          `SELECT count(*)::int AS n FROM webhook_deliveries WHERE status = 'pending' AND attempts = 0 AND created_at < now() - interval '1.5 seconds'`,
        )
      ).n === N,
    'every delivery past the reconciler’s grace',
  );
  await reconcileOnce(t.ctx, workers.queues);
  await reconcileOnce(t.ctx, workers.queues);
  const ids = await t.tdb.db.query<{ id: string }>(`SELECT id FROM webhook_deliveries`);
  const ownJobs = await Promise.all(ids.map((d) => queue.getJob(d.id)));
  expect(ownJobs.filter(Boolean).map((j) => j!.id)).toEqual([]);

  release();
  await waitFor(() => held!.accepted.size === N, `all ${N} deliveries accepted`, { state: () => held!.accepted.size });
  expect(new Set(held.received.map((m) => m.id)).size).toBe(N);
});
