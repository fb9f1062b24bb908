import express from 'express';
import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/core/api-keys.ts';
import { createHttpApp } from '../../src/integrations/http/app.ts';
import { createOpsRouter } from '../../src/integrations/http/ops-routes.ts';
import { closeQueues } from '../../src/integrations/queue/queues.ts';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { holdAnswers, startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let workers: RunningWorkers | undefined;
let app: ReturnType<typeof createHttpApp>;
let ops: ReturnType<typeof createOpsRouter>;
let admin: string;
const receivers: Receiver[] = [];
const releases: (() => void)[] = [];

const COOLDOWN_MS = 60_000;

beforeAll(async () => {
  t = await createTestContext({
    OUTBOX_RECONCILE_MS: '1000',
    // the slow endpoint never times out here: it holds its slots until the test lets it answer
    WEBHOOK_TIMEOUT_MS: '120000',
    WEBHOOK_ENDPOINT_CONCURRENCY: '2',
    WEBHOOK_BREAKER_FAILURES: '3',
    WEBHOOK_BREAKER_COOLDOWN_MS: String(COOLDOWN_MS),
  });
  await seedContoso(t.tdb.db);
  // four worker slots: without a per-endpoint limit the slow endpoint's jobs would take all of them
  workers = await startWorkers(t.ctx, { backoff: { baseMs: 20, maxMs: 200 }, sweeper: false, webhookConcurrency: 4 });
  admin = (await createApiKey(t.tdb.db, 'admin', ['admin'])).key;
  app = createHttpApp(t.ctx);
  ops = createOpsRouter(t.ctx);
});
afterAll(async () => {
  for (const release of releases) release();
  await workers?.stop();
  await ops?.close();
  await closeQueues(t.ctx);
  for (const r of receivers) await r.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

async function endpoint(name: string) {
  const r = await startReceiver();
  receivers.push(r);
  const id = await addEndpoint(t.tdb.db, { name, url: r.url, secret: r.secret, events: ['app.install'] });
  return { r, id };
}

/** n install orders (CreateApprovedRequest again orders the install again): one app.install per order. */
async function orderInstalls(n: number) {
  for (let i = 0; i < n; i++)
    await t.ctx.requests.createApproved({ id: null, label: 'api:test', channel: 'api' }, { applicationId: VISIO, clientGuid: BOB_LAPTOP });
}

const health = async (ref: string) =>
  (await request(app).get(`/api/v1/webhooks/${ref}/health`).set('Authorization', `Bearer ${admin}`).expect(200)).body;

describe('one slow endpoint cannot starve the others', () => {
  it('the fast endpoint gets every delivery while the slow one holds only its own two slots', async () => {
    await t.tdb.db.query('UPDATE webhook_endpoints SET enabled = false');
    const slow = await endpoint('slow');
    const fast = await endpoint('fast');
    const release = holdAnswers(slow.r);
    releases.push(release);

    const N = 20;
    await orderInstalls(N);
    await waitFor(() => fast.r.accepted.size === N, `all ${N} deliveries to the fast endpoint`);
    // everything reached the fast endpoint while the slow one had answered nothing and held at most its limit
    expect(slow.r.accepted.size).toBe(0);
    expect(slow.r.received.length).toBeLessThanOrEqual(2);
    expect(fast.r.received.every((m) => m.verified)).toBe(true);

    const h = await health('slow');
    expect(h.circuit).toMatchObject({ state: 'closed', concurrencyLimit: 2 });
    expect(h.circuit.inFlight).toBe(slow.r.received.length);
    expect(h.pendingDeliveries).toBe(N);
    const metrics = (await request(express().use(ops)).get('/metrics').expect(200)).text;
    expect(metrics).toMatch(new RegExp(`signoff_webhook_endpoint_in_flight\\{endpoint="slow"\\} ${slow.r.received.length}`));
    expect(metrics).toMatch(/signoff_webhook_endpoint_circuit\{endpoint="fast",state="closed"\} 1/);

    // once it answers, the slow endpoint gets all of its deliveries too, each webhook-id once
    release();
    await waitFor(() => slow.r.accepted.size === N, `all ${N} deliveries to the slow endpoint`);
    expect(new Set(slow.r.received.map((m) => m.id)).size).toBe(N);
  });

  it('opens the circuit after consecutive failures, keeps delivering elsewhere, and closes after a successful probe', async () => {
    await t.tdb.db.query('UPDATE webhook_endpoints SET enabled = false');
    const flaky = await endpoint('flaky');
    const fast = await endpoint('fast-2');
    flaky.r.setHandler(() => ({ status: 503 }));

    await orderInstalls(5);
    await waitFor(async () => (await health('flaky')).circuit.state === 'open', 'the circuit to open');
    await waitFor(() => fast.r.accepted.size === 5, 'the first 5 deliveries to the healthy endpoint');
    // three consecutive failures open it; an attempt already under way when it opened may still land
    const failedAttempts = flaky.r.received.length;
    expect(failedAttempts).toBeGreaterThanOrEqual(3);
    expect(failedAttempts).toBeLessThanOrEqual(4);

    // while it is open nothing is sent to it, and the healthy endpoint keeps its pace
    await orderInstalls(5);
    await waitFor(() => fast.r.accepted.size === 10, 'the next 5 deliveries to the healthy endpoint');
    expect(flaky.r.received.length).toBe(failedAttempts);
    const open = await health('flaky');
    expect(open.circuit).toMatchObject({ state: 'open', timesOpened: 1 });
    // the breaker runs on the injected clock, which this test moves by hand
    expect(open.circuit.openUntil).toBe(new Date(t.clock.now().getTime() + COOLDOWN_MS).toISOString());
    expect(open.pendingDeliveries).toBe(10);
    const metrics = (await request(express().use(ops)).get('/metrics').expect(200)).text;
    expect(metrics).toMatch(/signoff_webhook_endpoint_circuit\{endpoint="flaky",state="open"\} 1/);

    // the receiver recovers; after the cool-down one probe goes through, succeeds, and the rest follow
    flaky.r.setHandler(() => ({ status: 200 }));
    t.clock.advance(COOLDOWN_MS);
    expect((await health('flaky')).circuit.state).toBe('half_open');
    await workers!.queues.webhooks.promoteJobs();
    await waitFor(() => flaky.r.accepted.size === 10, 'all 10 deliveries to the recovered endpoint');
    const closed = await health('flaky');
    expect(closed.circuit).toMatchObject({ state: 'closed', consecutiveFailures: 0 });
    await waitFor(async () => (await health('flaky')).pendingDeliveries === 0, 'the deliveries to be recorded');
  });
});
