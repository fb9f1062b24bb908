import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Access reviews become a user-visible feature: a review remembers who may answer it (the policy's reviewers,
 * else the last stage's approvers), the approval it reviews (shown on the prompt) and a label for whoever decided
 * (an API key has no identity). `closed` marks a review whose access ended (revoked, expired) before anyone answered.
 */
export class AccessReviewDetails1763800000000 implements MigrationInterface {
  name = 'AccessReviewDetails1763800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE access_reviews
        ADD COLUMN reviewer_groups text[] NOT NULL DEFAULT '{}',
        ADD COLUMN approved_at timestamptz,
        ADD COLUMN approved_by_label text,
        ADD COLUMN decided_by_label text;
      ALTER TABLE access_reviews DROP CONSTRAINT IF EXISTS access_reviews_status_check;
      ALTER TABLE access_reviews ADD CONSTRAINT access_reviews_status_check CHECK (status IN ('pending', 'kept', 'removed', 'lapsed', 'closed'));
      CREATE INDEX access_reviews_request_idx ON access_reviews (request_id, created_at DESC);
      CREATE INDEX access_reviews_created_idx ON access_reviews (created_at DESC, id DESC);
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP INDEX IF EXISTS access_reviews_created_idx;
      DROP INDEX IF EXISTS access_reviews_request_idx;
      UPDATE access_reviews SET status = 'lapsed' WHERE status = 'closed';
      ALTER TABLE access_reviews DROP CONSTRAINT IF EXISTS access_reviews_status_check;
      ALTER TABLE access_reviews ADD CONSTRAINT access_reviews_status_check CHECK (status IN ('pending', 'kept', 'removed', 'lapsed'));
      ALTER TABLE access_reviews DROP COLUMN reviewer_groups, DROP COLUMN approved_at, DROP COLUMN approved_by_label, DROP COLUMN decided_by_label;
    `);
  }
}
