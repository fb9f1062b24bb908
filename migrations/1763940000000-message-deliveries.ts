import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * One dedupe rule for every notifier: a message row names the delivery that produced it, (platform, event id, key),
 * in columns of their own, unique while the event id is set. Before, Slack and Teams each kept their own marker in
 * `data` (Slack's `target` plus the purpose, Teams' `key`), looked up without an index, and email looked in the
 * audit log. Rows written before are carried over; should one delivery have been recorded twice, the oldest keeps it.
 */
export class MessageDeliveries1763940000000 implements MigrationInterface {
  name = 'MessageDeliveries1763940000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE message_refs ADD COLUMN event_id text;
      ALTER TABLE message_refs ADD COLUMN delivery_key text;
      WITH named AS (
        SELECT id, data->>'eventId' AS event_id,
               CASE WHEN platform = 'slack' THEN purpose || ':' || (data->>'target') ELSE data->>'key' END AS delivery_key
          FROM message_refs
      ), ranked AS (
        SELECT n.*, row_number() OVER (PARTITION BY m.platform, n.event_id, n.delivery_key ORDER BY m.created_at, m.id) AS rn
          FROM named n JOIN message_refs m USING (id)
      )
      UPDATE message_refs m SET
        event_id = CASE WHEN r.rn = 1 THEN r.event_id END,
        delivery_key = CASE WHEN r.rn = 1 OR r.event_id IS NULL THEN r.delivery_key END,
        data = m.data - 'eventId' - 'target' - 'key'
        FROM ranked r WHERE r.id = m.id;
      CREATE UNIQUE INDEX message_refs_delivery_uq ON message_refs (platform, event_id, delivery_key) WHERE event_id IS NOT NULL;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      UPDATE message_refs SET data = data || jsonb_strip_nulls(jsonb_build_object('eventId', event_id, 'key', delivery_key));
      DROP INDEX message_refs_delivery_uq;
      ALTER TABLE message_refs DROP COLUMN delivery_key;
      ALTER TABLE message_refs DROP COLUMN event_id;
    `);
  }
}
