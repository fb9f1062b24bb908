import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { startSlackHarness, textOf, type SlackHarness } from '../support/slack-harness.ts';
import { webhooksOfRow } from '../support/outbox-webhooks.ts';

/** Revoke and reapprove in Slack: their own commands, a reason modal bound to what it showed, every copy updated. */
let h: SlackHarness;
let s: Seeded;
beforeAll(async () => {
  h = await startSlackHarness();
  s = await seedContoso(h.t.tdb.db);
});
afterAll(() => h.close());

async function approvedRequest(): Promise<string> {
  await h.t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
  const r = await h.t.ctx.requests.submit(s.actor(s.bob), {
    applicationId: VISIO,
    clientGuid: BOB_LAPTOP,
    justification: 'diagrams',
    answers: { usage: 'Diagrams' },
  });
  await h.t.ctx.requests.decide(s.actor(s.ada), r.id, 'approve');
  await h.drain();
  return r.id;
}

describe('/signoff revoke and /signoff reapprove', () => {
  it('the decided prompt names the command; revoke by short id asks why, then every copy shows it and bob is told', async () => {
    const id = await approvedRequest();
    const prompt = h.fake
      .of('chat.update')
      .filter((u) => u.args.channel === 'C0APPROVE')
      .at(-1)!;
    expect(textOf(prompt.args.blocks)).toContain(`/signoff revoke ${id.slice(0, 8)}`);

    h.fake.reset();
    expect((await h.command('U0BOB', `revoke ${id.slice(0, 8)}`)).body.text).toMatch(/cannot revoke your own access/);
    expect((await h.command('U0DAN', `revoke ${id.slice(0, 8)}`)).body.text).toMatch(
      /Only members of it-approvers, security|Only members of it-approvers/,
    );
    expect((await h.command('U0CYD', 'revoke')).body.text).toMatch(/Say which request/);
    expect((await h.command('U0CYD', 'revoke zz')).body.text).toMatch(/not a request id/);
    expect(h.fake.of('views.open')).toHaveLength(0);

    await h.command('U0CYD', `revoke ${id.slice(0, 8)}`);
    const [open] = await h.fake.waitFor('views.open');
    const modal = open!.args.view;
    expect(modal.submit.text).toBe('Revoke');
    expect(textOf(modal.blocks)).toMatch(/uninstalls the application/);
    const silent = await h.submit('U0CYD', modal, {});
    expect(silent.body.response_action).toBe('errors');
    const done = await h.submit('U0CYD', modal, { reason: 'Left the project' });
    expect(done.body).toEqual({ response_action: 'clear' });
    const [said] = await h.fake.waitFor('chat.postEphemeral');
    expect(said!.args.text).toMatch(/You revoked \*Visio\* for \*Bob User\*/);
    expect(await h.drain()).toEqual(['request.revoked']);
    const copies = h.fake.of('chat.update');
    expect(copies.map((u) => u.args.channel).sort()).toEqual(['C0APPROVE', 'D0BOB']);
    expect(textOf(copies.find((u) => u.args.channel === 'C0APPROVE')!.args.blocks)).toMatch(
      /Revoked\* by \*Cyd Approver\*[\s\S]*Left the project[\s\S]*\/signoff reapprove/,
    );
    const hooks = (
      await h.t.tdb.db.query<{ id: string; payload: any }>(`SELECT id, payload FROM outbox WHERE subject_id = $1 ORDER BY seq`, [id])
    ).flatMap((x) => webhooksOfRow(x).map((w) => w.type));
    expect(hooks.filter((x) => x.startsWith('app.'))).toEqual(['app.install', 'app.uninstall']);
  });

  it('a modal left open while someone else revoked and reapproved is told, and changes nothing', async () => {
    const id = await approvedRequest();
    h.fake.reset();
    await h.command('U0CYD', `revoke ${id}`);
    const [open] = await h.fake.waitFor('views.open');
    await h.t.ctx.requests.revoke(s.actor(s.ada), id, 'audit finding');
    await h.t.ctx.requests.reapprove(s.actor(s.ada), id, 'resolved');
    const late = await h.submit('U0CYD', open!.args.view, { reason: 'Left the project' });
    expect(late.body).toEqual({ response_action: 'clear' });
    const [said] = await h.fake.waitFor('chat.postEphemeral');
    expect(said!.args.text).toMatch(/changed since version \d+[\s\S]*Nothing was changed/);
    expect((await h.t.ctx.requests.get(id)).status).toBe('approved');
  });

  it('reapprove of a denied request by the stage that said no', async () => {
    await h.t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
    const r = await h.t.ctx.requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'again',
      answers: { usage: 'Other' },
    });
    await h.t.ctx.requests.decide(s.actor(s.ada), r.id, 'deny', 'no licence');
    h.fake.reset();
    await h.command('U0CYD', `reapprove ${r.id.slice(0, 8)}`);
    const [open] = await h.fake.waitFor('views.open');
    expect(open!.args.view.submit.text).toBe('Reapprove');
    await h.submit('U0CYD', open!.args.view, { reason: 'licence found' });
    const [said] = await h.fake.waitFor('chat.postEphemeral');
    expect(said!.args.text).toMatch(/You approved \*Visio\* for \*Bob User\* again/);
    expect(await h.t.ctx.requests.get(r.id)).toMatchObject({
      status: 'approved',
      decidedBy: 'Cyd Approver',
      decisionReason: 'licence found',
    });
  });
});
