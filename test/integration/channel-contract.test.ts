import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readableUtc } from '../../src/core/clock.ts';
import { startChannelWorld, type ChannelDriver, type ChannelWorld, type Copy } from '../support/channel-drivers.ts';

/**
 * The chat-channel contract: one set of scenarios, run against every chat platform through its driver
 * (test/support/channel-drivers.ts). Slack and Teams run on one Signoff, as a company with both has it, so a
 * decision on one platform must show on the other's copies too. Every `it` makes its own application and request.
 */
let w: ChannelWorld;
beforeAll(async () => {
  w = await startChannelWorld();
});
afterAll(async () => {
  await w?.close();
});

const sorted = (copies: Copy[]) => copies.map((c) => c.where).sort();
const promptsOf = (copies: Copy[], stage = 0) => copies.filter((c) => c.kind === 'prompt' && c.stage === stage);
const allCopies = async (id: string) => (await Promise.all(w.drivers.map((d) => d.copiesOf(id)))).flat();
const about = (app: { name: string }, texts: string[]) => texts.filter((x) => x.includes(app.name));
/** minutes pass between steps, so "when" on a message is told apart from when the request was made */
const later = () => w.t.clock.advance(7 * 60_000);
const state = async (id: string) => {
  const r = await w.t.ctx.requests.get(id);
  return { status: r.status, stage: r.currentStage, decisions: r.decisions.length, version: r.version };
};

const platforms = ['slack', 'teams'] as const;

