import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Reminders are the mass timer: each one fired moves its request's next_reminder_at. With that column indexed, every
 * move was a non-HOT update writing a new entry in each of the request's indexes (about nine), at random places
 * among all pending requests; at 1,000,000 requests that was most of a sweep's time. The due reminders now live in
 * a narrow table of their own, kept by a trigger from requests.next_reminder_at (which stays the one place code
 * writes), and requests keep a tenth of each page free, so moving the column is a HOT update in place.
 */
export class ReminderTimers1763980000000 implements MigrationInterface {
  name = 'ReminderTimers1763980000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE request_reminders (
        request_id uuid PRIMARY KEY REFERENCES requests (id) ON DELETE CASCADE,
        due_at timestamptz NOT NULL
      );
      CREATE INDEX request_reminders_due ON request_reminders (due_at);
      INSERT INTO request_reminders (request_id, due_at)
        SELECT id, next_reminder_at FROM requests WHERE status = 'pending' AND next_reminder_at IS NOT NULL;
      CREATE FUNCTION request_reminders_sync() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.status = 'pending' AND NEW.next_reminder_at IS NOT NULL THEN
          INSERT INTO request_reminders (request_id, due_at) VALUES (NEW.id, NEW.next_reminder_at)
            ON CONFLICT (request_id) DO UPDATE SET due_at = EXCLUDED.due_at;
        ELSE
          DELETE FROM request_reminders WHERE request_id = NEW.id;
        END IF;
        RETURN NULL;
      END $$;
      CREATE TRIGGER request_reminders_insert AFTER INSERT ON requests FOR EACH ROW
        WHEN (NEW.status = 'pending' AND NEW.next_reminder_at IS NOT NULL) EXECUTE FUNCTION request_reminders_sync();
      CREATE TRIGGER request_reminders_update AFTER UPDATE OF status, next_reminder_at ON requests FOR EACH ROW
        WHEN (OLD.status IS DISTINCT FROM NEW.status OR OLD.next_reminder_at IS DISTINCT FROM NEW.next_reminder_at)
        EXECUTE FUNCTION request_reminders_sync();
      DROP INDEX requests_reminder_due;
      ALTER TABLE requests SET (fillfactor = 90);
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE requests RESET (fillfactor);
      CREATE INDEX requests_reminder_due ON requests (next_reminder_at) WHERE status = 'pending' AND next_reminder_at IS NOT NULL;
      DROP TRIGGER request_reminders_update ON requests;
      DROP TRIGGER request_reminders_insert ON requests;
      DROP FUNCTION request_reminders_sync();
      DROP TABLE request_reminders;
    `);
  }
}
