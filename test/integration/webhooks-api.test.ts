import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/core/api-keys.ts';
import { createHttpApp } from '../../src/integrations/http/app.ts';
import { closeQueues } from '../../src/integrations/queue/queues.ts';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let r: Receiver;
let workers: RunningWorkers;
let admin: string;
let reader: string;
let app: ReturnType<typeof createHttpApp>;

beforeAll(async () => {
  t = await createTestContext({ OUTBOX_RECONCILE_MS: '1000' });
  await seedContoso(t.tdb.db);
  r = await startReceiver();
  workers = await startWorkers(t.ctx, { backoff: { baseMs: 20, maxMs: 200 }, sweeper: false });
  admin = (await createApiKey(t.tdb.db, 'admin', ['admin'])).key;
  reader = (await createApiKey(t.tdb.db, 'reader', ['requests:read'])).key;
  app = createHttpApp(t.ctx);
});
afterAll(async () => {
  await workers?.stop();
  await closeQueues(t.ctx);
  await r?.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

describe('/api/v1/deliveries', () => {
  it('lists failed deliveries, shows every attempt, and redelivers with the same webhook-id', async () => {
    const endpointId = await addEndpoint(t.tdb.db, {
      name: 'dm',
      url: r.url,
      secret: r.secret,
      events: ['app.install', 'request.approved'],
    });
    r.setHandler(() => ({ status: 422, body: 'unknown device' }));
    await t.ctx.requests.createApproved({ id: null, label: 'api:test', channel: 'api' }, { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    // one event, two subscribed webhook types: two deliveries to the same endpoint
    await waitFor(
      async () => (await t.tdb.db.query(`SELECT 1 FROM webhook_deliveries WHERE status = 'failed'`)).length === 2,
      'both deliveries to fail',
    );

    // deliveries carry every payload, change.apply's protected before/after included: admins only
    await request(app).get('/api/v1/deliveries').set('authorization', `Bearer ${reader}`).expect(403);
    const list = await request(app).get('/api/v1/deliveries?status=failed&endpoint=dm').set('authorization', `Bearer ${admin}`).expect(200);
    expect(list.body.items).toHaveLength(2);
    expect(list.body.items.map((d: any) => d.eventType).sort()).toEqual(['app.install', 'request.approved']);
    const page1 = await request(app).get('/api/v1/deliveries?limit=1').set('authorization', `Bearer ${admin}`).expect(200);
    expect(page1.body.items).toHaveLength(1);
    const page2 = await request(app)
      .get(`/api/v1/deliveries?limit=1&cursor=${page1.body.nextCursor}`)
      .set('authorization', `Bearer ${admin}`)
      .expect(200);
    expect(page2.body.items).toHaveLength(1);
    expect(page2.body.items[0].id).not.toBe(page1.body.items[0].id);
    expect(page2.body.nextCursor).toBeNull();
    await request(app)
      .get(`/api/v1/deliveries?endpoint=${endpointId}&status=succeeded`)
      .set('authorization', `Bearer ${admin}`)
      .expect(200)
      .then((res) => expect(res.body.items).toHaveLength(0));

    const install = list.body.items.find((d: any) => d.eventType === 'app.install');
    const one = await request(app).get(`/api/v1/deliveries/${install.id}`).set('authorization', `Bearer ${admin}`).expect(200);
    expect(one.body).toMatchObject({
      status: 'failed',
      lastStatusCode: 422,
      messageId: `msg_${install.id}`,
      payload: { type: 'app.install', data: { clientGuid: BOB_LAPTOP } },
    });
    expect(one.body.attemptLog).toEqual([expect.objectContaining({ attempt: 1, statusCode: 422, responseExcerpt: 'unknown device' })]);

    await request(app).post(`/api/v1/deliveries/${install.id}/redeliver`).set('authorization', `Bearer ${reader}`).expect(403);
    r.setHandler(() => ({ status: 200 }));
    const redelivered = await request(app)
      .post(`/api/v1/deliveries/${install.id}/redeliver`)
      .set('authorization', `Bearer ${admin}`)
      .expect(202);
    expect(redelivered.body.id).toBe(install.id);
    await waitFor(
      async () =>
        (await t.tdb.db.one<{ status: string }>('SELECT status FROM webhook_deliveries WHERE id = $1', [install.id])).status ===
        'succeeded',
      'the redelivery',
    );
    const sent = r.received.filter((m) => m.payload.type === 'app.install');
    expect(sent).toHaveLength(2);
    expect(new Set(sent.map((m) => m.id))).toEqual(new Set([`msg_${install.id}`]));
    const after = await request(app).get(`/api/v1/deliveries/${install.id}`).set('authorization', `Bearer ${admin}`).expect(200);
    expect(after.body.attemptLog.map((a: any) => a.statusCode)).toEqual([422, 200]);

    await request(app).post(`/api/v1/deliveries/${install.id}/redeliver`).set('authorization', `Bearer ${admin}`).expect(202);
    await t.tdb.db.query('UPDATE webhook_endpoints SET enabled = false WHERE id = $1', [endpointId]);
    const other = list.body.items.find((d: any) => d.eventType === 'request.approved');
    const refused = await request(app).post(`/api/v1/deliveries/${other.id}/redeliver`).set('authorization', `Bearer ${admin}`).expect(409);
    expect(refused.body.detail).toMatch(/disabled/);
    await request(app).get('/api/v1/deliveries/not-a-uuid').set('authorization', `Bearer ${admin}`).expect(404);
  });
});
