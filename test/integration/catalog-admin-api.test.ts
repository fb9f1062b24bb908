import request from 'supertest';
import type { Express } from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/core/api-keys.ts';
import { createHttpApp } from '../../src/integrations/http/app.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

const VISIO = 'ScopeId_2E4DAE44-C9A0-4694-8B7A-474424C080D4/Application_88808a3a-86e4-4820-be59-aa7d61cb8c33';
const enc = encodeURIComponent;

let t: TestContext;
let app: Express;
let admin: string;
let reader: string;

beforeAll(async () => {
  t = await createTestContext();
  app = createHttpApp(t.ctx);
  admin = (await createApiKey(t.tdb.db, 'ops', ['admin'])).key;
  reader = (await createApiKey(t.tdb.db, 'reporting', ['requests:read'])).key;
});
afterAll(() => t.close());

const as = (key: string) => ({
  get: (p: string) => request(app).get(p).set('Authorization', `Bearer ${key}`),
  post: (p: string, body?: object) =>
    request(app)
      .post(p)
      .set('Authorization', `Bearer ${key}`)
      .send(body ?? {}),
  put: (p: string, body: object) => request(app).put(p).set('Authorization', `Bearer ${key}`).send(body),
  delete: (p: string) => request(app).delete(p).set('Authorization', `Bearer ${key}`),
});
const auditCount = async () => (await t.tdb.db.one<{ n: number }>('SELECT count(*)::int AS n FROM audit_events')).n;

