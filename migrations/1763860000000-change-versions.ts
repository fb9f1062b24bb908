import type { MigrationInterface, QueryRunner } from 'typeorm';

/** Changes carry a version, as requests do, returned as ETag and checked against If-Match on every decision. */
export class ChangeVersions1763860000000 implements MigrationInterface {
  name = 'ChangeVersions1763860000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE changes ADD COLUMN version int NOT NULL DEFAULT 1`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE changes DROP COLUMN IF EXISTS version`);
  }
}
