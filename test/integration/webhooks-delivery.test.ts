import net from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let workers: RunningWorkers;
const receivers: Receiver[] = [];

beforeAll(async () => {
  // a generous per-attempt timeout: a loaded test machine must not turn an answer into a retry (webhooks-timeout.test.ts covers timeouts)
  // the circuit breaker (webhooks-fairness.test.ts) would hold back these retries of one delivery: out of the way here
  t = await createTestContext({
    OUTBOX_RECONCILE_MS: '1000',
    WEBHOOK_TIMEOUT_MS: '10000',
    WEBHOOK_MAX_ATTEMPTS: '8',
    WEBHOOK_BREAKER_FAILURES: '100',
  });
  await seedContoso(t.tdb.db);
  workers = await startWorkers(t.ctx, { backoff: { baseMs: 20, maxMs: 200 }, sweeper: false, lockDurationMs: 5000 });
});
afterAll(async () => {
  await workers?.stop();
  for (const r of receivers) await r.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});
beforeEach(async () => {
  // each test listens on its own endpoint, and no event of an earlier test is still being fanned out
  await waitFor(
    async () => Number((await t.tdb.db.one<{ n: string }>(`SELECT count(*) AS n FROM outbox WHERE status <> 'done'`)).n) === 0,
    'earlier events to be relayed',
  );
  await t.tdb.db.query('UPDATE webhook_endpoints SET enabled = false');
});

async function endpoint(events = ['app.install']) {
  const r = await startReceiver();
  receivers.push(r);
  const id = await addEndpoint(t.tdb.db, { name: `ep-${receivers.length}`, url: r.url, secret: r.secret, events });
  return { r, id };
}

/** Orders an install (a new app.install event each call); returns the request id and the new event's outbox id. */
async function orderInstall(): Promise<string> {
  const { request } = await t.ctx.requests.createApproved(
    { id: null, label: 'api:test', channel: 'api' },
    { applicationId: VISIO, clientGuid: BOB_LAPTOP },
  );
  lastEventId = (await t.tdb.db.one<{ id: string }>('SELECT id FROM outbox ORDER BY seq DESC LIMIT 1')).id;
  return request.id;
}
let lastEventId = '';

const delivery = (endpointId: string) =>
  t.tdb.db.maybeOne<{
    id: string;
    status: string;
    attempts: number;
    last_status_code: number | null;
    last_error: string | null;
    message_id: string;
  }>(`SELECT * FROM webhook_deliveries WHERE endpoint_id = $1 ORDER BY created_at DESC LIMIT 1`, [endpointId]);
const attempts = (deliveryId: string) =>
  t.tdb.db.query<{
    attempt: number;
    status_code: number | null;
    latency_ms: number;
    response_excerpt: string | null;
    error: string | null;
  }>('SELECT * FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt', [deliveryId]);

