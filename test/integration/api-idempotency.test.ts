import { createHash } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { canonicalJson } from '../../src/core/canonical-json.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { createApiHarness, webhookTypes, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;
beforeAll(async () => {
  h = await createApiHarness();
});
afterAll(() => h.close());

const submitBody = {
  applicationId: VISIO,
  username: 'CONTOSO\\bob',
  clientGuid: BOB_LAPTOP,
  justification: 'idem',
  answers: { usage: 'Other' },
};
const reset = () => h.t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);

describe('Idempotency-Key', () => {
  it('replays the first response exactly and creates nothing new', async () => {
    const first = await h.as(h.keys.write).post('/api/v1/requests', submitBody, { 'Idempotency-Key': 'submit-1' });
    expect(first.status).toBe(201);
    expect(first.headers['idempotent-replayed']).toBeUndefined();
    const before = await h.counts();
    // the same body with its keys in another order is the same request
    const reordered = Object.fromEntries(Object.entries(submitBody).reverse());
    const again = await h.as(h.keys.write).post('/api/v1/requests', reordered, { 'Idempotency-Key': 'submit-1' });
    expect(again.status).toBe(201);
    expect(again.headers['idempotent-replayed']).toBe('true');
    expect(again.text).toBe(first.text);
    expect(again.headers['content-type']).toBe(first.headers['content-type']);
    expect(again.headers.location).toBe(first.headers.location);
    expect(await h.counts()).toEqual(before);

    // a decision replayed is the original 200, not the 409 a second decision would get
    const approve = await h
      .as(h.keys.write)
      .post(`/api/v1/requests/${first.body.id}/approve`, { approver: 'CONTOSO\\ada' }, { 'Idempotency-Key': 'approve-1' });
    expect(approve.status).toBe(200);
    const outboxBefore = (await h.outbox(first.body.id)).length;
    const replay = await h
      .as(h.keys.write)
      .post(`/api/v1/requests/${first.body.id}/approve`, { approver: 'CONTOSO\\ada' }, { 'Idempotency-Key': 'approve-1' });
    expect(replay.status).toBe(200);
    expect(replay.text).toBe(approve.text);
    expect((await h.outbox(first.body.id)).length).toBe(outboxBefore);
    const fresh = await h.as(h.keys.write).post(`/api/v1/requests/${first.body.id}/approve`, { approver: 'CONTOSO\\ada' });
    expect(fresh.status).toBe(409);
  });

  it('replays a 4xx too, refuses the key for another body or path, and keeps keys per API key', async () => {
    const miss = await h
      .as(h.keys.write)
      .post('/api/v1/requests/00000000-0000-4000-8000-000000000000/cancel', {}, { 'Idempotency-Key': 'k-404' });
    expect(miss.status).toBe(404);
    const missAgain = await h
      .as(h.keys.write)
      .post('/api/v1/requests/00000000-0000-4000-8000-000000000000/cancel', {}, { 'Idempotency-Key': 'k-404' });
    expect(missAgain.status).toBe(404);
    expect(missAgain.headers['idempotent-replayed']).toBe('true');
    expect(missAgain.text).toBe(miss.text);

    const otherPath = await h
      .as(h.keys.write)
      .post('/api/v1/requests/00000000-0000-4000-8000-000000000001/cancel', {}, { 'Idempotency-Key': 'k-404' });
    expect(otherPath.status).toBe(422);
    expect(otherPath.body.code).toBe('idempotency_key_reused');

    // the same key string from another API key is a different key
    const other = await h
      .as(h.keys.admin)
      .post('/api/v1/requests/00000000-0000-4000-8000-000000000001/cancel', {}, { 'Idempotency-Key': 'k-404' });
    expect(other.status).toBe(404);
    expect(other.headers['idempotent-replayed']).toBeUndefined();
  });

  it('says "in progress" while the first attempt runs', async () => {
    const keyId = (await h.t.tdb.db.one<{ id: string }>(`SELECT id FROM api_keys WHERE name = 'cm-connector'`)).id;
    await h.t.tdb.db.query(
      `INSERT INTO idempotency_keys (api_key_id, key, method, path, request_hash, created_at) VALUES ($1, 'running', 'POST', '/api/v1/approved-requests', 'x', $2)`,
      [keyId, h.t.clock.now()],
    );
    const before = await h.counts();
    const res = await h
      .as(h.keys.write)
      .post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP }, { 'Idempotency-Key': 'running' });
    // the body differs from the placeholder's hash, so this is a reuse; with the same hash it is "in progress"
    expect(res.status).toBe(422);
    const hash = createHash('sha256')
      .update(canonicalJson({ applicationId: VISIO, clientGuid: BOB_LAPTOP }))
      .digest('hex');
    await h.t.tdb.db.query(`UPDATE idempotency_keys SET request_hash = $2 WHERE key = 'running' AND api_key_id = $1`, [keyId, hash]);
    const busy = await h
      .as(h.keys.write)
      .post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP }, { 'Idempotency-Key': 'running' });
    expect(busy.status).toBe(409);
    expect(busy.body).toMatchObject({ code: 'idempotency_in_progress', retryable: true });
    expect(busy.headers['retry-after']).toBe('1');
    expect(await h.counts()).toEqual(before);

    // a claim abandoned by a crashed process is taken over after a while
    h.t.clock.advance(6 * 60 * 1000);
    const taken = await h
      .as(h.keys.write)
      .post('/api/v1/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP }, { 'Idempotency-Key': 'running' });
    expect(taken.status).toBe(201);
  });

  it('lets concurrent retries with one key run the command once', async () => {
    await reset();
    const body = { applicationId: VISIO, clientGuid: BOB_LAPTOP, username: 'CONTOSO\\bob', comments: 'race' };
    const results = await Promise.all(
      Array.from({ length: 10 }, () => h.as(h.keys.write).post('/api/v1/approved-requests', body, { 'Idempotency-Key': 'race-1' })),
    );
    const ok = results.filter((r) => r.status === 201);
    expect(ok.length).toBeGreaterThanOrEqual(1);
    for (const r of results) expect([201, 409]).toContain(r.status);
    for (const r of results.filter((x) => x.status === 409)) expect(r.body.code).toBe('idempotency_in_progress');
    for (const r of ok) expect(r.text).toBe(ok[0]!.text);
    expect(webhookTypes(await h.outbox(ok[0]!.body.id)).filter((x) => x === 'app.install')).toHaveLength(1);
  });

  it('releases the key when the first attempt fails on our side, and forgets keys after 24 hours', async () => {
    await reset();
    const original = h.t.ctx.requests.submit;
    h.t.ctx.requests.submit = async () => {
      throw new Error('database exploded');
    };
    const failed = await h.as(h.keys.write).post('/api/v1/requests', submitBody, { 'Idempotency-Key': 'flaky' });
    h.t.ctx.requests.submit = original;
    expect(failed.status).toBe(500);
    expect(failed.body).toMatchObject({ code: 'internal', retryable: false });
    expect(failed.text).not.toMatch(/exploded/);
    const retried = await h.as(h.keys.write).post('/api/v1/requests', submitBody, { 'Idempotency-Key': 'flaky' });
    expect(retried.status).toBe(201);
    expect(retried.headers['idempotent-replayed']).toBeUndefined();

    h.t.clock.advance(25 * 60 * 60 * 1000);
    const reused = await h
      .as(h.keys.write)
      .post('/api/v1/requests/00000000-0000-4000-8000-000000000002/cancel', { reason: 'different' }, { 'Idempotency-Key': 'flaky' });
    expect(reused.status).toBe(404);
    const row = await h.t.tdb.db.one<{ path: string }>(
      `SELECT path FROM idempotency_keys k JOIN api_keys a ON a.id = k.api_key_id WHERE a.name = 'cm-connector' AND k.key = 'flaky'`,
    );
    expect(row.path).toBe('/api/v1/requests/00000000-0000-4000-8000-000000000002/cancel');
  });
});
