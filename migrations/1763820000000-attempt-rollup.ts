import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * /metrics reported webhook attempts by aggregating every row of webhook_attempts on each scrape, a cost that
 * grows with every delivery ever made. Attempts older than a settling margin are now folded once into
 * per-outcome totals here; a scrape adds only the recent rows, found through the created_at index.
 */
export class AttemptRollup1763820000000 implements MigrationInterface {
  name = 'AttemptRollup1763820000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE INDEX webhook_attempts_created_idx ON webhook_attempts (created_at);
      CREATE TABLE webhook_attempt_totals (
        outcome text PRIMARY KEY,
        n bigint NOT NULL DEFAULT 0,
        sum_ms bigint NOT NULL DEFAULT 0,
        buckets bigint[] NOT NULL
      );
      CREATE TABLE webhook_attempt_rollup (
        id boolean PRIMARY KEY DEFAULT true CHECK (id),
        folded_through timestamptz NOT NULL DEFAULT '-infinity'
      );
      INSERT INTO webhook_attempt_rollup DEFAULT VALUES;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TABLE IF EXISTS webhook_attempt_rollup;
      DROP TABLE IF EXISTS webhook_attempt_totals;
      DROP INDEX IF EXISTS webhook_attempts_created_idx;
    `);
  }
}
