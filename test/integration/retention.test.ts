import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAudit } from '../../src/core/audit-chain.ts';
import { createOpsRouter } from '../../src/integrations/http/ops-routes.ts';
import { closeQueues } from '../../src/integrations/queue/queues.ts';
import { pruneFinishedWork, startRetention } from '../../src/integrations/retention.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

let t: TestContext;
let ops: ReturnType<typeof createOpsRouter>;
let endpointId: string;

beforeAll(async () => {
  t = await createTestContext();
  await seedContoso(t.tdb.db);
  ops = createOpsRouter(t.ctx);
  endpointId = await addEndpoint(t.tdb.db, {
    name: 'dm',
    url: 'https://dm.example.com/hooks',
    secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    events: ['app.install'],
  });
});
afterAll(async () => {
  await ops?.close();
  await closeQueues(t.ctx);
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

/** An outbox event with one delivery of the given status and attempts, all `ageDays` old. */
async function deliveryAged(
  status: 'pending' | 'succeeded' | 'failed',
  ageDays: number,
  codes: number[],
): Promise<{ outboxId: string; deliveryId: string }> {
  const age = `now() - make_interval(days => ${ageDays})`;
  const { id: outboxId } = await t.tdb.db.one<{ id: string }>(
    `INSERT INTO outbox (type, payload, status, created_at, processed_at) VALUES ('request.approved', '{}', 'done', ${age}, ${age}) RETURNING id`,
  );
  const { id: deliveryId } = await t.tdb.db.one<{ id: string }>(
    `INSERT INTO webhook_deliveries (message_id, endpoint_id, outbox_id, event_type, body, status, attempts, created_at, completed_at)
     VALUES ('msg_' || gen_random_uuid(), $1, $2, 'app.install', '{}', $3, $4, ${age}, ${status === 'pending' ? 'NULL' : age}) RETURNING id`,
    [endpointId, outboxId, status, codes.length],
  );
  for (const [i, code] of codes.entries()) {
    await t.tdb.db.query(
      `INSERT INTO webhook_attempts (delivery_id, attempt, status_code, latency_ms, created_at) VALUES ($1, $2, $3, 20, ${age})`,
      [deliveryId, i + 1, code],
    );
  }
  return { outboxId, deliveryId };
}

async function attemptCounters(): Promise<Record<string, number>> {
  const text = (await request(express().use(ops)).get('/metrics').expect(200)).text;
  return Object.fromEntries(
    [...text.matchAll(/^signoff_webhook_attempts_total\{outcome="(\w+)"\} (\S+)$/gm)].map((m) => [m[1]!, Number(m[2])]),
  );
}

const exists = async (table: string, id: string) => (await t.tdb.db.query(`SELECT 1 FROM ${table} WHERE id = $1`, [id])).length === 1;

describe('retention of finished delivery work', () => {
  it('deletes finished deliveries and events older than RETENTION_DAYS, keeps everything else, and keeps the counters counting', async () => {
    // a real request: its events and audit rows are old too, but records stay
    const { request: approved } = await t.ctx.requests.createApproved(
      { id: null, label: 'api:test', channel: 'api' },
      { applicationId: VISIO, clientGuid: BOB_LAPTOP },
    );
    await t.tdb.db.query(`UPDATE outbox SET status = 'done', processed_at = now(), created_at = now() - interval '120 days'`);
    const requestEvents = (await t.tdb.db.query<{ id: string }>('SELECT id FROM outbox')).map((r) => r.id);

    const oldOk = await deliveryAged('succeeded', 100, [503, 200]);
    const oldFailed = await deliveryAged('failed', 100, [400]);
    const oldPending = await deliveryAged('pending', 100, [503, 503]); // still being retried: keep
    const recentOk = await deliveryAged('succeeded', 10, [200]);
    const { id: stuckEvent } = await t.tdb.db.one<{ id: string }>(
      `INSERT INTO outbox (type, payload, status, created_at) VALUES ('request.denied', '{}', 'pending', now() - interval '100 days') RETURNING id`,
    );
    const { id: eventWithPendingEffect } = await t.tdb.db.one<{ id: string }>(
      `INSERT INTO outbox (type, payload, status, created_at) VALUES ('request.denied', '{}', 'done', now() - interval '100 days') RETURNING id`,
    );
    await t.tdb.db.query(`INSERT INTO outbox_effects (outbox_id, target) VALUES ($1, 'slack')`, [eventWithPendingEffect]);
    const before = await attemptCounters();
    expect(before).toMatchObject({ succeeded: 2, retry: 3, failed: 1 });

    expect(await pruneFinishedWork(t.tdb.db, 90)).toEqual({ deliveries: 2, outbox: 2 + requestEvents.length });
    for (const gone of [oldOk, oldFailed]) {
      expect(await exists('webhook_deliveries', gone.deliveryId)).toBe(false);
      expect(await exists('outbox', gone.outboxId)).toBe(false);
    }
    for (const id of requestEvents) expect(await exists('outbox', id)).toBe(false);
    expect(Number((await t.tdb.db.one<{ n: string }>(`SELECT count(*) AS n FROM webhook_attempts`)).n)).toBe(3); // pending's two, recent's one
    for (const kept of [oldPending, recentOk]) {
      expect(await exists('webhook_deliveries', kept.deliveryId)).toBe(true);
      expect(await exists('outbox', kept.outboxId)).toBe(true);
    }
    expect(await exists('outbox', stuckEvent)).toBe(true);
    expect(await exists('outbox', eventWithPendingEffect)).toBe(true);

    // the record is untouched and the counters never go down
    expect((await t.ctx.requests.get(approved.id)).status).toBe('approved');
    expect(await verifyAudit(t.tdb.db)).toMatchObject({ ok: true });
    expect(await attemptCounters()).toEqual(before);
    // a second pass finds nothing more
    expect(await pruneFinishedWork(t.tdb.db, 90)).toEqual({ deliveries: 0, outbox: 0 });
  });

  it('keeps a finished delivery whose attempts the metrics have not counted yet', async () => {
    const { deliveryId } = await deliveryAged('succeeded', 100, [200]);
    // an attempt younger than the metrics' settling margin (a redelivery just now) is not folded yet
    await t.tdb.db.query(`INSERT INTO webhook_attempts (delivery_id, attempt, status_code, latency_ms) VALUES ($1, 2, 200, 5)`, [
      deliveryId,
    ]);
    await pruneFinishedWork(t.tdb.db, 90);
    expect(await exists('webhook_deliveries', deliveryId)).toBe(true);
  });

  it('RETENTION_DAYS=0 keeps everything', async () => {
    const keep = await createTestContext({ RETENTION_DAYS: '0' });
    try {
      const retention = startRetention(keep.ctx);
      expect(await retention.runOnce()).toBeNull();
      await retention.stop();
    } finally {
      await keep.close();
    }
  });
});
