import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * Device-management connectors (Intune, Configuration Manager) as a kind of delivery target. An application may
 * name one (applications.device_manager); its orders are rows of webhook_deliveries with `connector` set instead of
 * an endpoint, so they share the outbox fan-out, the attempt log, the delivery API and redelivery with webhooks.
 * device_manager_status is what the connector last found for each application (shown on the application and in
 * the metrics), so a misconfigured one is visible without reading delivery logs.
 */
export class DeviceManagerConnectors1763880000000 implements MigrationInterface {
  name = 'DeviceManagerConnectors1763880000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE applications ADD COLUMN device_manager jsonb;

      ALTER TABLE webhook_deliveries ALTER COLUMN endpoint_id DROP NOT NULL;
      ALTER TABLE webhook_deliveries ADD COLUMN connector text CHECK (connector IN ('intune', 'configmgr'));
      ALTER TABLE webhook_deliveries ADD COLUMN application_id text REFERENCES applications(id) ON DELETE CASCADE;
      ALTER TABLE webhook_deliveries ADD COLUMN request_id uuid;
      ALTER TABLE webhook_deliveries ADD CONSTRAINT webhook_deliveries_one_target
        CHECK ((endpoint_id IS NOT NULL AND connector IS NULL AND application_id IS NULL)
            OR (endpoint_id IS NULL AND connector IS NOT NULL AND application_id IS NOT NULL));
      -- one order per event for the application's connector, however many relays fan the event out
      CREATE UNIQUE INDEX webhook_deliveries_outbox_connector_uq ON webhook_deliveries (outbox_id, event_type)
        WHERE connector IS NOT NULL AND outbox_id IS NOT NULL;
      -- orders for one request run in event order: the processor looks for earlier unfinished ones here
      CREATE INDEX webhook_deliveries_connector_request_idx ON webhook_deliveries (request_id, created_at) WHERE connector IS NOT NULL;

      CREATE TABLE device_manager_status (
        application_id text PRIMARY KEY REFERENCES applications(id) ON DELETE CASCADE,
        kind text NOT NULL CHECK (kind IN ('intune', 'configmgr')),
        state text NOT NULL CHECK (state IN ('ok', 'error', 'unchecked')),
        message text,
        checked_at timestamptz,
        last_success_at timestamptz,
        last_failure_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now()
      );
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP TABLE IF EXISTS device_manager_status;
      DELETE FROM webhook_deliveries WHERE connector IS NOT NULL;
      DROP INDEX IF EXISTS webhook_deliveries_connector_request_idx;
      DROP INDEX IF EXISTS webhook_deliveries_outbox_connector_uq;
      ALTER TABLE webhook_deliveries DROP CONSTRAINT IF EXISTS webhook_deliveries_one_target;
      ALTER TABLE webhook_deliveries DROP COLUMN IF EXISTS request_id, DROP COLUMN IF EXISTS application_id, DROP COLUMN IF EXISTS connector;
      ALTER TABLE webhook_deliveries ALTER COLUMN endpoint_id SET NOT NULL;
      ALTER TABLE applications DROP COLUMN IF EXISTS device_manager;
    `);
  }
}
