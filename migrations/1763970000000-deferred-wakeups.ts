import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A transaction that calls pg_notify takes a database-wide lock at commit and holds it through its WAL flush, so the
 * triggers that woke the relay and the sealer made every command's commit wait for every other's (the decisions
 * bench spent most of its time in that lock). Signoff's own connections say `signoff.wake = deferred` and announce
 * their writes after commit, many commits in one notification; any other writer (psql, a tool) still wakes them here.
 * A notification no longer names its event, so live pages read what arrived by position (outbox_seq_idx).
 */
export class DeferredWakeups1763970000000 implements MigrationInterface {
  name = 'DeferredWakeups1763970000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF current_setting('signoff.wake', true) IS DISTINCT FROM 'deferred' THEN
          PERFORM pg_notify('signoff_outbox', '*');
        END IF;
        RETURN NULL;
      END $$;
      DROP TRIGGER outbox_notify_insert ON outbox;
      CREATE TRIGGER outbox_notify_insert AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify();
      CREATE INDEX outbox_seq_idx ON outbox (seq);
      CREATE OR REPLACE FUNCTION audit_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF current_setting('signoff.wake', true) IS DISTINCT FROM 'deferred' THEN
          PERFORM pg_notify('signoff_audit', '');
        END IF;
        RETURN NULL;
      END $$;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP INDEX IF EXISTS outbox_seq_idx;
      CREATE OR REPLACE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('signoff_outbox', NEW.id::text);
        RETURN NEW;
      END $$;
      DROP TRIGGER outbox_notify_insert ON outbox;
      CREATE TRIGGER outbox_notify_insert AFTER INSERT ON outbox FOR EACH ROW EXECUTE FUNCTION outbox_notify();
      CREATE OR REPLACE FUNCTION audit_events_notify() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM pg_notify('signoff_audit', '');
        RETURN NULL;
      END $$;
    `);
  }
}
