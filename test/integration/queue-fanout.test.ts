import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DomainEvent } from '../../src/core/events.ts';
import type { ChatNotifier } from '../../src/core/ports.ts';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

let t: TestContext;
let s: Seeded;
let r: Receiver;
let workers: RunningWorkers;

class RecordingNotifier implements ChatNotifier {
  readonly calls: DomainEvent[] = [];
  readonly handled = new Map<string, DomainEvent>();
  constructor(
    readonly platform: 'slack' | 'teams',
    private readonly failFirst = false,
  ) {}
  async handle(event: DomainEvent): Promise<void> {
    this.calls.push(event);
    if (this.failFirst && this.calls.filter((e) => e.id === event.id).length === 1)
      throw new Error(`${this.platform} API is having a moment`);
    this.handled.set(event.id, event);
  }
}
const slack = new RecordingNotifier('slack', true);
const teams = new RecordingNotifier('teams');

beforeAll(async () => {
  t = await createTestContext({ OUTBOX_RECONCILE_MS: '1000' });
  s = await seedContoso(t.tdb.db);
  t.ctx.notifiers.push(slack, teams);
  r = await startReceiver();
  workers = await startWorkers(t.ctx, { backoff: { baseMs: 20, maxMs: 200 }, notifyBackoffMs: 50, sweeper: false });
});
afterAll(async () => {
  await workers?.stop();
  await r?.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

describe('fan-out of one committed event', () => {
  it('reaches every notifier once (retrying a failure) and sends install, uninstall and change.apply webhooks', async () => {
    await addEndpoint(t.tdb.db, { name: 'dm', url: r.url, secret: r.secret, events: ['app.install', 'app.uninstall', 'change.apply'] });
    const req = await t.ctx.requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'diagrams',
      answers: { usage: 'Diagrams' },
    });
    await t.ctx.requests.decide(s.actor(s.ada), req.id, 'approve');
    await t.ctx.requests.revoke(s.actor(s.cyd), req.id, 'no longer needed');
    const change = await t.ctx.changes.submit(s.actor(s.cyd, 'api'), {
      resourceType: 'script',
      resourceId: 'cleanup.ps1',
      before: { body: 'v1' },
      after: { body: 'v2' },
      justification: 'fix',
    });
    await t.ctx.changes.approve(s.actor(s.ada), change.id, 'ok');

    const events = await t.tdb.db.query<{ id: string; type: string }>('SELECT id, type FROM outbox ORDER BY seq');
    await waitFor(() => events.every((e) => slack.handled.has(e.id) && teams.handled.has(e.id)), 'every event at both notifiers');
    // handle() returns before the effect row is committed as done
    await waitFor(
      async () =>
        Number((await t.tdb.db.one<{ n: string }>(`SELECT count(*) AS n FROM outbox_effects WHERE status = 'done'`)).n) ===
        events.length * 2,
      'every effect recorded',
    );
    await waitFor(() => r.accepted.size === 3, 'three webhooks');

    for (const e of events) {
      expect(teams.calls.filter((c) => c.id === e.id)).toHaveLength(1);
      // slack failed once per event and was retried once
      expect(slack.calls.filter((c) => c.id === e.id)).toHaveLength(2);
    }
    expect(teams.calls.map((c) => c.type)).toEqual(
      expect.arrayContaining(['request.submitted', 'request.approved', 'request.revoked', 'change.submitted', 'change.approved']),
    );
    const effects = await t.tdb.db.query<{ status: string; attempts: number; target: string }>(
      'SELECT status, attempts, target FROM outbox_effects',
    );
    expect(effects).toHaveLength(events.length * 2);
    expect(effects.every((e) => e.status === 'done')).toBe(true);
    expect(effects.filter((e) => e.target === 'slack').every((e) => e.attempts === 2)).toBe(true);

    const byType = new Map([...r.accepted.values()].map((m) => [m.payload.type, m.payload.data]));
    expect(byType.get('app.install')).toMatchObject({
      requestId: req.id,
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      deviceName: 'BOB-LAPTOP',
      username: 'CONTOSO\\bob',
    });
    expect(byType.get('app.uninstall')).toMatchObject({ requestId: req.id, clientGuid: BOB_LAPTOP, reason: 'no longer needed' });
    expect(byType.get('change.apply')).toMatchObject({ changeId: change.id, before: { body: 'v1' }, after: { body: 'v2' } });
    // once each: three distinct webhook-ids (a redelivery under the same id, allowed by at-least-once, is not a second webhook)
    expect(new Set(r.received.map((m) => m.id)).size).toBe(3);
  });
});