describe('signed webhook delivery', () => {
  it('retries 5 failures with the same webhook-id and delivers once, every signature valid', async () => {
    const { r, id } = await endpoint();
    r.setHandler((_m, n) => (n <= 5 ? { status: 503, body: `down ${n}` } : { status: 200, body: 'ok' }));
    const requestId = await orderInstall();
    const d = await waitFor(async () => {
      const x = await delivery(id);
      return x && x.status !== 'pending' ? x : null;
    }, 'the delivery to finish');
    expect(d.status).toBe('succeeded');
    expect(d.attempts).toBe(6);
    expect(r.received).toHaveLength(6);
    expect(new Set(r.received.map((m) => m.id))).toEqual(new Set([d.message_id]));
    expect(d.message_id).toBe(`msg_${d.id}`);
    expect(r.received.every((m) => m.verified)).toBe(true);
    expect(r.accepted.size).toBe(1);
    const body = r.received[5]!.payload;
    expect(body.type).toBe('app.install');
    expect(body.data).toMatchObject({
      requestId,
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      deviceName: 'BOB-LAPTOP',
      reason: expect.any(String),
    });
    expect(new Set(r.received.map((m) => m.body)).size).toBe(1);
    const rows = await attempts(d.id);
    expect(rows.map((a) => a.status_code)).toEqual([503, 503, 503, 503, 503, 200]);
    expect(rows[0]!.response_excerpt).toBe('down 1');
    expect(rows.every((a) => a.latency_ms >= 0)).toBe(true);
  });

  it('honours Retry-After on 429', async () => {
    const { r, id } = await endpoint();
    const at: number[] = [];
    r.setHandler((_m, n) => {
      at.push(Date.now());
      return n === 1 ? { status: 429, headers: { 'retry-after': '1' } } : { status: 204 };
    });
    await orderInstall();
    await waitFor(async () => (await delivery(id))?.status === 'succeeded', 'success after 429');
    expect(at).toHaveLength(2);
    // backoff alone would be ~20 ms; the receiver asked for 1 s
    expect(at[1]! - at[0]!).toBeGreaterThanOrEqual(950);
  });

  it('fails a 400 at once, without retrying', async () => {
    const { r, id } = await endpoint();
    r.setHandler(() => ({ status: 400, body: 'bad' }));
    await orderInstall();
    const d = await waitFor(async () => ((await delivery(id))?.status === 'failed' ? delivery(id) : null), 'failure');
    expect(d!.attempts).toBe(1);
    expect(d!.last_status_code).toBe(400);
    expect(r.received).toHaveLength(1);
  });

  it('retries network errors and gives up after WEBHOOK_MAX_ATTEMPTS', async () => {
    // accepts and hangs up at once: a network error on every attempt, on a port held for the whole test
    // (a closed port could be taken by another test's server before the eighth attempt)
    const hangUp = net.createServer((socket) => socket.destroy());
    await new Promise<void>((resolve) => hangUp.listen(0, '127.0.0.1', resolve));
    try {
      const url = `http://127.0.0.1:${(hangUp.address() as net.AddressInfo).port}/hooks`;
      const id = await addEndpoint(t.tdb.db, {
        name: 'gone-away',
        url,
        secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
        events: ['app.install'],
      });
      await orderInstall();
      const d = await waitFor(async () => ((await delivery(id))?.status === 'failed' ? delivery(id) : null), 'the delivery to give up');
      expect(d!.attempts).toBe(8);
      expect(d!.last_error).toMatch(/ECONNRESET.*gave up after 8 attempts/);
      const rows = await attempts(d!.id);
      expect(rows).toHaveLength(8);
      expect(rows.map((a) => a.status_code)).toEqual(Array(8).fill(null));
      expect(rows.every((a) => /ECONNRESET/.test(a.error ?? ''))).toBe(true);
    } finally {
      await new Promise((resolve) => hangUp.close(resolve));
    }
  });

  it('410 Gone disables the endpoint and later events skip it', async () => {
    const { r, id } = await endpoint();
    r.setHandler(() => ({ status: 410 }));
    await orderInstall();
    await waitFor(async () => (await delivery(id))?.status === 'failed', 'the 410 failure');
    const ep = await t.tdb.db.one<{ enabled: boolean; disabled_reason: string | null }>(
      'SELECT enabled, disabled_reason FROM webhook_endpoints WHERE id = $1',
      [id],
    );
    expect(ep.enabled).toBe(false);
    expect(ep.disabled_reason).toMatch(/410/);
    expect(r.received).toHaveLength(1);

    const before = await t.tdb.db.one<{ n: string }>('SELECT count(*) AS n FROM webhook_deliveries WHERE endpoint_id = $1', [id]);
    await orderInstall();
    await waitFor(
      async () => await t.tdb.db.maybeOne(`SELECT 1 FROM outbox WHERE id = $1 AND status = 'done'`, [lastEventId]),
      'the next event fanned out',
    );
    const after = await t.tdb.db.one<{ n: string }>('SELECT count(*) AS n FROM webhook_deliveries WHERE endpoint_id = $1', [id]);
    expect(after.n).toBe(before.n);
  });

  it('does not follow a 302', async () => {
    const { r, id } = await endpoint();
    r.setHandler((m) =>
      m.path === '/hooks' ? { status: 302, headers: { location: r.url.replace('/hooks', '/elsewhere') } } : { status: 200 },
    );
    await orderInstall();
    const d = await waitFor(
      async () => ((await delivery(id))?.status === 'failed' ? delivery(id) : null),
      'the redirect to fail the delivery',
    );
    expect(d!.last_status_code).toBe(302);
    expect(d!.last_error).toMatch(/redirect/);
    expect(d!.attempts).toBe(1);
    expect(r.received.map((m) => m.path)).toEqual(['/hooks']);
  });

  it('refuses a private address at send time even if it got into the table', async () => {
    const id = await addEndpoint(t.tdb.db, {
      name: 'sneaky',
      url: 'http://10.11.12.13:8080/hooks',
      secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      events: ['app.install'],
    });
    const meta = await addEndpoint(t.tdb.db, {
      name: 'metadata',
      url: 'http://169.254.169.254/latest/meta-data',
      secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
      events: ['app.install'],
    });
    await orderInstall();
    for (const ep of [id, meta]) {
      const d = await waitFor(async () => ((await delivery(ep))?.status === 'failed' ? delivery(ep) : null), 'the refusal');
      expect(d!.last_error).toMatch(/refused at send time/);
      expect(d!.attempts).toBe(1);
    }
  });

  it('refuses a private address at save time through the catalog URL guard', async () => {
    await expect(t.ctx.catalog.urlGuard('http://192.168.1.20/hooks')).rejects.toMatchObject({ code: 'unsafe_url' });
    await expect(t.ctx.catalog.urlGuard('http://[fd00:ec2::254]/')).rejects.toMatchObject({ code: 'unsafe_url' });
    await expect(t.ctx.catalog.urlGuard('http://127.0.0.1:9/hooks')).resolves.toBeUndefined(); // allow-listed for tests
  });
});
