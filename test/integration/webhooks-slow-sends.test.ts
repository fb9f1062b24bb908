import { afterAll, beforeAll, expect, it } from 'vitest';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { holdAnswers, startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let workers: RunningWorkers | undefined;
const receivers: Receiver[] = [];
let release!: () => void;

beforeAll(async () => {
  // the slow endpoint may hold as many requests in flight as the worker has slots
  t = await createTestContext({ WEBHOOK_TIMEOUT_MS: '120000', WEBHOOK_ENDPOINT_CONCURRENCY: '2' });
  await seedContoso(t.tdb.db);
  workers = await startWorkers(t.ctx, { backoff: { baseMs: 20, maxMs: 200 }, sweeper: false, webhookConcurrency: 2 });
});
afterAll(async () => {
  release?.();
  await workers?.stop();
  for (const r of receivers) await r.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

it('requests waiting on a slow endpoint give up their worker slots, so another endpoint is still delivered to', async () => {
  const slow = await startReceiver();
  const fast = await startReceiver();
  receivers.push(slow, fast);
  await addEndpoint(t.tdb.db, { name: 'slow', url: slow.url, secret: slow.secret, events: ['app.install'] });
  await addEndpoint(t.tdb.db, { name: 'fast', url: fast.url, secret: fast.secret, events: ['app.install'] });
  release = holdAnswers(slow);

  const N = 10;
  for (let i = 0; i < N; i++)
    await t.ctx.requests.createApproved({ id: null, label: 'api:test', channel: 'api' }, { applicationId: VISIO, clientGuid: BOB_LAPTOP });
  // two sends to the slow endpoint would otherwise hold both worker slots until it answers; the fast one gets everything
  await waitFor(() => fast.accepted.size === N, `all ${N} deliveries to the fast endpoint`);
  expect(slow.received.length).toBe(2);
  expect(slow.accepted.size).toBe(0);

  release();
  await waitFor(() => slow.accepted.size === N, `all ${N} deliveries to the slow endpoint`);
  expect(new Set(slow.received.map((m) => m.id)).size).toBe(N);
});

it('a new endpoint that does not answer has only a few of its deliveries claimed while it is not yet known to be slow', async () => {
  const stalled = await startReceiver();
  receivers.push(stalled);
  await addEndpoint(t.tdb.db, { name: 'stalled', url: stalled.url, secret: stalled.secret, events: ['app.install'] });
  const answer = holdAnswers(stalled);
  const leased = async () =>
    Number(
      (
        await t.tdb.db.one<{ n: string }>(
          `SELECT count(*) AS n FROM webhook_deliveries d JOIN webhook_endpoints e ON e.id = d.endpoint_id
            WHERE e.name = 'stalled' AND d.lease_until > now()`,
        )
      ).n,
    );
  // a backlog, as after a deployment wave or a restart: the relay hands the endpoint its deliveries in one bundle
  await workers?.stop();
  const N = 20;
  for (let i = 0; i < N; i++)
    await t.ctx.requests.createApproved({ id: null, label: 'api:test', channel: 'api' }, { applicationId: VISIO, clientGuid: BOB_LAPTOP });
  workers = await startWorkers(t.ctx, { backoff: { baseMs: 20, maxMs: 200 }, sweeper: false, webhookConcurrency: 2 });
  // its first two attempts in flight, and at most twice its limit more claimed to wait at its gate: the rest of the
  // backlog stays unclaimed (all of it was claimed, each delivery to wait at the gate and then be given back)
  let most = 0;
  await waitFor(async () => {
    most = Math.max(most, await leased());
    return stalled.received.length === 2 && (await leased()) === 2;
  }, 'only the attempts in flight leased');
  expect(most).toBeLessThanOrEqual(2 + 4);
  answer();
  await waitFor(() => stalled.accepted.size === N, `all ${N} deliveries to the stalled endpoint once it answers`);
});