describe('admin API for the catalog', () => {
  it('needs the admin scope', async () => {
    const res = await as(reader).get('/api/v1/identities');
    expect(res.status).toBe(403);
  });

  it('creates, reads, replaces and deletes identities by id or URL-encoded username', async () => {
    const ada = await as(admin).post('/api/v1/identities', {
      username: 'CONTOSO\\ada',
      displayName: 'Ada Admin',
      email: 'ada@contoso.com',
      slack: 'U0ADA',
    });
    expect(ada.status).toBe(201);
    expect(ada.headers.location).toBe(`/api/v1/identities/${ada.body.id}`);
    expect(ada.body).toMatchObject({ username: 'CONTOSO\\ada', guest: false, teams: null });
    const dup = await as(admin).post('/api/v1/identities', { username: 'contoso\\ADA', displayName: 'Again' });
    expect(dup.status).toBe(409);
    expect(dup.body.code).toBe('conflict');

    expect((await as(admin).get(`/api/v1/identities/${enc('CONTOSO\\ada')}`)).body.id).toBe(ada.body.id);
    expect((await as(admin).get(`/api/v1/identities/${ada.body.id}`)).body.username).toBe('CONTOSO\\ada');
    expect((await as(admin).get(`/api/v1/identities/${enc('CONTOSO\\nobody')}`)).status).toBe(404);

    const put = await as(admin).put(`/api/v1/identities/${ada.body.id}`, {
      username: 'CONTOSO\\ada',
      displayName: 'Ada Lovelace',
      email: 'ada@contoso.com',
      slack: 'U0ADA',
    });
    expect(put.status).toBe(200);
    expect(put.headers['signoff-outcome']).toBe('updated');
    const again = await as(admin).put(`/api/v1/identities/${ada.body.id}`, {
      username: 'CONTOSO\\ada',
      displayName: 'Ada Lovelace',
      email: 'ada@contoso.com',
      slack: 'U0ADA',
    });
    expect(again.headers['signoff-outcome']).toBe('unchanged');

    const bob = await as(admin).put(`/api/v1/identities/${enc('CONTOSO\\bob')}`, { username: 'CONTOSO\\bob', displayName: 'Bob' });
    expect(bob.status).toBe(201);
    const mismatch = await as(admin).put(`/api/v1/identities/${enc('CONTOSO\\zed')}`, { username: 'CONTOSO\\bob', displayName: 'Bob' });
    expect(mismatch.status).toBe(404);

    const bad = await as(admin).post('/api/v1/identities', { username: 'bob', displayName: 'x', colour: 'blue' });
    expect(bad.status).toBe(400);
    expect(bad.body.code).toBe('validation_failed');
    expect(bad.body.errors.map((e: { field: string }) => e.field).sort()).toEqual(['colour', 'username']);

    expect((await as(admin).get('/api/v1/identities')).body.items.map((i: { username: string }) => i.username)).toEqual([
      'CONTOSO\\ada',
      'CONTOSO\\bob',
    ]);
  });

  it('manages groups, policies and applications with reference checks', async () => {
    const badGroup = await as(admin).post('/api/v1/approver-groups', { name: 'it-approvers', members: ['CONTOSO\\ghost'] });
    expect(badGroup.status).toBe(400);
    expect(badGroup.body.detail).toContain('no identity "CONTOSO\\ghost" exists');
    const group = await as(admin).post('/api/v1/approver-groups', {
      name: 'it-approvers',
      members: ['contoso\\ada'],
      slackChannel: 'C0APPROVE',
    });
    expect(group.status).toBe(201);
    expect(group.body.members).toEqual(['CONTOSO\\ada']);

    const noGroup = await as(admin).post('/api/v1/policies', { name: 'standard', stages: [{ approvers: ['nobody'] }] });
    expect(noGroup.status).toBe(400);
    expect(noGroup.body.errors).toEqual([
      { field: 'stages.0.approvers', message: expect.stringContaining('no approver group "nobody" exists') },
    ]);
    const policy = await as(admin).post('/api/v1/policies', {
      name: 'standard',
      stages: [{ approvers: ['it-approvers'] }],
      accessLifetime: 'P30D',
    });
    expect(policy.status).toBe(201);
    expect(policy.body).toMatchObject({ name: 'standard', inline: false, justification: 'required', decisionDeadline: 'P14D' });

    const created = await as(admin).put(`/api/v1/applications/${enc(VISIO)}`, { id: VISIO, name: 'Visio', policyName: 'standard' });
    expect(created.status).toBe(201);
    expect(created.headers.location).toBe(`/api/v1/applications/${enc(VISIO)}`);
    expect((await as(admin).get(`/api/v1/applications/${enc(VISIO)}`)).body).toMatchObject({
      id: VISIO,
      policyName: 'standard',
      policy: null,
      requestable: true,
      visibility: 'visible',
    });

    // referenced things cannot go
    const delPolicy = await as(admin).delete('/api/v1/policies/standard');
    expect(delPolicy.status).toBe(409);
    expect(delPolicy.body.detail).toContain('application "Visio"');
    const delGroup = await as(admin).delete('/api/v1/approver-groups/it-approvers');
    expect(delGroup.status).toBe(409);
    const delAda = await as(admin).delete(`/api/v1/identities/${enc('CONTOSO\\ada')}`);
    expect(delAda.status).toBe(409);
    expect(delAda.body.detail).toContain('member of approver group "it-approvers"');

    // switching to an inline policy stores it as app:<application id>; switching back removes it
    const inline = await as(admin).put(`/api/v1/applications/${enc(VISIO)}`, {
      id: VISIO,
      name: 'Visio',
      policy: { stages: [{ approvers: ['it-approvers'] }], justification: 'optional' },
    });
    expect(inline.status).toBe(200);
    expect(inline.body).toMatchObject({ policyName: null, policy: { justification: 'optional' } });
    expect((await as(admin).get('/api/v1/policies')).body.items.map((p: { name: string; inline: boolean }) => [p.name, p.inline])).toEqual([
      [`app:${VISIO}`, true],
      ['standard', false],
    ]);
    const editInline = await as(admin).put(`/api/v1/policies/${enc(`app:${VISIO}`)}`, {
      name: `app:${VISIO}`,
      stages: [{ approvers: ['it-approvers'] }],
    });
    expect(editInline.status).toBe(400);
    await as(admin).put(`/api/v1/applications/${enc(VISIO)}`, { id: VISIO, name: 'Visio', policyName: 'standard' });
    expect((await as(admin).get('/api/v1/policies')).body.items.map((p: { name: string }) => p.name)).toEqual(['standard']);

    const renamed = await as(admin).put(`/api/v1/applications/${enc(VISIO)}`, { id: 'ScopeId_X/Application_other', name: 'Visio' });
    expect(renamed.status).toBe(400);

    expect((await as(admin).delete(`/api/v1/applications/${enc(VISIO)}`)).status).toBe(204);
    expect((await as(admin).get(`/api/v1/applications/${enc(VISIO)}`)).status).toBe(404);
    expect((await as(admin).delete('/api/v1/policies/standard')).status).toBe(204);
  });

  it('refuses to rename a group or a person that policies name, naming those; an unnamed one renames', async () => {
    await as(admin).post('/api/v1/identities', { username: 'CONTOSO\\ren', displayName: 'Ren' }).expect(201);
    await as(admin)
      .post('/api/v1/approver-groups', { name: 'g-ren', members: ['CONTOSO\\ren'] })
      .expect(201);
    await as(admin)
      .post('/api/v1/policies', {
        name: 'p-ren',
        stages: [{ approvers: ['g-ren'] }],
        requestors: { allMembers: false, identities: ['CONTOSO\\ren'] },
      })
      .expect(201);
    await as(admin)
      .post('/api/v1/change-policies', { name: 'cp-ren', resourceTypes: ['ren-script'], approvers: ['g-ren'] })
      .expect(201);
    const before = await auditCount();
    const group = await as(admin).put('/api/v1/approver-groups/g-ren', { name: 'g-ren2', members: ['CONTOSO\\ren'] });
    expect(group.status).toBe(409);
    expect(group.body.detail).toMatch(/cannot be renamed while it is named elsewhere: .*"p-ren".*change policy "cp-ren"/);
    const person = await as(admin).put(`/api/v1/identities/${enc('CONTOSO\\ren')}`, { username: 'CONTOSO\\ren2', displayName: 'Ren' });
    expect(person.status).toBe(409);
    expect(person.body.detail).toMatch(/named as a requestor in policy "p-ren"/);
    expect(await auditCount()).toBe(before);
    await as(admin).get('/api/v1/approver-groups/g-ren').expect(200);
    // once nothing names it, the group renames
    await as(admin).delete('/api/v1/change-policies/cp-ren').expect(204);
    await as(admin).delete('/api/v1/policies/p-ren').expect(204);
    await as(admin)
      .put('/api/v1/approver-groups/g-ren', { name: 'g-ren2', members: ['CONTOSO\\ren'] })
      .expect(200);
  });

  it('names the field another record already holds, and the key that still binds a person', async () => {
    await as(admin).post('/api/v1/identities', { username: 'CONTOSO\\uno', displayName: 'Uno', slack: 'U0UNO' }).expect(201);
    const twin = await as(admin).post('/api/v1/identities', { username: 'CONTOSO\\dos', displayName: 'Dos', slack: 'U0UNO' });
    expect(twin.status).toBe(409);
    expect(twin.body).toMatchObject({ code: 'conflict', detail: 'Another record already has slack "U0UNO".' });
    expect(twin.body.errors.map((e: { field: string }) => e.field)).toEqual(['slack']);
    const uno = await as(admin)
      .get(`/api/v1/identities/${enc('CONTOSO\\uno')}`)
      .expect(200);
    await createApiKey(t.tdb.db, 'as-uno', ['requests:read'], uno.body.id);
    const gone = await as(admin).delete(`/api/v1/identities/${enc('CONTOSO\\uno')}`);
    expect(gone.status).toBe(409);
    expect(gone.body.detail).toMatch(/API key bound to it/);
  });

  it('takes back what GET returned, edited, with PUT: read-only fields and nulls are not refused', async () => {
    const made: [string, object][] = [
      ['/api/v1/identities', { username: 'CONTOSO\\rt', displayName: 'Round Trip' }],
      ['/api/v1/devices', { clientGuid: 'GUID:RT-0001', name: 'RT-PC' }],
      ['/api/v1/approver-groups', { name: 'g-rt', members: ['CONTOSO\\rt'] }],
      ['/api/v1/policies', { name: 'p-rt', stages: [{ approvers: ['g-rt'] }] }],
      ['/api/v1/applications', { id: 'App_rt', name: 'RoundTrip', policyName: 'p-rt' }],
      ['/api/v1/change-policies', { name: 'cp-rt', resourceTypes: ['rt-script'], approvers: ['g-rt'] }],
      ['/api/v1/webhooks', { name: 'wh-rt', url: 'https://dm.example.com/rt', events: ['app.install'] }],
    ];
    for (const [path, body] of made) {
      const created = await as(admin).post(path, body).expect(201);
      const read = (
        await as(admin)
          .get(`${path}/${enc(created.body.id)}`)
          .expect(200)
      ).body;
      const same = await as(admin).put(`${path}/${enc(created.body.id)}`, read);
      expect(same.status, `${path}: ${same.text}`).toBe(200);
      expect(same.headers['signoff-outcome'], path).toBe('unchanged');
    }
    // an edit made on what GET returned applies; a field no object has is still refused
    const read = (
      await as(admin)
        .get(`/api/v1/identities/${enc('CONTOSO\\rt')}`)
        .expect(200)
    ).body;
    const edited = await as(admin)
      .put(`/api/v1/identities/${enc('CONTOSO\\rt')}`, { ...read, email: 'rt@contoso.com' })
      .expect(200);
    expect(edited.body).toMatchObject({ email: 'rt@contoso.com', displayName: 'Round Trip' });
    await as(admin)
      .put(`/api/v1/identities/${enc('CONTOSO\\rt')}`, { ...read, emial: 'x' })
      .expect(400);
  });

  it('manages devices by client GUID', async () => {
    const dev = await as(admin).post('/api/v1/devices', { clientGuid: 'GUID:ABC-1', name: 'BOB-LAPTOP', primaryUser: 'CONTOSO\\bob' });
    expect(dev.status).toBe(201);
    expect(dev.body).toMatchObject({ primaryUser: 'CONTOSO\\bob' });
    expect((await as(admin).get('/api/v1/devices/guid:abc-1')).body.id).toBe(dev.body.id);
    const noUser = await as(admin).put('/api/v1/devices/GUID:ABC-1', {
      clientGuid: 'GUID:ABC-1',
      name: 'BOB-LAPTOP',
      primaryUser: 'CONTOSO\\zed',
    });
    expect(noUser.status).toBe(400);
    expect((await as(admin).delete(`/api/v1/devices/${dev.body.id}`)).status).toBe(204);
  });

  it('never lists a webhook secret; create and rotate return it once', async () => {
    const before = await auditCount();
    const hook = await as(admin).post('/api/v1/webhooks', { name: 'dm', url: 'http://127.0.0.1:9/hooks', events: ['app.install'] });
    expect(hook.status).toBe(201);
    expect(hook.body.secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    expect(hook.body.secretHint).toBe(`whsec_…${hook.body.secret.slice(-4)}`);
    const listed = await as(admin).get('/api/v1/webhooks');
    expect(JSON.stringify(listed.body)).not.toContain(hook.body.secret.slice(6, 20));
    expect((await as(admin).get('/api/v1/webhooks/dm')).body.secret).toBeUndefined();

    const same = await as(admin).put('/api/v1/webhooks/dm', { name: 'dm', url: 'http://127.0.0.1:9/hooks', events: ['app.install'] });
    expect(same.status).toBe(200);
    expect(same.headers['signoff-outcome']).toBe('unchanged');
    expect(same.body.secret).toBeUndefined();

    const rotated = await as(admin).post(`/api/v1/webhooks/${hook.body.id}/rotate-secret`);
    expect(rotated.status).toBe(200);
    expect(rotated.body.secret).not.toBe(hook.body.secret);
    const stored = await t.tdb.db.one<{ secret: string }>('SELECT secret FROM webhook_endpoints WHERE id = $1', [hook.body.id]);
    expect(stored.secret).toBe(rotated.body.secret);

    const unsafe = await as(admin).post('/api/v1/webhooks', {
      name: 'meta',
      url: 'http://169.254.169.254/latest',
      events: ['app.install'],
    });
    expect(unsafe.status).toBe(422);
    expect(unsafe.body.code).toBe('unsafe_url');

    const audit = await t.tdb.db.query<{ action: string; after: unknown }>(
      'SELECT action, after FROM audit_events WHERE id > $1 ORDER BY id',
      [before],
    );
    expect(audit.map((a) => a.action)).toEqual(['webhook.created', 'webhook.secret_rotated']);
    expect(JSON.stringify(audit)).not.toContain(hook.body.secret.slice(6, 20));
    expect((await as(admin).delete('/api/v1/webhooks/dm')).status).toBe(204);
    expect((await as(admin).delete('/api/v1/webhooks/dm')).status).toBe(404);
  });

  it('documents the routes in the OpenAPI document', async () => {
    const doc = await request(app).get('/api/v1/openapi.json');
    const paths = Object.keys(doc.body.paths);
    for (const p of [
      '/api/v1/applications',
      '/api/v1/applications/{ref}',
      '/api/v1/policies',
      '/api/v1/approver-groups',
      '/api/v1/identities',
      '/api/v1/devices',
      '/api/v1/webhooks',
      '/api/v1/webhooks/{ref}/rotate-secret',
    ]) {
      expect(paths).toContain(p);
    }
  });
});
