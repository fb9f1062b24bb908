import { createPublicKey } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateCheckpointKeys, parsePrivateKey, verifyAgainstCheckpoint, type Checkpoint } from '../../src/core/audit-checkpoint.ts';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

const keys = generateCheckpointKeys();
let t: TestContext;
let workers: RunningWorkers;
const receivers: Receiver[] = [];

beforeAll(async () => {
  t = await createTestContext({ AUDIT_CHECKPOINT_KEY: keys.privateKey, OUTBOX_RECONCILE_MS: '1000' });
  await seedContoso(t.tdb.db);
});
afterAll(async () => {
  await workers?.stop();
  for (const r of receivers) await r.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

describe('periodic checkpoints from the sealer', () => {
  it('are sent as audit.checkpoint webhooks to endpoints that subscribe, and each one verifies against the log', async () => {
    const subscribed = await startReceiver();
    const other = await startReceiver();
    receivers.push(subscribed, other);
    await addEndpoint(t.tdb.db, { name: 'worm-archive', url: subscribed.url, secret: subscribed.secret, events: ['audit.checkpoint'] });
    await addEndpoint(t.tdb.db, { name: 'device-manager', url: other.url, secret: other.secret, events: ['app.install'] });
    await t.ctx.requests.createApproved({ id: null, label: 'api:test', channel: 'api' }, { applicationId: VISIO, clientGuid: BOB_LAPTOP });

    workers = await startWorkers(t.ctx, {
      backoff: { baseMs: 20, maxMs: 200 },
      sweeper: false,
      auditSealer: { intervalMs: 50, electionIntervalMs: 50, checkpointIntervalMs: 300 },
    });
    // two or more, one of them after the install's audit rows were sealed
    const received = await waitFor(
      () =>
        subscribed.received.filter((r) => r.verified).length >= 2 && subscribed.received.some((r) => r.payload.data.sequence > 0)
          ? subscribed.received
          : null,
      'two checkpoints',
    );
    const first = received[0]!.payload;
    expect(first.type).toBe('audit.checkpoint');
    const cp = first.data as Checkpoint;
    expect(cp).toEqual({
      sequence: expect.any(Number),
      headHash: expect.stringMatching(/^[0-9a-f]{64}$/),
      timestamp: expect.any(String),
      keyId: keys.keyId,
      signature: expect.any(String),
    });
    const publicKey = createPublicKey(parsePrivateKey(keys.privateKey));
    for (const r of received)
      expect(await verifyAgainstCheckpoint(t.tdb.db, r.payload.data as Checkpoint, publicKey)).toMatchObject({ ok: true });

    // the device manager got its install and nothing of the audit log
    await waitFor(() => other.received.length >= 1, 'the install order');
    expect(other.received.every((r) => r.payload.type === 'app.install')).toBe(true);
    // recorded, so a new sealer after a restart keeps to the interval
    expect(Number((await t.tdb.db.one<{ n: string }>('SELECT count(*) AS n FROM audit_checkpoints')).n)).toBeGreaterThanOrEqual(2);
    expect(workers.auditSealer?.emitted.length).toBeGreaterThanOrEqual(2);
  });
});
