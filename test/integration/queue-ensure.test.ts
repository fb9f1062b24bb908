import type { Queue } from 'bullmq';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TeamsSendError } from '../../src/bots/teams/teams-connector.ts';
import type { DomainEvent } from '../../src/core/events.ts';
import type { ChatNotifier } from '../../src/core/ports.ts';
import { jobIds } from '../../src/integrations/queue/queues.ts';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { resetForRedelivery } from '../../src/integrations/webhooks/delivery-processor.ts';
import { seedContoso, VISIO } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

// The relay, the reconciler and redeliver read what Postgres holds as pending and then enqueue it. By then the job
// may have finished and settled the work: enqueueing must not run it again. Work Postgres holds as pending again
// (reset, or a job that gave up) must run again.

let t: TestContext;
let r: Receiver;
let workers: RunningWorkers;

class CountingNotifier implements ChatNotifier {
  readonly calls: string[] = [];
  refuse = false;
  constructor(readonly platform: 'slack' | 'teams') {}
  async handle(event: DomainEvent): Promise<void> {
    this.calls.push(event.id);
    // the bot was removed from the team: a permanent refusal, the job fails after one attempt
    if (this.refuse) throw new TeamsSendError('Bot Connector POST /v3/conversations answered 403', 403, false);
  }
  callsFor(id: string) {
    return this.calls.filter((c) => c === id).length;
  }
}
const slack = new CountingNotifier('slack');
const teams = new CountingNotifier('teams');
teams.refuse = true;

/** The job under this id as it stands now; a job added again has a new timestamp. */
async function jobOf(queue: Queue, id: string) {
  const job = await queue.getJob(id);
  return job ? { state: await job.getState(), addedAt: job.timestamp } : undefined;
}
const settledAs = (queue: Queue, id: string, state: 'completed' | 'failed') =>
  waitFor(async () => {
    const job = await jobOf(queue, id);
    return job?.state === state ? job : null;
  }, `job ${id} to be ${state}`);
const effectStatus = async (outboxId: string, target: string) =>
  (await t.tdb.db.one<{ status: string }>(`SELECT status FROM outbox_effects WHERE outbox_id = $1 AND target = $2`, [outboxId, target]))
    .status;

