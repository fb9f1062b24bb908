import supertest from 'supertest';
import type { QueryRunner } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CaseInsensitiveResources1763910000000 } from '../../migrations/1763910000000-case-insensitive-resources.ts';
import { verifyAudit } from '../../src/core/audit-chain.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { createApiHarness, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;
beforeAll(async () => {
  h = await createApiHarness();
});
afterAll(() => h.close());

const change = (resourceType: string, resourceId: string, after = 'echo new') => ({
  resourceType,
  resourceId,
  before: { body: 'echo old' },
  after: { body: after },
  justification: 'Fix the cleanup script',
  requestedBy: 'CONTOSO\\ada',
});
const lowerGuid = BOB_LAPTOP.toLowerCase();

describe('one resource whatever the letter case', () => {
  it('a path in another letter case is the same pending change, and the first spelling is kept', async () => {
    const c = h.as(h.keys.changes);
    const first = await c.post('/api/v1/changes', change('script', 'Scripts/Cleanup.ps1')).expect(201);
    expect(first.body).toMatchObject({ resourceType: 'script', resourceId: 'Scripts/Cleanup.ps1' });

    const before = await h.counts();
    const twin = await c.post('/api/v1/changes', change('Script', 'scripts/cleanup.ps1', 'echo other'));
    expect(twin.status).toBe(409);
    expect(twin.body).toMatchObject({ code: 'already_pending', changeId: first.body.id });
    expect(twin.body.detail).toContain('"Scripts/Cleanup.ps1"');
    expect(await h.counts()).toEqual(before);

    const listed = await c.get('/api/v1/changes?resourceId=SCRIPTS%2FCLEANUP.PS1&resourceType=SCRIPT').expect(200);
    expect(listed.body.items.map((x: { id: string }) => x.id)).toEqual([first.body.id]);

    // once it is decided, the next change to that file may be in either spelling
    await c.post(`/api/v1/changes/${first.body.id}/reject`, { approver: 'CONTOSO\\cyd', notes: 'not yet' }).expect(200);
    const next = await c.post('/api/v1/changes', change('Script', 'scripts/cleanup.ps1')).expect(201);
    expect(next.body).toMatchObject({ resourceType: 'script', resourceId: 'scripts/cleanup.ps1', approverGroups: ['it-approvers'] });
  });

  it('a resource type in another letter case is still protected', async () => {
    const res = await h.as(h.keys.changes).post('/api/v1/changes', change('APP', 'Visio')).expect(201);
    expect(res.body).toMatchObject({ resourceType: 'app', status: 'pending', approverGroups: ['it-approvers'] });
  });

  it('a client GUID in lower case names the same device for requests, approved requests and the device API', async () => {
    const w = h.as(h.keys.write);
    const submitted = await w
      .post('/api/v1/requests', {
        applicationId: VISIO,
        username: 'CONTOSO\\bob',
        clientGuid: lowerGuid,
        justification: 'diagrams',
        answers: { usage: 'Diagrams' },
      })
      .expect(201);
    expect(submitted.body.device).toMatchObject({ id: h.s.deviceId, clientGuid: BOB_LAPTOP });
    const again = await w.post('/api/v1/requests', {
      applicationId: VISIO,
      username: 'CONTOSO\\bob',
      clientGuid: BOB_LAPTOP,
      justification: 'diagrams',
      answers: { usage: 'Diagrams' },
    });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ code: 'already_pending', requestId: submitted.body.id });

    const listed = await h
      .as(h.keys.read)
      .get(`/api/v1/requests?clientGuid=${encodeURIComponent(lowerGuid)}`)
      .expect(200);
    expect(listed.body.items.map((x: { id: string }) => x.id)).toEqual([submitted.body.id]);

    // CreateApprovedRequest for the user on the lower-case GUID approves that pending request, not a second one
    const approved = await w
      .post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: lowerGuid, username: 'CONTOSO\\bob' })
      .expect(200);
    expect(approved.body).toMatchObject({ id: submitted.body.id, status: 'approved' });
    const repeat = await w
      .post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP.toUpperCase(), username: 'CONTOSO\\bob' })
      .expect(200);
    expect(repeat.body.id).toBe(submitted.body.id);
    expect((await h.t.tdb.db.one<{ n: string }>('SELECT count(*) AS n FROM requests')).n).toBe('1');

    const a = h.as(h.keys.admin);
    const device = await a.get(`/api/v1/devices/${encodeURIComponent(lowerGuid)}`).expect(200);
    expect(device.body).toMatchObject({ id: h.s.deviceId, clientGuid: BOB_LAPTOP });
    const put = await request(h, 'put', `/api/v1/devices/${encodeURIComponent(lowerGuid)}`, {
      clientGuid: BOB_LAPTOP,
      name: 'BOB-LAPTOP',
      primaryUser: 'CONTOSO\\bob',
    });
    expect(put.status).toBe(200);
    const created = await a.post('/api/v1/devices', { clientGuid: lowerGuid, name: 'TWIN' });
    expect(created.status, created.text).toBe(409);
    expect((await a.get('/api/v1/devices').expect(200)).body.items).toHaveLength(1);
  });
});

describe('upgrading a database that already holds twins', () => {
  it('keeps the oldest pending change for a resource, closes the later ones with an audit row, and then refuses twins', async () => {
    const db = h.t.tdb.db;
    const runner = { query: (sql: string, params?: unknown[]) => db.query(sql, params) } as unknown as QueryRunner;
    const migration = new CaseInsensitiveResources1763910000000();
    await db.query(`UPDATE changes SET status = 'cancelled' WHERE status = 'pending'`);
    await migration.down(runner);
    const c = h.as(h.keys.changes);
    const older = await c.post('/api/v1/changes', change('script', 'C:\\Tools\\Backup.ps1')).expect(201);
    h.t.clock.advance(60_000);
    const newer = await c.post('/api/v1/changes', change('script', 'c:\\tools\\backup.ps1')).expect(201);
    await migration.up(runner);

    expect((await c.get(`/api/v1/changes/${older.body.id}`)).body.status).toBe('pending');
    const closed = await c.get(`/api/v1/changes/${newer.body.id}`);
    expect(closed.body).toMatchObject({ status: 'expired', decisionNotes: expect.stringContaining(older.body.id) });
    expect(closed.body.history.map((x: { action: string }) => x.action)).toEqual(['change.submitted', 'change.expired']);
    expect((await verifyAudit(db)).ok).toBe(true);
    expect((await c.post('/api/v1/changes', change('script', 'C:\\TOOLS\\BACKUP.PS1'))).status).toBe(409);
  });
});

function request(harness: ApiHarness, method: 'put', path: string, body: unknown) {
  return supertest(harness.app)
    [method](path)
    .set('Authorization', `Bearer ${harness.keys.admin}`)
    .send(body as object);
}
