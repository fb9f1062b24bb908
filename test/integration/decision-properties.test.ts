import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { startAllChannels, type AllChannels, type ChannelResult, type DecisionChannel, type Person } from '../support/all-channels.ts';
import { webhooksOfRow } from '../support/outbox-webhooks.ts';

/**
 * The request state machine under sequences of commands from several people over every channel, checked against a
 * model that knows the rules (one outcome per stage, nothing leaves a final state but revoke/reapprove, nobody
 * decides their own request, only a stage's approvers decide it, a trusted key names a person) and against
 * invariants read back from Postgres. Concurrent pairs must match one of their two serial orders.
 */
let a: AllChannels;
const policy = {
  justification: 'optional' as const,
  stages: [
    { approvers: ['it-approvers'], quorum: 2 },
    { approvers: ['security'], approverJustification: true },
  ],
  decisionDeadline: 'P14D',
};

beforeAll(async () => {
  a = await startAllChannels({ policy, poolSize: 20 });
});
afterAll(() => a?.close());

type Who = Person | 'nobody';
type Cmd =
  | { kind: 'decide'; verb: 'approve' | 'deny'; who: Who; channel: DecisionChannel; stage?: number; reason: string | null }
  | { kind: 'reverse'; verb: 'revoke' | 'reapprove'; who: Who; via: 'api' | 'cli'; reason: string | null }
  | { kind: 'cancel'; who: 'bob' | 'ada' }
  | { kind: 'pair'; first: Cmd; second: Cmd };

interface Model {
  status: 'pending' | 'approved' | 'denied' | 'revoked' | 'cancelled';
  stage: number;
  votes: [string[], string[]];
}

const groups: Record<number, Person[]> = { 0: ['ada', 'cyd'], 1: ['dan'] };
const everyApprover: Person[] = ['ada', 'cyd', 'dan'];

/** What the rules say one command does to the model, and the answer the caller gets. */
function step(m: Model, c: Exclude<Cmd, { kind: 'pair' }>, chat: boolean): { next: Model; code: string | 'ok' } {
  const same = { next: m };
  if (c.kind === 'cancel') {
    if (c.who !== 'bob') return { ...same, code: 'forbidden' };
    if (m.status !== 'pending') return { ...same, code: m.status === 'cancelled' ? 'already_decided' : 'invalid_transition' };
    return { next: { ...m, status: 'cancelled' }, code: 'ok' };
  }
  if (c.who === 'nobody') return { ...same, code: 'approver_required' };
  if (c.kind === 'reverse') {
    if (c.verb === 'revoke') {
      if (m.status === 'revoked') return { ...same, code: 'already_decided' };
      if (m.status !== 'approved') return { ...same, code: 'invalid_transition' };
      if (c.who === 'bob') return { ...same, code: 'self_approval' };
      if (!everyApprover.includes(c.who)) return { ...same, code: 'not_an_approver' };
      if (!c.reason) return { ...same, code: 'validation_failed' };
      return { next: { ...m, status: 'revoked' }, code: 'ok' };
    }
    if (m.status === 'approved') return { ...same, code: 'already_decided' };
    if (m.status !== 'denied' && m.status !== 'revoked') return { ...same, code: 'invalid_transition' };
    if (c.who === 'bob') return { ...same, code: 'self_approval' };
    if (!groups[m.stage]!.includes(c.who)) return { ...same, code: 'not_an_approver' };
    if (!c.reason) return { ...same, code: 'validation_failed' };
    return { next: { ...m, status: 'approved' }, code: 'ok' };
  }
  if (c.who === 'bob') return { ...same, code: 'self_approval' };
  if (m.status !== 'pending') return { ...same, code: 'already_decided' };
  if (c.stage !== undefined && c.stage !== m.stage) return { ...same, code: c.stage < m.stage ? 'already_decided' : 'invalid_transition' };
  // an approver of a stage already settled is told so (who settled it, when), not that they are no approver
  if (!groups[m.stage]!.includes(c.who))
    return { ...same, code: m.stage > 0 && groups[0]!.includes(c.who) ? 'already_decided' : 'not_an_approver' };
  if (c.verb === 'deny' && chat && !c.reason) return { ...same, code: 'validation_failed' };
  if (m.stage === 1 && !c.reason) return { ...same, code: 'validation_failed' };
  if (m.votes[m.stage as 0 | 1].includes(c.who)) return { ...same, code: 'already_decided' };
  if (c.verb === 'deny') return { next: { ...m, status: 'denied' }, code: 'ok' };
  const votes: Model['votes'] = [[...m.votes[0]], [...m.votes[1]]];
  votes[m.stage as 0 | 1].push(c.who);
  if (m.stage === 0) return { next: votes[0].length >= 2 ? { ...m, stage: 1, votes } : { ...m, votes }, code: 'ok' };
  return { next: { ...m, status: 'approved', votes }, code: 'ok' };
}

const isChat = (c: Cmd) => c.kind === 'decide' && c.who !== 'nobody' && c.channel !== 'api' && c.channel !== 'cli';