beforeAll(async () => {
  // no periodic reconcile: every enqueue below is one the test makes
  t = await createTestContext({ OUTBOX_RECONCILE_MS: '60000' });
  await seedContoso(t.tdb.db);
  t.ctx.notifiers.push(slack, teams);
  r = await startReceiver();
  await addEndpoint(t.tdb.db, { name: 'dm', url: r.url, secret: r.secret, events: ['app.install'] });
  workers = await startWorkers(t.ctx, { backoff: { baseMs: 20, maxMs: 200 }, notifyBackoffMs: 20, sweeper: false });
});
afterAll(async () => {
  await workers?.stop();
  await r?.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

/**
 * An approved request on a device of its own, its work settled: slack done, teams refused for good, the webhook
 * accepted; and a relay job that found the event done. Returns the event, its delivery and the settled jobs.
 */
async function settledWork(device: string) {
  teams.refuse = true;
  const api = { id: null, label: 'api:test', channel: 'api' as const };
  await t.tdb.db.query(`INSERT INTO devices (client_guid, name) VALUES ($1, $2)`, [`GUID:${device}`, device]);
  await t.ctx.requests.createApproved(api, { applicationId: VISIO, clientGuid: `GUID:${device}` });
  const outboxId = (await t.tdb.db.one<{ id: string }>('SELECT id FROM outbox ORDER BY seq DESC LIMIT 1')).id;
  const deliveryId = (
    await waitFor(
      () => t.tdb.db.maybeOne<{ id: string }>('SELECT id FROM webhook_deliveries WHERE outbox_id = $1', [outboxId]),
      'the event to be fanned out',
    )
  ).id;
  const q = workers.queues;
  const settled = {
    slack: await settledAs(q.notify as Queue, jobIds.notify(outboxId, 'slack'), 'completed'),
    teams: await settledAs(q.notify as Queue, jobIds.notify(outboxId, 'teams'), 'failed'),
    delivery: await settledAs(q.webhooks as Queue, jobIds.delivery(deliveryId), 'completed').then(async (job) => {
      // a success's record may follow its job by a moment (recordSuccessLater): settled means Postgres says so
      await waitFor(
        async () =>
          (await t.tdb.db.one<{ status: string }>('SELECT status FROM webhook_deliveries WHERE id = $1', [deliveryId])).status ===
          'succeeded',
        'the delivery to be recorded as succeeded',
      );
      return job;
    }),
    relay: await (async () => {
      await q.relay(outboxId);
      return settledAs(q.outbox as Queue, jobIds.relay(outboxId), 'completed');
    })(),
  };
  return { outboxId, deliveryId, settled };
}

describe('enqueueing work by its Postgres id', () => {
  it('leaves a finished job alone when its work is settled, whatever the caller read before', async () => {
    const receivedBefore = r.received.length;
    const acceptedBefore = r.accepted.size;
    const { outboxId, deliveryId, settled: before } = await settledWork('PC-ENSURE');
    const q = workers.queues;
    const notifySlack = jobIds.notify(outboxId, 'slack');
    const notifyTeams = jobIds.notify(outboxId, 'teams');
    expect(await effectStatus(outboxId, 'slack')).toBe('done');
    expect(await effectStatus(outboxId, 'teams')).toBe('failed');
    expect(r.accepted.size - acceptedBefore).toBe(1);

    // what a relay, reconcile or Redis recovery does with a list of "pending" work it read before all that
    await q.notification(outboxId, 'slack');
    await q.notification(outboxId, 'teams');
    await q.delivery(deliveryId, 0);
    await q.relay(outboxId);

    // the same finished jobs, not new ones: nothing runs a second time
    expect({
      slack: await jobOf(q.notify as Queue, notifySlack),
      teams: await jobOf(q.notify as Queue, notifyTeams),
      delivery: await jobOf(q.webhooks as Queue, jobIds.delivery(deliveryId)),
      relay: await jobOf(q.outbox as Queue, jobIds.relay(outboxId)),
    }).toEqual(before);
    expect(slack.callsFor(outboxId)).toBe(1);
    expect(teams.callsFor(outboxId)).toBe(1);
    expect(r.received.slice(receivedBefore)).toHaveLength(1);
  });

  it('runs a completed or failed job again when Postgres holds its work as pending', async () => {
    const receivedBefore = r.received.length;
    const { outboxId, deliveryId, settled: done } = await settledWork('PC-AGAIN');
    const q = workers.queues;
    const notifySlack = jobIds.notify(outboxId, 'slack');
    const notifyTeams = jobIds.notify(outboxId, 'teams');

    // failed job, effect pending again (the bot is back in the team and an operator resets the effect)
    teams.refuse = false;
    await t.tdb.db.query(`UPDATE outbox_effects SET status = 'pending', completed_at = NULL WHERE outbox_id = $1 AND target = 'teams'`, [
      outboxId,
    ]);
    await q.notification(outboxId, 'teams');
    expect((await jobOf(q.notify as Queue, notifyTeams))?.addedAt).not.toBe(done.teams.addedAt);
    await waitFor(async () => (await effectStatus(outboxId, 'teams')) === 'done', 'the teams effect to be done');
    expect(teams.callsFor(outboxId)).toBe(2);

    // completed job, effect pending again
    await t.tdb.db.query(`UPDATE outbox_effects SET status = 'pending', completed_at = NULL WHERE outbox_id = $1 AND target = 'slack'`, [
      outboxId,
    ]);
    await q.notification(outboxId, 'slack');
    expect((await jobOf(q.notify as Queue, notifySlack))?.addedAt).not.toBe(done.slack.addedAt);
    await waitFor(async () => (await effectStatus(outboxId, 'slack')) === 'done', 'the slack effect to be done');
    expect(slack.callsFor(outboxId)).toBe(2);

    // completed delivery put back in line (what redeliver does): sent again under the same webhook-id
    await resetForRedelivery(t.tdb.db, deliveryId);
    await q.delivery(deliveryId, 0);
    expect((await jobOf(q.webhooks as Queue, jobIds.delivery(deliveryId)))?.addedAt).not.toBe(done.delivery.addedAt);
    await waitFor(() => r.received.length - receivedBefore === 2, 'the webhook to be sent again');
    expect(new Set(r.received.slice(receivedBefore).map((m) => m.id)).size).toBe(1);
    await waitFor(
      async () =>
        (await t.tdb.db.one<{ status: string }>(`SELECT status FROM webhook_deliveries WHERE id = $1`, [deliveryId])).status ===
        'succeeded',
      'the delivery to succeed again',
    );

    // completed relay job, event not done again: fanned out again (a no-op for what it already recorded)
    await t.tdb.db.query(`UPDATE outbox SET status = 'pending' WHERE id = $1`, [outboxId]);
    await q.relay(outboxId);
    expect((await jobOf(q.outbox as Queue, jobIds.relay(outboxId)))?.addedAt).not.toBe(done.relay.addedAt);
    await waitFor(
      async () => (await t.tdb.db.one<{ status: string }>(`SELECT status FROM outbox WHERE id = $1`, [outboxId])).status === 'done',
      'the event to be relayed again',
    );
    expect(slack.callsFor(outboxId)).toBe(2);
  });
});
