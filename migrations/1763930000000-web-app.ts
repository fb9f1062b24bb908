import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The web app at /app. Sessions live in Postgres (only a hash of the cookie's token is stored), as do one-time
 * sign-in links from `signoff signin-link`. Identities gain the explicit links web sign-in maps an OpenID Connect
 * token through (the Entra object id `oid` and the UPN) and an admin flag for the Admin pages. Requests submitted
 * on the web record `web` as their source.
 */
export class WebApp1763930000000 implements MigrationInterface {
  name = 'WebApp1763930000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE identities ADD COLUMN oidc_oid text;
      ALTER TABLE identities ADD COLUMN upn text;
      ALTER TABLE identities ADD COLUMN is_admin boolean NOT NULL DEFAULT false;
      CREATE UNIQUE INDEX identities_oidc_oid_uq ON identities (lower(oidc_oid)) WHERE oidc_oid IS NOT NULL;
      CREATE UNIQUE INDEX identities_upn_uq ON identities (lower(upn)) WHERE upn IS NOT NULL;

      ALTER TABLE requests DROP CONSTRAINT IF EXISTS requests_source_check;
      ALTER TABLE requests ADD CONSTRAINT requests_source_check CHECK (source IN ('chat', 'api', 'approved-request', 'web'));

      CREATE TABLE web_sessions (
        token_hash text PRIMARY KEY,
        identity_id uuid REFERENCES identities(id) ON DELETE CASCADE,
        csrf_token text NOT NULL,
        -- the sign-in in progress (OpenID Connect state, nonce, PKCE verifier) before anyone is signed in
        pending jsonb,
        signed_in_via text CHECK (signed_in_via IN ('oidc', 'link')),
        created_at timestamptz NOT NULL DEFAULT now(),
        last_seen_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL
      );
      CREATE INDEX web_sessions_expires_idx ON web_sessions (expires_at);
      CREATE INDEX web_sessions_identity_idx ON web_sessions (identity_id);

      CREATE TABLE web_signin_links (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        token_hash text NOT NULL UNIQUE,
        identity_id uuid NOT NULL REFERENCES identities(id) ON DELETE CASCADE,
        created_at timestamptz NOT NULL DEFAULT now(),
        expires_at timestamptz NOT NULL,
        used_at timestamptz
      );
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TABLE IF EXISTS web_signin_links;
      DROP TABLE IF EXISTS web_sessions;
      UPDATE requests SET source = 'chat' WHERE source = 'web';
      ALTER TABLE requests DROP CONSTRAINT IF EXISTS requests_source_check;
      ALTER TABLE requests ADD CONSTRAINT requests_source_check CHECK (source IN ('chat', 'api', 'approved-request'));
      DROP INDEX IF EXISTS identities_upn_uq;
      DROP INDEX IF EXISTS identities_oidc_oid_uq;
      ALTER TABLE identities DROP COLUMN IF EXISTS is_admin;
      ALTER TABLE identities DROP COLUMN IF EXISTS upn;
      ALTER TABLE identities DROP COLUMN IF EXISTS oidc_oid;
    `);
  }
}
