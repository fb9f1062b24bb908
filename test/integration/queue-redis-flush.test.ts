import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis, flushRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { holdAnswers, startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let r: Receiver;
let workers: RunningWorkers | undefined;
const N = 100;

beforeAll(async () => {
  // no periodic reconcile within the test: recovery after the wipe must not need it (a job lost for good hangs the
  // wait below instead of being re-added a minute later)
  t = await createTestContext({ OUTBOX_RECONCILE_MS: '3600000' });
  await seedContoso(t.tdb.db);
  r = await startReceiver();
});
afterAll(async () => {
  await workers?.stop();
  await r?.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

describe('Redis loses everything', () => {
  it(`after ${N} committed decisions, all ${N} install webhooks still arrive, each once`, async () => {
    await addEndpoint(t.tdb.db, { name: 'dm', url: r.url, secret: r.secret, events: ['app.install'] });
    // the receiver holds every answer until Redis has been wiped, so the wipe hits work in flight and queued
    const open = holdAnswers(r);
    const guids = Array.from({ length: N }, (_, i) => `GUID:FLUSH-${String(i).padStart(4, '0')}`);
    for (const g of guids) await t.tdb.db.query(`INSERT INTO devices (client_guid, name) VALUES ($1, $2)`, [g, `PC-${g.slice(-4)}`]);

    workers = await startWorkers(t.ctx, { backoff: { baseMs: 20, maxMs: 200 }, sweeper: false, lockDurationMs: 2000 });
    const api = { id: null, label: 'api:test', channel: 'api' as const };
    const ids: string[] = [];
    const commit = async (from: number, to: number) => {
      for (let i = from; i < to; i += 10) {
        const batch = await Promise.all(
          guids
            .slice(i, Math.min(i + 10, to))
            .map((clientGuid) => t.ctx.requests.createApproved(api, { applicationId: VISIO, clientGuid })),
        );
        ids.push(...batch.map((b) => b.request.id));
      }
    };
    // mid-stream: most decisions before the wipe, the rest right after it
    await commit(0, N - 20);
    const atFlush = await t.tdb.db.one<{ outbox: string; deliveries: string }>(
      `SELECT (SELECT count(*) FROM outbox WHERE status <> 'done') AS outbox, (SELECT count(*) FROM webhook_deliveries WHERE status = 'pending') AS deliveries`,
    );
    const inFlight = r.received.length;
    await flushRedis(t.ctx.config.QUEUE_PREFIX);
    await commit(N - 20, N);
    open();
    const started = Date.now();
    await waitFor(() => r.accepted.size === N, `all ${N} install webhooks`).catch(async (e) => {
      const pending = await t.tdb.db.query<{ id: string; status: string; attempts: number }>(
        `SELECT id, status, attempts FROM webhook_deliveries WHERE status <> 'succeeded'`,
      );
      const outbox = await t.tdb.db.query(`SELECT id, status, attempts, last_error FROM outbox WHERE status <> 'done'`);
      const states = await Promise.all(pending.slice(0, 5).map((d) => workers!.queues.webhooks.getJobState(d.id)));
      console.error(
        'DIAG',
        JSON.stringify({
          accepted: r.accepted.size,
          received: r.received.length,
          pending: pending.length,
          sample: pending.slice(0, 5),
          states,
          outbox,
          counts: await workers!.queues.webhooks.getJobCounts(),
        }),
      );
      throw e;
    });
    console.info(
      `[measured] at the flush: ${atFlush.outbox} outbox rows not relayed, ${atFlush.deliveries} deliveries pending, ${inFlight} requests held at the receiver; all ${N} accepted ${Date.now() - started} ms after the flush; receipts ${r.received.length}`,
    );
    expect(Number(atFlush.outbox) + Number(atFlush.deliveries)).toBeGreaterThan(N / 3);

    const requestIds = [...r.accepted.values()].map((m) => m.payload.data.requestId);
    expect(new Set(requestIds)).toEqual(new Set(ids));
    expect(r.received.every((m) => m.verified && m.payload.type === 'app.install')).toBe(true);
    // each once in effect: retries (at-least-once) reuse the webhook-id, so the distinct ids are the deliveries,
    // and no request got a second delivery under a new id
    expect(new Set(r.received.map((m) => m.id)).size).toBe(N);
    const idsPerRequest = new Map<string, Set<string>>();
    for (const m of r.received)
      idsPerRequest.set(m.payload.data.requestId, (idsPerRequest.get(m.payload.data.requestId) ?? new Set()).add(m.id));
    expect([...idsPerRequest.values()].every((s) => s.size === 1)).toBe(true);
    // the receiver's 2xx comes before the worker records it
    const rows = await waitFor(async () => {
      const all = await t.tdb.db.query<{ message_id: string; status: string }>(`SELECT message_id, status FROM webhook_deliveries`);
      return all.every((d) => d.status === 'succeeded') ? all : null;
    }, 'every delivery to be recorded as succeeded');
    expect(rows).toHaveLength(N);
    expect(new Set(rows.map((d) => d.message_id))).toEqual(new Set(r.received.map((m) => m.id)));
    const pending = await t.tdb.db.one<{ n: string }>(`SELECT count(*) AS n FROM outbox WHERE status <> 'done'`);
    expect(Number(pending.n)).toBe(0);
  });

  it('decisions committed while no worker runs and Redis is wiped are relayed once workers start', async () => {
    await workers?.stop();
    workers = undefined;
    const guids = Array.from({ length: 50 }, (_, i) => `GUID:LATE-${String(i).padStart(4, '0')}`);
    for (const g of guids) await t.tdb.db.query(`INSERT INTO devices (client_guid, name) VALUES ($1, $2)`, [g, `PC-${g.slice(-4)}`]);
    const api = { id: null, label: 'api:test', channel: 'api' as const };
    const ids = (
      await Promise.all(guids.map((clientGuid) => t.ctx.requests.createApproved(api, { applicationId: VISIO, clientGuid })))
    ).map((x) => x.request.id);
    await flushRedis(t.ctx.config.QUEUE_PREFIX);
    workers = await startWorkers(t.ctx, { backoff: { baseMs: 20, maxMs: 200 }, sweeper: false, lockDurationMs: 2000 });
    await waitFor(() => ids.every((id) => [...r.accepted.values()].some((m) => m.payload.data.requestId === id)), 'the 50 late installs');
    // once each in effect: redeliveries reuse a webhook-id, so these 50 requests got 50 distinct ids
    const late = new Set(ids);
    expect(new Set(r.received.filter((m) => late.has(m.payload.data.requestId)).map((m) => m.id)).size).toBe(50);
  });
});
