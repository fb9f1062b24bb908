import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Web processes keep the API keys they resolved (src/integrations/http/api-key-cache.ts). What they keep changes
 * only with a key's revocation, its scopes or its binding, or the bound person's name; each is announced at commit
 * so every process forgets what it kept. A key's last-use stamp is not announced: nothing kept depends on it.
 */
export class ApiKeyChanges1764000000000 implements MigrationInterface {
  name = 'ApiKeyChanges1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE OR REPLACE FUNCTION api_keys_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('signoff_api_keys', '');
        RETURN NULL;
      END $$;
      CREATE TRIGGER api_keys_changed AFTER UPDATE OF revoked_at, scopes, key_hash, identity_id, name OR DELETE ON api_keys
        FOR EACH STATEMENT EXECUTE FUNCTION api_keys_notify();
      CREATE TRIGGER identities_renamed AFTER UPDATE OF display_name OR DELETE ON identities
        FOR EACH STATEMENT EXECUTE FUNCTION api_keys_notify();
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TRIGGER IF EXISTS api_keys_changed ON api_keys;
      DROP TRIGGER IF EXISTS identities_renamed ON identities;
      DROP FUNCTION IF EXISTS api_keys_notify();
    `);
  }
}
