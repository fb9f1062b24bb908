import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startHttpServer, type RunningServer } from '../../src/integrations/http/app.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { createApiHarness, webhookTypes, type ApiHarness } from './api-harness.ts';

let h: ApiHarness;
let server: RunningServer;
let base: string;
beforeAll(async () => {
  // most of the 50 calls should meet in Postgres at once, but other test files share the server's connections
  h = await createApiHarness({}, { poolSize: 35 });
  server = await startHttpServer(h.app, 0, { host: '127.0.0.1' });
  base = `http://127.0.0.1:${server.port}/api/v1`;
});
afterAll(async () => {
  await server?.close();
  await h.close();
});

async function call(path: string, body: unknown, headers: Record<string, string> = {}) {
  const res = await fetch(`${base}${path}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${h.keys.write}`, 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as any, etag: res.headers.get('etag') };
}

/** bob's request submitted over REST; the previous round's is set aside so the same user, device and app can ask again */
async function freshSubmit() {
  await h.t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
  return call('/requests', {
    applicationId: VISIO,
    username: 'CONTOSO\\bob',
    clientGuid: BOB_LAPTOP,
    justification: 'race',
    answers: { usage: 'Other' },
  });
}

async function freshRequest(): Promise<string> {
  const r = await freshSubmit();
  expect(r.status).toBe(201);
  return r.body.id;
}

const finalTypes = ['request.approved', 'request.denied', 'request.revoked'];

async function outcomesOf(id: string) {
  const rows = await h.outbox(id);
  return { finals: rows.filter((r) => finalTypes.includes(r.type)).map((r) => r.type), webhooks: webhookTypes(rows) };
}

const approvers = ['CONTOSO\\ada', 'CONTOSO\\cyd'];

