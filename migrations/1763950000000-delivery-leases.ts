import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * A webhook delivery's attempt is claimed with a lease in its row instead of a session advisory lock: no connection
 * is held while the receiver answers, claims of many deliveries share one statement, and a crashed worker's lease
 * simply expires.
 */
export class DeliveryLeases1763950000000 implements MigrationInterface {
  name = 'DeliveryLeases1763950000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE webhook_deliveries ADD COLUMN lease_until timestamptz;
      ALTER TABLE webhook_deliveries ADD COLUMN lease_token uuid;
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE webhook_deliveries DROP COLUMN lease_token;
      ALTER TABLE webhook_deliveries DROP COLUMN lease_until;
    `);
  }
}
