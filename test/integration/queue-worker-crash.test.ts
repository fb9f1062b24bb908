import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { startChildWorker, type ChildWorker } from '../support/child-worker.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let r: Receiver;
const children: ChildWorker[] = [];

beforeAll(async () => {
  // the killed run's delivery lease lasts the HTTP timeout plus a margin: a shorter timeout, a quicker takeover
  t = await createTestContext({ OUTBOX_RECONCILE_MS: '1000', WEBHOOK_TIMEOUT_MS: '5000' });
  await seedContoso(t.tdb.db);
  r = await startReceiver();
});
afterAll(async () => {
  for (const c of children) await c.kill('SIGKILL');
  await r?.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

describe('worker crash', () => {
  it('a delivery cut off by SIGKILL completes after a new worker starts', async () => {
    const endpointId = await addEndpoint(t.tdb.db, { name: 'dm', url: r.url, secret: r.secret, events: ['app.install'] });
    // the first attempt is held open: the worker is mid-delivery when it dies
    r.setHandler((_m, n) => (n === 1 ? { status: 200, hold: true } : { status: 200 }));
    const a = await startChildWorker(t.ctx.config, { TEST_LOCK_MS: '1500' });
    children.push(a);
    const { request } = await t.ctx.requests.createApproved(
      { id: null, label: 'api:test', channel: 'api' },
      { applicationId: VISIO, clientGuid: BOB_LAPTOP },
    );
    await waitFor(() => r.received.length === 1, 'the first attempt to reach the receiver');
    expect(await a.kill('SIGKILL')).toBeNull();
    const killedAt = Date.now();

    const b = await startChildWorker(t.ctx.config, { TEST_LOCK_MS: '1500' });
    children.push(b);
    const d = await waitFor(
      () =>
        t.tdb.db.maybeOne<{ id: string; status: string; message_id: string }>(
          `SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'succeeded'`,
          [endpointId],
        ),
      'the delivery to complete on the new worker',
    );
    const recoveredMs = Date.now() - killedAt;
    // the cut-off attempt and at least one more, all under the same webhook-id (a busy machine may redeliver it)
    expect(r.received.length).toBeGreaterThanOrEqual(2);
    expect(r.received.every((m) => m.id === d.message_id && m.verified)).toBe(true);
    expect(r.accepted.size).toBe(1);
    expect(r.accepted.get(d.message_id)!.payload.data.requestId).toBe(request.id);
    console.info(`[measured] delivery recovered ${recoveredMs} ms after SIGKILL (includes starting the new worker)`);

    // SIGTERM on the survivor: exits cleanly
    expect(await b.kill('SIGTERM')).toBe(0);
    expect(b.output()).toContain('STOPPED');
  });

  it('SIGTERM lets the delivery in flight finish before the worker exits', async () => {
    const r2 = await startReceiver();
    try {
      await t.tdb.db.query('UPDATE webhook_endpoints SET enabled = false');
      const endpointId = await addEndpoint(t.tdb.db, { name: 'dm2', url: r2.url, secret: r2.secret, events: ['app.install'] });
      let release!: () => void;
      const released = new Promise<void>((res) => (release = res));
      r2.setHandler(async () => {
        await released;
        return { status: 200 };
      });
      const w = await startChildWorker(t.ctx.config);
      children.push(w);
      await t.ctx.requests.createApproved(
        { id: null, label: 'api:test', channel: 'api' },
        { applicationId: VISIO, clientGuid: BOB_LAPTOP },
      );
      await waitFor(() => r2.received.length === 1, 'the attempt to be in flight');
      const exit = w.kill('SIGTERM');
      // the worker has begun stopping and is still waiting on the in-flight job
      await waitFor(() => w.output().includes('STOPPING'), 'the worker to begin stopping');
      expect(w.proc.exitCode).toBeNull();
      release();
      expect(await exit).toBe(0);
      const d = await t.tdb.db.one<{ status: string }>('SELECT status FROM webhook_deliveries WHERE endpoint_id = $1', [endpointId]);
      expect(d.status).toBe('succeeded');
      expect(new Set(r2.received.map((m) => m.id)).size).toBe(1);
    } finally {
      await r2.close();
    }
  });
});
