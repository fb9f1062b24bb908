import request from 'supertest';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readableUtc } from '../../src/core/clock.ts';
import { toDomainEvent } from '../../src/core/outbox.ts';
import type { MailMessage } from '../../src/core/ports.ts';
import { EmailNotifier } from '../../src/integrations/email/email-notifier.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { createApiHarness, webhookTypes, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;
const DAY = 86_400_000;

beforeAll(async () => {
  h = await createApiHarness();
  // the seeded policy names no reviewers: the approvers of its last (only) stage, it-approvers, review
  await h.t.tdb.db.query(`UPDATE policies SET definition = definition || '{"accessReviewEvery": "P30D"}'::jsonb`);
});
afterAll(() => h.close());

/**
 * One pending or approved request per user, device and application: bob's open Visio is cancelled or revoked
 * (which closes its open review), so no earlier review is left to be reminded or lapse.
 */
async function clearBobsVisio(): Promise<void> {
  for (const r of await h.t.tdb.db.query<{ id: string; status: string }>(
    `SELECT id, status FROM requests WHERE status IN ('pending', 'approved')`,
  )) {
    if (r.status === 'pending') await h.t.ctx.requests.cancel({ id: null, label: 'test:cleanup', channel: 'api' }, r.id);
    else await h.t.ctx.requests.revoke(h.s.actor(h.s.ada, 'api'), r.id, 'Clearing the way for the next test');
  }
}

/** An approved request for bob, then 30 days on: the sweeper opens its review. */
async function reviewedRequest(): Promise<{ requestId: string; reviewId: string }> {
  await clearBobsVisio();
  const created = await h.as(h.keys.write).post('/api/v1/requests', {
    applicationId: VISIO,
    username: 'CONTOSO\\bob',
    clientGuid: BOB_LAPTOP,
    justification: 'Diagrams',
    answers: { usage: 'Diagrams' },
  });
  expect(created.status).toBe(201);
  expect((await h.as(h.keys.write).post(`/api/v1/requests/${created.body.id}/approve`, { approver: 'CONTOSO\\ada' })).body.outcome).toBe(
    'approved',
  );
  h.t.clock.advance(30 * DAY + 60_000);
  await h.t.ctx.timers.sweep();
  const list = await h.as(h.keys.read).get(`/api/v1/reviews?requestId=${created.body.id}&status=pending`);
  expect(list.body.items).toHaveLength(1);
  return { requestId: created.body.id, reviewId: list.body.items[0].id };
}

/** A review cyd answered Keep: the request stays approved and is reviewed again 30 days on. */
async function keptReview(): Promise<{ requestId: string; reviewId: string }> {
  const r = await reviewedRequest();
  const kept = await h.as(h.keys.write).post(`/api/v1/reviews/${r.reviewId}/keep`, { reviewer: 'CONTOSO\\cyd' });
  expect(kept.body).toMatchObject({ status: 'kept', requestStatus: 'approved' });
  return r;
}

const expectProblem = (res: request.Response, status: number, code: string) => {
  expect(res.status).toBe(status);
  expect(res.headers['content-type']).toMatch(/application\/problem\+json/);
  expect(res.body).toMatchObject({ status, code });
};

