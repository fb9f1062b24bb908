import { afterAll, beforeAll, expect, it } from 'vitest';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis, flushRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let r: Receiver;
let workers: RunningWorkers | undefined;

beforeAll(async () => {
  // no reconciler within the test: what Redis lost must come back without it
  t = await createTestContext({ OUTBOX_RECONCILE_MS: String(3600_000) });
  await seedContoso(t.tdb.db);
  r = await startReceiver();
});
afterAll(async () => {
  await workers?.stop();
  await r?.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

it('an attempt in flight when Redis is wiped, answered 503, is retried without waiting for the reconciler', async () => {
  await addEndpoint(t.tdb.db, { name: 'dm', url: r.url, secret: r.secret, events: ['app.install'] });
  // every first attempt is held until Redis has been wiped and then refused; the retry is accepted
  let open!: () => void;
  const gate = new Promise<void>((res) => (open = res));
  r.setHandler(async (_m, n) => {
    if (n > 1) return { status: 200 };
    await gate;
    return { status: 503 };
  });
  const guids = ['GUID:WIPE-0001', 'GUID:WIPE-0002', 'GUID:WIPE-0003'];
  for (const g of guids) await t.tdb.db.query(`INSERT INTO devices (client_guid, name) VALUES ($1, $2)`, [g, `PC-${g.slice(-4)}`]);
  workers = await startWorkers(t.ctx, { backoff: { baseMs: 20, maxMs: 200 }, sweeper: false, lockDurationMs: 2000 });
  const api = { id: null, label: 'api:test', channel: 'api' as const };
  for (const clientGuid of guids) await t.ctx.requests.createApproved(api, { applicationId: VISIO, clientGuid });
  await waitFor(() => r.received.length === guids.length, 'the three first attempts, held at the receiver');

  await flushRedis(t.ctx.config.QUEUE_PREFIX);
  // the relay notices the wipe and adds the deliveries' jobs again; those find the deliveries leased by the
  // attempts in flight and finish without sending
  const deliveries = await t.tdb.db.query<{ id: string }>(`SELECT id FROM webhook_deliveries`);
  await waitFor(async () => {
    const states = await Promise.all(deliveries.map((d) => workers!.queues.webhooks.getJobState(d.id)));
    return states.every((s) => s === 'completed');
  }, 'the re-added jobs to find the deliveries leased');
  open();

  await waitFor(() => r.accepted.size === guids.length, 'the three retries');
  // the retries reuse each delivery's webhook-id
  expect(new Set(r.received.map((m) => m.id)).size).toBe(guids.length);
  const rows = await waitFor(async () => {
    const all = await t.tdb.db.query<{ status: string; attempts: number }>(`SELECT status, attempts FROM webhook_deliveries`);
    return all.every((d) => d.status === 'succeeded') ? all : null;
  }, 'the deliveries recorded as succeeded');
  expect(rows.map((d) => d.attempts)).toEqual([2, 2, 2]);
});
