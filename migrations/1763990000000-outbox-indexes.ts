import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Two of the outbox's five indexes were read by no query: (available_at, seq) of pending events (the relay reads
 * what is not done, in seq order: outbox_not_done_idx) and (subject_type, subject_id) (live pages read by seq:
 * outbox_seq_idx). Every event wrote an entry in each when inserted and again when marked done (its status is in
 * their predicates, so that update is never HOT): four index writes per event that nothing read.
 */
export class OutboxIndexes1763990000000 implements MigrationInterface {
  name = 'OutboxIndexes1763990000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP INDEX IF EXISTS outbox_pending_idx;
      DROP INDEX IF EXISTS outbox_subject_idx;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE INDEX IF NOT EXISTS outbox_pending_idx ON outbox (available_at, seq) WHERE status = 'pending';
      CREATE INDEX IF NOT EXISTS outbox_subject_idx ON outbox (subject_type, subject_id);
    `);
  }
}
