import type { Queue } from 'bullmq';
import { afterAll, beforeAll, expect, it } from 'vitest';
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
const N = 40;

beforeAll(async () => {
  t = await createTestContext({
    // no periodic reconcile: a delivery whose job went missing hangs the wait instead of being re-added later
    OUTBOX_RECONCILE_MS: '3600000',
    // the endpoint holds its requests until the test lets it answer: it never times out meanwhile
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

it("a busy endpoint's queue waits in lines the gate sent back and is delivered once it answers, each webhook-id once", async () => {
  // committed while no worker runs: the relay fans the backlog out at once, in bundles of eight
  const backlog = await heldEndpointBacklog(t, N, 'LINE');
  held = backlog.held;
  release = backlog.release;
  workers = await startWorkers(t.ctx, { sweeper: false, webhookConcurrency: 4 });
  const queue = workers.queues.webhooks as Queue<DeliveryJob>;

  // two requests are held open (the endpoint's limit); the other 38 deliveries wait in the lines the gate sent back,
  // which merge the relay's bundles (fewer jobs; how few depends on when each came due, so not counted here) —
  // including the ones bundled with the two held open, which go to their line without waiting for those answers
  const lines = async () =>
    (await queue.getJobs(['delayed', 'waiting', 'prioritized'])).filter((j) => j.id?.startsWith('bundle-') && (j.data.gateWaits ?? 0) > 0);
  await waitFor(
    async () => {
      if (held!.received.length !== 2) return false;
      const carried = new Set((await lines()).flatMap((j) => [j.data.deliveryId, ...(j.data.more ?? [])]));
      return carried.size === N - 2;
    },
    'every waiting delivery in a line',
    { state: async () => (await lines()).map((j) => `${j.id?.slice(0, 12)} w${j.data.gateWaits} n${1 + (j.data.more?.length ?? 0)}`) },
  );
  expect(held.received).toHaveLength(2);

  // once the endpoint answers, every delivery reaches it, each webhook-id once
  release();
  await waitFor(() => held!.accepted.size === N, `all ${N} deliveries accepted`, { state: () => held!.accepted.size });
  expect(new Set(held.received.map((m) => m.id)).size).toBe(N);
  expect(held.received.every((m) => m.verified)).toBe(true);
});
