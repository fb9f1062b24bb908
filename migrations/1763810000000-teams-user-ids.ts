import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Teams addresses users in a card's `refresh.userIds` by their Teams user id ("29:…"), not by the AAD object id
 * an identity is linked with. The bot learns the pair from every activity a user sends and keeps it here.
 */
export class TeamsUserIds1763810000000 implements MigrationInterface {
  name = 'TeamsUserIds1763810000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE teams_users (
        aad_object_id text PRIMARY KEY CHECK (aad_object_id = lower(aad_object_id)),
        user_id text NOT NULL,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE IF EXISTS teams_users`);
  }
}
