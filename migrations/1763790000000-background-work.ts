import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Durable background work. Chat and email fan-out get a row per (outbox event, target) so a Redis loss after the
 * outbox row is done still loses nothing: the reconciler re-enqueues every effect and delivery not finished.
 * One event may carry several webhook types (request.approved + app.install) for the same endpoint, so the
 * delivery key includes the event type.
 */
export class BackgroundWork1763790000000 implements MigrationInterface {
  name = 'BackgroundWork1763790000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE outbox_effects (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        outbox_id uuid NOT NULL REFERENCES outbox(id) ON DELETE CASCADE,
        target text NOT NULL,
        status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
        attempts int NOT NULL DEFAULT 0,
        last_error text,
        created_at timestamptz NOT NULL DEFAULT now(),
        completed_at timestamptz,
        UNIQUE (outbox_id, target)
      );
      CREATE INDEX outbox_effects_pending_idx ON outbox_effects (created_at) WHERE status = 'pending';

      DROP INDEX IF EXISTS webhook_deliveries_outbox_endpoint_uq;
      CREATE UNIQUE INDEX webhook_deliveries_outbox_endpoint_type_uq ON webhook_deliveries (outbox_id, endpoint_id, event_type)
        WHERE outbox_id IS NOT NULL;
      CREATE INDEX webhook_deliveries_pending_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
      CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC);

      CREATE INDEX outbox_not_done_idx ON outbox (seq) WHERE status <> 'done';
      CREATE INDEX access_reviews_due ON access_reviews (due_at) WHERE status = 'pending';
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP INDEX IF EXISTS access_reviews_due;
      DROP INDEX IF EXISTS outbox_not_done_idx;
      DROP INDEX IF EXISTS webhook_deliveries_endpoint_idx;
      DROP INDEX IF EXISTS webhook_deliveries_pending_idx;
      DROP INDEX IF EXISTS webhook_deliveries_outbox_endpoint_type_uq;
      CREATE UNIQUE INDEX webhook_deliveries_outbox_endpoint_uq ON webhook_deliveries (outbox_id, endpoint_id) WHERE outbox_id IS NOT NULL;
      DROP TABLE IF EXISTS outbox_effects;
    `);
  }
}
