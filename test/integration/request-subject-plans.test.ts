import { afterAll, beforeAll, expect, it } from 'vitest';
import { SUBJECT_REQUEST_SQL } from '../../src/core/approved-requests.ts';
import { sameSubject } from '../../src/core/request-write.ts';
import { seedContoso, VISIO, BOB_LAPTOP, type Seeded } from '../support/fixtures.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

let t: TestContext;
let s: Seeded;

/** The plans Postgres keeps for `sql` once it plans it for any parameters, for each set of `args` (SQL literals). */
async function genericPlans(sql: string, types: string, args: string[]): Promise<string[]> {
  return t.tdb.db.tx(async (q) => {
    await q.query(`SET LOCAL plan_cache_mode = force_generic_plan`);
    await q.query(`PREPARE subject_probe (${types}) AS ${sql}`);
    try {
      const plans: string[] = [];
      for (const a of args)
        plans.push((await q.query<{ 'QUERY PLAN': string }>(`EXPLAIN EXECUTE subject_probe(${a})`)).map((r) => r['QUERY PLAN']).join('\n'));
      return plans;
    } finally {
      await q.query('DEALLOCATE subject_probe');
    }
  });
}

beforeAll(async () => {
  t = await createTestContext();
  s = await seedContoso(t.tdb.db);
});
afterAll(async () => {
  await t?.close();
});

/**
 * Commands are prepared statements, and after a few runs Postgres may keep one generic plan for every parameter
 * value. Such a plan for "is this application already approved or pending for this requester and device", made while
 * the table was small, looked the application up alone and filtered all its requests, so each submit grew slower with
 * every approval of the application until the next ANALYZE. The plan must find the requester and device in the
 * unique index itself, whatever the parameters and statistics (here: an almost empty table).
 */
it('finds the same application, requester and device through the unique indexes in a generic plan', async () => {
  const device = await t.tdb.db.one<{ id: string }>('SELECT id FROM devices WHERE client_guid = $1', [BOB_LAPTOP]);
  const args = [`'${VISIO}', '${s.bob.id}', '${device.id}'`, `'${VISIO}', '${s.bob.id}', NULL`];
  for (const status of ['approved', 'pending']) {
    const sql = `SELECT 1 FROM requests r WHERE ${sameSubject('r', '$1', '$2', '$3')} AND r.status = '${status}'`;
    for (const p of await genericPlans(sql, 'text, uuid, uuid', args)) {
      expect(p, p).toMatch(new RegExp(`requests_one_${status}_uq`));
      const cond = /Index Cond: (.*)/.exec(p)?.[1] ?? '';
      expect(cond, p).toMatch(/requester_id/);
      expect(cond, p).toMatch(/device_id/);
      expect(p, p).not.toMatch(/Filter:/);
    }
  }
  // CreateApprovedRequest's lookup of the approved, else pending, request: both unique indexes, nothing else
  for (const p of await genericPlans(SUBJECT_REQUEST_SQL, 'text, uuid, uuid', args)) {
    expect(p, p).toMatch(/requests_one_approved_uq/);
    expect(p, p).toMatch(/requests_one_pending_uq/);
    expect(p, p).not.toMatch(/requests_(application|status|requester|device)_idx|Seq Scan/);
  }
});
