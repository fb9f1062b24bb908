import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fanOutBatch, requeueEverything } from '../../src/integrations/outbox-batch.ts';
import { createRedis } from '../../src/integrations/queue/connection.ts';
import { AppQueues } from '../../src/integrations/queue/queues.ts';
import { seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

let t: TestContext;
let queues: AppQueues;

beforeAll(async () => {
  t = await createTestContext();
  await seedContoso(t.tdb.db);
  queues = new AppQueues(createRedis(t.ctx.config.REDIS_URL, 'producer'), t.ctx.config.QUEUE_PREFIX, t.ctx.db);
});
afterAll(async () => {
  await queues?.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

describe('re-enqueue after Redis came back empty', () => {
  it('queues every pending delivery once: those fanned out before the wipe and those of events not relayed yet', async () => {
    await addEndpoint(t.tdb.db, { name: 'dm', url: 'http://127.0.0.1:9/hooks', secret: 'whsec_dGVzdHNlY3JldA==', events: ['app.install'] });
    const api = { id: null, label: 'api:test', channel: 'api' as const };
    const approve = async (from: number, to: number) => {
      for (let i = from; i < to; i++) {
        const clientGuid = `GUID:REQUEUE-${i}`;
        await t.tdb.db.query(`INSERT INTO devices (client_guid, name) VALUES ($1, $2)`, [clientGuid, `PC-${i}`]);
        await t.ctx.requests.createApproved(api, { applicationId: VISIO, clientGuid });
      }
    };
    // 12 events fanned out whose jobs Redis then lost, 18 still in the outbox
    await approve(0, 12);
    expect((await fanOutBatch(t.ctx)).deliveries).toHaveLength(12);
    await approve(12, 30);

    const n = await requeueEverything(t.ctx, queues);
    expect(n.deliveries).toBe(12);
    const jobs = await queues.webhooks.getJobs(['waiting', 'delayed', 'prioritized']);
    const carried = jobs.flatMap((j) => [j.data.deliveryId, ...(j.data.more ?? [])]);
    const pending = await t.tdb.db.query<{ id: string }>(`SELECT id FROM webhook_deliveries WHERE status = 'pending' ORDER BY id`);
    expect(pending).toHaveLength(30);
    expect([...carried].sort()).toEqual(pending.map((p) => p.id));
  });
});
