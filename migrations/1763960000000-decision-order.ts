import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Decisions get the order they were recorded in. Two decisions in the same millisecond (a test clock, a burst of
 * clicks) were ordered by their random id, so "stage 1 was settled by …" could name the first voter, not the one
 * whose vote settled it. Existing rows are numbered by time, then id.
 */
export class DecisionOrder1763960000000 implements MigrationInterface {
  name = 'DecisionOrder1763960000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE SEQUENCE request_decisions_seq_seq AS bigint;
      ALTER TABLE request_decisions ADD COLUMN seq bigint;
      UPDATE request_decisions d SET seq = n.rn FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS rn FROM request_decisions) n WHERE n.id = d.id;
      SELECT setval('request_decisions_seq_seq', coalesce((SELECT max(seq) FROM request_decisions), 0) + 1, false);
      ALTER TABLE request_decisions ALTER COLUMN seq SET DEFAULT nextval('request_decisions_seq_seq'), ALTER COLUMN seq SET NOT NULL;
      ALTER SEQUENCE request_decisions_seq_seq OWNED BY request_decisions.seq;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE request_decisions DROP COLUMN seq;`);
  }
}
