import type { Queue } from 'bullmq';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let workers: RunningWorkers | undefined;
const receivers: Receiver[] = [];
const N = 20;

beforeAll(async () => {
  // no periodic reconcile: a delivery whose job went missing hangs the wait instead of being re-added later;
  // the breaker would hold back the retries of the failing endpoint: out of the way here
  t = await createTestContext({ OUTBOX_RECONCILE_MS: '3600000', WEBHOOK_BREAKER_FAILURES: '100', WEBHOOK_TIMEOUT_MS: '10000' });
  await seedContoso(t.tdb.db);
});
afterAll(async () => {
  await workers?.stop();
  for (const r of receivers) await r.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

it('a backlog sent in bundles reaches every endpoint once per event, and a bundled delivery that fails is retried on its own', async () => {
  const flaky = await startReceiver();
  const steady = await startReceiver();
  receivers.push(flaky, steady);
  // every third event's first attempt at the flaky endpoint is answered 503
  const seen = new Map<string, number>();
  flaky.setHandler((m) => {
    const order = seen.get(m.id) ?? seen.size;
    seen.set(m.id, order);
    const first = flaky.received.filter((x) => x.id === m.id).length === 1;
    return { status: order % 3 === 0 && first ? 503 : 200 };
  });
  await addEndpoint(t.tdb.db, { name: 'flaky', url: flaky.url, secret: flaky.secret, events: ['app.install'] });
  await addEndpoint(t.tdb.db, { name: 'steady', url: steady.url, secret: steady.secret, events: ['app.install'] });

  // committed while no worker runs: the relay fans the backlog out at once, in bundles per endpoint
  const api = { id: null, label: 'api:test', channel: 'api' as const };
  const requestIds: string[] = [];
  for (let i = 0; i < N; i++) {
    const guid = `GUID:BUNDLE-${String(i).padStart(3, '0')}`;
    await t.tdb.db.query(`INSERT INTO devices (client_guid, name) VALUES ($1, $2)`, [guid, `PC-B${i}`]);
    requestIds.push((await t.ctx.requests.createApproved(api, { applicationId: VISIO, clientGuid: guid })).request.id);
  }
  workers = await startWorkers(t.ctx, { backoff: { baseMs: 20, maxMs: 200 }, sweeper: false });

  await waitFor(() => flaky.accepted.size === N && steady.accepted.size === N, 'every event accepted by both endpoints', {
    state: () => ({ flaky: flaky.accepted.size, steady: steady.accepted.size }),
  });
  for (const r of [flaky, steady]) {
    // one webhook-id per event and endpoint, every signature valid, every request reached
    expect(new Set([...r.accepted.values()].map((m) => m.payload.data.requestId))).toEqual(new Set(requestIds));
    expect(r.received.every((m) => m.verified)).toBe(true);
  }
  expect(steady.received).toHaveLength(N);
  // the failed first attempts were sent again under the same webhook-id, and nothing else twice
  const failedFirst = [...seen.values()].filter((order) => order % 3 === 0).length;
  expect(flaky.received).toHaveLength(N + failedFirst);
  expect(new Set(flaky.received.map((m) => m.id)).size).toBe(N);

  const rows = await waitFor(async () => {
    const all = await t.tdb.db.query<{ id: string; name: string; status: string; attempts: number }>(
      `SELECT d.id, e.name, d.status, d.attempts FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id`,
    );
    return all.every((d) => d.status === 'succeeded') ? all : null;
  }, 'every delivery recorded as succeeded');
  const retried = rows.filter((d) => d.name === 'flaky' && d.attempts === 2);
  expect(retried).toHaveLength(failedFirst);
  expect(rows.filter((d) => d.name === 'steady').every((d) => d.attempts === 1)).toBe(true);

  // the backlog went out in bundles (fewer queue round trips), the retries as jobs of their own
  const jobs = await (workers.queues.webhooks as Queue).getJobs(['completed', 'active']);
  const bundles = jobs.filter((j) => j.id?.startsWith('bundle-'));
  expect(bundles.length).toBeGreaterThan(0);
  expect(bundles.length).toBeLessThan(N);
  // (a job may still be finishing: a success's record can land before its job completes)
  const own = await Promise.all(retried.map((d) => (workers!.queues.webhooks as Queue).getJob(d.id)));
  expect(own.every((j) => j?.data.deliveryId)).toBe(true);
});
