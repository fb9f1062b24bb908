import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * The audit log without a global lock: decision transactions only insert audit_events rows (stamped with the
 * writing transaction's id), and one sealer chains them afterwards into audit_chain, in (xid, id) order and only
 * below the snapshot horizon, so a transaction that commits late with a lower id is never skipped.
 *
 * Rows written before this migration keep their hashes: they move to audit_chain in id order (their old chain
 * order), so a log that verified before verifies after. audit_events.prev_hash/hash stay, nullable, only so a
 * process still running the previous release can go on inserting until it is restarted; nothing reads them.
 * audit_checkpoints records the checkpoints the sealer emitted, so a new sealer knows when the next one is due.
 */
export class AuditSealing1763900000000 implements MigrationInterface {
  name = 'AuditSealing1763900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION signoff_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
      END $$;

      ALTER TABLE audit_events ADD COLUMN xid xid8;
      ALTER TABLE audit_events ALTER COLUMN xid SET DEFAULT pg_current_xact_id();
      ALTER TABLE audit_events ADD COLUMN recorded_at timestamptz;
      ALTER TABLE audit_events ALTER COLUMN recorded_at SET DEFAULT clock_timestamp();
      ALTER TABLE audit_events ALTER COLUMN prev_hash DROP NOT NULL, ALTER COLUMN hash DROP NOT NULL;
      CREATE INDEX audit_events_xid_idx ON audit_events (xid, id);

      CREATE TABLE audit_chain (
        seq bigint PRIMARY KEY CHECK (seq > 0),
        event_id bigint NOT NULL UNIQUE REFERENCES audit_events(id),
        -- the event's transaction id: the sealer's cursor (NULL for rows chained before sealing existed)
        event_xid xid8,
        prev_hash text NOT NULL,
        hash text NOT NULL,
        sealed_at timestamptz NOT NULL DEFAULT now()
      );
      INSERT INTO audit_chain (seq, event_id, prev_hash, hash, sealed_at)
        SELECT row_number() OVER (ORDER BY id), id, prev_hash, hash, occurred_at FROM audit_events ORDER BY id;
      CREATE TRIGGER audit_chain_no_update BEFORE UPDATE OR DELETE ON audit_chain
        FOR EACH ROW EXECUTE FUNCTION signoff_append_only();
      CREATE TRIGGER audit_chain_no_truncate BEFORE TRUNCATE ON audit_chain
        FOR EACH STATEMENT EXECUTE FUNCTION signoff_append_only();

      CREATE TABLE audit_checkpoints (
        id bigserial PRIMARY KEY,
        sequence bigint NOT NULL,
        head_hash text NOT NULL,
        signed_at timestamptz NOT NULL,
        key_id text NOT NULL,
        signature text NOT NULL
      );

      -- wakes the sealer right after a commit that wrote audit rows (once per statement, not per row)
      CREATE FUNCTION audit_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('signoff_audit', '');
        RETURN NULL;
      END $$;
      CREATE TRIGGER audit_events_notify_insert AFTER INSERT ON audit_events
        FOR EACH STATEMENT EXECUTE FUNCTION audit_events_notify();
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    // sealed rows get their hashes back; the previous release verifies in id order, which matches the chain
    // only for rows sealed in id order (unsealed rows are left without a hash)
    await q.query(`
      DROP TRIGGER IF EXISTS audit_events_notify_insert ON audit_events;
      DROP FUNCTION IF EXISTS audit_events_notify();
      ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update;
      UPDATE audit_events e SET prev_hash = c.prev_hash, hash = c.hash FROM audit_chain c WHERE c.event_id = e.id;
      ALTER TABLE audit_events ENABLE TRIGGER audit_events_no_update;
      DROP TABLE IF EXISTS audit_checkpoints, audit_chain;
      DROP INDEX IF EXISTS audit_events_xid_idx;
      ALTER TABLE audit_events DROP COLUMN IF EXISTS recorded_at, DROP COLUMN IF EXISTS xid;
      DROP FUNCTION IF EXISTS signoff_append_only();
    `);
  }
}
