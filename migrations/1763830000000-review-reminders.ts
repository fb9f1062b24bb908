import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Open access reviews remind their reviewers at the policy's reminder interval, like pending requests do.
 * Reviews already open get their first reminder one interval from now (policy durations are ISO 8601, which
 * PostgreSQL's interval reads), unless that falls after the review closes.
 */
export class ReviewReminders1763830000000 implements MigrationInterface {
  name = 'ReviewReminders1763830000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE access_reviews ADD COLUMN next_reminder_at timestamptz;
      CREATE INDEX access_reviews_reminder_idx ON access_reviews (next_reminder_at) WHERE status = 'pending' AND next_reminder_at IS NOT NULL;
      UPDATE access_reviews ar SET next_reminder_at = now() + (r.policy->>'reminderEvery')::interval
        FROM requests r
       WHERE r.id = ar.request_id AND ar.status = 'pending' AND ar.next_reminder_at IS NULL
         AND r.policy->>'reminderEvery' ~ '^P[0-9WDTHMS]+$'
         AND now() + (r.policy->>'reminderEvery')::interval < ar.due_at;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP INDEX IF EXISTS access_reviews_reminder_idx;
      ALTER TABLE access_reviews DROP COLUMN IF EXISTS next_reminder_at;
    `);
  }
}