describe('access reviews over the REST API', () => {
  it('lists and reads a review started by the sweeper: the access, who approved it, who may answer', async () => {
    const review = await reviewedRequest();
    const one = await h.as(h.keys.read).get(`/api/v1/reviews/${review.reviewId}`);
    expect(one.status).toBe(200);
    expect(one.body).toMatchObject({
      id: review.reviewId,
      requestId: review.requestId,
      status: 'pending',
      reviewerGroups: ['it-approvers'],
      requestStatus: 'approved',
      application: { id: VISIO, name: 'Visio' },
      requester: { username: 'CONTOSO\\bob', displayName: 'Bob User' },
      device: { name: 'BOB-LAPTOP', clientGuid: BOB_LAPTOP },
      approvedBy: 'Ada Admin (api:cm-connector)',
      approvedAt: expect.any(String),
      decidedAt: null,
      decidedBy: null,
      reason: null,
    });
    expectProblem(await h.as(h.keys.read).get('/api/v1/reviews/not-a-uuid'), 404, 'not_found');
    expectProblem(await h.as(h.keys.read).get('/api/v1/reviews?status=maybe'), 400, 'validation_failed');
    expectProblem(await h.as(h.keys.changes).get('/api/v1/reviews'), 403, 'forbidden');
  });

  it('mails the reviewers (not the requester) the question, pointing at chat and the API', async () => {
    const review = await reviewedRequest();
    const sent: MailMessage[] = [];
    const notifier = new EmailNotifier(h.t.ctx, { send: async (m) => void sent.push(m) });
    const row = await h.t.tdb.db.one<any>(`SELECT id, payload FROM outbox WHERE subject_id = $1 AND type = 'request.review_started'`, [
      review.requestId,
    ]);
    await notifier.handle(toDomainEvent(row));
    await notifier.handle(toDomainEvent(row));
    expect(sent).toHaveLength(1);
    expect(sent[0]!.to.sort()).toEqual(['ada@contoso.com', 'cyd@contoso.com', 'it-approvers@contoso.com']);
    expect(sent[0]!.subject).toBe('Access review: does Bob User still need Visio on BOB-LAPTOP?');
    expect(sent[0]!.text).toMatch(/Approved on|approved on/);
    expect(sent[0]!.text).toContain(`POST /api/v1/reviews/${review.reviewId}/keep`);
    expect(sent[0]!.text).toMatch(/Slack or Teams/);

    // a day on, unanswered: the reviewers themselves (not the shared mailbox) get a reminder, once
    sent.length = 0;
    h.t.clock.advance(86_400_000 + 60_000);
    expect((await h.t.ctx.timers.sweep()).review_reminder).toBe(1);
    const reminder = await h.t.tdb.db.one<any>(
      `SELECT id, payload FROM outbox WHERE subject_id = $1 AND type = 'request.review_reminder'`,
      [review.requestId],
    );
    expect(reminder.payload.data).toMatchObject({
      reviewId: review.reviewId,
      reviewers: ['it-approvers'],
      reviewerUsernames: ['CONTOSO\\ada', 'CONTOSO\\cyd'],
    });
    await notifier.handle(toDomainEvent(reminder));
    await notifier.handle(toDomainEvent(reminder));
    expect(sent.map((m) => [m.subject, m.to.sort()])).toEqual([
      ['Reminder: Access review: does Bob User still need Visio on BOB-LAPTOP?', ['ada@contoso.com', 'cyd@contoso.com']],
    ]);
  });

  it('refuses the wrong scope, the requester, non-reviewers, unknown people and unknown fields, changing nothing', async () => {
    const review = await reviewedRequest();
    const url = `/api/v1/reviews/${review.reviewId}/keep`;
    expectProblem(await h.as(h.keys.read).post(url, {}), 403, 'forbidden');
    expectProblem(await h.as(h.keys.write).post(url, { reviewer: 'CONTOSO\\bob' }), 403, 'self_approval');
    const outsider = await h.as(h.keys.write).post(`/api/v1/reviews/${review.reviewId}/remove`, { reviewer: 'CONTOSO\\dan', reason: 'x' });
    expectProblem(outsider, 403, 'not_an_approver');
    expect(outsider.body.detail).toMatch(/Only members of it-approvers/);
    expectProblem(await h.as(h.keys.write).post(url, { reviewer: 'CONTOSO\\nobody' }), 404, 'not_found');
    expectProblem(await h.as(h.keys.write).post(url, { approver: 'CONTOSO\\ada' }), 400, 'validation_failed');
    expectProblem(await h.as(h.keys.write).post('/api/v1/reviews/00000000-0000-4000-8000-000000000000/keep', {}), 404, 'not_found');
    expect((await h.as(h.keys.read).get(`/api/v1/reviews/${review.reviewId}`)).body.status).toBe('pending');
  });

  it('remove for a reviewer revokes the request and orders the uninstall; a second answer is 409 naming who and when', async () => {
    const review = await reviewedRequest();
    // removing someone's access says why
    const silent = await h.as(h.keys.write).post(`/api/v1/reviews/${review.reviewId}/remove`, { reviewer: 'CONTOSO\\cyd' });
    expectProblem(silent, 400, 'validation_failed');
    const removed = await h
      .as(h.keys.write)
      .post(`/api/v1/reviews/${review.reviewId}/remove`, { reviewer: 'CONTOSO\\cyd', reason: 'Left the project' });
    expect(removed.status).toBe(200);
    expect(removed.body).toMatchObject({
      status: 'removed',
      requestStatus: 'revoked',
      decidedBy: { label: 'Cyd Approver (api:cm-connector)' },
      reason: 'Left the project',
      decidedAt: expect.any(String),
    });
    const types = (await h.outbox(review.requestId)).map((r) => r.type);
    expect(types.slice(-2)).toEqual(['request.review_decided', 'request.revoked']);
    expect(webhookTypes(await h.outbox(review.requestId)).slice(-2)).toEqual(['request.revoked', 'app.uninstall']);

    const again = await h.as(h.keys.write).post(`/api/v1/reviews/${review.reviewId}/keep`, { reviewer: 'CONTOSO\\ada' });
    expectProblem(again, 409, 'already_decided');
    // the message reads like a sentence; the exact moment is a field
    expect(again.body.detail).toContain(`already removed by Cyd Approver (api:cm-connector) at ${readableUtc(removed.body.decidedAt)}`);
    expect(again.body.decidedAt).toBe(removed.body.decidedAt);
  });

  it('a key that names no reviewer answers nothing; keep by a named reviewer replays with Idempotency-Key', async () => {
    const { requestId, reviewId } = await reviewedRequest();
    const nobody = await h.as(h.keys.write).post(`/api/v1/reviews/${reviewId}/keep`, {});
    expectProblem(nobody, 403, 'approver_required');
    expect(nobody.body.errors).toEqual([{ field: 'reviewer', message: expect.stringContaining('Name the person answering') }]);
    const key = { 'Idempotency-Key': `keep-${reviewId}` };
    const kept = await h.as(h.keys.write).post(`/api/v1/reviews/${reviewId}/keep`, { reviewer: 'CONTOSO\\cyd' }, key);
    expect(kept.status).toBe(200);
    expect(kept.body).toMatchObject({ status: 'kept', requestStatus: 'approved', decidedBy: { label: 'Cyd Approver (api:cm-connector)' } });
    const replay = await h.as(h.keys.write).post(`/api/v1/reviews/${reviewId}/keep`, { reviewer: 'CONTOSO\\cyd' }, key);
    expect(replay.status).toBe(200);
    expect(replay.body).toEqual(kept.body);
    const late = await h.as(h.keys.write).post(`/api/v1/reviews/${reviewId}/remove`, { reviewer: 'CONTOSO\\ada' });
    expectProblem(late, 409, 'already_decided');
    expect(late.body.detail).toContain('already kept by Cyd Approver (api:cm-connector)');
    expect((await h.t.ctx.requests.get(requestId)).status).toBe('approved');
  });

  it('an unanswered review lapses (access kept); revoking the access closes an open review', async () => {
    // the next review of the kept request opens 30 days later and is left unanswered
    const { requestId: approved } = await keptReview();
    h.t.clock.advance(30 * DAY);
    await h.t.ctx.timers.sweep();
    const open = (await h.as(h.keys.read).get(`/api/v1/reviews?requestId=${approved}&status=pending`)).body.items[0];
    h.t.clock.advance(15 * DAY);
    await h.t.ctx.timers.sweep();
    const lapsed = await h.as(h.keys.read).get(`/api/v1/reviews/${open.id}`);
    expect(lapsed.body).toMatchObject({ status: 'lapsed', requestStatus: 'approved', decidedBy: null });
    expectProblem(await h.as(h.keys.write).post(`/api/v1/reviews/${open.id}/keep`, { reviewer: 'CONTOSO\\ada' }), 409, 'already_decided');

    h.t.clock.advance(15 * DAY);
    await h.t.ctx.timers.sweep();
    const next = (await h.as(h.keys.read).get(`/api/v1/reviews?requestId=${approved}&status=pending`)).body.items[0];
    expect(next).toBeDefined();
    expect(
      (await h.as(h.keys.write).post(`/api/v1/requests/${approved}/revoke`, { approver: 'CONTOSO\\ada', reason: 'licence pulled' })).status,
    ).toBe(200);
    const closed = await h.as(h.keys.read).get(`/api/v1/reviews/${next.id}`);
    expect(closed.body).toMatchObject({ status: 'closed', requestStatus: 'revoked', reason: 'the access was revoked first' });
    expect((await h.outbox(approved)).at(-1)).toMatchObject({
      type: 'request.review_decided',
      payload: { data: { reviewId: next.id, outcome: 'closed' } },
    });
  });

  it('pages through reviews newest first with a cursor', async () => {
    const ids = (res: request.Response) => res.body.items.map((r: any) => r.id);
    const before = ids(await h.as(h.keys.read).get('/api/v1/reviews?limit=200'));
    const removedBefore = ids(await h.as(h.keys.read).get('/api/v1/reviews?status=removed'));
    // four reviews of its own: each new approval revokes the one before (closing its review); the last is removed
    const mine: string[] = [];
    for (let i = 0; i < 4; i++) mine.push((await reviewedRequest()).reviewId);
    const removed = await h
      .as(h.keys.write)
      .post(`/api/v1/reviews/${mine[3]}/remove`, { reviewer: 'CONTOSO\\cyd', reason: 'Left the project' });
    expect(removed.body.status).toBe('removed');

    const all = (await h.as(h.keys.read).get('/api/v1/reviews?limit=200')).body.items;
    expect(all.length).toBe(before.length + 4);
    expect(all.slice(0, 4).map((r: any) => r.id)).toEqual([...mine].reverse());
    // two pages: all but one, then the last
    const limit = all.length - 1;
    const p1 = await h.as(h.keys.read).get(`/api/v1/reviews?limit=${limit}`);
    expect(p1.body.items).toHaveLength(limit);
    expect(p1.body.nextCursor).toEqual(expect.any(String));
    const p2 = await h.as(h.keys.read).get(`/api/v1/reviews?limit=${limit}&cursor=${p1.body.nextCursor}`);
    expect([...p1.body.items, ...p2.body.items].map((r: any) => r.id)).toEqual(all.map((r: any) => r.id));
    expect(p2.body.nextCursor).toBeNull();
    expect(ids(await h.as(h.keys.read).get('/api/v1/reviews?status=removed'))).toEqual([mine[3], ...removedBefore]);
  });

  it('appears in the OpenAPI document with its scopes', async () => {
    const doc = (await request(h.app).get('/api/v1/openapi.json')).body;
    expect(doc.paths['/api/v1/reviews'].get.security).toEqual([{ bearer: ['requests:read'] }]);
    expect(doc.paths['/api/v1/reviews/{id}'].get.security).toEqual([{ bearer: ['requests:read'] }]);
    for (const d of ['keep', 'remove']) {
      const op = doc.paths[`/api/v1/reviews/{id}/${d}`].post;
      expect(op.security).toEqual([{ bearer: ['requests:write'] }]);
      expect(op.requestBody.content['application/json'].schema).toMatchObject({
        additionalProperties: false,
        properties: { reason: expect.any(Object), reviewer: expect.any(Object) },
      });
    }
  });
});
