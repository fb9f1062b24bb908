import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import pg from 'pg';
import { verifyAudit } from '../../src/core/audit-chain.ts';
import { RequestService } from '../../src/core/request-service.ts';
import { sealAll } from '../support/audit.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';

let t: TestContext;
let s: Seeded;
beforeAll(async () => {
  t = await createTestContext();
  s = await seedContoso(t.tdb.db, {
    justification: 'optional',
    stages: [
      { approvers: ['it-approvers'], quorum: 'all' },
      { approvers: ['security'], quorum: 'any', approverJustification: true },
    ],
    decisionDeadline: 'P7D',
  });
});
afterAll(() => t.close());

describe('multi-stage approval', () => {
  it('waits for every it-approver, then moves to security, which must justify', async () => {
    const { requests } = t.ctx;
    const r = await requests.submit(s.actor(s.bob), { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    expect((await requests.decide(s.actor(s.ada), r.id, 'approve')).outcome).toBe('recorded');
    await expect(requests.decide(s.actor(s.ada), r.id, 'approve')).rejects.toMatchObject({
      code: 'already_decided',
      message: expect.stringContaining('already decided stage 1'),
    });
    await expect(requests.decide(s.actor(s.dan), r.id, 'approve')).rejects.toMatchObject({ code: 'not_an_approver' });
    const second = await requests.decide(s.actor(s.cyd), r.id, 'approve');
    expect(second).toMatchObject({ outcome: 'stage_approved', request: { status: 'pending', currentStage: 1 } });
    // stage 1's approver, too late for it, hears who settled it and when rather than that they are no approver
    await expect(requests.decide(s.actor(s.ada), r.id, 'approve')).rejects.toMatchObject({
      code: 'already_decided',
      message: expect.stringMatching(
        /^Stage 1 of this request is already settled \(approved by CONTOSO\\cyd at .*\); it is now at stage 2\.$/,
      ),
      details: { decidedBy: 'CONTOSO\\cyd' },
    });
    await expect(requests.decide(s.actor(s.dan), r.id, 'approve')).rejects.toMatchObject({
      code: 'validation_failed',
      details: { field: 'reason' },
    });
    const done = await requests.decide(s.actor(s.dan), r.id, 'approve', 'checked licence');
    expect(done).toMatchObject({ outcome: 'approved', request: { status: 'approved', decisionReason: 'checked licence' } });
    const detail = await requests.get(r.id);
    expect(detail.stages.map((x) => x.status)).toEqual(['approved', 'approved']);
    expect(detail.decisions).toHaveLength(3);
  });

  it('every it-approver voting at once, each twice: both votes count, the stage advances once, repeats change nothing', async () => {
    // a repeat that lost the race to the other approver is told stage 1 is settled, by whom and when
    const { requests } = t.ctx;
    for (let round = 0; round < 10; round++) {
      await t.tdb.db.query(`UPDATE requests SET status = 'revoked' WHERE status IN ('approved','pending')`);
      const r = await requests.submit(s.actor(s.bob), { applicationId: VISIO, clientGuid: BOB_LAPTOP });
      const calls = [s.ada, s.cyd, s.ada, s.cyd].map((who) =>
        requests.decide(s.actor(who), r.id, 'approve').then(
          (x) => x.outcome,
          (e) => (e as { code: string }).code,
        ),
      );
      const outcomes = await Promise.all(calls);
      expect(outcomes.filter((o) => o === 'recorded' || o === 'stage_approved').sort(), `round ${round}`).toEqual([
        'recorded',
        'stage_approved',
      ]);
      for (const o of outcomes.filter((x) => x !== 'recorded' && x !== 'stage_approved')) expect(o).toBe('already_decided');
      const detail = await requests.get(r.id);
      expect(detail).toMatchObject({ status: 'pending', currentStage: 1 });
      expect(detail.decisions.map((d) => d.approver.id).sort()).toEqual([s.ada.id, s.cyd.id].sort());
      const events = await t.tdb.db.query<{ type: string }>(`SELECT type FROM outbox WHERE subject_id = $1 ORDER BY seq`, [r.id]);
      expect(events.map((e) => e.type)).toEqual(['request.submitted', 'request.decision_recorded', 'request.stage_advanced']);
    }
    await t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status = 'pending'`);
  });

  it('calls naming no stage that all read stage 1 decide stage 1 only, even from people who also approve stage 2', async () => {
    // as external systems call: no stage, no If-Match. Ada is in both stages' groups for this test. Every call reads
    // the request before any writes (a gate holds the first writes until all six are there); a call of hers that
    // lost stage 1 was read again and counted on stage 2, so one burst approved the whole request
    const security = (await t.tdb.db.one<{ id: string }>(`SELECT id FROM approver_groups WHERE name = 'security'`)).id;
    await t.tdb.db.query('INSERT INTO approver_group_members VALUES ($1, $2)', [security, s.ada.id]);
    const callers = [s.ada, s.cyd, s.ada, s.cyd, s.ada, s.ada];
    let held: (() => void)[] = [];
    const gated = new Proxy(t.tdb.db, {
      get(target, prop) {
        if (prop === 'maybeOne') {
          return async (sql: string, params?: unknown[]) => {
            if (sql.startsWith('WITH moved AS (UPDATE requests') && held.length < callers.length) {
              await new Promise<void>((open) => {
                held.push(open);
                if (held.length === callers.length) for (const go of held) go();
              });
            }
            return target.maybeOne(sql, params);
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === 'function' ? v.bind(target) : v;
      },
    });
    const requests = new RequestService(gated, t.ctx.clock);
    try {
      for (let round = 0; round < 5; round++) {
        held = [];
        await t.tdb.db.query(`UPDATE requests SET status = 'revoked' WHERE status IN ('approved','pending')`);
        const r = await requests.submit(s.actor(s.bob), { applicationId: VISIO, clientGuid: BOB_LAPTOP });
        const outcomes = await Promise.all(
          callers.map((who, i) =>
            requests.decide(s.actor(who), r.id, 'approve', `call ${i}`).then(
              (x) => x.outcome,
              (e) => (e as { code: string }).code,
            ),
          ),
        );
        expect(outcomes.filter((o) => o === 'recorded' || o === 'stage_approved').sort(), `round ${round}: ${outcomes}`).toEqual([
          'recorded',
          'stage_approved',
        ]);
        expect(outcomes.filter((o) => o !== 'recorded' && o !== 'stage_approved')).toEqual(Array(4).fill('already_decided'));
        const detail = await requests.get(r.id);
        expect(detail, `round ${round}`).toMatchObject({ status: 'pending', currentStage: 1 });
        expect(detail.decisions.map((d) => d.stage)).toEqual([0, 0]);
      }
    } finally {
      await t.tdb.db.query('DELETE FROM approver_group_members WHERE group_id = $1 AND identity_id = $2', [security, s.ada.id]);
      await t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status = 'pending'`);
    }
  });

  it('a deny at any stage ends the request and the requester can no longer cancel', async () => {
    const { requests } = t.ctx;
    await t.tdb.db.query(`UPDATE requests SET status = 'revoked' WHERE status = 'approved'`);
    const r = await requests.submit(s.actor(s.bob), { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    const d = await requests.decide(s.actor(s.cyd), r.id, 'deny', 'not licensed');
    expect(d).toMatchObject({ outcome: 'denied', request: { status: 'denied', decidedBy: s.cyd.username } });
    await expect(requests.cancel(s.actor(s.bob), r.id)).rejects.toMatchObject({ code: 'invalid_transition' });
  });

  it('only the stage that said no may reapprove, with its own justification rule; it also has to justify a deny', async () => {
    const { requests } = t.ctx;
    await t.tdb.db.query(`UPDATE requests SET status = 'revoked' WHERE status IN ('approved','pending')`);
    const r = await requests.submit(s.actor(s.bob), { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    await requests.decide(s.actor(s.ada), r.id, 'approve');
    await requests.decide(s.actor(s.cyd), r.id, 'approve');
    // security (stage 2) must justify either decision
    await expect(requests.decide(s.actor(s.dan), r.id, 'deny')).rejects.toMatchObject({
      code: 'validation_failed',
      details: { field: 'reason' },
    });
    await requests.decide(s.actor(s.dan), r.id, 'deny', 'not on the approved list');
    // stage 1's approvers cannot overrule stage 2
    await expect(requests.reapprove(s.actor(s.ada), r.id, 'I disagree')).rejects.toMatchObject({ code: 'not_an_approver' });
    await expect(requests.reapprove(s.actor(s.dan), r.id, null)).rejects.toMatchObject({ code: 'validation_failed' });
    expect(await requests.reapprove(s.actor(s.dan), r.id, 'added to the list')).toMatchObject({
      outcome: 'reapproved',
      request: { status: 'approved' },
    });
  });

  it('only the requester cancels a pending request', async () => {
    const { requests } = t.ctx;
    await t.tdb.db.query(`UPDATE requests SET status = 'revoked' WHERE status IN ('approved','pending')`);
    const r = await requests.submit(s.actor(s.bob), { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    await expect(requests.cancel(s.actor(s.ada), r.id)).rejects.toMatchObject({ code: 'forbidden' });
    expect((await requests.cancel(s.actor(s.bob), r.id, 'changed my mind')).status).toBe('cancelled');
  });

  it('the audit chain verifies, and an edited row is found', async () => {
    await sealAll(t.tdb.db);
    const before = await verifyAudit(t.tdb.db);
    expect(before.ok).toBe(true);
    expect(before.checked).toBeGreaterThan(5);
    await expect(t.tdb.db.query(`UPDATE audit_events SET actor_label = 'mallory' WHERE id = 3`)).rejects.toThrow(/append-only/);
    const client = new pg.Client({ connectionString: t.tdb.url });
    await client.connect();
    await client.query(`SET session_replication_role = replica`);
    await client.query(`UPDATE audit_events SET actor_label = 'mallory' WHERE id = 3`);
    await client.end();
    const after = await verifyAudit(t.tdb.db);
    expect(after).toMatchObject({ ok: false, firstBroken: { id: '3', reason: expect.stringContaining('edited') } });
    expect(after.checked).toBe(2);
  });
});
