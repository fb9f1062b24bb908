import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/core/api-keys.ts';
import { buildApiRouter } from '../../src/integrations/http/app.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { createApiHarness, type ApiHarness } from './api-harness.ts';

/**
 * "Only members of the stage's approver group decide" holds for every caller: a key that is nobody decides
 * nothing, on every decision route, whatever its scopes; a named person must be eligible.
 */
let h: ApiHarness;
const ids = { pending: '', approved: '', denied: '', change: '', review: '' };
const DAY = 86_400_000;

beforeAll(async () => {
  h = await createApiHarness();
  const db = h.t.tdb.db;
  await db.query(`UPDATE policies SET definition = definition || '{"accessReviewEvery": "P30D"}'::jsonb`);
  const submit = async (guid: string) => {
    const r = await h.as(h.keys.write).post('/api/v1/requests', {
      applicationId: VISIO,
      username: 'CONTOSO\\bob',
      clientGuid: guid,
      justification: 'x',
      answers: { usage: 'Other' },
    });
    expect(r.status).toBe(201);
    return r.body.id as string;
  };
  for (const [i, name] of ['BOB-2', 'BOB-3'].entries()) {
    await db.query(`INSERT INTO devices (client_guid, name, primary_user_id) VALUES ($1, $2, $3)`, [
      `GUID:00000000-0000-4000-8000-00000000000${i + 2}`,
      name,
      h.s.bob.id,
    ]);
  }
  ids.approved = await submit(BOB_LAPTOP);
  expect((await h.as(h.keys.write).post(`/api/v1/requests/${ids.approved}/approve`, { approver: 'CONTOSO\\ada' })).status).toBe(200);
  h.t.clock.advance(30 * DAY + 60_000);
  await h.t.ctx.timers.sweep();
  ids.review = (await h.as(h.keys.read).get(`/api/v1/reviews?requestId=${ids.approved}`)).body.items[0].id;
  ids.denied = await submit('GUID:00000000-0000-4000-8000-000000000002');
  expect((await h.as(h.keys.write).post(`/api/v1/requests/${ids.denied}/deny`, { approver: 'CONTOSO\\ada', reason: 'no' })).status).toBe(
    200,
  );
  ids.pending = await submit('GUID:00000000-0000-4000-8000-000000000003');
  const c = await h.as(h.keys.changes).post('/api/v1/changes', {
    resourceType: 'script',
    resourceId: 'rights.ps1',
    before: { a: 1 },
    after: { a: 2 },
    justification: 'x',
    requestedBy: 'CONTOSO\\ada',
  });
  expect(c.status).toBe(201);
  ids.change = c.body.id;
});
afterAll(() => h.close());

type Route = { path: () => string; body: Record<string, unknown>; field: 'approver' | 'reviewer'; keys: () => string[]; requester: string };
const routes: Record<string, Route> = {
  'POST /requests/:id/approve': {
    path: () => `/requests/${ids.pending}/approve`,
    body: {},
    field: 'approver',
    keys: () => [h.keys.write, h.keys.admin],
    requester: 'CONTOSO\\bob',
  },
  'POST /requests/:id/deny': {
    path: () => `/requests/${ids.pending}/deny`,
    body: { reason: 'no' },
    field: 'approver',
    keys: () => [h.keys.write, h.keys.admin],
    requester: 'CONTOSO\\bob',
  },
  'POST /requests/:id/revoke': {
    path: () => `/requests/${ids.approved}/revoke`,
    body: { reason: 'no' },
    field: 'approver',
    keys: () => [h.keys.write, h.keys.admin],
    requester: 'CONTOSO\\bob',
  },
  'POST /requests/:id/reapprove': {
    path: () => `/requests/${ids.denied}/reapprove`,
    body: { reason: 'yes' },
    field: 'approver',
    keys: () => [h.keys.write, h.keys.admin],
    requester: 'CONTOSO\\bob',
  },
  'POST /changes/:id/approve': {
    path: () => `/changes/${ids.change}/approve`,
    body: {},
    field: 'approver',
    keys: () => [h.keys.changes, h.keys.admin],
    requester: 'CONTOSO\\ada',
  },
  'POST /changes/:id/reject': {
    path: () => `/changes/${ids.change}/reject`,
    body: { notes: 'no' },
    field: 'approver',
    keys: () => [h.keys.changes, h.keys.admin],
    requester: 'CONTOSO\\ada',
  },
  'POST /reviews/:id/keep': {
    path: () => `/reviews/${ids.review}/keep`,
    body: {},
    field: 'reviewer',
    keys: () => [h.keys.write, h.keys.admin],
    requester: 'CONTOSO\\bob',
  },
  'POST /reviews/:id/remove': {
    path: () => `/reviews/${ids.review}/remove`,
    body: { reason: 'no' },
    field: 'reviewer',
    keys: () => [h.keys.write, h.keys.admin],
    requester: 'CONTOSO\\bob',
  },
};

const snapshot = () =>
  h.t.tdb.db.one(`SELECT
  (SELECT json_agg(json_build_object('id', id, 's', status, 'v', version) ORDER BY id) FROM requests) AS requests,
  (SELECT json_agg(json_build_object('id', id, 's', status, 'v', version) ORDER BY id) FROM changes) AS changes,
  (SELECT json_agg(json_build_object('id', id, 's', status) ORDER BY id) FROM access_reviews) AS reviews,
  (SELECT count(*) FROM request_decisions) AS decisions, (SELECT count(*) FROM outbox) AS outbox`);

describe('every decision route needs an eligible person', () => {
  it('the table covers every decision route the API has', () => {
    const { registry } = buildApiRouter(h.t.ctx);
    const decisionVerbs = /\/(approve|deny|revoke|reapprove|reject|keep|remove)$/;
    const declared = registry.routes
      .filter((r) => r.method === 'post' && decisionVerbs.test(r.path))
      .map((r) => `POST ${r.path}`)
      .sort();
    expect(declared).toEqual(Object.keys(routes).sort());
  });

  for (const [name, route] of Object.entries(routes)) {
    it(`${name}: refused to keys that name nobody, to the requester, to outsiders and to unknown people; nothing changes`, async () => {
      const before = await snapshot();
      for (const key of route.keys()) {
        const res = await h.as(key).post(`/api/v1${route.path()}`, route.body);
        expect(res.status, `${name} with no ${route.field}`).toBe(403);
        expect(res.body).toMatchObject({ code: 'approver_required', errors: [{ field: route.field }] });
      }
      const as = (who: string) => h.as(route.keys()[0]!).post(`/api/v1${route.path()}`, { ...route.body, [route.field]: who });
      expect((await as(route.requester)).body.code, `${name} by the requester`).toBe('self_approval');
      expect((await as('CONTOSO\\dan')).body.code, `${name} by an outsider`).toBe('not_an_approver');
      expect((await as('CONTOSO\\nobody')).status, `${name} by an unknown person`).toBe(404);
      // a key bound to a person cannot name someone else, and is refused like that person when it is the requester
      const bobKey = (await createApiKey(h.t.tdb.db, `bob-${name}`, ['requests:write', 'changes:write'], h.s.bob.id)).key;
      expect((await h.as(bobKey).post(`/api/v1${route.path()}`, { ...route.body, [route.field]: 'CONTOSO\\cyd' })).status).toBe(403);
      expect(await snapshot()).toEqual(before);
    });
  }
});
