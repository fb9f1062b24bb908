import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

/**
 * REST's schemas bound every text before the core is called; a Slack modal or a Teams card reaches the core with
 * whatever the client sent (a 5,000-character deny reason was kept). The core holds the same bounds for every channel.
 */
let t: TestContext;
let s: Seeded;
beforeAll(async () => {
  t = await createTestContext();
  s = await seedContoso(t.tdb.db);
});
afterAll(() => t.close());

describe('text bounds in the core', () => {
  it('refuse an over-long reason or change field, naming it, and change nothing', async () => {
    const r = await t.ctx.requests.submit(s.actor(s.bob, 'slack'), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'bounds',
      answers: { usage: 'Other' },
    });
    await expect(t.ctx.requests.decide(s.actor(s.ada, 'slack'), r.id, 'deny', 'x'.repeat(5000))).rejects.toMatchObject({
      code: 'validation_failed',
      details: { field: 'reason' },
    });
    expect((await t.ctx.requests.get(r.id)).status).toBe('pending');
    await expect(
      t.ctx.changes.submit(s.actor(s.ada, 'slack'), {
        resourceType: 'script',
        resourceId: 's'.repeat(600),
        before: null,
        after: { body: 'x' },
        justification: 'bounds',
      }),
    ).rejects.toMatchObject({ code: 'validation_failed', details: { field: 'resourceId' } });
    expect(await t.tdb.db.query('SELECT 1 FROM changes')).toEqual([]);
    // at the bound itself, a decision is made
    expect((await t.ctx.requests.decide(s.actor(s.ada, 'slack'), r.id, 'deny', 'y'.repeat(2000))).outcome).toBe('denied');
  });
});
