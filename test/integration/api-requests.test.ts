import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { createApiHarness, webhookTypes, type ApiHarness } from './api-harness.ts';
import { webhooksOfRow } from '../support/outbox-webhooks.ts';

let h: ApiHarness;
beforeAll(async () => {
  h = await createApiHarness();
});
afterAll(() => h.close());

const submit = (extra: Record<string, unknown> = {}) =>
  h.as(h.keys.write).post('/api/v1/requests', {
    applicationId: VISIO,
    username: 'CONTOSO\\bob',
    clientGuid: BOB_LAPTOP,
    justification: 'Need diagrams',
    answers: { usage: 'Diagrams' },
    ...extra,
  });

describe('Configuration Manager scenarios over HTTP', () => {
  it('(1) a user requests with a justification, an approver approves, the install is ordered', async () => {
    const created = await submit();
    expect(created.status).toBe(201);
    expect(created.headers.location).toBe(`/api/v1/requests/${created.body.id}`);
    expect(created.body).toMatchObject({
      status: 'pending',
      justification: 'Need diagrams',
      requester: { username: 'CONTOSO\\bob' },
      device: { name: 'BOB-LAPTOP' },
    });

    const approved = await h
      .as(h.keys.write)
      .post(`/api/v1/requests/${created.body.id}/approve`, { approver: 'CONTOSO\\ada', reason: 'fine' });
    expect(approved.status).toBe(200);
    // a trusted key names the approver; both are on the record
    expect(approved.body).toMatchObject({
      outcome: 'approved',
      request: { status: 'approved', decidedBy: 'Ada Admin (api:cm-connector)', decisionReason: 'fine' },
    });

    const rows = await h.outbox(created.body.id);
    expect(rows.map((r) => r.type)).toEqual(['request.submitted', 'request.approved']);
    expect(webhooksOfRow(rows[1]!)).toContainEqual({
      type: 'app.install',
      data: expect.objectContaining({ clientGuid: BOB_LAPTOP, username: 'CONTOSO\\bob', applicationId: VISIO }),
    });

    const detail = await h.as(h.keys.read).get(`/api/v1/requests/${created.body.id}`);
    expect(detail.status).toBe(200);
    expect(detail.body.stages).toHaveLength(1);
    expect(detail.body.stages[0]).toMatchObject({ status: 'approved', approverGroups: ['it-approvers'] });
    expect(detail.body.decisions).toMatchObject([
      { decision: 'approve', approver: { label: 'Ada Admin (api:cm-connector)' }, reason: 'fine', channel: 'api' },
    ]);
    expect(detail.body.history.map((x: { action: string }) => x.action)).toEqual([
      'request.submitted',
      'request.decision.approve',
      'request.approved',
    ]);

    // a deny after the approval decides nothing: deny is for pending requests only
    const lateDeny = await h
      .as(h.keys.write)
      .post(`/api/v1/requests/${created.body.id}/deny`, { approver: 'CONTOSO\\cyd', comments: 'licence pulled' });
    expect(lateDeny.status).toBe(409);
    expect(lateDeny.body).toMatchObject({ code: 'already_decided', currentStatus: 'approved', decidedBy: 'Ada Admin (api:cm-connector)' });

    // (3a) revoke is its own command, and orders the uninstall
    const revoked = await h
      .as(h.keys.write)
      .post(`/api/v1/requests/${created.body.id}/revoke`, { approver: 'CONTOSO\\cyd', comments: 'licence pulled' });
    expect(revoked.status).toBe(200);
    expect(revoked.body).toMatchObject({ outcome: 'revoked', status: 'revoked', decisionReason: 'licence pulled' });
    expect(webhookTypes(await h.outbox(created.body.id))).toEqual([
      'request.submitted',
      'request.approved',
      'app.install',
      'request.revoked',
      'app.uninstall',
    ]);
  });

  it('(2) deny with a reason; (3b) a denied request can be reapproved', async () => {
    await h.t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved', 'revoked')`);
    const created = await submit();
    expect(created.status).toBe(201);
    const denied = await h
      .as(h.keys.write)
      .post(`/api/v1/requests/${created.body.id}/deny`, { approver: 'CONTOSO\\ada', reason: 'use draw.io' });
    expect(denied.status).toBe(200);
    expect(denied.body).toMatchObject({
      outcome: 'denied',
      request: { status: 'denied', decisionReason: 'use draw.io', decidedBy: 'Ada Admin (api:cm-connector)' },
    });
    expect((await h.outbox(created.body.id)).map((r) => r.type)).toEqual(['request.submitted', 'request.denied']);

    const lateApprove = await h
      .as(h.keys.write)
      .post(`/api/v1/requests/${created.body.id}/approve`, { approver: 'CONTOSO\\cyd', reason: 'ok after all' });
    expect(lateApprove.status).toBe(409);
    expect(lateApprove.body).toMatchObject({ code: 'already_decided', currentStatus: 'denied' });
    const noReason = await h.as(h.keys.write).post(`/api/v1/requests/${created.body.id}/reapprove`, { approver: 'CONTOSO\\cyd' });
    expect(noReason.status).toBe(400);
    expect(noReason.body.errors).toEqual([{ field: 'reason', message: expect.stringContaining('Say why') }]);
    const again = await h
      .as(h.keys.write)
      .post(`/api/v1/requests/${created.body.id}/reapprove`, { approver: 'CONTOSO\\cyd', reason: 'ok after all' });
    expect(again.status).toBe(200);
    expect(again.body).toMatchObject({ outcome: 'reapproved', status: 'approved', decidedBy: 'Cyd Approver (api:cm-connector)' });
    expect(webhookTypes(await h.outbox(created.body.id)).slice(-2)).toEqual(['request.approved', 'app.install']);
  });

  it('(4) CreateApprovedRequest for a user and device returns the same request again and orders the install again', async () => {
    await h.t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
    const body = { applicationId: VISIO, clientGuid: BOB_LAPTOP, username: 'CONTOSO\\bob', comments: 'onboarding' };
    const first = await h.as(h.keys.write).post('/api/v1/approved-requests', body);
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ status: 'approved', source: 'approved-request', requester: { username: 'CONTOSO\\bob' } });
    const second = await h.as(h.keys.write).post('/api/v1/approved-requests', body);
    expect(second.status).toBe(200);
    expect(second.body.id).toBe(first.body.id);
    expect(webhookTypes(await h.outbox(first.body.id)).filter((x) => x === 'app.install')).toHaveLength(2);

    const noInstall = await h.as(h.keys.write).post('/api/v1/approved-requests', { ...body, autoInstall: false });
    expect(noInstall.status).toBe(200);
    expect(webhookTypes(await h.outbox(first.body.id)).filter((x) => x === 'app.install')).toHaveLength(2);
  });

  it('(4b) CreateApprovedRequest for an application requested per person settles their request, whichever device it names', async () => {
    await h
      .as(h.keys.admin)
      .post('/api/v1/applications', {
        id: 'App_per_person',
        name: 'PerPerson',
        perDevice: false,
        policy: { justification: 'optional', stages: [{ approvers: ['it-approvers'] }] },
      })
      .expect(201);
    await h.t.tdb.db.query(`INSERT INTO devices (client_guid, name) VALUES ('GUID:KIOSK-01', 'KIOSK-01')`);
    const pending = await h.as(h.keys.write).post('/api/v1/requests', { applicationId: 'App_per_person', username: 'CONTOSO\\bob' });
    expect(pending.body).toMatchObject({ status: 'pending', device: null });
    const body = { applicationId: 'App_per_person', username: 'CONTOSO\\bob', clientGuid: BOB_LAPTOP };
    const approved = await h.as(h.keys.write).post('/api/v1/approved-requests', body);
    expect(approved.status).toBe(200);
    expect(approved.body).toMatchObject({ id: pending.body.id, status: 'approved', device: null });
    const elsewhere = await h.as(h.keys.write).post('/api/v1/approved-requests', { ...body, clientGuid: 'GUID:KIOSK-01' });
    expect(elsewhere.body.id).toBe(pending.body.id);
    const rows = await h.t.tdb.db.query(`SELECT status FROM requests WHERE application_id = 'App_per_person'`);
    expect(rows).toEqual([{ status: 'approved' }]);
  });

  it('(5) a machine-only CreateApprovedRequest always installs, even when asked not to', async () => {
    const first = await h
      .as(h.keys.write)
      .post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP, autoInstall: false });
    expect(first.status).toBe(201);
    expect(first.body).toMatchObject({ status: 'approved', requester: null, device: { clientGuid: BOB_LAPTOP }, autoInstall: true });
    const rows = await h.outbox(first.body.id);
    expect(webhookTypes(rows)).toContain('app.install');
    expect(rows.flatMap((r) => webhooksOfRow(r)).find((w: any) => w.type === 'app.install')!.data).toMatchObject({
      username: null,
      clientGuid: BOB_LAPTOP,
    });
    const again = await h.as(h.keys.write).post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    expect(again.status).toBe(200);
    expect(again.body.id).toBe(first.body.id);
    expect(webhookTypes(await h.outbox(first.body.id)).filter((x) => x === 'app.install')).toHaveLength(2);
  });

  it('cancels, revokes and orders installs through their own routes', async () => {
    await h.t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
    const a = await submit();
    const cancelled = await h.as(h.keys.write).post(`/api/v1/requests/${a.body.id}/cancel`, { reason: 'not needed' });
    expect(cancelled.status).toBe(200);
    expect(cancelled.body.status).toBe('cancelled');
    // the stage that was waiting shows why it ended, not that it was skipped
    const detail = await h.as(h.keys.read).get(`/api/v1/requests/${a.body.id}`).expect(200);
    expect(detail.body.stages.map((st: { status: string }) => st.status)).toEqual(['cancelled']);
    const twice = await h.as(h.keys.write).post(`/api/v1/requests/${a.body.id}/cancel`, {});
    expect(twice.status).toBe(409);
    expect(twice.body).toMatchObject({ code: 'already_decided', currentStatus: 'cancelled' });

    const b = await submit();
    await h.as(h.keys.write).post(`/api/v1/requests/${b.body.id}/approve`, { approver: 'CONTOSO\\ada' }).expect(200);
    const install = await h.as(h.keys.write).post(`/api/v1/requests/${b.body.id}/install`);
    expect(install.status).toBe(200);
    expect(webhookTypes(await h.outbox(b.body.id)).filter((x) => x === 'app.install')).toHaveLength(2);
    // the system that asked is named, not a user who did nothing
    const ordered = (await h.outbox(b.body.id)).flatMap((r) => webhooksOfRow(r)).filter((w: any) => w.type === 'app.install');
    expect(ordered.at(-1)!.data.reason).toMatch(/^install now requested by api:/);
    const revoke = await h
      .as(h.keys.write)
      .post(`/api/v1/requests/${b.body.id}/revoke`, { reason: 'left the team', approver: 'CONTOSO\\cyd' });
    expect(revoke.body.status).toBe('revoked');
    expect(webhookTypes(await h.outbox(b.body.id)).at(-1)).toBe('app.uninstall');
    const installRevoked = await h.as(h.keys.write).post(`/api/v1/requests/${b.body.id}/install`, {});
    expect(installRevoked.status).toBe(409);
    expect(installRevoked.body).toMatchObject({ code: 'invalid_transition', currentStatus: 'revoked' });
  });

  it('refuses a second pending request with 409 and the existing request id', async () => {
    await h.t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
    const a = await submit();
    const b = await submit();
    expect(b.status).toBe(409);
    expect(b.headers['content-type']).toMatch(/^application\/problem\+json/);
    expect(b.body).toMatchObject({
      code: 'already_pending',
      requestId: a.body.id,
      currentStatus: 'pending',
      type: 'https://signoff.dev/problems/already_pending',
    });
  });

  it('lists with filters and cursors', async () => {
    const all = await h.as(h.keys.read).get('/api/v1/requests?limit=2');
    expect(all.status).toBe(200);
    expect(all.body.items).toHaveLength(2);
    expect(all.body.nextCursor).toEqual(expect.any(String));
    const seen = new Set<string>(all.body.items.map((x: { id: string }) => x.id));
    let cursor = all.body.nextCursor;
    while (cursor) {
      const page = await h.as(h.keys.read).get(`/api/v1/requests?limit=2&cursor=${encodeURIComponent(cursor)}`);
      for (const x of page.body.items) {
        expect(seen.has(x.id)).toBe(false);
        seen.add(x.id);
      }
      cursor = page.body.nextCursor;
    }
    expect(seen.size).toBe(Number((await h.t.tdb.db.one('SELECT count(*) AS n FROM requests')).n));
    const pending = await h
      .as(h.keys.read)
      .get(`/api/v1/requests?status=pending&username=${encodeURIComponent('contoso\\BOB')}&clientGuid=${encodeURIComponent(BOB_LAPTOP)}`);
    expect(pending.body.items.length).toBeGreaterThan(0);
    for (const x of pending.body.items) expect(x).toMatchObject({ status: 'pending', requester: { username: 'CONTOSO\\bob' } });
    const machine = await h.as(h.keys.read).get(`/api/v1/requests?applicationId=${encodeURIComponent(VISIO)}&status=approved`);
    expect(machine.body.items.every((x: { status: string }) => x.status === 'approved')).toBe(true);
  });
});
