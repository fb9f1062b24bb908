import { afterAll, beforeAll, expect, it } from 'vitest';
import { getRequestView } from '../../src/core/request-queries.ts';
import { seedContoso, VISIO } from '../support/fixtures.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

let t: TestContext;

beforeAll(async () => {
  t = await createTestContext();
  await seedContoso(t.tdb.db);
});
afterAll(async () => {
  await t?.close();
});

/**
 * A deployment tool that retries, or two that overlap, send CreateApprovedRequest for one device at once. One call
 * creates the request; every other finds it and orders the install again; each answer is the request as its own
 * call left it (the view is built from the command's write, not read after commit, so it must not be a neighbour's).
 */
it('concurrent CreateApprovedRequest calls for one device create one request and each answers with its own change', async () => {
  const guid = 'GUID:RACE-WAVE-0001';
  await t.tdb.db.query(`INSERT INTO devices (client_guid, name) VALUES ($1, 'RACE-WAVE-0001')`, [guid]);
  const system = { id: null, label: 'api:cm', channel: 'api' as const };
  const N = 8;
  const results = await Promise.all(
    Array.from({ length: N }, () => t.ctx.requests.createApproved(system, { applicationId: VISIO, clientGuid: guid })),
  );
  const id = results[0]!.request.id;
  expect(results.every((r) => r.request.id === id)).toBe(true);
  expect(results.filter((r) => r.created)).toHaveLength(1);
  // the creating call moved the version twice (approved, install ordered), each later call once: all distinct
  const versions = results.map((r) => r.request.version).sort((a, b) => a - b);
  const first = results.find((r) => r.created)!.request.version;
  expect(versions).toEqual(Array.from({ length: N }, (_, i) => first + i));
  expect(results.every((r) => r.request.status === 'approved')).toBe(true);
  expect((await getRequestView(t.tdb.db, id)).version).toBe(first + N - 1);
  const actions = await t.tdb.db.query<{ action: string; n: number }>(
    `SELECT action, count(*)::int AS n FROM audit_events WHERE subject_id = $1 GROUP BY action ORDER BY action`,
    [id],
  );
  expect(actions).toEqual([
    { action: 'request.approved', n: 1 },
    { action: 'request.created_approved', n: 1 },
    { action: 'request.install_ordered', n: N - 1 },
  ]);
});
