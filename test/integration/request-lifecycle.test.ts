import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { webhooksOfRow } from '../support/outbox-webhooks.ts';

let t: TestContext;
let s: Seeded;
beforeAll(async () => {
  t = await createTestContext();
  s = await seedContoso(t.tdb.db);
});
afterAll(() => t.close());

const outboxTypes = async (requestId: string) =>
  await t.tdb.db.query<{ type: string; payload: any }>('SELECT type, payload FROM outbox WHERE subject_id = $1 ORDER BY seq', [requestId]);

describe('request lifecycle', () => {
  it('submits, approves once, orders the install, and revokes with an uninstall', async () => {
    const { requests } = t.ctx;
    const r = await requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'Need diagrams',
      answers: { usage: 'Diagrams' },
    });
    expect(r.status).toBe('pending');
    await expect(requests.decide(s.actor(s.bob), r.id, 'approve')).rejects.toMatchObject({ code: 'self_approval' });
    await expect(requests.decide(s.actor(s.dan), r.id, 'approve')).rejects.toMatchObject({ code: 'not_an_approver' });
    const d = await requests.decide(s.actor(s.ada), r.id, 'approve', 'ok');
    expect(d.outcome).toBe('approved');
    expect(d.request.decidedBy).toBe(s.ada.username);
    await expect(requests.decide(s.actor(s.cyd), r.id, 'approve')).rejects.toMatchObject({ code: 'already_decided' });
    const rows = await outboxTypes(r.id);
    expect(rows.map((x) => x.type)).toEqual(['request.submitted', 'request.approved']);
    expect(webhooksOfRow(rows[1]!).map((w: any) => w.type)).toEqual(['request.approved', 'app.install']);
    expect(webhooksOfRow(rows[1]!)[1].data).toMatchObject({
      clientGuid: BOB_LAPTOP,
      deviceName: 'BOB-LAPTOP',
      username: 'CONTOSO\\bob',
      applicationId: VISIO,
    });

    // a deny after the decision is a late click, not a revoke
    await expect(requests.decide(s.actor(s.cyd), r.id, 'deny', 'no longer needed')).rejects.toMatchObject({ code: 'already_decided' });
    await expect(requests.revoke(s.actor(s.cyd), r.id, '  ')).rejects.toMatchObject({
      code: 'validation_failed',
      details: { field: 'reason' },
    });
    await expect(requests.revoke(s.actor(s.bob), r.id, 'mine')).rejects.toMatchObject({ code: 'self_approval' });
    await expect(requests.revoke(s.actor(s.dan), r.id, 'not mine to revoke')).rejects.toMatchObject({ code: 'not_an_approver' });
    const revoked = await requests.revoke(s.actor(s.cyd), r.id, 'no longer needed');
    expect(revoked.outcome).toBe('revoked');
    const after = await outboxTypes(r.id);
    expect(webhooksOfRow(after.at(-1)!).map((w: any) => w.type)).toEqual(['request.revoked', 'app.uninstall']);

    await expect(requests.decide(s.actor(s.ada), r.id, 'approve', 'needed after all')).rejects.toMatchObject({ code: 'already_decided' });
    const re = await requests.reapprove(s.actor(s.ada), r.id, 'needed after all');
    expect(re.outcome).toBe('reapproved');
    const detail = await requests.get(r.id);
    expect(detail.history.map((h) => h.action)).toEqual([
      'request.submitted',
      'request.decision.approve',
      'request.approved',
      'request.revoked',
      'request.approved',
    ]);
  });

  it('rejects a second pending request for the same user, device and app', async () => {
    const app2 = 'ScopeId_X/Application_dup';
    await t.tdb.db.query(
      `INSERT INTO applications (id, name, per_device, policy_id) SELECT $1, 'Dup', true, policy_id FROM applications WHERE id = $2`,
      [app2, VISIO],
    );
    const input = { applicationId: app2, clientGuid: BOB_LAPTOP, justification: 'x', answers: { usage: 'Other' } };
    const results = await Promise.allSettled(Array.from({ length: 10 }, () => t.ctx.requests.submit(s.actor(s.bob), input)));
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    for (const r of results.filter((x) => x.status === 'rejected'))
      expect((r as PromiseRejectedResult).reason.code).toBe('already_pending');
  });

  it('validates justification and answers field by field', async () => {
    await expect(
      t.ctx.requests.submit(s.actor(s.bob), { applicationId: VISIO, clientGuid: BOB_LAPTOP, answers: { usage: 'Games' } }),
    ).rejects.toMatchObject({
      code: 'validation_failed',
      details: { fields: { justification: expect.any(String), answers: { usage: expect.stringContaining('not one of') } } },
    });
  });
});

describe('what waits on an approver', () => {
  it("lists pending requests of the approver's current stage, not their own nor ones they decided", async () => {
    const { requests } = t.ctx;
    await t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
    const r = await requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'x',
      answers: { usage: 'Other' },
    });
    expect((await requests.list({ pendingForApproverId: s.ada.id })).items.map((x) => x.id)).toEqual([r.id]);
    expect((await requests.list({ pendingForApproverId: s.dan.id })).items).toEqual([]);
    expect((await requests.list({ pendingForApproverId: s.bob.id })).items).toEqual([]);
  });
});

describe('decisions from a prompt', () => {
  it('a Deny clicked on a stale prompt is told who decided and never revokes', async () => {
    const { requests } = t.ctx;
    await t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
    const r = await requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'x',
      answers: { usage: 'Other' },
    });
    const [a, b] = await Promise.allSettled([
      requests.decide(s.actor(s.ada), r.id, 'approve', null, { stage: 0 }),
      requests.decide(s.actor(s.cyd), r.id, 'deny', 'no', { stage: 0 }),
    ]);
    const outcomes = [a, b].map((x) => (x.status === 'fulfilled' ? x.value.outcome : (x.reason as { code: string }).code)).sort();
    expect(outcomes).toHaveLength(2);
    expect(outcomes.filter((o) => o === 'already_decided')).toHaveLength(1);
    const final = await requests.get(r.id);
    expect(['approved', 'denied']).toContain(final.status);
    await expect(
      requests.decide(s.actor(s.cyd), r.id, final.status === 'approved' ? 'deny' : 'approve', 'late', { stage: 0 }),
    ).rejects.toMatchObject({ code: 'already_decided', message: expect.stringContaining(`already ${final.status}`) });
    expect((await requests.get(r.id)).status).toBe(final.status);
  });
});