describe.each(platforms)('the %s channel', (platform) => {
  const d = (): ChannelDriver => w.drivers.find((x) => x.name === platform)!;
  const other = (): ChannelDriver => w.drivers.find((x) => x.name !== platform)!;
  const copyAt = async (id: string, where: string, stage = 0) => {
    const c = promptsOf(await d().copiesOf(id), stage).find((x) => x.where === where);
    expect(c, `a stage ${stage + 1} prompt at ${where}`).toBeDefined();
    return c!;
  };

  it('a submitted request prompts the approver channel and each approver directly, once, even when the relay runs every event twice', async () => {
    const app = await w.newApp({
      stages: [{ approvers: ['it-approvers'], quorum: 'any', approverJustification: false, notifyApproversDirectly: true }],
    });
    const id = await d().submit('bob', app, 'Diagrams for the move');
    await w.relay({ twice: true });
    for (const driver of w.drivers) {
      const copies = await driver.copiesOf(id);
      expect(sorted(promptsOf(copies)), `${driver.name} prompts`).toEqual(['channel:it-approvers', 'dm:ada', 'dm:cyd']);
      expect(
        copies.filter((c) => c.kind === 'requester').map((c) => c.where),
        `${driver.name} requester copies`,
      ).toEqual(driver === d() ? ['dm:bob'] : []);
    }
    // nothing decided yet, so nothing to tell bob beyond his own copy
    expect(about(app, await d().repliesTo('bob'))).toEqual([]);
  });

  // a redelivered job hands the notifiers the same event again: still one prompt per place and one outcome notice
  it.each([
    { delivered: 'once', twice: false },
    { delivered: 'twice', twice: true },
  ])(
    'a decision on one copy updates every copy on both platforms in place, with outcome, who and when and no buttons, and tells the requester where he asked (each event delivered $delivered)',
    async ({ twice }) => {
      const app = await w.newApp({
        stages: [{ approvers: ['it-approvers'], quorum: 'any', approverJustification: false, notifyApproversDirectly: true }],
      });
      const id = await d().submit('bob', app, 'Diagrams for the move');
      await w.relay({ twice });
      const before = await allCopies(id);
      expect(
        promptsOf(before)
          .map((c) => `${c.platform} ${c.where}`)
          .sort(),
      ).toEqual(['channel:it-approvers', 'dm:ada', 'dm:cyd'].flatMap((where) => [`slack ${where}`, `teams ${where}`]).sort());
      later();
      const clicked = await d().click(await copyAt(id, 'channel:it-approvers'), 'approve', 'cyd');
      expect(clicked).toMatchObject({ decided: true });
      await w.relay({ twice });
      const when = readableUtc((await w.t.ctx.requests.get(id)).decidedAt!);

      const after = await allCopies(id);
      // updated in place: the same messages, none posted anew
      expect(after.map((c) => `${c.platform} ${c.kind} ${c.where}`).sort()).toEqual(
        before.map((c) => `${c.platform} ${c.kind} ${c.where}`).sort(),
      );
      for (const c of after) {
        const label = `${c.platform} ${c.kind} copy at ${c.where}`;
        expect(c.updates, label).toBeGreaterThan(0);
        expect(c.text, label).toContain('Approved by Cyd Approver');
        expect(c.text, label).toContain(when);
        expect(
          c.buttons.filter((b) => ['approve', 'deny', 'cancel', 'refresh'].includes(b)),
          label,
        ).toEqual([]);
        if (c.kind === 'prompt') expect(c.buttons, label).toEqual([]);
      }
      const told = about(app, await d().repliesTo('bob'));
      expect(told).toHaveLength(1);
      expect(told[0]).toMatch(/approved/i);
      // he asked on this platform: the other one stays quiet
      expect(about(app, await other().repliesTo('bob'))).toEqual([]);
    },
  );

  it('a click on a copy already decided is told who decided and when, and changes nothing', async () => {
    const app = await w.newApp({
      stages: [{ approvers: ['it-approvers'], quorum: 'any', approverJustification: false, notifyApproversDirectly: true }],
    });
    const id = await d().submit('bob', app, 'Diagrams for the move');
    await w.relay();
    later();
    const denied = await d().click(await copyAt(id, 'dm:ada'), 'deny', 'ada', 'Use draw.io');
    expect(denied).toMatchObject({ decided: true });
    await w.relay();
    const settled = await state(id);
    const when = readableUtc((await w.t.ctx.requests.get(id)).decidedAt!);
    const copies = await allCopies(id);

    later();
    const stale = await d().click(await copyAt(id, 'channel:it-approvers'), 'approve', 'cyd');
    expect(stale.decided).toBe(false);
    expect(stale.said).toContain('Ada Admin');
    expect(stale.said).toContain(when);
    expect(await state(id)).toEqual(settled);
    expect(await w.relay()).toEqual([]);
    expect((await allCopies(id)).map((c) => c.updates)).toEqual(copies.map((c) => c.updates));
  });

  it('the requester clicking a prompt of his own request is refused', async () => {
    const app = await w.newApp({
      stages: [{ approvers: ['it-approvers'], quorum: 'any', approverJustification: false, notifyApproversDirectly: true }],
    });
    // cyd approves for it-approvers, and asks for something himself
    const id = await d().submit('cyd', app, 'Needed for audits');
    await w.relay();
    expect(sorted(promptsOf(await d().copiesOf(id)))).toEqual(['channel:it-approvers', 'dm:ada']);
    const pending = await state(id);
    const own = await d().click(await copyAt(id, 'channel:it-approvers'), 'approve', 'cyd');
    expect(own.decided).toBe(false);
    expect(own.said).toMatch(/your own/i);
    expect(await state(id)).toEqual(pending);
  });

  it("someone outside the stage's approver groups is refused", async () => {
    const app = await w.newApp();
    const id = await d().submit('bob', app, 'Diagrams for the move');
    await w.relay();
    const pending = await state(id);
    const outsider = await d().click(await copyAt(id, 'channel:it-approvers'), 'approve', 'dan');
    expect(outsider.decided).toBe(false);
    expect(outsider.said).toContain('it-approvers');
    expect(await state(id)).toEqual(pending);
  });

  it('stage 2 is prompted only once stage 1 approves; a click on a stage 1 copy afterwards is told who settled it', async () => {
    const direct = { quorum: 'any' as const, approverJustification: false, notifyApproversDirectly: true };
    const app = await w.newApp({
      stages: [
        { approvers: ['it-approvers'], ...direct },
        { approvers: ['security'], ...direct },
      ],
    });
    const id = await d().submit('bob', app, 'Diagrams for the move');
    await w.relay();
    expect(sorted(promptsOf(await d().copiesOf(id), 0))).toEqual(['channel:it-approvers', 'dm:ada', 'dm:cyd']);
    expect(promptsOf(await d().copiesOf(id), 1)).toEqual([]);

    later();
    expect(await d().click(await copyAt(id, 'channel:it-approvers'), 'approve', 'ada')).toMatchObject({ decided: true });
    await w.relay();
    const when = readableUtc((await w.t.ctx.requests.get(id)).decisions[0]!.at);
    for (const driver of w.drivers) {
      const copies = await driver.copiesOf(id);
      expect(sorted(promptsOf(copies, 1)), `${driver.name} stage 2 prompts`).toEqual(['channel:security', 'dm:dan']);
      for (const c of promptsOf(copies, 0)) {
        expect(c.text, `${driver.name} stage 1 copy at ${c.where}`).toContain('Ada Admin');
        // settled for its approvers: nothing left for them to press (Teams' card may still refresh for the requester)
        for (const who of ['ada', 'cyd'] as const)
          expect(await driver.buttonsFor(c, who), `${driver.name} stage 1 copy at ${c.where} for ${who}`).toEqual([]);
      }
    }

    const atStage2 = await state(id);
    later();
    const stale = await d().click(await copyAt(id, 'dm:cyd'), 'approve', 'cyd');
    expect(stale.decided).toBe(false);
    expect(stale.said).toContain('Ada Admin');
    expect(stale.said).toContain(when);
    expect(await state(id)).toEqual(atStage2);
  });

  it('a reminder replies once under each live prompt, mentioning only the approvers who have not voted yet', async () => {
    const app = await w.newApp({
      stages: [{ approvers: ['it-approvers'], quorum: 'all', approverJustification: false, notifyApproversDirectly: true }],
      reminderEvery: 'P1D',
    });
    const id = await d().submit('bob', app, 'Diagrams for the move');
    await w.relay();
    later();
    expect(await d().click(await copyAt(id, 'channel:it-approvers'), 'approve', 'ada')).toMatchObject({ decided: true });
    await w.relay();
    expect((await state(id)).status).toBe('pending');

    w.t.clock.advance(24 * 3600_000);
    await w.t.ctx.timers.sweep();
    await w.relay({ twice: true });
    for (const driver of w.drivers) {
      for (const c of promptsOf(await driver.copiesOf(id))) {
        const label = `${driver.name} prompt at ${c.where}`;
        const reminders = await driver.remindersUnder(c);
        expect(reminders, label).toHaveLength(1);
        expect(reminders[0], label).toContain('@Cyd Approver');
        expect(reminders[0], label).not.toContain('@Ada Admin');
        expect(reminders[0], label).not.toContain('@Bob User');
      }
    }
  });

  it("revoke and then reapprove through the channel's own command send one uninstall and one install", async () => {
    const app = await w.newApp();
    const id = await d().submit('bob', app, 'Diagrams for the move');
    await w.relay();
    expect(await d().click(await copyAt(id, 'channel:it-approvers'), 'approve', 'cyd')).toMatchObject({ decided: true });
    await w.relay();
    expect(w.webhooks(id)).toEqual({ 'app.install': 1 });

    const revoked = await d().command('ada', 'revoke', id, 'Licence moved to another team');
    expect(revoked).toMatchObject({ decided: true });
    await w.relay();
    expect((await state(id)).status).toBe('revoked');
    const reapproved = await d().command('ada', 'reapprove', id, 'Licence is back');
    expect(reapproved).toMatchObject({ decided: true });
    await w.relay();
    expect((await state(id)).status).toBe('approved');
    // distinct webhook-ids: the first approval's install, then exactly one uninstall and one install
    expect(w.webhooks(id)).toEqual({ 'app.install': 2, 'app.uninstall': 1 });
  });
});
