import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACTION, CALLBACK } from '../../src/bots/slack/slack-ids.ts';
import { seedContoso, type Seeded } from '../support/fixtures.ts';
import { buttonsOf, startSlackHarness, textOf, type SlackHarness } from '../support/slack-harness.ts';
import { webhooksOfRow } from '../support/outbox-webhooks.ts';

let h: SlackHarness;
let s: Seeded;
beforeAll(async () => {
  h = await startSlackHarness();
  s = await seedContoso(h.t.tdb.db);
});
afterAll(() => h.close());
// what an earlier `it` left undelivered is delivered (and forgotten) first, so each `it` sees only its own calls
beforeEach(async () => {
  await h.drain();
  h.fake.reset();
});

const before = { name: 'Visio', policy: { stages: [{ approvers: ['it-approvers'], quorum: 'any' }] } };
const after = { name: 'Visio', policy: { stages: [{ approvers: ['it-approvers'], quorum: 2 }] } };

/** Opens the change form with /signoff change and returns the view Slack was asked to show. */
async function openChangeForm(user: string): Promise<any> {
  const seen = h.fake.of('views.open').length;
  await h.command(user, 'change');
  return (await h.fake.waitFor('views.open', seen + 1))[seen]!.args.view;
}

let resourceSeq = 0;
/**
 * A change ada submitted through the Slack form and whose prompts went out. Each gets its own resource id: only
 * one change per resource may be pending.
 */
async function submittedChange(): Promise<string> {
  const resourceId = `visio-${++resourceSeq}`;
  const res = await h.submit('U0ADA', await openChangeForm('U0ADA'), {
    resource_type: 'app',
    resource_id: resourceId,
    before: JSON.stringify(before),
    after: JSON.stringify(after),
    change_justification: 'Two approvers for Visio from now on',
  });
  expect(res.body.response_action).toBe('update');
  await h.drain();
  return (await h.t.tdb.db.one<{ id: string }>('SELECT id FROM changes WHERE resource_id = $1', [resourceId])).id;
}

