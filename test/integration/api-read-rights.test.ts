import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/core/api-keys.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { createApiHarness, type ApiHarness } from './api-harness.ts';

/**
 * A key bound to a person acts as that person when it reads, as when it decides: it sees what the web app shows
 * them (their own, what their groups approve, everything as an admin). A system key (bound to no one) sees all.
 */
let h: ApiHarness;
const bound: Record<string, string> = {};
beforeAll(async () => {
  h = await createApiHarness();
  for (const who of ['ada', 'bob', 'cyd', 'dan'] as const) {
    const person = h.s[who];
    bound[who] = (await createApiKey(h.t.tdb.db, `as-${who}`, ['requests:read', 'changes:write'], person.id)).key;
  }
});
afterAll(() => h.close());

describe('reads through a key bound to a person', () => {
  it('show a request to its requester and its approvers, and nothing of it to anyone else', async () => {
    const submitted = await h
      .as(h.keys.write)
      .post('/api/v1/requests', {
        applicationId: VISIO,
        username: 'CONTOSO\\bob',
        clientGuid: BOB_LAPTOP,
        justification: 'private',
        answers: { usage: 'Other' },
      })
      .expect(201);
    const id = submitted.body.id;
    for (const key of [bound.bob!, bound.cyd!, h.keys.read]) await h.as(key).get(`/api/v1/requests/${id}`).expect(200);
    const asDan = await h.as(bound.dan!).get(`/api/v1/requests/${id}`);
    expect(asDan.status).toBe(404);
    expect(asDan.text).not.toContain('private');

    const listed = async (key: string, query = '') =>
      (await h.as(key).get(`/api/v1/requests${query}`).expect(200)).body.items.map((r: { id: string }) => r.id);
    expect(await listed(bound.bob!)).toContain(id);
    expect(await listed(bound.cyd!, '?username=CONTOSO%5Cbob')).toContain(id);
    expect(await listed(bound.dan!)).not.toContain(id);
    expect(await listed(bound.dan!, '?username=CONTOSO%5Cbob')).toEqual([]);
    expect(await listed(h.keys.read)).toContain(id);
  });

  it('show a change to its author and its approvers only; one who is neither cannot propose one', async () => {
    const body = { resourceType: 'script', resourceId: 'scripts/reads.ps1', before: null, after: { body: 'x' }, justification: 'reads' };
    // an admin change is proposed by an admin or an approver of its policy, never by anyone who can reach the API
    const byBob = await h.as(bound.bob!).post('/api/v1/changes', body);
    expect(byBob).toMatchObject({ status: 403, body: { code: 'forbidden' } });
    const change = await h.as(bound.ada!).post('/api/v1/changes', body).expect(201);
    for (const key of [bound.ada!, bound.cyd!, h.keys.changes]) await h.as(key).get(`/api/v1/changes/${change.body.id}`).expect(200);
    for (const key of [bound.bob!, bound.dan!]) expect((await h.as(key).get(`/api/v1/changes/${change.body.id}`)).status).toBe(404);
    const ids = async (key: string) => (await h.as(key).get('/api/v1/changes').expect(200)).body.items.map((c: { id: string }) => c.id);
    expect(await ids(bound.cyd!)).toContain(change.body.id);
    expect(await ids(bound.dan!)).not.toContain(change.body.id);
  });
});
