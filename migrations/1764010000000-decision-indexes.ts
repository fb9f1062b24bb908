import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A vote wrote three index entries: its id, (request_id, created_at) and the one-vote-per-approver rule. The rule's
 * index covered only votes with an approver, so reading a request's votes needed the second. Without the predicate
 * it holds every vote (a vote without an approver is still never unique-checked: NULLs are distinct) and serves
 * those reads, which sort a request's few votes themselves; the second index goes.
 */
export class DecisionIndexes1764010000000 implements MigrationInterface {
  name = 'DecisionIndexes1764010000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE UNIQUE INDEX request_decisions_one_per_approver_all ON request_decisions (request_id, round, stage, approver_id);
      DROP INDEX request_decisions_one_per_approver;
      ALTER INDEX request_decisions_one_per_approver_all RENAME TO request_decisions_one_per_approver;
      DROP INDEX request_decisions_request_idx;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE INDEX request_decisions_request_idx ON request_decisions (request_id, created_at);
      CREATE UNIQUE INDEX request_decisions_one_per_approver_partial ON request_decisions (request_id, round, stage, approver_id)
        WHERE approver_id IS NOT NULL;
      DROP INDEX request_decisions_one_per_approver;
      ALTER INDEX request_decisions_one_per_approver_partial RENAME TO request_decisions_one_per_approver;
    `);
  }
}
