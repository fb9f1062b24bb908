import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpsRouter } from '../../src/integrations/http/ops-routes.ts';
import { closeQueues } from '../../src/integrations/queue/queues.ts';
import { startChildWorker, type ChildWorker } from '../support/child-worker.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let r: Receiver;
let worker: ChildWorker | undefined;
let ops: ReturnType<typeof createOpsRouter>;

beforeAll(async () => {
  t = await createTestContext({ OUTBOX_RECONCILE_MS: '1000' });
  await seedContoso(t.tdb.db);
  r = await startReceiver();
  ops = createOpsRouter(t.ctx);
});
afterAll(async () => {
  await worker?.kill('SIGTERM');
  await ops?.close();
  await closeQueues(t.ctx);
  await r?.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

/** `name{labels} value` lines of one metric family, as a map from the label string to the value. */
function series(text: string, name: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m && m[1] === name) out.set(m[2] ?? '', Number(m[3]));
  }
  return out;
}

describe('/metrics in a split deployment', () => {
  it('a web process with no workers reports the attempts and latency of deliveries a worker process made', async () => {
    await addEndpoint(t.tdb.db, { name: 'dm', url: r.url, secret: r.secret, events: ['app.install', 'app.uninstall'] });
    // the install is refused once (503, retried), the uninstall goes through; both at the receiver in the end
    r.setHandler((m, n) => (m.payload.type === 'app.install' && n === 1 ? { status: 503 } : { status: 200 }));
    worker = await startChildWorker(t.ctx.config);
    await t.ctx.requests.createApproved({ id: null, label: 'api:test', channel: 'api' }, { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    await waitFor(() => r.accepted.size === 1, 'the install webhook (second attempt)');
    await waitFor(
      async () =>
        Number((await t.tdb.db.one<{ n: string }>(`SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'succeeded'`)).n) === 1,
      'the delivery recorded',
    );

    // this process never ran a worker: everything below comes from what the child wrote to Postgres
    const text = (await request(express().use(ops)).get('/metrics').expect(200)).text;
    const attempts = series(text, 'signoff_webhook_attempts_total');
    expect(attempts.get('{outcome="retry"}')).toBe(1);
    expect(attempts.get('{outcome="succeeded"}')).toBe(1);
    expect(text).toMatch(/# TYPE signoff_webhook_attempts_total counter/);
    expect(text).toMatch(/# TYPE signoff_webhook_delivery_latency_seconds histogram/);

    const buckets = series(text, 'signoff_webhook_delivery_latency_seconds_bucket');
    for (const outcome of ['retry', 'succeeded']) {
      const counts = [...buckets].filter(([labels]) => labels.endsWith(`outcome="${outcome}"}`)).map(([, v]) => v);
      expect(counts).toHaveLength(11);
      // cumulative, ending at +Inf = _count
      expect(counts).toEqual([...counts].sort((a, b) => a - b));
      expect(buckets.get(`{le="+Inf",outcome="${outcome}"}`)).toBe(1);
      expect(series(text, 'signoff_webhook_delivery_latency_seconds_count').get(`{outcome="${outcome}"}`)).toBe(1);
    }
    const [{ latency_ms }] = await t.tdb.db.query<{ latency_ms: number }>(
      `SELECT latency_ms FROM webhook_attempts WHERE status_code = 200`,
    );
    expect(series(text, 'signoff_webhook_delivery_latency_seconds_sum').get('{outcome="succeeded"}')).toBeCloseTo(latency_ms! / 1000, 6);
    // the le="30" bucket holds every attempt a local receiver answered
    expect(buckets.get('{le="30",outcome="succeeded"}')).toBe(1);

    // calling CreateApprovedRequest again orders the install again: the next scrape counts the new attempt
    await t.ctx.requests.createApproved({ id: null, label: 'api:test', channel: 'api' }, { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    await waitFor(() => r.accepted.size === 2, 'the second install webhook');
    await waitFor(
      async () =>
        series((await request(express().use(ops)).get('/metrics')).text, 'signoff_webhook_attempts_total').get('{outcome="succeeded"}') ===
        2,
      'the second success counted',
    );
  });
});
