import type { QueryRunner } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AuditSealing1763900000000 } from '../../migrations/1763900000000-audit-sealing.ts';
import { verifyAudit } from '../../src/core/audit-chain.ts';
import { chainHash, GENESIS } from '../../src/core/audit-log.ts';
import { sealAll } from '../support/audit.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

let t: TestContext;

beforeAll(async () => {
  t = await createTestContext();
  await seedContoso(t.tdb.db);
});
afterAll(async () => {
  await t.close();
});

const runner = (): QueryRunner => ({ query: (sql: string, params?: unknown[]) => t.tdb.db.query(sql, params) }) as unknown as QueryRunner;

/** An append as the release before the sealer made it: under a lock, chained in id order, hashes on the row. */
async function legacyAppend(action: string): Promise<void> {
  await t.tdb.db.tx(async (tx) => {
    await tx.query('SELECT pg_advisory_xact_lock(7461627)');
    const last = await tx.maybeOne<{ hash: string }>('SELECT hash FROM audit_events ORDER BY id DESC LIMIT 1');
    const prev = last?.hash ?? GENESIS;
    const at = new Date();
    const content = {
      occurredAt: at.toISOString(),
      actorId: null,
      actorLabel: 'Signoff',
      channel: 'system',
      action,
      subjectType: 'test',
      subjectId: action,
      before: null,
      after: null,
      details: { legacy: true },
    };
    await tx.query(
      `INSERT INTO audit_events (occurred_at, actor_id, actor_label, channel, action, subject_type, subject_id, before, after, details, prev_hash, hash)
       VALUES ($1, NULL, 'Signoff', 'system', $2, 'test', $2, 'null', 'null', '{"legacy":true}', $3, $4)`,
      [at.toISOString(), action, prev, chainHash(prev, content)],
    );
  });
}

describe('the audit sealing migration on a database with history', () => {
  it('moves the existing chain over unchanged, and new rows are sealed after it', async () => {
    // history written before the migration: rows sealed since, rolled back to hashes on the rows, plus legacy appends
    await t.ctx.requests.createApproved({ id: null, label: 'api:test', channel: 'api' }, { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    await sealAll(t.tdb.db);
    const migration = new AuditSealing1763900000000();
    await migration.down(runner());
    for (let i = 0; i < 3; i++) await legacyAppend(`legacy.${i}`);
    const rows = Number((await t.tdb.db.one<{ n: string }>('SELECT count(*) AS n FROM audit_events')).n);

    await migration.up(runner());
    expect(await verifyAudit(t.tdb.db)).toMatchObject({ ok: true, checked: rows, unsealed: 0 });
    const order = await t.tdb.db.query<{ seq: string; event_id: string }>('SELECT seq, event_id FROM audit_chain ORDER BY seq');
    expect(order.map((r) => Number(r.event_id))).toEqual([...order.map((r) => Number(r.event_id))].sort((a, b) => a - b));

    await t.ctx.requests.createApproved({ id: null, label: 'api:test', channel: 'api' }, { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    // a process still on the previous release (a rolling restart) goes on appending; its rows are sealed like the rest
    await legacyAppend('legacy.during-rollout');
    await sealAll(t.tdb.db);
    const after = await verifyAudit(t.tdb.db);
    expect(after.ok).toBe(true);
    expect(after.checked).toBe(Number((await t.tdb.db.one<{ n: string }>('SELECT count(*) AS n FROM audit_events')).n));
    expect(after.unsealed).toBe(0);
  });
});
