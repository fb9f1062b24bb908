import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TimerService } from '../../src/core/timer-service.ts';
import { systemClock } from '../../src/core/clock.ts';
import { seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { startChildWorker, type ChildWorker } from '../support/child-worker.ts';
import { cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { waitFor } from '../support/webhook-receiver.ts';

let t: TestContext;
let s: Seeded;
const children: ChildWorker[] = [];

beforeAll(async () => {
  t = await createTestContext({ SWEEP_INTERVAL_MS: '50', OUTBOX_RECONCILE_MS: '1000' });
  s = await seedContoso(t.tdb.db, {
    justification: 'optional',
    stages: [{ approvers: ['it-approvers'] }],
    decisionDeadline: 'P14D',
    reminderEvery: 'P1D',
    escalateAfter: 'P3D',
    escalateTo: ['security'],
    accessLifetime: 'P30D',
    accessReviewEvery: 'P10D',
  });
});
afterAll(async () => {
  for (const c of children) await c.kill('SIGKILL');
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t.close();
});

const count = async (type: string, ids: string[]) =>
  (
    await t.tdb.db.query<{ subject_id: string; n: string }>(
      `SELECT subject_id, count(*) AS n FROM outbox WHERE type = $1 AND subject_id = ANY($2) GROUP BY subject_id`,
      [type, ids],
    )
  ).reduce((m, r) => m.set(r.subject_id, Number(r.n)), new Map<string, number>());

describe('timers in two worker processes', () => {
  it('each due timer fires exactly once while two worker processes sweep every 50 ms', async () => {
    const per = 15;
    const ids: string[] = [];
    for (let i = 0; i < per * 5; i++) {
      const g = `GUID:WORKER-${String(i).padStart(4, '0')}`;
      await t.tdb.db.query(`INSERT INTO devices (client_guid, name, primary_user_id) VALUES ($1, $2, $3)`, [g, `BOB-W${i}`, s.bob.id]);
      const r = await t.ctx.requests.submit(s.actor(s.bob), { applicationId: VISIO, clientGuid: g });
      if (i >= per * 3) await t.ctx.requests.decide(s.actor(s.ada), r.id, 'approve');
      ids.push(r.id);
    }
    const [remind, escalate, expire, expireAccess, review] = [0, 1, 2, 3, 4].map((k) => ids.slice(k * per, (k + 1) * per));
    // the manual clock made everything due long ago in real time: park all timers, then make one kind due per group
    await t.tdb.db.query(`UPDATE requests SET deadline_at = now() + interval '30 days', next_reminder_at = NULL, escalate_at = NULL,
      access_expires_at = CASE WHEN status = 'approved' THEN now() + interval '300 days' END, access_warn_at = NULL,
      next_review_at = CASE WHEN status = 'approved' THEN now() + interval '300 days' END`);

    children.push(await startChildWorker(t.ctx.config, { TEST_SWEEPER: '1' }), await startChildWorker(t.ctx.config, { TEST_SWEEPER: '1' }));
    await t.tdb.db.query(`UPDATE requests SET next_reminder_at = now() - interval '1 minute' WHERE id = ANY($1)`, [remind]);
    await t.tdb.db.query(`UPDATE requests SET escalate_at = now() - interval '1 minute' WHERE id = ANY($1)`, [escalate]);
    await t.tdb.db.query(`UPDATE requests SET deadline_at = now() - interval '1 minute' WHERE id = ANY($1)`, [expire]);
    await t.tdb.db.query(`UPDATE requests SET access_expires_at = now() - interval '1 minute' WHERE id = ANY($1)`, [expireAccess]);
    await t.tdb.db.query(`UPDATE requests SET next_review_at = now() - interval '1 minute' WHERE id = ANY($1)`, [review]);

    await waitFor(async () => {
      const n = await t.tdb.db.one<{ a: string; b: string; c: string; d: string; e: string }>(
        `SELECT
        (SELECT count(*) FROM requests WHERE id = ANY($1) AND next_reminder_at > now()) AS a,
        (SELECT count(*) FROM requests WHERE id = ANY($2) AND escalated_at IS NOT NULL) AS b,
        (SELECT count(*) FROM requests WHERE id = ANY($3) AND status = 'expired') AS c,
        (SELECT count(*) FROM requests WHERE id = ANY($4) AND status = 'revoked') AS d,
        (SELECT count(*) FROM access_reviews WHERE request_id = ANY($5)) AS e`,
        [remind, escalate, expire, expireAccess, review],
      );
      return [n.a, n.b, n.c, n.d, n.e].every((x) => Number(x) === per);
    }, 'every timer to fire');

    const expectOnce = (m: Map<string, number>, group: string[]) =>
      expect(group.map((id) => m.get(id) ?? 0)).toEqual(Array(group.length).fill(1));
    expectOnce(await count('request.reminder', remind), remind);
    expectOnce(await count('request.escalated', escalate), escalate);
    expectOnce(await count('request.expired', expire), expire);
    expectOnce(await count('request.revoked', expireAccess), expireAccess);
    expectOnce(await count('request.review_started', review), review);
    // nothing left due: an extra sweep here finds no work
    const extra = await new TimerService(t.tdb.db, systemClock).sweep();
    expect(Object.values(extra).every((n) => n === 0)).toBe(true);
  });
});
