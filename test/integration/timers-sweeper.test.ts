import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReviewService } from '../../src/core/review-service.ts';
import { TimerService } from '../../src/core/timer-service.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { webhooksOfRow } from '../support/outbox-webhooks.ts';

const DAY = 24 * 3600_000;
const WINDOWED = 'ScopeId_X/Application_windowed';
let t: TestContext;
let s: Seeded;
let db2: Database;
let runners: TimerService[];
/** reviews decided on the two connections the sweepers use, so two reviewers race as two workers would */
let reviewers: ReviewService[];
const guids: string[] = [];

beforeAll(async () => {
  t = await createTestContext();
  s = await seedContoso(t.tdb.db, {
    justification: 'optional',
    stages: [{ approvers: ['it-approvers'] }],
    decisionDeadline: 'P14D',
    reminderEvery: 'P1D',
    escalateAfter: 'P3D',
    escalateTo: ['security'],
    accessLifetime: 'P30D',
    accessExpiryWarning: 'P7D',
    accessReviewEvery: 'P10D',
  });
  await t.tdb.db.query(
    `INSERT INTO applications (id, name, per_device, install_window, policy_id) SELECT $1, 'Windowed', true, $2, policy_id FROM applications WHERE id = $3`,
    [WINDOWED, JSON.stringify({ from: '22:00', to: '06:00', timeZone: 'UTC' }), VISIO],
  );
  for (let i = 0; i < 20; i++) {
    const g = `GUID:TIMER-${String(i).padStart(4, '0')}`;
    guids.push(g);
    await t.tdb.db.query(`INSERT INTO devices (client_guid, name, primary_user_id) VALUES ($1, $2, $3)`, [g, `BOB-${i}`, s.bob.id]);
  }
  // two sweepers on two connection pools, racing over the same rows with small batches
  db2 = await openDatabase(t.tdb.url, { poolSize: 5 });
  runners = [new TimerService(t.tdb.db, t.clock, { batchSize: 3 }), new TimerService(db2, t.clock, { batchSize: 3 })];
  reviewers = [new ReviewService(t.tdb.db, t.clock), new ReviewService(db2, t.clock)];
});
afterAll(async () => {
  await db2?.close();
  await t.close();
});

const race = async () => {
  const [a, b] = await Promise.all(runners.map((r) => r.sweep()));
  return Object.fromEntries(Object.keys(a!).map((k) => [k, a![k as keyof typeof a] + b![k as keyof typeof b]])) as Record<string, number>;
};

/** How many outbox events of each type each of `ids` got. */
async function eventsPer(ids: string[], type: string): Promise<number[]> {
  const rows = await t.tdb.db.query<{ subject_id: string; n: string }>(
    `SELECT subject_id, count(*) AS n FROM outbox WHERE type = $1 AND subject_id = ANY($2) GROUP BY subject_id`,
    [type, ids],
  );
  const by = new Map(rows.map((r) => [r.subject_id, Number(r.n)]));
  return ids.map((id) => by.get(id) ?? 0);
}
const webhooksOf = async (ids: string[], hook: string) =>
  (await t.tdb.db.query<{ id: string; payload: any }>(`SELECT id, payload FROM outbox WHERE subject_id = ANY($1)`, [ids]))
    .flatMap((r) => webhooksOfRow(r))
    .filter((w) => w.type === hook).length;

/** The due reminders the sweep looks in (kept by a trigger) against what requests say, for `ids`. */
async function reminders(ids: string[]) {
  const [kept, truth] = await Promise.all([
    t.tdb.db.query<{ id: string; due: Date }>(
      `SELECT request_id AS id, due_at AS due FROM request_reminders WHERE request_id = ANY($1) ORDER BY 1`,
      [ids],
    ),
    t.tdb.db.query<{ id: string; due: Date }>(
      `SELECT id, next_reminder_at AS due FROM requests
        WHERE id = ANY($1) AND status = 'pending' AND next_reminder_at IS NOT NULL ORDER BY 1`,
      [ids],
    ),
  ]);
  expect(kept).toEqual(truth);
  return kept.length;
}