describe('multi-admin approval in Slack', () => {
  it('/signoff change opens a form with the protected resource types', async () => {
    const view = await openChangeForm('U0ADA');
    expect(view.callback_id).toBe(CALLBACK.changeModal);
    const types = view.blocks.find((b: any) => b.block_id === 'resource_type').element.options.map((o: any) => o.value);
    expect(types).toEqual(['app', 'script']);
  });

  it('shows JSON and missing-field problems inline, and creates nothing', async () => {
    const changes = async () => (await h.t.tdb.db.query('SELECT 1 FROM changes')).length;
    const existing = await changes();
    const view = await openChangeForm('U0ADA');
    const res = await h.submit('U0ADA', view, {
      resource_type: 'app',
      resource_id: 'visio',
      before: '{"a":1}',
      after: '{not json',
      change_justification: '',
    });
    expect(res.body.response_action).toBe('errors');
    expect(res.body.errors.after).toMatch(/not valid JSON/);
    expect(res.body.errors.change_justification).toMatch(/justification is required/);
    const same = await h.submit('U0ADA', view, {
      resource_type: 'app',
      resource_id: 'visio',
      before: '{"a":1}',
      after: '{"a":1}',
      change_justification: 'x',
    });
    expect(same.body.errors.after).toMatch(/no change to approve/);
    expect(await changes()).toBe(existing);
  });

  it("submits, and the approvers' channel gets a prompt with the diff", async () => {
    const view = await openChangeForm('U0ADA');
    const res = await h.submit('U0ADA', view, {
      resource_type: 'app',
      resource_id: 'visio',
      before: JSON.stringify(before),
      after: JSON.stringify(after),
      change_justification: 'Two approvers for Visio from now on',
    });
    expect(res.body.response_action).toBe('update');
    expect(await h.t.tdb.db.query(`SELECT id FROM changes WHERE resource_id = 'visio' AND status = 'pending'`)).toHaveLength(1);
    h.fake.reset();
    expect(await h.drain()).toEqual(['change.submitted']);
    const prompt = h.fake.of('chat.postMessage').find((p) => p.args.channel === 'C0APPROVE')!;
    const shown = textOf(prompt.args.blocks);
    expect(shown).toContain('Change approval: app visio');
    expect(shown).toContain('~ /policy/stages/0/quorum: "any" → 2');
    expect(shown).toContain('Two approvers for Visio from now on');
    expect(shown).toContain('<@U0ADA>');
    expect(buttonsOf(prompt.args.blocks).map((b) => [b.text, b.action_id])).toEqual([
      ['Approve', ACTION.changeApprove],
      ['Reject', ACTION.changeReject],
    ]);
    const mine = h.fake.of('chat.postMessage').find((p) => p.args.channel === 'D0ADA')!;
    expect(buttonsOf(mine.args.blocks).map((b) => b.text)).toEqual(['Cancel change']);
  });

  it('refuses self-approval with an ephemeral message and changes nothing', async () => {
    const changeId = await submittedChange();
    h.fake.reset();
    await h.action('U0ADA', ACTION.changeApprove, changeId);
    const [eph] = await h.fake.waitFor('chat.postEphemeral');
    expect(eph!.args.user).toBe('U0ADA');
    expect(textOf(eph!.args.blocks)).toMatch(/cannot approve or reject your own change/);
    expect(h.fake.of('views.open')).toHaveLength(0);
    expect((await h.t.ctx.changes.get(changeId)).status).toBe('pending');
  });

  it('/signoff my shows ada her pending change with Cancel change', async () => {
    const changeId = await submittedChange();
    // other `it`s may have left ada pending changes too: the count is hers, whatever else is pending
    const { n } = await h.t.tdb.db.one<{ n: number }>(
      `SELECT count(*)::int AS n FROM changes WHERE requester_id = $1 AND status = 'pending'`,
      [s.ada.id],
    );
    const res = await h.command('U0ADA', 'my');
    expect(res.body.text).toMatch(new RegExp(` ${n} pending change`));
    expect(
      buttonsOf(res.body.blocks)
        .filter((b) => b.value === changeId)
        .map((b) => b.text),
    ).toEqual(['Cancel change']);
  });

  it('bob (not an admin) is refused too', async () => {
    const changeId = await submittedChange();
    h.fake.reset();
    await h.action('U0BOB', ACTION.changeReject, changeId);
    const [eph] = await h.fake.waitFor('chat.postEphemeral');
    expect(textOf(eph!.args.blocks)).toMatch(/Only members of it-approvers/);
  });

  it("cyd approves with notes; the prompt and ada's copy show it with no buttons; change.apply goes out", async () => {
    const changeId = await submittedChange();
    h.fake.reset();
    await h.action('U0CYD', ACTION.changeApprove, changeId);
    const [open] = await h.fake.waitFor('views.open');
    expect(open!.args.view.callback_id).toBe(CALLBACK.changeDecision);
    const res = await h.submit('U0CYD', open!.args.view, { reason: 'Agreed with the security team' });
    expect(res.body).toEqual({ response_action: 'clear' });
    expect((await h.t.ctx.changes.get(changeId)).status).toBe('approved');
    const row = await h.t.tdb.db.one<{ payload: any }>(`SELECT payload FROM outbox WHERE subject_id = $1 AND type = 'change.approved'`, [
      changeId,
    ]);
    expect(webhooksOfRow(row).map((w: any) => w.type)).toEqual(['change.approved', 'change.apply']);
    expect(webhooksOfRow(row)[1].data.after).toEqual(after);

    expect(await h.drain()).toEqual(['change.approved']);
    const updates = h.fake.of('chat.update');
    expect(updates.map((u) => u.args.channel).sort()).toEqual(['C0APPROVE', 'D0ADA']);
    for (const u of updates) {
      expect(buttonsOf(u.args.blocks)).toEqual([]);
      expect(textOf(u.args.blocks)).toMatch(/pproved\*? by \*Cyd Approver\*/);
      expect(textOf(u.args.blocks)).toContain('Agreed with the security team');
    }
    expect(h.fake.of('chat.postMessage').filter((p) => p.args.channel === 'D0ADA')).toHaveLength(1);
  });

  it('a change submitted through the API is prompted the same way, and its requester can cancel it from Slack', async () => {
    const c = await h.t.ctx.changes.submit(s.actor(s.cyd, 'api'), {
      resourceType: 'script',
      resourceId: 'cleanup.ps1',
      before: { body: 'a' },
      after: { body: 'b' },
      justification: 'fix',
    });
    h.fake.reset();
    await h.drain();
    expect(textOf(h.fake.of('chat.postMessage').find((p) => p.args.channel === 'C0APPROVE')!.args.blocks)).toContain('~ /body: "a" → "b"');
    await h.action('U0CYD', ACTION.changeCancel, c.id, { channel: 'D0CYD' });
    await h.fake.waitFor('chat.postEphemeral');
    expect((await h.t.ctx.changes.get(c.id)).status).toBe('cancelled');
    h.fake.reset();
    await h.drain();
    const prompt = h.fake.of('chat.update').find((u) => u.args.channel === 'C0APPROVE')!;
    expect(textOf(prompt.args.blocks)).toMatch(/Cancelled\* by \*Cyd Approver\*/);
    expect(buttonsOf(prompt.args.blocks)).toEqual([]);
  });
});
