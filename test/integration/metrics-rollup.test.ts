import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createOpsRouter } from '../../src/integrations/http/ops-routes.ts';
import { closeQueues } from '../../src/integrations/queue/queues.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

let t: TestContext;
let ops: ReturnType<typeof createOpsRouter>;
let deliveryId: string;

beforeAll(async () => {
  t = await createTestContext();
  ops = createOpsRouter(t.ctx);
  const endpointId = await addEndpoint(t.tdb.db, {
    name: 'dm',
    url: 'https://dm.example.com/hooks',
    secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    events: ['app.install'],
  });
  deliveryId = (
    await t.tdb.db.one<{ id: string }>(
      `INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, body) VALUES ('msg_1', $1, 'app.install', '{}') RETURNING id`,
      [endpointId],
    )
  ).id;
});
afterAll(async () => {
  await ops?.close();
  await closeQueues(t.ctx);
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

const attempt = (status: number, latencyMs: number, ageMinutes: number) =>
  t.tdb.db.query(
    `INSERT INTO webhook_attempts (delivery_id, attempt, status_code, latency_ms, created_at) VALUES ($1, 1, $2, $3, now() - make_interval(mins => $4))`,
    [deliveryId, status, latencyMs, ageMinutes],
  );

async function scrape(): Promise<Map<string, number>> {
  const text = (await request(express().use(ops)).get('/metrics').expect(200)).text;
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    const m = /^(signoff_webhook_\w+)(\{[^}]*\})? (\S+)$/.exec(line);
    if (m) out.set(`${m[1]}${m[2] ?? ''}`, Number(m[3]));
  }
  return out;
}

describe('webhook attempt metrics over a long history', () => {
  it('folds settled attempts into totals once; scrapes add only recent ones and never count a row twice', async () => {
    // three old attempts (settled) and two from the last minute
    await attempt(200, 40, 60);
    await attempt(200, 300, 30);
    await attempt(503, 20, 10);
    await attempt(200, 8, 0);
    await attempt(429, 5, 0);

    const first = await scrape();
    expect(first.get('signoff_webhook_attempts_total{outcome="succeeded"}')).toBe(3);
    expect(first.get('signoff_webhook_attempts_total{outcome="retry"}')).toBe(2);
    expect(first.get('signoff_webhook_delivery_latency_seconds_bucket{le="0.01",outcome="succeeded"}')).toBe(1);
    expect(first.get('signoff_webhook_delivery_latency_seconds_bucket{le="0.05",outcome="succeeded"}')).toBe(2);
    expect(first.get('signoff_webhook_delivery_latency_seconds_bucket{le="0.5",outcome="succeeded"}')).toBe(3);
    expect(first.get('signoff_webhook_delivery_latency_seconds_sum{outcome="succeeded"}')).toBeCloseTo(0.348, 6);

    // the old ones now live in the totals; the recent ones are still read live
    const totals = await t.tdb.db.query<{ outcome: string; n: string }>(`SELECT outcome, n FROM webhook_attempt_totals ORDER BY outcome`);
    expect(totals).toEqual([
      { outcome: 'retry', n: '1' },
      { outcome: 'succeeded', n: '2' },
    ]);

    // scraping again changes nothing; a new attempt adds exactly one
    expect(await scrape()).toEqual(first);
    await attempt(200, 12, 0);
    expect((await scrape()).get('signoff_webhook_attempts_total{outcome="succeeded"}')).toBe(4);

    // counters stay monotonic when old attempt rows are deleted (an endpoint removed, a retention job)
    await t.tdb.db.query(`DELETE FROM webhook_attempts WHERE created_at < now() - interval '5 minutes'`);
    const after = await scrape();
    expect(after.get('signoff_webhook_attempts_total{outcome="succeeded"}')).toBe(4);
    expect(after.get('signoff_webhook_attempts_total{outcome="retry"}')).toBe(2);
  });

  it('deleting an endpoint keeps what its recent attempts counted, and waits while it still has a delivery in flight', async () => {
    const admin = { id: null, label: 'api:ops', channel: 'api' as const };
    const before = await scrape();
    await t.tdb.db.query(`UPDATE webhook_deliveries SET status = 'pending' WHERE id = $1`, [deliveryId]);
    await expect(t.ctx.catalog.delete('webhooks', 'dm', admin)).rejects.toMatchObject({
      code: 'conflict',
      message: expect.stringMatching(/still being attempted/),
    });
    await t.tdb.db.query(`UPDATE webhook_deliveries SET status = 'succeeded', completed_at = now() WHERE id = $1`, [deliveryId]);
    await attempt(200, 7, 0); // recent: not folded yet when the endpoint goes
    await t.ctx.catalog.delete('webhooks', 'dm', admin);
    expect(await t.tdb.db.query(`SELECT 1 FROM webhook_attempts`)).toHaveLength(0);
    const after = await scrape();
    expect(after.get('signoff_webhook_attempts_total{outcome="succeeded"}')).toBe(
      before.get('signoff_webhook_attempts_total{outcome="succeeded"}')! + 1,
    );
    expect(after.get('signoff_webhook_attempts_total{outcome="retry"}')).toBe(
      before.get('signoff_webhook_attempts_total{outcome="retry"}'),
    );
  });
});