/** The stage a chat prompt or email link is bound to is the one pending when it was sent: resolve it before running. */
function bind(c: Exclude<Cmd, { kind: 'pair' }>, m: Model): Exclude<Cmd, { kind: 'pair' }> {
  return c.kind === 'decide' && isChat(c) && c.stage === undefined ? { ...c, stage: m.stage } : c;
}

async function run(c: Exclude<Cmd, { kind: 'pair' }>, id: string): Promise<ChannelResult> {
  if (c.kind === 'decide') return a.decide(c.channel, c.who, c.verb, id, { stage: c.stage, reason: c.reason });
  if (c.kind === 'cancel') {
    try {
      await a.t.ctx.requests.cancel({ id: a.s[c.who].id, label: c.who, channel: 'slack' }, id);
      return { channel: 'api', ok: true };
    } catch (e) {
      return { channel: 'api', ok: false, code: (e as { code: string }).code };
    }
  }
  const body = { ...(c.who === 'nobody' ? {} : { approver: a.s[c.who].username }), ...(c.reason ? { reason: c.reason } : {}) };
  if (c.via === 'cli' && c.who !== 'nobody') {
    try {
      const actor = { id: a.s[c.who].id, label: c.who, channel: 'cli' as const };
      await (c.verb === 'revoke' ? a.t.ctx.requests.revoke(actor, id, c.reason) : a.t.ctx.requests.reapprove(actor, id, c.reason));
      return { channel: 'cli', ok: true };
    } catch (e) {
      return { channel: 'cli', ok: false, code: (e as { code: string }).code };
    }
  }
  return a.post(`/api/v1/requests/${id}/${c.verb}`, body);
}

/** Where the channel tells the code (REST, CLI, cancel), it must be the model's; elsewhere only decided or not. */
function agrees(result: ChannelResult, expected: string): boolean {
  if (result.ok !== (expected === 'ok')) return false;
  return result.code === undefined || expected === 'ok' || result.code === expected;
}

async function observed(id: string): Promise<Model> {
  const row = await a.t.tdb.db.one<{ status: Model['status']; current_stage: number }>(
    'SELECT status, current_stage FROM requests WHERE id = $1',
    [id],
  );
  const votes = await a.t.tdb.db.query<{ stage: number; username: string }>(
    `SELECT d.stage, i.username FROM request_decisions d JOIN identities i ON i.id = d.approver_id WHERE d.request_id = $1 AND d.decision = 'approve' ORDER BY d.created_at, d.id`,
    [id],
  );
  const names = (stage: number) =>
    votes
      .filter((v) => v.stage === stage)
      .map((v) => v.username.replace('CONTOSO\\', ''))
      .sort();
  return { status: row.status, stage: row.current_stage, votes: [names(0), names(1)] };
}

const norm = (m: Model): Model => ({ status: m.status, stage: m.stage, votes: [[...m.votes[0]].sort(), [...m.votes[1]].sort()] });
const same = (x: Model, y: Model) => JSON.stringify(norm(x)) === JSON.stringify(norm(y));

/** Invariants that hold whatever the model says: read straight from what was stored. */
async function checkInvariants(id: string): Promise<void> {
  const db = a.t.tdb.db;
  const selfVotes = await db.one<{ n: string }>(
    `SELECT count(*) AS n FROM request_decisions d JOIN requests r ON r.id = d.request_id WHERE d.request_id = $1 AND d.approver_id = r.requester_id`,
    [id],
  );
  expect(Number(selfVotes.n), 'nobody decides their own request').toBe(0);
  const nameless = await db.one<{ n: string }>(
    `SELECT count(*) AS n FROM request_decisions WHERE request_id = $1 AND approver_id IS NULL`,
    [id],
  );
  expect(Number(nameless.n), 'every decision names a person').toBe(0);
  const outsiders = await db.query<{ stage: number; username: string }>(
    `SELECT d.stage, i.username FROM request_decisions d JOIN identities i ON i.id = d.approver_id
      WHERE d.request_id = $1 AND NOT EXISTS (
        SELECT 1 FROM approver_group_members m JOIN approver_groups g ON g.id = m.group_id
         WHERE m.identity_id = d.approver_id AND g.name = ANY(ARRAY(SELECT jsonb_array_elements_text(r.policy->'stages'->d.stage->'approvers') FROM requests r WHERE r.id = d.request_id)))`,
    [id],
  );
  expect(outsiders, "only a stage's approvers decide it").toEqual([]);
  const perStage = await db.query<{ stage: number; denies: string }>(
    `SELECT stage, count(*) FILTER (WHERE decision = 'deny') AS denies FROM request_decisions WHERE request_id = $1 GROUP BY stage`,
    [id],
  );
  for (const s of perStage) expect(Number(s.denies), `stage ${s.stage} has one outcome`).toBeLessThanOrEqual(1);
  // the status path the outbox recorded follows the state machine
  const events = await db.query<{ type: string; actor_id: string | null; requester_id: string }>(
    `SELECT o.type, o.payload->'actor'->>'id' AS actor_id, r.requester_id FROM outbox o JOIN requests r ON r.id = o.subject_id::uuid
      WHERE o.subject_id = $1 AND o.type IN ('request.approved','request.denied','request.revoked','request.cancelled','request.expired') ORDER BY o.seq`,
    [id],
  );
  const allowed: Record<string, string[]> = {
    pending: ['approved', 'denied', 'cancelled', 'expired'],
    approved: ['revoked'],
    denied: ['approved'],
    revoked: ['approved'],
    cancelled: [],
    expired: [],
  };
  let at = 'pending';
  for (const e of events) {
    const to = e.type.slice('request.'.length);
    expect(allowed[at], `${at} → ${to}`).toContain(to);
    if (to !== 'cancelled') expect(e.actor_id, `${to} names a person`).not.toBeNull();
    if (to !== 'cancelled') expect(e.actor_id, `${to} is not the requester's`).not.toBe(e.requester_id);
    at = to;
  }
  const installs = (await db.query<{ id: string; payload: any }>(`SELECT id, payload FROM outbox WHERE subject_id = $1 ORDER BY seq`, [id]))
    .flatMap((r) => webhooksOfRow(r).map((w) => w.type))
    .filter((t) => t.startsWith('app.'));
  installs.forEach((t, i) => expect(t, 'installs and uninstalls alternate').toBe(i % 2 === 0 ? 'app.install' : 'app.uninstall'));
}

