import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attemptDelivery, type DeliveryRuntime } from '../../src/integrations/webhooks/delivery-processor.ts';
import { defaultBackoff } from '../../src/integrations/webhooks/retry-policy.ts';
import { parseAllowList } from '../../src/integrations/webhooks/url-safety.ts';
import { addEndpoint } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let r: Receiver;
let rt: DeliveryRuntime;
let endpointId: string;

beforeAll(async () => {
  t = await createTestContext({ WEBHOOK_TIMEOUT_MS: '10000' });
  r = await startReceiver();
  endpointId = await addEndpoint(t.tdb.db, { name: 'leases', url: r.url, secret: r.secret, events: ['app.install'] });
  rt = { ctx: t.ctx, allow: parseAllowList(t.ctx.config.WEBHOOK_ALLOW_HOSTS), backoff: defaultBackoff };
});
afterAll(async () => {
  await r?.close();
  await t?.close();
});

let seq = 0;
async function newDelivery(): Promise<{ id: string; messageId: string }> {
  const messageId = `msg_lease_${++seq}`;
  const body = JSON.stringify({ type: 'app.install', timestamp: new Date().toISOString(), data: { n: seq } });
  const row = await t.tdb.db.one<{ id: string }>(
    `INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, body) VALUES ($1, $2, 'app.install', $3) RETURNING id`,
    [messageId, endpointId, body],
  );
  return { id: row.id, messageId };
}

const state = (id: string) =>
  t.tdb.db.one<{ status: string; attempts: number; lease_token: string | null; n: string }>(
    `SELECT status, attempts, lease_token, (SELECT count(*) FROM webhook_attempts WHERE delivery_id = d.id) AS n FROM webhook_deliveries d WHERE id = $1`,
    [id],
  );
const posts = (messageId: string) => r.received.filter((m) => m.id === messageId).length;

describe('delivery leases', () => {
  it('two runs of the same delivery started together POST it once', async () => {
    const d = await newDelivery();
    const outcomes = (await Promise.all([attemptDelivery(rt, d.id), attemptDelivery(rt, d.id)])).map((s) => s.outcome).sort();
    expect(outcomes).toEqual(['skipped', 'succeeded']);
    expect(posts(d.messageId)).toBe(1);
    expect(await state(d.id)).toMatchObject({ status: 'succeeded', attempts: 1, lease_token: null, n: '1' });
  });

  it('a run that starts while another is mid-POST skips the delivery; the first one records it', async () => {
    const d = await newDelivery();
    let answer!: () => void;
    const answered = new Promise<void>((res) => (answer = res));
    r.setHandler(async (m) => {
      if (m.id === d.messageId) await answered;
      return { status: 200 };
    });
    try {
      const first = attemptDelivery(rt, d.id);
      await waitFor(() => posts(d.messageId) === 1, 'the first run to be sending');
      // no connection is held during the POST: the second run's claim answers at once
      expect((await attemptDelivery(rt, d.id)).outcome).toBe('skipped');
      answer();
      expect((await first).outcome).toBe('succeeded');
    } finally {
      r.setHandler(() => ({ status: 200 }));
    }
    expect(posts(d.messageId)).toBe(1);
    expect(await state(d.id)).toMatchObject({ status: 'succeeded', attempts: 1, n: '1' });
  });

  it('the lease of a crashed run is taken over once it has expired, and its late record is ignored', async () => {
    const d = await newDelivery();
    const crashed = '00000000-0000-4000-8000-000000000001';
    // a run that died mid-POST left its lease; while it lasts nobody sends
    await t.tdb.db.query(`UPDATE webhook_deliveries SET lease_token = $2, lease_until = now() + interval '1 minute' WHERE id = $1`, [
      d.id,
      crashed,
    ]);
    expect((await attemptDelivery(rt, d.id)).outcome).toBe('skipped');
    expect(posts(d.messageId)).toBe(0);
    await t.tdb.db.query(`UPDATE webhook_deliveries SET lease_until = now() - interval '1 second' WHERE id = $1`, [d.id]);
    expect((await attemptDelivery(rt, d.id)).outcome).toBe('succeeded');
    expect(posts(d.messageId)).toBe(1);
    expect(await state(d.id)).toMatchObject({ status: 'succeeded', attempts: 1, lease_token: null, n: '1' });
  });

  it('an early duplicate of a scheduled retry waits for its turn without taking the lease', async () => {
    const d = await newDelivery();
    const due = Date.now() + 3_600_000;
    await t.tdb.db.query(`UPDATE webhook_deliveries SET attempts = 1, next_attempt_at = $2 WHERE id = $1`, [d.id, new Date(due)]);
    const step = await attemptDelivery(rt, d.id);
    expect(step).toEqual({ outcome: 'retry', retryAt: due });
    expect(posts(d.messageId)).toBe(0);
    expect(await state(d.id)).toMatchObject({ status: 'pending', attempts: 1, lease_token: null });
  });

  it('a connector order is never claimed as a webhook delivery', async () => {
    await t.tdb.db.query(`INSERT INTO applications (id, name) VALUES ('lease-app', 'Lease app') ON CONFLICT DO NOTHING`);
    const row = await t.tdb.db.one<{ id: string }>(
      `INSERT INTO webhook_deliveries (message_id, endpoint_id, event_type, body, connector, application_id)
       VALUES ('msg_lease_order', NULL, 'request.approved', '{}', 'intune', 'lease-app') RETURNING id`,
    );
    expect((await attemptDelivery(rt, row.id)).outcome).toBe('skipped');
    expect(await state(row.id)).toMatchObject({ status: 'pending', attempts: 0, lease_token: null });
  });
  it('a delivery the endpoint gate refuses while it is claimed is not sent, and its lease goes back for the next run', async () => {
    const d = await newDelivery();
    const busy = { ok: false as const, reason: 'busy' as const, waitMs: 0, latencyMs: 20_000 };
    const step = await attemptDelivery(rt, d.id, { admit: async () => busy });
    expect(step).toEqual({ outcome: 'gated', gate: busy });
    expect(posts(d.messageId)).toBe(0);
    expect(await state(d.id)).toMatchObject({ status: 'pending', attempts: 0, lease_token: null, n: '0' });
    // the gate unreachable: the same, and the error goes on to the job
    await expect(attemptDelivery(rt, d.id, { admit: () => Promise.reject(new Error('redis down')) })).rejects.toThrow('redis down');
    expect(await state(d.id)).toMatchObject({ status: 'pending', attempts: 0, lease_token: null });
    expect((await attemptDelivery(rt, d.id, { admit: async () => ({ ok: true, probe: false }) })).outcome).toBe('succeeded');
    expect(posts(d.messageId)).toBe(1);
  });
});
