import type { MigrationInterface, QueryRunner } from 'typeorm';

/**
 * One pending change per resource whatever the letter case: `Scripts/Cleanup.ps1` and `scripts/cleanup.ps1` are one
 * file on Windows, and resource types are names people type. A database that already holds such twins keeps the
 * oldest pending one; the later ones are closed as expired, audited, so the unique index can be built.
 */
export class CaseInsensitiveResources1763910000000 implements MigrationInterface {
  name = 'CaseInsensitiveResources1763910000000';

  async up(q: QueryRunner): Promise<void> {
    const twins = (await q.query(`
      SELECT c.id, first.id AS kept
        FROM changes c
        JOIN LATERAL (
          SELECT o.id FROM changes o
           WHERE o.status = 'pending' AND lower(o.resource_type) = lower(c.resource_type) AND lower(o.resource_id) = lower(c.resource_id)
           ORDER BY o.created_at, o.id LIMIT 1) first ON first.id <> c.id
       WHERE c.status = 'pending'
       ORDER BY c.created_at, c.id`)) as { id: string; kept: string }[];
    for (const twin of twins) {
      const notes = `Closed on upgrade: change ${twin.kept} is pending for the same resource in another letter case.`;
      await q.query(
        `UPDATE changes SET status = 'expired', decided_at = now(), decided_by_label = 'Signoff', decision_notes = $2, version = version + 1, updated_at = now()
          WHERE id = $1 AND status = 'pending'`,
        [twin.id, notes],
      );
      // the audit row as appendAudit writes it, spelled out: a migration must not change when the code does
      await q.query(
        `INSERT INTO audit_events (occurred_at, actor_id, actor_label, channel, action, subject_type, subject_id, before, after, details)
         VALUES (now(), NULL, 'Signoff', 'system', 'change.expired', 'change', $1, $2, $3, $4)`,
        [twin.id, JSON.stringify({ status: 'pending' }), JSON.stringify({ status: 'expired' }), JSON.stringify({ notes })],
      );
    }
    await q.query(`
      DROP INDEX IF EXISTS changes_one_pending_uq;
      CREATE UNIQUE INDEX changes_one_pending_uq ON changes (lower(resource_type), lower(resource_id)) WHERE status = 'pending';
      CREATE INDEX changes_resource_idx ON changes (lower(resource_type), lower(resource_id), created_at DESC);
    `);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      DROP INDEX IF EXISTS changes_resource_idx;
      DROP INDEX IF EXISTS changes_one_pending_uq;
      CREATE UNIQUE INDEX changes_one_pending_uq ON changes (resource_type, resource_id) WHERE status = 'pending';
    `);
  }
}