describe('timers with two sweepers racing', () => {
  it('reminds, escalates and expires undecided requests, each exactly once', async () => {
    t.clock.set('2026-01-05T09:00:00Z');
    const ids: string[] = [];
    for (const clientGuid of guids.slice(0, 10))
      ids.push((await t.ctx.requests.submit(s.actor(s.bob), { applicationId: VISIO, clientGuid })).id);

    expect((await race()).reminder).toBe(0);
    expect(await reminders(ids)).toBe(10);
    t.clock.advance(DAY + 60_000);
    expect((await race()).reminder).toBe(10);
    // each fired reminder moved to its next time, in requests and in the sweep's table alike
    expect(await reminders(ids)).toBe(10);
    expect(await eventsPer(ids, 'request.reminder')).toEqual(Array(10).fill(1));
    expect((await race()).reminder).toBe(0);

    t.clock.set('2026-01-08T09:01:00Z'); // 3 days: escalation, plus the reminder due since day 2
    const r2 = await race();
    expect(r2.escalation).toBe(10);
    expect(r2.reminder).toBe(10);
    expect(await eventsPer(ids, 'request.escalated')).toEqual(Array(10).fill(1));
    expect(await eventsPer(ids, 'request.reminder')).toEqual(Array(10).fill(2));
    const escalated = await t.ctx.requests.get(ids[0]!);
    expect(escalated.escalated).toBe(true);
    // the escalation group may now decide
    await t.ctx.requests.decide(s.actor(s.dan), ids[9]!, 'approve');
    // a decided request has no reminder left to find
    expect(await reminders(ids)).toBe(9);

    t.clock.set('2026-01-19T09:01:00Z'); // past the 14-day deadline
    const r3 = await race();
    expect(r3.expiry).toBe(9);
    expect(await eventsPer(ids.slice(0, 9), 'request.expired')).toEqual(Array(9).fill(1));
    expect(await webhooksOf(ids, 'request.expired')).toBe(9);
    const expired = await t.ctx.requests.get(ids[0]!);
    expect(expired.status).toBe('expired');
    expect(expired.history.at(-1)!.action).toBe('request.expired');
    expect(Object.values(await race()).every((n) => n === 0)).toBe(true);
    // expired requests are not reminded any more
    expect(await eventsPer(ids.slice(0, 9), 'request.reminder')).toEqual(Array(9).fill(2));
    expect(await reminders(ids)).toBe(0);
  });

  it('warns before access expiry, revokes with an uninstall at expiry, runs periodic reviews', async () => {
    t.clock.set('2026-02-01T09:00:00Z');
    const ids: string[] = [];
    for (const clientGuid of guids.slice(10, 20)) {
      const r = await t.ctx.requests.submit(s.actor(s.bob), { applicationId: VISIO, clientGuid });
      await t.ctx.requests.decide(s.actor(s.ada), r.id, 'approve');
      ids.push(r.id);
    }
    t.clock.set('2026-02-11T09:01:00Z'); // 10 days: first review
    expect((await race()).review).toBe(10);
    expect(await eventsPer(ids, 'request.review_started')).toEqual(Array(10).fill(1));
    const reviews = await t.tdb.db.query<{ id: string; request_id: string }>(
      `SELECT id, request_id FROM access_reviews WHERE status = 'pending' AND request_id = ANY($1) ORDER BY request_id`,
      [ids],
    );
    expect(reviews).toHaveLength(10);
    const reviewOf = (i: number) => reviews.find((r) => r.request_id === ids[i])!.id;

    await expect(reviewers[0]!.decide(s.actor(s.bob), reviewOf(0), 'keep')).rejects.toMatchObject({ code: 'self_approval' });
    await expect(reviewers[0]!.decide(s.actor(s.dan), reviewOf(0), 'keep')).rejects.toMatchObject({ code: 'not_an_approver' });
    const removed = await reviewers[0]!.decide(s.actor(s.ada), reviewOf(0), 'remove', 'left the team');
    expect(removed).toMatchObject({ status: 'removed', requestStatus: 'revoked' });
    expect(await webhooksOf([ids[0]!], 'app.uninstall')).toBe(1);
    expect((await reviewers[1]!.decide(s.actor(s.cyd), reviewOf(1), 'keep')).requestStatus).toBe('approved');
    // two reviewers at once on the same review: one decision
    const both = await Promise.allSettled([
      reviewers[0]!.decide(s.actor(s.ada), reviewOf(2), 'keep'),
      reviewers[1]!.decide(s.actor(s.cyd), reviewOf(2), 'remove', 'not needed'),
    ]);
    expect(both.filter((x) => x.status === 'fulfilled')).toHaveLength(1);
    expect((both.find((x) => x.status === 'rejected') as PromiseRejectedResult).reason.code).toBe('already_decided');
    const third = (await t.ctx.requests.get(ids[2]!)).status;
    const stillApproved = ids.filter((_, i) => i !== 0 && !(i === 2 && third === 'revoked'));

    t.clock.set('2026-02-21T09:02:00Z'); // 20 days: open reviews lapse (access kept), second round starts
    const r2 = await race();
    expect(r2.review_lapse).toBe(7);
    expect(r2.review).toBe(stillApproved.length);
    const lapsed = await t.tdb.db.query(`SELECT 1 FROM access_reviews WHERE status = 'lapsed' AND request_id = ANY($1)`, [ids]);
    expect(lapsed).toHaveLength(7);
    expect((await t.ctx.requests.get(ids[3]!)).status).toBe('approved');

    t.clock.set('2026-02-24T09:02:00Z'); // 23 days: 7 days before expiry
    expect((await race()).access_warning).toBe(stillApproved.length);
    expect(await eventsPer(stillApproved, 'request.access_expiring')).toEqual(Array(stillApproved.length).fill(1));

    t.clock.set('2026-03-03T09:02:00Z'); // 30 days: access expires
    const r4 = await race();
    expect(r4.access_expiry).toBe(stillApproved.length);
    for (const id of stillApproved) expect((await t.ctx.requests.get(id)).status).toBe('revoked');
    expect(await eventsPer(stillApproved, 'request.revoked')).toEqual(Array(stillApproved.length).fill(1));
    expect(await webhooksOf(stillApproved, 'app.uninstall')).toBe(stillApproved.length);
    const why = await t.tdb.db.one<{ reason: string }>(`SELECT decision_reason AS reason FROM requests WHERE id = $1`, [stillApproved[0]]);
    expect(why.reason).toBe('access expired');
    expect(Object.values(await race()).every((n) => n === 0)).toBe(true);
  });

  it('orders the install when the install window opens, once', async () => {
    t.clock.set('2026-04-01T09:00:00Z');
    const ids: string[] = [];
    for (const clientGuid of guids.slice(0, 10)) {
      const r = await t.ctx.requests.submit(s.actor(s.bob), { applicationId: WINDOWED, clientGuid });
      await t.ctx.requests.decide(s.actor(s.ada), r.id, 'approve');
      ids.push(r.id);
    }
    expect(await webhooksOf(ids, 'app.install')).toBe(0);
    expect((await race()).install).toBe(0);
    t.clock.set('2026-04-01T22:00:30Z');
    expect((await race()).install).toBe(10);
    expect(await eventsPer(ids, 'request.install_ordered')).toEqual(Array(10).fill(1));
    expect(await webhooksOf(ids, 'app.install')).toBe(10);
    expect((await race()).install).toBe(0);
    const row = await t.tdb.db.one<{ install_ordered_at: Date; install_due_at: Date | null }>(
      'SELECT install_ordered_at, install_due_at FROM requests WHERE id = $1',
      [ids[0]],
    );
    expect(new Date(row.install_ordered_at).toISOString()).toBe('2026-04-01T22:00:30.000Z');
    expect(row.install_due_at).toBeNull();
  });
});