describe('concurrent decisions over HTTP', () => {
  it('50 mixed approve/deny calls with no stage, 30 rounds: one decision, 49 × 409 naming it, at most one install', async () => {
    for (let round = 0; round < 30; round++) {
      const id = await freshRequest();
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) =>
          // what a Configuration Manager client sends: no stage, no If-Match, approve and deny from two approvers
          call(`/requests/${id}/${(i + round) % 2 ? 'deny' : 'approve'}`, {
            reason: `call ${i}`,
            approver: approvers[Math.floor(i / 2) % 2],
          }),
        ),
      );
      const winners = results.filter((r) => r.status === 200);
      expect(winners, `round ${round}`).toHaveLength(1);
      const won = winners[0]!.body.request;
      const losers = results.filter((r) => r.status !== 200);
      expect(
        losers.map((r) => r.status),
        `round ${round}`,
      ).toEqual(Array(49).fill(409));
      for (const loser of losers) {
        expect(loser.body).toMatchObject({
          code: 'already_decided',
          currentStatus: won.status,
          decidedBy: won.decidedBy,
          decidedAt: won.decidedAt,
        });
      }
      const { finals, webhooks } = await outcomesOf(id);
      expect(finals, `round ${round}`).toEqual([`request.${won.status}`]);
      expect(webhooks.filter((w) => w === 'app.install')).toHaveLength(won.status === 'approved' ? 1 : 0);
      expect(webhooks).not.toContain('app.uninstall');
      const decisions = await h.t.tdb.db.one<{ n: string }>('SELECT count(*) AS n FROM request_decisions WHERE request_id = $1', [id]);
      expect(Number(decisions.n)).toBe(1);
    }
  }, 600_000);

  it('late decisions change nothing; revoke and reapprove are their own commands: install, uninstall, install', async () => {
    const id = await freshRequest();
    const approved = await call(`/requests/${id}/approve`, { approver: 'CONTOSO\\ada' });
    expect(approved.status).toBe(200);
    for (const [verb, approver] of [
      ['deny', 'CONTOSO\\cyd'],
      ['approve', 'CONTOSO\\cyd'],
      ['deny', 'CONTOSO\\ada'],
    ] as const) {
      const late = await call(`/requests/${id}/${verb}`, { approver, reason: 'late' });
      expect(late).toMatchObject({
        status: 409,
        body: { code: 'already_decided', currentStatus: 'approved', decidedBy: approved.body.request.decidedBy },
      });
    }
    expect((await call(`/requests/${id}/reapprove`, { approver: 'CONTOSO\\cyd', reason: 'again' })).body).toMatchObject({
      code: 'already_decided',
      currentStatus: 'approved',
    });
    const revoked = await call(`/requests/${id}/revoke`, { approver: 'CONTOSO\\cyd', reason: 'licence pulled' });
    expect(revoked).toMatchObject({
      status: 200,
      body: { outcome: 'revoked', status: 'revoked', decidedBy: 'Cyd Approver (api:cm-connector)' },
    });
    expect((await call(`/requests/${id}/revoke`, { approver: 'CONTOSO\\ada', reason: 'twice' })).body).toMatchObject({
      code: 'already_decided',
      currentStatus: 'revoked',
    });
    const reapproved = await call(`/requests/${id}/reapprove`, { approver: 'CONTOSO\\ada', reason: 'licence back' });
    expect(reapproved).toMatchObject({ status: 200, body: { outcome: 'reapproved', status: 'approved' } });
    const { finals, webhooks } = await outcomesOf(id);
    expect(finals).toEqual(['request.approved', 'request.revoked', 'request.approved']);
    expect(webhooks.filter((w) => w.startsWith('app.'))).toEqual(['app.install', 'app.uninstall', 'app.install']);
  });

  it('30 concurrent revokes, then 30 concurrent reapprovals: one of each, one uninstall, one install', async () => {
    const id = await freshRequest();
    expect((await call(`/requests/${id}/approve`, { approver: 'CONTOSO\\ada' })).status).toBe(200);
    for (const verb of ['revoke', 'reapprove'] as const) {
      const results = await Promise.all(
        Array.from({ length: 30 }, (_, i) => call(`/requests/${id}/${verb}`, { approver: approvers[i % 2], reason: `call ${i}` })),
      );
      expect(
        results.filter((r) => r.status === 200),
        verb,
      ).toHaveLength(1);
      expect(
        results.filter((r) => r.status === 409 && r.body.code === 'already_decided'),
        verb,
      ).toHaveLength(29);
    }
    const { webhooks } = await outcomesOf(id);
    expect(webhooks.filter((w) => w.startsWith('app.'))).toEqual(['app.install', 'app.uninstall', 'app.install']);
  });

  it('If-Match: the version from GET decides; a stale one is 412 and changes nothing', async () => {
    const id = await freshRequest();
    const get = await fetch(`${base}/requests/${id}`, { headers: { authorization: `Bearer ${h.keys.write}` } });
    const etag = get.headers.get('etag')!;
    expect(etag).toMatch(/^"\d+"$/);
    const again = await fetch(`${base}/requests/${id}`, { headers: { authorization: `Bearer ${h.keys.write}`, 'if-none-match': etag } });
    expect(again.status).toBe(304);

    // two approvers read the same version; both decide with it: one wins, the other is told the request moved on
    const [a, b] = await Promise.all([
      call(`/requests/${id}/approve`, { approver: 'CONTOSO\\ada' }, { 'if-match': etag }),
      call(`/requests/${id}/deny`, { approver: 'CONTOSO\\cyd', reason: 'no' }, { 'if-match': etag }),
    ]);
    const [win, lose] = a.status === 200 ? [a, b] : [b, a];
    expect(win.status).toBe(200);
    expect(win.etag).not.toBe(etag);
    expect(lose).toMatchObject({
      status: 412,
      body: { code: 'precondition_failed', currentVersion: win.body.request.version, decidedBy: win.body.request.decidedBy },
    });
    const before = await h.counts();
    expect(
      (
        await call(
          `/requests/${id}/${win.body.request.status === 'approved' ? 'revoke' : 'reapprove'}`,
          { approver: 'CONTOSO\\cyd', reason: 'x' },
          { 'if-match': etag },
        )
      ).status,
    ).toBe(412);
    expect(await h.counts()).toEqual(before);
    // the current ETag works
    const current = win.etag!;
    const reversed = await call(
      `/requests/${id}/${win.body.request.status === 'approved' ? 'revoke' : 'reapprove'}`,
      { approver: 'CONTOSO\\cyd', reason: 'x' },
      { 'if-match': current },
    );
    expect(reversed.status).toBe(200);
  });

  it('a create answers with the version as its ETag, which If-Match then takes', async () => {
    const submitted = await freshSubmit();
    expect(submitted).toMatchObject({ status: 201, etag: `"${submitted.body.version}"` });
    expect(
      (await call(`/requests/${submitted.body.id}/approve`, { approver: 'CONTOSO\\ada' }, { 'if-match': submitted.etag! })).status,
    ).toBe(200);
    const preApproved = await call('/approved-requests', { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    expect(preApproved).toMatchObject({ status: 201, etag: `"${preApproved.body.version}"` });
    const change = await h
      .as(h.keys.changes)
      .post('/api/v1/changes', {
        resourceType: 'script',
        resourceId: 'scripts/etag.ps1',
        before: null,
        after: { body: 'x' },
        justification: 'etag',
      })
      .expect(201);
    expect(change.headers.etag).toBe(`"${change.body.version}"`);
  });

  it('If-Match compares strongly: a weak tag never matches, any tag of a list will do, garbage is a 400', async () => {
    const id = await freshRequest();
    const before = await h.counts();
    const weak = await call(`/requests/${id}/deny`, { approver: 'CONTOSO\\ada', reason: 'no' }, { 'if-match': 'W/"1"' });
    expect(weak).toMatchObject({ status: 412, body: { code: 'precondition_failed', detail: expect.stringMatching(/only weak ETags/) } });
    const foreign = await call(`/requests/${id}/deny`, { approver: 'CONTOSO\\ada', reason: 'no' }, { 'if-match': 'W/"2da-Ub1f", "x"' });
    expect(foreign.status).toBe(412);
    const garbage = await call(`/requests/${id}/deny`, { approver: 'CONTOSO\\ada', reason: 'no' }, { 'if-match': 'version 1' });
    expect(garbage).toMatchObject({ status: 400, body: { code: 'validation_failed' } });
    expect(await h.counts()).toEqual(before);
    const listed = await call(`/requests/${id}/approve`, { approver: 'CONTOSO\\ada' }, { 'if-match': '"7", W/"1", "1"' });
    expect(listed).toMatchObject({ status: 200, body: { outcome: 'approved' } });
  });
});
