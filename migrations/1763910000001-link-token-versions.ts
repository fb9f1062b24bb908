import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * An email link remembers the version of the request it was mailed for, so its confirmation page can say what
 * happened since. Links mailed before this have none and are bound to their stage alone, as they were.
 */
export class LinkTokenVersions1763910000001 implements MigrationInterface {
  name = 'LinkTokenVersions1763910000001';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE link_tokens ADD COLUMN IF NOT EXISTS version int`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE link_tokens DROP COLUMN IF EXISTS version`);
  }
}
