import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { createApiHarness, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;
let pendingId: string;
let deniedId: string;
let changeId: string;
beforeAll(async () => {
  h = await createApiHarness();
  const w = h.as(h.keys.write);
  const denied = await w.post('/api/v1/requests', {
    applicationId: VISIO,
    username: 'CONTOSO\\bob',
    clientGuid: BOB_LAPTOP,
    justification: 'first',
    answers: { usage: 'Other' },
  });
  deniedId = denied.body.id;
  await w.post(`/api/v1/requests/${deniedId}/deny`, { approver: 'CONTOSO\\ada', reason: 'no' }).expect(200);
  const pending = await w.post('/api/v1/requests', {
    applicationId: VISIO,
    username: 'CONTOSO\\bob',
    clientGuid: BOB_LAPTOP,
    justification: 'second',
    answers: { usage: 'Diagrams' },
  });
  pendingId = pending.body.id;
  const change = await h.as(h.keys.changes).post('/api/v1/changes', {
    resourceType: 'app',
    resourceId: 'visio',
    before: { v: 1 },
    after: { v: 2 },
    justification: 'bump',
    requestedBy: 'CONTOSO\\ada',
  });
  changeId = change.body.id;
  // the first use of this key, for the reuse case below
  await w
    .post('/api/v1/approved-requests', { applicationId: 'nope', clientGuid: BOB_LAPTOP }, { 'Idempotency-Key': 'reused-key' })
    .expect(404);
});
afterAll(() => h.close());

type Case = [name: string, send: () => request.Test, status: number, code: string, field?: string];

const submitBody = {
  applicationId: VISIO,
  username: 'CONTOSO\\bob',
  clientGuid: BOB_LAPTOP,
  justification: 'x',
  answers: { usage: 'Other' },
};
const raw = (path: string, body: string, type: string, key = () => h.keys.write) =>
  request(h.app).post(path).set('Authorization', `Bearer ${key()}`).set('Content-Type', type).send(body);

const cases: Case[] = [
  ['malformed JSON', () => raw('/api/v1/requests', '{"applicationId":', 'application/json'), 400, 'malformed_json'],
  ['JSON scalar body', () => raw('/api/v1/requests', '"hello"', 'application/json'), 400, 'malformed_json'],
  ['JSON array body', () => raw('/api/v1/requests', '[1,2]', 'application/json'), 400, 'validation_failed'],
  [
    'wrong type for applicationId',
    () => h.as(h.keys.write).post('/api/v1/requests', { ...submitBody, applicationId: 5 }),
    400,
    'validation_failed',
    'applicationId',
  ],
  [
    'wrong type for autoInstall',
    () => h.as(h.keys.write).post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP, autoInstall: 'yes' }),
    400,
    'validation_failed',
    'autoInstall',
  ],
  [
    'answers not an object',
    () => h.as(h.keys.write).post('/api/v1/requests', { ...submitBody, answers: 'Other' }),
    400,
    'validation_failed',
    'answers',
  ],
  [
    'unknown field',
    () => h.as(h.keys.write).post('/api/v1/requests', { ...submitBody, priority: 'high' }),
    400,
    'validation_failed',
    'priority',
  ],
  [
    'unknown field on a decision',
    () => h.as(h.keys.write).post(`/api/v1/requests/${pendingId}/approve`, { approvedBy: 'CONTOSO\\ada' }),
    400,
    'validation_failed',
    'approvedBy',
  ],
  [
    'missing username',
    () => h.as(h.keys.write).post('/api/v1/requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP }),
    400,
    'validation_failed',
    'username',
  ],
  [
    'missing before on a change',
    () => h.as(h.keys.changes).post('/api/v1/changes', { resourceType: 'app', resourceId: 'x', after: {}, justification: 'j' }),
    400,
    'validation_failed',
    'before',
  ],
  [
    'empty justification on a change',
    () => h.as(h.keys.changes).post('/api/v1/changes', { resourceType: 'app', resourceId: 'x', before: 1, after: 2, justification: '  ' }),
    400,
    'validation_failed',
    'justification',
  ],
  [
    'policy requires a justification',
    () => h.as(h.keys.write).post('/api/v1/requests', { ...submitBody, justification: undefined }),
    400,
    'validation_failed',
    'justification',
  ],
  [
    'reason and comments both',
    () => h.as(h.keys.write).post(`/api/v1/requests/${pendingId}/deny`, { reason: 'a', comments: 'b' }),
    400,
    'validation_failed',
    'comments',
  ],
  [
    'stage out of range',
    () => h.as(h.keys.write).post(`/api/v1/requests/${pendingId}/approve`, { stage: 7 }),
    400,
    'validation_failed',
    'stage',
  ],
  [
    'oversize body',
    () => h.as(h.keys.write).post('/api/v1/requests', { ...submitBody, justification: 'x'.repeat(300 * 1024) }),
    413,
    'payload_too_large',
  ],
  ['text/plain body', () => raw('/api/v1/requests', JSON.stringify(submitBody), 'text/plain'), 415, 'unsupported_media_type'],
  ['form body', () => raw('/api/v1/requests', 'applicationId=x', 'application/x-www-form-urlencoded'), 415, 'unsupported_media_type'],
  ['unknown request id', () => h.as(h.keys.read).get('/api/v1/requests/00000000-0000-4000-8000-000000000000'), 404, 'not_found'],
  ['bad uuid', () => h.as(h.keys.read).get('/api/v1/requests/not-a-uuid'), 404, 'not_found'],
  [
    'approve an unknown request',
    () => h.as(h.keys.write).post('/api/v1/requests/00000000-0000-4000-8000-000000000000/approve', {}),
    404,
    'not_found',
  ],
  [
    'unknown change id',
    () => h.as(h.keys.changes).post('/api/v1/changes/11111111-1111-4111-8111-111111111111/approve', {}),
    404,
    'not_found',
  ],
  [
    'unknown application',
    () => h.as(h.keys.write).post('/api/v1/requests', { ...submitBody, applicationId: 'App_nope' }),
    404,
    'not_found',
  ],
  [
    'unknown device',
    () => h.as(h.keys.write).post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: 'GUID:nope' }),
    404,
    'not_found',
    'clientGuid',
  ],
  [
    'unknown approver',
    () => h.as(h.keys.write).post(`/api/v1/requests/${pendingId}/approve`, { approver: 'CONTOSO\\zed' }),
    404,
    'not_found',
    'approver',
  ],
  ['bad cursor', () => h.as(h.keys.read).get('/api/v1/requests?cursor=garbage'), 400, 'validation_failed', 'cursor'],
  ['bad audit cursor', () => h.as(h.keys.admin).get('/api/v1/audit?cursor=-1'), 400, 'validation_failed', 'cursor'],
  ['bad status filter', () => h.as(h.keys.read).get('/api/v1/requests?status=maybe'), 400, 'validation_failed', 'status'],
  [
    'repeated status filter',
    () => h.as(h.keys.read).get('/api/v1/requests?status=pending&status=approved'),
    400,
    'validation_failed',
    'status',
  ],
  ['unknown query parameter', () => h.as(h.keys.read).get('/api/v1/requests?sort=asc'), 400, 'validation_failed', 'sort'],
  ['limit zero', () => h.as(h.keys.read).get('/api/v1/requests?limit=0'), 400, 'validation_failed', 'limit'],
  ['limit not a number', () => h.as(h.keys.changes).get('/api/v1/changes?limit=ten'), 400, 'validation_failed', 'limit'],
  ['bad since', () => h.as(h.keys.admin).get('/api/v1/audit?since=yesterday'), 400, 'validation_failed', 'since'],
  ['read key writes', () => h.as(h.keys.read).post('/api/v1/requests', submitBody), 403, 'forbidden'],
  [
    'request key on changes',
    () => h.as(h.keys.write).post('/api/v1/changes', { resourceType: 'app', resourceId: 'x', before: 1, after: 2, justification: 'j' }),
    403,
    'forbidden',
  ],
  ['change key on requests', () => h.as(h.keys.changes).get('/api/v1/requests'), 403, 'forbidden'],
  ['non-admin reads the audit log', () => h.as(h.keys.write).get('/api/v1/audit'), 403, 'forbidden'],
  ['missing API key', () => request(h.app).get('/api/v1/requests'), 401, 'unauthenticated'],
  ['invalid API key', () => h.as('sk_00000000_not-a-real-key').post('/api/v1/requests', submitBody), 401, 'unauthenticated'],
  [
    'Basic credentials',
    () => request(h.app).get('/api/v1/requests').set('Authorization', 'Basic YWRhOnNlY3JldA=='),
    401,
    'unauthenticated',
  ],
  [
    'not an approver',
    () => h.as(h.keys.write).post(`/api/v1/requests/${pendingId}/approve`, { approver: 'CONTOSO\\dan' }),
    403,
    'not_an_approver',
  ],
  [
    'approving your own request',
    () => h.as(h.keys.write).post(`/api/v1/requests/${pendingId}/approve`, { approver: 'CONTOSO\\bob' }),
    403,
    'self_approval',
  ],
  [
    'approving your own change',
    () => h.as(h.keys.changes).post(`/api/v1/changes/${changeId}/approve`, { approver: 'CONTOSO\\ada' }),
    403,
    'self_approval',
  ],
  [
    'decision for a stage already settled',
    () => h.as(h.keys.write).post(`/api/v1/requests/${deniedId}/approve`, { stage: 0, approver: 'CONTOSO\\cyd' }),
    409,
    'already_decided',
  ],
  [
    'a decision naming nobody',
    () => h.as(h.keys.write).post(`/api/v1/requests/${pendingId}/approve`, {}),
    403,
    'approver_required',
    'approver',
  ],
  [
    'a change decision naming nobody',
    () => h.as(h.keys.changes).post(`/api/v1/changes/${changeId}/reject`, { notes: 'no' }),
    403,
    'approver_required',
    'approver',
  ],
  [
    'revoke a pending request',
    () => h.as(h.keys.write).post(`/api/v1/requests/${pendingId}/revoke`, { approver: 'CONTOSO\\cyd', reason: 'x' }),
    409,
    'invalid_transition',
  ],
  [
    'reapprove without a reason',
    () => h.as(h.keys.write).post(`/api/v1/requests/${deniedId}/reapprove`, { approver: 'CONTOSO\\cyd' }),
    400,
    'validation_failed',
    'reason',
  ],
  [
    'a stale If-Match',
    () => h.as(h.keys.write).post(`/api/v1/requests/${pendingId}/approve`, { approver: 'CONTOSO\\cyd' }, { 'If-Match': '"99"' }),
    412,
    'precondition_failed',
  ],
  [
    'a malformed If-Match',
    () => h.as(h.keys.write).post(`/api/v1/requests/${pendingId}/approve`, { approver: 'CONTOSO\\cyd' }, { 'If-Match': 'yesterday' }),
    400,
    'validation_failed',
    'If-Match',
  ],
  ['cancelling a denied request', () => h.as(h.keys.write).post(`/api/v1/requests/${deniedId}/cancel`, {}), 409, 'invalid_transition'],
  ['a second pending request', () => h.as(h.keys.write).post('/api/v1/requests', submitBody), 409, 'already_pending'],
  [
    'a second pending change',
    () =>
      h
        .as(h.keys.changes)
        .post('/api/v1/changes', { resourceType: 'app', resourceId: 'visio', before: { v: 1 }, after: { v: 3 }, justification: 'again' }),
    409,
    'already_pending',
  ],
  [
    'a change without a difference',
    () =>
      h
        .as(h.keys.changes)
        .post('/api/v1/changes', { resourceType: 'script', resourceId: 's', before: { a: 1 }, after: { a: 1 }, justification: 'j' }),
    400,
    'validation_failed',
    'after',
  ],
  [
    'an unprotected resource type',
    () =>
      h.as(h.keys.changes).post('/api/v1/changes', { resourceType: 'printer', resourceId: 'p', before: 1, after: 2, justification: 'j' }),
    400,
    'validation_failed',
    'resourceType',
  ],
  [
    'Idempotency-Key reused with another body',
    () =>
      h
        .as(h.keys.write)
        .post('/api/v1/approved-requests', { applicationId: 'nope2', clientGuid: BOB_LAPTOP }, { 'Idempotency-Key': 'reused-key' }),
    422,
    'idempotency_key_reused',
  ],
  [
    'Idempotency-Key with spaces',
    () => h.as(h.keys.write).post('/api/v1/requests', submitBody, { 'Idempotency-Key': 'has spaces' }),
    400,
    'validation_failed',
    'Idempotency-Key',
  ],
  ['unknown API route', () => h.as(h.keys.write).get('/api/v1/requestz'), 404, 'not_found'],
  [
    'wrong method on an API route',
    () => h.as(h.keys.write).post('/api/v1/requests/00000000-0000-4000-8000-000000000000', {}),
    405,
    'method_not_allowed',
  ],
  [
    'DELETE on a collection',
    () => request(h.app).delete('/api/v1/requests').set('Authorization', `Bearer ${h.keys.write}`),
    405,
    'method_not_allowed',
  ],
  ['unknown page', () => request(h.app).get('/wp-admin'), 404, 'not_found'],
  ['POST to the liveness probe', () => request(h.app).post('/healthz'), 405, 'method_not_allowed'],
];

