import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/core/api-keys.ts';
import { sealAll } from '../support/audit.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { createApiHarness, webhookTypes, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;
beforeAll(async () => {
  h = await createApiHarness();
});
afterAll(() => h.close());

const script = (id: string, body: string) => ({
  resourceType: 'script',
  resourceId: id,
  before: { name: id, body: 'echo old', runAs: 'system' },
  after: { name: id, body, runAs: 'system' },
  justification: 'Fix the cleanup script',
  requestedBy: 'CONTOSO\\ada',
});

describe('multi-admin approval over HTTP', () => {
  it("takes the approver's notes as notes, reason or comments", async () => {
    const created = await h.as(h.keys.changes).post('/api/v1/changes', script('notes.ps1', 'echo notes'));
    const rejected = await h
      .as(h.keys.changes)
      .post(`/api/v1/changes/${created.body.id}/reject`, { approver: 'CONTOSO\\cyd', reason: 'wrong account' });
    expect(rejected.body).toMatchObject({ status: 'rejected', decisionNotes: 'wrong account' });
  });

  it('submit shows the diff; self-approval is refused; another admin approves and change.apply is emitted', async () => {
    const created = await h.as(h.keys.changes).post('/api/v1/changes', script('cleanup.ps1', 'echo new'));
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ status: 'pending', requester: { label: 'Ada Admin' }, approverGroups: ['it-approvers'] });
    expect(created.body.diff).toEqual([{ path: '/body', op: 'replace', before: 'echo old', after: 'echo new' }]);

    const self = await h.as(h.keys.changes).post(`/api/v1/changes/${created.body.id}/approve`, { approver: 'CONTOSO\\ada' });
    expect(self.status).toBe(403);
    expect(self.body.code).toBe('self_approval');
    const outsider = await h.as(h.keys.changes).post(`/api/v1/changes/${created.body.id}/approve`, { approver: 'CONTOSO\\dan' });
    expect(outsider.status).toBe(403);
    expect(outsider.body).toMatchObject({ code: 'not_an_approver', approverGroups: ['it-approvers'] });

    const ok = await h
      .as(h.keys.changes)
      .post(`/api/v1/changes/${created.body.id}/approve`, { approver: 'CONTOSO\\cyd', notes: 'looks right' });
    expect(ok.status).toBe(200);
    expect(ok.body).toMatchObject({ status: 'approved', decidedBy: 'Cyd Approver (api:maa-portal)', decisionNotes: 'looks right' });
    expect(webhookTypes(await h.outbox(created.body.id))).toEqual(['change.submitted', 'change.approved', 'change.apply']);

    const late = await h.as(h.keys.changes).post(`/api/v1/changes/${created.body.id}/reject`, { approver: 'CONTOSO\\ada' });
    expect(late.status).toBe(409);
    expect(late.body).toMatchObject({
      code: 'already_decided',
      currentStatus: 'approved',
      decidedBy: 'Cyd Approver (api:maa-portal)',
      decidedAt: expect.any(String),
    });

    const detail = await h.as(h.keys.changes).get(`/api/v1/changes/${created.body.id}`);
    expect(detail.body.history.map((x: { action: string }) => x.action)).toEqual(['change.submitted', 'change.approved']);
  });

  it('rejects with notes, lets the requester cancel, and keeps one pending change per resource', async () => {
    const a = await h.as(h.keys.changes).post('/api/v1/changes', script('a.ps1', 'echo a'));
    const rejected = await h
      .as(h.keys.changes)
      .post(`/api/v1/changes/${a.body.id}/reject`, { approver: 'CONTOSO\\cyd', notes: 'use the module instead' });
    expect(rejected.body).toMatchObject({ status: 'rejected', decisionNotes: 'use the module instead' });
    expect(webhookTypes(await h.outbox(a.body.id))).toEqual(['change.submitted', 'change.rejected']);

    const b = await h.as(h.keys.changes).post('/api/v1/changes', script('b.ps1', 'echo b'));
    const second = await h.as(h.keys.changes).post('/api/v1/changes', script('b.ps1', 'echo b2'));
    expect(second.status).toBe(409);
    expect(second.body).toMatchObject({ code: 'already_pending', changeId: b.body.id, currentStatus: 'pending' });
    const cancelled = await h.as(h.keys.changes).post(`/api/v1/changes/${b.body.id}/cancel`, { notes: 'wrong file' });
    expect(cancelled.body.status).toBe('cancelled');
    const third = await h.as(h.keys.changes).post('/api/v1/changes', script('b.ps1', 'echo b3'));
    expect(third.status).toBe(201);
  });

  it('a key that is nobody decides nothing: a second admin must be named, and must be one', async () => {
    const { requestedBy: _, ...mine } = script('c.ps1', 'echo c');
    const c = await h.as(h.keys.changes).post('/api/v1/changes', mine);
    expect(c.body.requester).toEqual({ id: null, label: 'api:maa-portal' });
    for (const key of [h.keys.changes, h.keys.changes2, h.keys.admin]) {
      const nobody = await h.as(key).post(`/api/v1/changes/${c.body.id}/approve`, {});
      expect(nobody.status).toBe(403);
      expect(nobody.body).toMatchObject({ code: 'approver_required', errors: [{ field: 'approver' }] });
    }
    expect((await h.as(h.keys.changes).post(`/api/v1/changes/${c.body.id}/approve`, { approver: 'CONTOSO\\dan' })).body.code).toBe(
      'not_an_approver',
    );
    expect((await h.as(h.keys.changes).get(`/api/v1/changes/${c.body.id}`)).body.status).toBe('pending');
    const other = await h.as(h.keys.changes2).post(`/api/v1/changes/${c.body.id}/approve`, { approver: 'CONTOSO\\cyd' });
    expect(other.body).toMatchObject({ status: 'approved', decidedBy: 'Cyd Approver (api:maa-portal-2)' });
  });

  it('a key bound to one admin acts as that admin only: it cannot submit for, or approve as, anyone else', async () => {
    const ada = await h.t.tdb.db.one<{ id: string }>(`SELECT id FROM identities WHERE username = 'CONTOSO\\ada'`);
    const adaKey = (await createApiKey(h.t.tdb.db, 'ada-laptop', ['changes:write', 'requests:write', 'requests:read'], ada.id)).key;
    const { requestedBy: _, ...mine } = script('bound.ps1', 'echo bound');
    const asSomeoneElse = await h.as(adaKey).post('/api/v1/changes', { ...mine, requestedBy: 'CONTOSO\\cyd' });
    expect(asSomeoneElse.status).toBe(403);
    expect(asSomeoneElse.body.detail).toMatch(/bound to one person/);

    const c = await h.as(adaKey).post('/api/v1/changes', mine);
    expect(c.status).toBe(201);
    // the person, with the key that acted for them
    expect(c.body.requester).toMatchObject({ id: ada.id, label: 'Ada Admin (api:ada-laptop)' });
    const impersonated = await h.as(adaKey).post(`/api/v1/changes/${c.body.id}/approve`, { approver: 'CONTOSO\\cyd' });
    expect(impersonated.status).toBe(403);
    expect((await h.as(adaKey).post(`/api/v1/changes/${c.body.id}/approve`, {})).body.code).toBe('self_approval');
    expect((await h.as(h.keys.changes).get(`/api/v1/changes/${c.body.id}`)).body.status).toBe('pending');
    // another admin's own key cannot cancel it; ada's can
    const cyd = await h.t.tdb.db.one<{ id: string }>(`SELECT id FROM identities WHERE username = 'CONTOSO\\cyd'`);
    const cydKey = (await createApiKey(h.t.tdb.db, 'cyd-laptop', ['changes:write'], cyd.id)).key;
    expect((await h.as(cydKey).post(`/api/v1/changes/${c.body.id}/cancel`, {})).status).toBe(403);
    expect((await h.as(adaKey).post(`/api/v1/changes/${c.body.id}/cancel`, {})).body.status).toBe('cancelled');

    // the same for a request: bob's own key cannot approve his request by naming ada
    const bob = await h.t.tdb.db.one<{ id: string }>(`SELECT id FROM identities WHERE username = 'CONTOSO\\bob'`);
    const bobKey = (await createApiKey(h.t.tdb.db, 'bob-script', ['requests:write', 'requests:read'], bob.id)).key;
    const r = await h.as(bobKey).post('/api/v1/requests', {
      applicationId: VISIO,
      username: 'CONTOSO\\bob',
      clientGuid: BOB_LAPTOP,
      justification: 'mine',
      answers: { usage: 'Other' },
    });
    expect(r.status).toBe(201);
    const selfApproved = await h.as(bobKey).post(`/api/v1/requests/${r.body.id}/approve`, { approver: 'CONTOSO\\ada' });
    expect(selfApproved.status).toBe(403);
    expect((await h.as(bobKey).get(`/api/v1/requests/${r.body.id}`)).body.status).toBe('pending');
    // nor submit for someone else, nor pre-approve for himself with CreateApprovedRequest
    const forCyd = await h.as(bobKey).post('/api/v1/requests', {
      applicationId: VISIO,
      username: 'CONTOSO\\cyd',
      clientGuid: BOB_LAPTOP,
      justification: 'x',
      answers: { usage: 'Other' },
    });
    expect(forCyd.status).toBe(403);
    const preApproved = await h
      .as(bobKey)
      .post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP, username: 'CONTOSO\\bob' });
    expect(preApproved.status).toBe(403);
    expect(preApproved.body.code).toBe('self_approval');
    expect((await h.as(bobKey).post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP })).body.code).toBe(
      'not_an_approver',
    );
    // ada approves Visio, so her key may pre-approve it for bob
    const byAda = await h
      .as(adaKey)
      .post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP, username: 'CONTOSO\\bob' });
    expect(byAda.body).toMatchObject({ status: 'approved', decidedBy: 'Ada Admin (api:ada-laptop)' });
  });

  it('lists changes by status and resource', async () => {
    const list = await h.as(h.keys.changes).get('/api/v1/changes?status=pending&resourceType=script');
    expect(list.status).toBe(200);
    expect(list.body.items.map((x: { resourceId: string }) => x.resourceId)).toEqual(['b.ps1']);
    const page = await h.as(h.keys.changes).get('/api/v1/changes?limit=1');
    expect(page.body.items).toHaveLength(1);
    const next = await h.as(h.keys.changes).get(`/api/v1/changes?limit=1&cursor=${page.body.nextCursor}`);
    expect(next.body.items[0].id).not.toBe(page.body.items[0].id);
  });

  it('exports and verifies the audit log for admins only', async () => {
    expect((await h.as(h.keys.changes).get('/api/v1/audit')).status).toBe(403);
    await sealAll(h.t.tdb.db);
    const page1 = await h.as(h.keys.admin).get('/api/v1/audit?limit=3');
    expect(page1.status).toBe(200);
    expect(page1.body.items).toHaveLength(3);
    const page2 = await h.as(h.keys.admin).get(`/api/v1/audit?limit=3&cursor=${page1.body.nextCursor}`);
    expect(Number(page2.body.items[0].id)).toBeGreaterThan(Number(page1.body.items[2].id));
    expect(page2.body.items[0].prevHash).toBe(page1.body.items[2].hash);

    const subject = page1.body.items[0].subjectId;
    const filtered = await h.as(h.keys.admin).get(`/api/v1/audit?subjectType=change&subjectId=${subject}`);
    expect(filtered.body.items.every((x: { subjectId: string }) => x.subjectId === subject)).toBe(true);

    const nd = await h
      .as(h.keys.admin)
      .get('/api/v1/audit?format=ndjson')
      .buffer(true)
      .parse((res, cb) => {
        let data = '';
        res.on('data', (c: Buffer) => (data += c.toString()));
        res.on('end', () => cb(null, data));
      });
    expect(nd.headers['content-type']).toMatch(/^application\/x-ndjson/);
    const lines = (nd.body as string)
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines.length).toBe(Number((await h.t.tdb.db.one('SELECT count(*) AS n FROM audit_events')).n));

    const future = await h.as(h.keys.admin).get(`/api/v1/audit?since=${encodeURIComponent('2099-01-01T00:00:00Z')}`);
    expect(future.body.items).toEqual([]);

    const verify = await h.as(h.keys.admin).get('/api/v1/audit/verify');
    expect(verify.body).toEqual({
      ok: true,
      checked: lines.length,
      unsealed: 0,
      head: { sequence: lines.length, hash: lines.at(-1).hash },
    });
    expect(lines.every((l: { sealed: boolean; sequence: number }, i: number) => l.sealed && l.sequence === i + 1)).toBe(true);
  });
});
