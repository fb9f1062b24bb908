import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cliActor } from '../../src/core/catalog-service.ts';
import { applyCatalogFile } from '../../src/integrations/catalog-yaml.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

const FIXTURE = new URL('../fixtures/contoso.yaml', import.meta.url).pathname;

let t: TestContext;
beforeAll(async () => {
  t = await createTestContext({ WEBHOOK_ALLOW_HOSTS: 'dm.example.com' });
});
afterAll(() => t.close());

describe('concurrent catalog writes', () => {
  it('several applies of the same file at once create each object once and all succeed', async () => {
    const results = await Promise.all(Array.from({ length: 4 }, () => applyCatalogFile(t.ctx.catalog, FIXTURE)));
    expect(results.reduce((n, s) => n + s.identities.created, 0)).toBe(2);
    expect(results.reduce((n, s) => n + s.webhooks.created + s.webhooks.unchanged, 0)).toBe(4);
    expect((await t.tdb.db.one<{ n: number }>('SELECT count(*)::int AS n FROM audit_events')).n).toBe(7);
  });

  it('a group deleted while a policy naming it is created never leaves a dangling reference', async () => {
    for (let round = 0; round < 5; round++) {
      const group = `race-${round}`;
      await t.ctx.catalog.upsertApproverGroup({ name: group, members: [], emails: [] }, cliActor);
      const [created, deleted] = await Promise.allSettled([
        t.ctx.catalog.upsert('policies', { name: `p-${round}`, stages: [{ approvers: [group] }] }, cliActor),
        t.ctx.catalog.deleteApproverGroup(group, cliActor),
      ]);
      // exactly one wins: either the policy exists and the delete was refused, or the group is gone and the policy was refused
      expect([created.status, deleted.status].sort()).toEqual(['fulfilled', 'rejected']);
      const policy = await t.tdb.db.maybeOne('SELECT 1 FROM policies WHERE name = $1', [`p-${round}`]);
      const groupRow = await t.tdb.db.maybeOne('SELECT 1 FROM approver_groups WHERE name = $1', [group]);
      expect(Boolean(policy) && !groupRow).toBe(false);
    }
  });
});