describe('bad input', () => {
  it(`${cases.length} bad inputs each get a stable problem and change nothing`, async () => {
    expect(cases.length).toBeGreaterThanOrEqual(30);
    const before = await h.counts();
    for (const [name, send, status, code, field] of cases) {
      const res = await send();
      const what = `${name}: ${res.status} ${res.text.slice(0, 300)}`;
      expect(res.status, what).toBe(status);
      expect(res.headers['content-type'], what).toMatch(/^application\/problem\+json/);
      expect(res.body, what).toMatchObject({
        type: `https://signoff.dev/problems/${code}`,
        code,
        status,
        title: expect.any(String),
        detail: expect.any(String),
        instance: expect.any(String),
        retryable: false,
      });
      if (field)
        expect(
          res.body.errors?.map((e: { field: string }) => e.field),
          what,
        ).toContain(field);
      if (status === 401) expect(res.headers['www-authenticate'], what).toMatch(/^Bearer realm="signoff"/);
      if (status === 405) expect(res.headers.allow, what).toBeTruthy();
      expect(await h.counts(), what).toEqual(before);
    }
  });

  it('a conflict names who decided and when', async () => {
    const res = await h.as(h.keys.write).post(`/api/v1/requests/${deniedId}/deny`, { stage: 0, approver: 'CONTOSO\\cyd' });
    expect(res.status).toBe(409);
    expect(res.body).toMatchObject({
      code: 'already_decided',
      currentStatus: 'denied',
      decidedBy: 'Ada Admin (api:cm-connector)',
      decidedAt: expect.stringMatching(/^\d{4}-/),
    });
    expect(res.body.detail).toMatch(/denied by Ada Admin \(api:cm-connector\)/);
  });
});
