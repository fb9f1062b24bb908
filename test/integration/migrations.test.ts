import type { QueryRunner } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ReviewReminders1763830000000 } from '../../migrations/1763830000000-review-reminders.ts';
import { BOB_LAPTOP, defaultPolicy, seedContoso, VISIO } from '../support/fixtures.ts';
import type { TestDatabase } from '../support/test-db.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

let t: TestContext;
let tdb: TestDatabase;

beforeAll(async () => {
  t = await createTestContext();
  tdb = t.tdb;
  await seedContoso(tdb.db, { ...defaultPolicy, reminderEvery: 'PT4H' });
});
afterAll(async () => {
  await t.close();
});

const runner = (): QueryRunner => ({ query: (sql: string, params?: unknown[]) => tdb.db.query(sql, params) }) as unknown as QueryRunner;

describe('migrations on a database with data', () => {
  it('gives access reviews that were open before review reminders existed a first reminder one interval ahead', async () => {
    const migration = new ReviewReminders1763830000000();
    await migration.down(runner());
    const { request } = await t.ctx.requests.createApproved(
      { id: null, label: 'api:test', channel: 'api' },
      { applicationId: VISIO, clientGuid: BOB_LAPTOP },
    );
    const open = async (dueIn: string) =>
      (
        await tdb.db.one<{ id: string }>(
          `INSERT INTO access_reviews (request_id, status, due_at, reviewer_groups) VALUES ($1, 'pending', now() + $2::interval, '{it-approvers}') RETURNING id`,
          [request.id, dueIn],
        )
      ).id;
    const hoursToReminder = async () =>
      Object.fromEntries(
        (
          await tdb.db.query<{ id: string; hours: number | null }>(
            `SELECT id, round(EXTRACT(EPOCH FROM next_reminder_at - now()) / 3600)::int AS hours FROM access_reviews`,
          )
        ).map((r) => [r.id, r.hours]),
      );
    const decide = (id: string) => tdb.db.query(`UPDATE access_reviews SET status = 'kept', decided_at = now() WHERE id = $1`, [id]);

    const decided = await open('7 days');
    await decide(decided);
    const pending = await open('7 days');
    await migration.up(runner());
    expect(await hoursToReminder()).toEqual({ [pending]: 4, [decided]: null });

    // a review that closes before the first reminder would be due gets none
    await migration.down(runner());
    await decide(pending);
    const closesSoon = await open('1 hour');
    await migration.up(runner());
    expect((await hoursToReminder())[closesSoon]).toBeNull();
  });
});
