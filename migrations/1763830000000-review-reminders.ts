import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Open access reviews remind their reviewers at the policy's reminder interval, like pending requests do. */
export class ReviewReminders1763830000000 implements MigrationInterface {
  name = 'ReviewReminders1763830000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE access_reviews ADD COLUMN next_reminder_at timestamptz;
      CREATE INDEX access_reviews_reminder_idx ON access_reviews (next_reminder_at) WHERE status = 'pending' AND next_reminder_at IS NOT NULL;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP INDEX IF EXISTS access_reviews_reminder_idx;
      ALTER TABLE access_reviews DROP COLUMN IF EXISTS next_reminder_at;
    `);
  }
}
