import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SlackApiError } from '../../src/bots/slack/slack-api.ts';
import { TeamsSendError } from '../../src/bots/teams/teams-connector.ts';
import type { DomainEvent } from '../../src/core/events.ts';
import type { ChatNotifier } from '../../src/core/ports.ts';
import { jobIds } from '../../src/integrations/queue/queues.ts';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { GiveUp } from '../support/wait.ts';
import { waitFor } from '../support/webhook-receiver.ts';

const RETRY_AFTER_MS = 900;

let t: TestContext;
let s: Seeded;
let workers: RunningWorkers;

/** Records when each call started and when it threw, by event id. */
class FakeNotifier implements ChatNotifier {
  readonly calls: { eventId: string; at: number; threwAt?: number }[] = [];
  readonly done = new Set<string>();
  constructor(
    readonly platform: 'slack' | 'teams',
    private readonly fail: (n: number) => Error | null,
  ) {}
  async handle(event: DomainEvent): Promise<void> {
    const call: { eventId: string; at: number; threwAt?: number } = { eventId: event.id, at: Date.now() };
    this.calls.push(call);
    const err = this.fail(this.calls.filter((c) => c.eventId === event.id).length);
    if (err) {
      call.threwAt = Date.now();
      throw err;
    }
    this.done.add(event.id);
  }
  callsFor(id: string) {
    return this.calls.filter((c) => c.eventId === id);
  }
}

// Slack answers the first call(s) of every event with 429 + Retry-After, as SlackApi maps it
const slackLimit = { calls: 1, retryAfterMs: RETRY_AFTER_MS };
const slack = new FakeNotifier('slack', (n) =>
  n <= slackLimit.calls ? new SlackApiError('chat.postMessage', 'ratelimited', true, slackLimit.retryAfterMs) : null,
);
// Teams refuses every call for good (the bot was removed from the team)
const teams = new FakeNotifier(
  'teams',
  () => new TeamsSendError('Bot Connector POST /v3/conversations answered 403: BotNotInConversationRoster', 403, false),
);

beforeAll(async () => {
  t = await createTestContext({ OUTBOX_RECONCILE_MS: '60000' });
  s = await seedContoso(t.tdb.db);
  t.ctx.notifiers.push(slack, teams);
  // a 20 ms base backoff: without Retry-After the second attempt would come almost at once
  workers = await startWorkers(t.ctx, { notifyBackoffMs: 20, sweeper: false });
});
afterAll(async () => {
  await workers?.stop();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

describe('notify queue and chat platform errors', () => {
  it('waits out a 429 Retry-After before the next attempt, and fails a permanent error after one attempt', async () => {
    await t.ctx.requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'diagrams',
      answers: { usage: 'Diagrams' },
    });
    const [event] = await t.tdb.db.query<{ id: string }>('SELECT id FROM outbox ORDER BY seq');
    const id = event!.id;

    // rate limit: exactly two attempts, the second no earlier than Retry-After after the first failed
    await waitFor(() => slack.done.has(id), 'the slack notification to succeed after the rate limit');
    const [first, second, ...rest] = slack.callsFor(id);
    expect(rest).toHaveLength(0);
    expect(first!.threwAt).toBeDefined();
    expect(second!.at - first!.threwAt!).toBeGreaterThanOrEqual(RETRY_AFTER_MS);
    await waitFor(
      async () =>
        (await t.tdb.db.maybeOne(`SELECT 1 FROM outbox_effects WHERE outbox_id = $1 AND target = 'slack' AND status = 'done'`, [id])) !==
        undefined,
      'slack effect done',
    );
    const slackEffect = await t.tdb.db.one<{ attempts: number }>(
      `SELECT attempts FROM outbox_effects WHERE outbox_id = $1 AND target = 'slack'`,
      [id],
    );
    expect(slackEffect.attempts).toBe(2);

    // permanent: the effect is failed (terminal) after one attempt, with most of its retry budget unused. A relay
    // that read the effect as pending just before it failed does not enqueue it again (the queue asks Postgres
    // first), so the job stays failed
    const teamsEffect = await waitFor(
      () =>
        t.tdb.db.maybeOne<{ status: string; attempts: number; last_error: string }>(
          `SELECT status, attempts, last_error FROM outbox_effects WHERE outbox_id = $1 AND target = 'teams' AND status <> 'pending'`,
          [id],
        ),
      'the teams effect to be settled',
    );
    expect(teamsEffect).toMatchObject({ status: 'failed', attempts: 1 });
    const teamsJob = await waitFor(async () => {
      const job = await workers.queues.notify.getJob(jobIds.notify(id, 'teams'));
      const state = await job?.getState();
      if (state === 'completed') throw new GiveUp('the teams job ran again and completed');
      return job && state === 'failed' ? job : null;
    }, 'the teams job to fail');
    expect(teamsJob.opts.attempts).toBeGreaterThan(1);
    expect(teamsJob.attemptsMade).toBe(1);
    expect(teamsJob.failedReason).toMatch(/403/);
    expect(teams.callsFor(id)).toHaveLength(1);
    expect(teamsEffect.last_error).toMatch(/403/);
  });

  it('sits out more rate limits than the retry budget has attempts, and still delivers once', async () => {
    slackLimit.calls = 12; // the notify queue allows 8 attempts
    slackLimit.retryAfterMs = 30;
    const [pending] = await t.tdb.db.query<{ id: string }>(`SELECT id FROM requests WHERE status = 'pending'`);
    await t.ctx.requests.cancel(s.actor(s.bob), pending!.id);
    await t.ctx.requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'diagrams again',
      answers: { usage: 'Diagrams' },
    });
    const [event] = await t.tdb.db.query<{ id: string }>(
      `SELECT id FROM outbox WHERE type = 'request.submitted' ORDER BY seq DESC LIMIT 1`,
    );
    const id = event!.id;
    await waitFor(() => slack.done.has(id), 'the slack notification to get through after 12 rate limits');
    expect(slack.callsFor(id)).toHaveLength(13);
    // the notifier returning is not the job finishing: the worker still records the effect first
    const job = await waitFor(async () => {
      const j = await workers.queues.notify.getJob(jobIds.notify(id, 'slack'));
      const state = await j?.getState();
      if (state === 'failed') throw new Error(`the slack job failed: ${j!.failedReason}`);
      return state === 'completed' ? j : null;
    }, 'the slack job to complete');
    expect(job.attemptsMade).toBeLessThan(job.opts.attempts!);
    expect(job.data.rateLimitWaits).toBe(12);
    await waitFor(
      async () =>
        (await t.tdb.db.maybeOne(`SELECT 1 FROM outbox_effects WHERE outbox_id = $1 AND target = 'slack' AND status = 'done'`, [id])) !==
        undefined,
      'slack effect done',
    );
  });
});