const who = fc.constantFrom<Who>('ada', 'cyd', 'dan', 'bob', 'nobody');
const reason = fc.constantFrom<string | null>(null, 'because');
const single: fc.Arbitrary<Exclude<Cmd, { kind: 'pair' }>> = fc.oneof(
  {
    weight: 6,
    arbitrary: fc.record({
      kind: fc.constant('decide' as const),
      verb: fc.constantFrom('approve' as const, 'deny' as const),
      who,
      channel: fc.constantFrom<DecisionChannel>('api', 'cli', 'slack', 'teams', 'email'),
      stage: fc.option(fc.constantFrom(0, 1), { nil: undefined }),
      reason,
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant('reverse' as const),
      verb: fc.constantFrom('revoke' as const, 'reapprove' as const),
      who,
      via: fc.constantFrom('api' as const, 'cli' as const),
      reason,
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('cancel' as const), who: fc.constantFrom('bob' as const, 'ada' as const) }) },
);
const restOnly = single.map((c) => (c.kind === 'decide' ? { ...c, channel: 'api' as const } : c));
const command: fc.Arbitrary<Cmd> = fc.oneof(
  { weight: 8, arbitrary: single },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('pair' as const), first: restOnly, second: restOnly }) },
);

describe('decision invariants over every channel (fast-check)', () => {
  it('any sequence of approve, deny, revoke, reapprove and cancel, by anyone, anywhere, follows the rules', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 12 }), async (cmds) => {
        await a.t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
        const id = (
          await a.t.ctx.requests.submit(a.s.actor(a.s.bob), { applicationId: VISIO, clientGuid: BOB_LAPTOP, justification: 'property' })
        ).id;
        let m: Model = { status: 'pending', stage: 0, votes: [[], []] };
        for (const c of cmds) {
          if (process.env.PROPERTY_TRACE) console.log(JSON.stringify(c));
          if (c.kind === 'pair') {
            const [x, y] = [bind(c.first as Exclude<Cmd, { kind: 'pair' }>, m), bind(c.second as Exclude<Cmd, { kind: 'pair' }>, m)];
            const [rx, ry] = await Promise.all([run(x, id), run(y, id)]);
            const xy = step(m, x, isChat(x));
            const xyy = step(xy.next, y, isChat(y));
            const yx = step(m, y, isChat(y));
            const yxx = step(yx.next, x, isChat(x));
            const now = await observed(id);
            const first = agrees(rx, xy.code) && agrees(ry, xyy.code) && same(now, xyy.next);
            const second = agrees(ry, yx.code) && agrees(rx, yxx.code) && same(now, yxx.next);
            expect(first || second, `pair ${JSON.stringify(c)} gave ${JSON.stringify([rx, ry])} and ${JSON.stringify(now)}`).toBe(true);
            m = first ? xyy.next : yxx.next;
          } else {
            const bound = bind(c, m);
            const r = await run(bound, id);
            const expected = step(m, bound, isChat(bound));
            expect(agrees(r, expected.code), `${JSON.stringify(bound)} gave ${JSON.stringify(r)}, the rules say ${expected.code}`).toBe(
              true,
            );
            m = expected.next;
            expect(norm(await observed(id)), `after ${JSON.stringify(bound)}`).toEqual(norm(m));
          }
        }
        await checkInvariants(id);
      }),
      { numRuns: Number(process.env.PROPERTY_RUNS ?? 25), endOnFailure: Boolean(process.env.PROPERTY_NO_SHRINK) },
    );
  }, 600_000);
});
