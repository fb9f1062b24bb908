import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpServer, type RunningServer } from '../../src/integrations/http/app.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { createApiHarness, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;
let server: RunningServer;
let base: string;
beforeAll(async () => {
  // most of the 50 calls should meet in Postgres at once, but two other test files share its 100 connections
  h = await createApiHarness({}, { poolSize: 35 });
  server = await startHttpServer(h.app, 0, { host: '127.0.0.1' });
  base = `http://127.0.0.1:${server.port}/api/v1`;
});
afterAll(async () => {
  await server?.close();
  await h.close();
});

async function call(path: string, body: unknown, key = h.keys.write) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any };
}

async function freshRequest(): Promise<string> {
  // the previous round's request is set aside so the same user, device and app can ask again
  await h.t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
  const r = await call('/requests', { applicationId: VISIO, username: 'CONTOSO\\bob', clientGuid: BOB_LAPTOP, justification: 'race', answers: { usage: 'Other' } });
  expect(r.status).toBe(201);
  return r.body.id;
}

const finalTypes = ['request.approved', 'request.denied', 'request.revoked'];

async function outcomesOf(id: string) {
  const rows = await h.t.tdb.db.query<{ type: string }>('SELECT type FROM outbox WHERE subject_id = $1 ORDER BY seq', [id]);
  return rows.filter((r) => finalTypes.includes(r.type)).map((r) => r.type);
}

describe('concurrent decisions over HTTP', () => {
  it('50 mixed approve/deny calls for the stage a caller saw: one decision, 49 told who decided, 20 times over', async () => {
    for (let round = 0; round < 20; round++) {
      const id = await freshRequest();
      const calls = Array.from({ length: 50 }, (_, i) => {
        const decision = i % 2 === 0 ? 'approve' : 'deny';
        // a mix of named approvers and the key deciding as a trusted system
        const approver = i % 5 === 0 ? undefined : i % 3 === 0 ? 'CONTOSO\\ada' : 'CONTOSO\\cyd';
        return call(`/requests/${id}/${decision}`, { stage: 0, reason: `call ${i}`, ...(approver ? { approver } : {}) });
      });
      const results = await Promise.all(calls);
      const winners = results.filter((r) => r.status === 200);
      expect(winners, `round ${round}`).toHaveLength(1);
      const winner = winners[0]!.body;
      expect(['approved', 'denied']).toContain(winner.outcome);
      for (const loser of results.filter((r) => r.status !== 200)) {
        expect(loser.status).toBe(409);
        expect(loser.body).toMatchObject({
          code: 'already_decided', currentStatus: winner.request.status, decidedBy: winner.request.decidedBy, decidedAt: winner.request.decidedAt,
        });
      }
      expect(await outcomesOf(id)).toEqual([`request.${winner.request.status}`]);
      const decisions = await h.t.tdb.db.one<{ n: string }>('SELECT count(*) AS n FROM request_decisions WHERE request_id = $1', [id]);
      expect(Number(decisions.n)).toBe(1);
    }
  });

  it('mixed approve/deny without a stage (as a Configuration Manager client calls): one decision, no flip-flop, 10 times over', async () => {
    for (let round = 0; round < 10; round++) {
      const id = await freshRequest();
      const results = await Promise.all(Array.from({ length: 20 }, (_, i) =>
        call(`/requests/${id}/${i % 2 ? 'deny' : 'approve'}`, { reason: `call ${i}`, approver: i % 4 < 2 ? 'CONTOSO\\ada' : 'CONTOSO\\cyd' })));
      expect(results.filter((r) => r.status === 200)).toHaveLength(1);
      const losers = results.filter((r) => r.status === 409);
      expect(losers).toHaveLength(19);
      expect(losers.every((r) => r.body.code === 'already_decided' && r.body.decidedBy)).toBe(true);
      // no revoke or reapprove came out of the race: one final event, no install/uninstall pairs
      expect((await outcomesOf(id))).toHaveLength(1);
    }
  });

  it('a deny sent after the approval (not racing it) still revokes', async () => {
    const id = await freshRequest();
    expect((await call(`/requests/${id}/approve`, { approver: 'CONTOSO\\ada' })).status).toBe(200);
    const revoke = await call(`/requests/${id}/deny`, { reason: 'no longer needed' });
    expect(revoke.status).toBe(200);
    expect(revoke.body).toMatchObject({ outcome: 'revoked', request: { status: 'revoked' } });
    expect(await outcomesOf(id)).toEqual(['request.approved', 'request.revoked']);
  });

  it('50 concurrent approvals without a stage still approve exactly once', async () => {
    const id = await freshRequest();
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) =>
      call(`/requests/${id}/approve`, i % 2 ? { approver: i % 4 === 1 ? 'CONTOSO\\ada' : 'CONTOSO\\cyd' } : {})));
    expect(results.filter((r) => r.status === 200)).toHaveLength(1);
    expect(results.filter((r) => r.status === 409 && r.body.code === 'already_decided')).toHaveLength(49);
    expect(await outcomesOf(id)).toEqual(['request.approved']);
  });
});
