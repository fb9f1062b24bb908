import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeActions } from '../../src/bots/teams/teams-cards.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { APPROVERS_CHANNEL, cardOf, startTeamsHarness, type TeamsHarness } from '../support/teams-harness.ts';

/** Revoke and reapprove in Teams: "revoke <id>" in the personal chat answers with a form bound to what it shows. */
let h: TeamsHarness;
beforeAll(async () => {
  h = await startTeamsHarness();
  await h.post(h.installInChannel());
  for (const who of ['bob', 'cyd'] as const) await h.post(h.message(who, 'hi'));
});
afterAll(() => h.close());

const lastCardTo = (conversationId: string) =>
  cardOf(h.connector.calls.filter((c) => c.conversationId === conversationId && c.method === 'POST').at(-1)!.body);
const actionsOf = (card: unknown) => executeActions(card).map((a) => ({ verb: a.verb, data: a.data }));

describe('revoke and reapprove in Teams', () => {
  it('the decided card names the command; "revoke <id>" answers a form; the reason is required; every copy shows the outcome', async () => {
    const r = await h.t.ctx.requests.submit(h.s.actor(h.s.bob, 'teams'), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'diagrams',
      answers: { usage: 'Diagrams' },
    });
    await h.t.ctx.requests.decide(h.s.actor(h.s.ada, 'teams'), r.id, 'approve');
    await h.drain();
    const channelCopy = h.connector
      .of('update')
      .filter((u) => u.conversationId === APPROVERS_CHANNEL)
      .at(-1)!;
    expect(actionsOf(cardOf(channelCopy.body))).toEqual([]);
    expect(JSON.stringify(cardOf(channelCopy.body))).toContain(`send \\"revoke ${r.id.slice(0, 8)}\\" to Signoff`);

    h.connector.reset();
    await h.post(h.message('bob', `revoke ${r.id.slice(0, 8)}`));
    expect(JSON.stringify(lastCardTo('a:personal-bob'))).toContain('cannot revoke your own access');

    await h.post(h.message('cyd', `revoke ${r.id.slice(0, 8)}`));
    const form = lastCardTo('a:personal-cyd');
    const version = (await h.t.ctx.requests.get(r.id)).version;
    expect(actionsOf(form)).toEqual([{ verb: 'revoke', data: { kind: 'request', id: r.id, version } }]);

    const noReason = await h.post(h.invoke('cyd', 'revoke', { kind: 'request', id: r.id, version }));
    const kept = noReason.body.value;
    expect(JSON.stringify(kept)).toMatch(/Say why \(reason\) before revoking/);
    expect(actionsOf(kept).map((a) => a.verb)).toEqual(['revoke']);
    expect((await h.t.ctx.requests.get(r.id)).status).toBe('approved');

    const done = await h.post(h.invoke('cyd', 'revoke', { kind: 'request', id: r.id, version, reason: 'Left the project' }));
    expect(JSON.stringify(done.body.value)).toContain('You revoked this approval');
    expect(actionsOf(done.body.value)).toEqual([]);
    h.connector.reset();
    expect(await h.drain()).toEqual(['request.revoked']);
    const updated = h.connector.of('update').find((u) => u.conversationId === APPROVERS_CHANNEL)!;
    expect(JSON.stringify(cardOf(updated.body))).toMatch(/Revoked by Cyd Approver[\s\S]*Left the project/);

    // the same form sent again (a second click, another device): told, nothing changes
    const again = await h.post(h.invoke('cyd', 'revoke', { kind: 'request', id: r.id, version, reason: 'twice' }));
    expect(JSON.stringify(again.body.value)).toMatch(/changed since version/);
    expect((await h.t.ctx.requests.get(r.id)).decisionReason).toBe('Left the project');

    await h.post(h.message('cyd', `reapprove ${r.id}`));
    const re = lastCardTo('a:personal-cyd');
    const v2 = (await h.t.ctx.requests.get(r.id)).version;
    const ok = await h.post(
      h.invoke('cyd', 'reapprove', { kind: 'request', id: r.id, version: actionsOf(re)[0]!.data?.version, reason: 'back' }),
    );
    expect(JSON.stringify(ok.body.value)).toContain('You approved this request after all');
    expect(await h.t.ctx.requests.get(r.id)).toMatchObject({ status: 'approved', decisionReason: 'back' });
    expect(v2).toBeGreaterThan(version);
  });
});
