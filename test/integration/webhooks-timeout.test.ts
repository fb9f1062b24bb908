import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let r: Receiver;
let workers: RunningWorkers;

beforeAll(async () => {
  t = await createTestContext({ OUTBOX_RECONCILE_MS: '1000', WEBHOOK_TIMEOUT_MS: '500' });
  await seedContoso(t.tdb.db);
  r = await startReceiver();
  workers = await startWorkers(t.ctx, { backoff: { baseMs: 20, maxMs: 200 }, sweeper: false });
});
afterAll(async () => {
  await workers?.stop();
  await r?.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

describe('per-attempt timeout', () => {
  it('gives up on a receiver that does not answer in time and retries with the same webhook-id', async () => {
    const id = await addEndpoint(t.tdb.db, { name: 'slow', url: r.url, secret: r.secret, events: ['app.install'] });
    r.setHandler((_m, n) => (n === 1 ? { status: 200, hold: true } : { status: 200 }));
    await t.ctx.requests.createApproved({ id: null, label: 'api:test', channel: 'api' }, { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    const d = await waitFor(
      () =>
        t.tdb.db.maybeOne<{ id: string; message_id: string }>(
          `SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 AND status = 'succeeded'`,
          [id],
        ),
      'success after a timeout',
    );
    const rows = await t.tdb.db.query<{ error: string | null; latency_ms: number; status_code: number | null }>(
      'SELECT * FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt',
      [d.id],
    );
    expect(rows[0]!.error).toMatch(/timed out after 500 ms/);
    expect(rows[0]!.status_code).toBeNull();
    expect(rows[0]!.latency_ms).toBeGreaterThanOrEqual(450);
    expect(rows.at(-1)!.status_code).toBe(200);
    expect(new Set(r.received.map((m) => m.id))).toEqual(new Set([d.message_id]));
    expect(r.accepted.size).toBe(1);
  });
});
