import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACTION, CALLBACK } from '../../src/bots/slack/slack-ids.ts';
import { TimerService } from '../../src/core/timer-service.ts';
import { closeOpenRequests } from '../support/close-open-requests.ts';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { buttonsOf, startSlackHarness, textOf, type SlackHarness } from '../support/slack-harness.ts';

let h: SlackHarness;
let s: Seeded;
const DAY = 86_400_000;

beforeAll(async () => {
  h = await startSlackHarness();
  s = await seedContoso(h.t.tdb.db, {
    justification: 'required',
    stages: [
      { approvers: ['it-approvers'], quorum: 'any' },
      { approvers: ['security'], approverJustification: true, notifyApproversDirectly: true },
    ],
    reminderEvery: 'P1D',
    escalateAfter: 'P3D',
    escalateTo: ['it-approvers'],
    decisionDeadline: 'P14D',
  });
});
afterAll(() => h.close());
beforeEach(() => closeOpenRequests(h, s, () => h.fake.reset()));

const decisionButtons = (blocks: any[]) => buttonsOf(blocks).filter((b) => b.action_id === ACTION.approve || b.action_id === ACTION.deny);

/** A request of bob's that ada approved at stage 1 from Slack; stage 2's prompts have gone out. */
async function atStage2(): Promise<string> {
  const r = await h.t.ctx.requests.submit(s.actor(s.bob), {
    applicationId: VISIO,
    clientGuid: BOB_LAPTOP,
    justification: 'Security diagrams',
  });
  await h.drain();
  const told = h.fake.of('chat.postEphemeral').length;
  await h.action('U0ADA', ACTION.approve, r.id);
  await h.fake.waitFor('chat.postEphemeral', told + 1);
  expect(await h.drain()).toEqual(['request.stage_advanced']);
  return r.id;
}

/** dan approves stage 2 from C0SECURITY, giving the justification the stage asks for (the outcome is not delivered yet). */
async function approvedByDan(id: string): Promise<void> {
  const opened = h.fake.of('views.open').length;
  const told = h.fake.of('chat.postEphemeral').length;
  await h.action('U0DAN', ACTION.approve, id, { channel: 'C0SECURITY' });
  const view = (await h.fake.waitFor('views.open', opened + 1))[opened]!.args.view;
  expect((await h.submit('U0DAN', view, { reason: 'Reviewed the data flows' })).body).toEqual({ response_action: 'clear' });
  await h.fake.waitFor('chat.postEphemeral', told + 1);
  expect((await h.t.ctx.requests.get(id)).status).toBe('approved');
}

describe('two stages, approver justification, reminders and escalation in Slack', () => {
  it("posts stage 1 to C0APPROVE, then on approval updates it and posts stage 2 to C0SECURITY and dan's DM", async () => {
    const r = await h.t.ctx.requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'Security diagrams',
    });
    const id = r.id;
    await h.drain();
    expect(
      h.fake
        .of('chat.postMessage')
        .map((p) => p.args.channel)
        .sort(),
    ).toEqual(['C0APPROVE', 'D0BOB']);

    h.fake.reset();
    await h.action('U0ADA', ACTION.approve, id);
    await h.fake.waitFor('chat.postEphemeral');
    expect(textOf(h.fake.last('chat.postEphemeral')!.args.blocks)).toMatch(/You approved this stage/);
    expect(await h.drain()).toEqual(['request.stage_advanced']);

    const stage1 = h.fake.of('chat.update').find((u) => u.args.channel === 'C0APPROVE')!;
    expect(decisionButtons(stage1.args.blocks)).toEqual([]);
    expect(textOf(stage1.args.blocks)).toMatch(/Stage 1 approved\* by \*Ada Admin\*.*now waiting for stage 2 \(security\)/s);
    const posted = h.fake.of('chat.postMessage');
    expect(posted.map((p) => p.args.channel).sort()).toEqual(['C0SECURITY', 'D0DAN']);
    for (const p of posted) {
      expect(textOf(p.args.blocks)).toContain('2 of 2 · security');
      expect(decisionButtons(p.args.blocks).map((b) => b.text)).toEqual(['Approve', 'Deny']);
    }
  });

  it("reminds the stage's approvers in a thread under each copy, mentioning them", async () => {
    const id = await atStage2();
    h.fake.reset();
    h.t.clock.advance(DAY + 60_000);
    await new TimerService(h.t.tdb.db, h.t.clock).sweep();
    expect(await h.drain()).toEqual(['request.reminder']);
    const replies = h.fake.of('chat.postMessage');
    const refs = await h.t.tdb.db.query<{ conversation_id: string; message_id: string }>(
      `SELECT conversation_id, message_id FROM message_refs WHERE subject_id = $1 AND purpose = 'prompt' AND stage = 1 ORDER BY conversation_id`,
      [id],
    );
    expect(replies.map((r) => [r.args.channel, r.args.thread_ts]).sort()).toEqual(refs.map((r) => [r.conversation_id, r.message_id]));
    for (const r of replies) {
      expect(r.args.text).toMatch(/Reminder/);
      expect(textOf(r.args.blocks)).toContain('<@U0DAN>');
      expect(textOf(r.args.blocks)).not.toContain('<@U0BOB>');
    }
  });

  it('escalation pings the alternates in the threads and gives their channel a prompt', async () => {
    await atStage2();
    h.fake.reset();
    // stage 2 escalates 3 days after it started
    h.t.clock.advance(3 * DAY + 60_000);
    await new TimerService(h.t.tdb.db, h.t.clock).sweep();
    const handled = await h.drain();
    expect(handled).toContain('request.escalated');
    const replies = h.fake.of('chat.postMessage').filter((p) => p.args.thread_ts && /Escalated/.test(p.args.text));
    expect(replies.length).toBeGreaterThanOrEqual(2);
    expect(textOf(replies[0]!.args.blocks)).toMatch(/<@U0ADA> <@U0CYD>|<@U0CYD> <@U0ADA>/);
    const newPrompt = h.fake.of('chat.postMessage').find((p) => p.args.channel === 'C0APPROVE' && !p.args.thread_ts)!;
    expect(decisionButtons(newPrompt.args.blocks).map((b) => b.text)).toEqual(['Approve', 'Deny']);
    expect(textOf(newPrompt.args.blocks)).toContain('Escalated');
  });

  it('approving stage 2 asks for a justification in a modal and refuses an empty one inline', async () => {
    const id = await atStage2();
    h.fake.reset();
    await h.action('U0DAN', ACTION.approve, id, { channel: 'C0SECURITY' });
    const [open] = await h.fake.waitFor('views.open');
    const view = open!.args.view;
    expect(view.callback_id).toBe(CALLBACK.decisionReason);
    expect(view.submit.text).toBe('Approve');
    const empty = await h.submit('U0DAN', view, { reason: '' });
    expect(empty.body).toEqual({ response_action: 'errors', errors: { reason: expect.stringMatching(/justification/) } });
    const ok = await h.submit('U0DAN', view, { reason: 'Reviewed the data flows' });
    expect(ok.body).toEqual({ response_action: 'clear' });
    const [eph] = await h.fake.waitFor('chat.postEphemeral');
    expect(eph!.args.channel).toBe('C0SECURITY');
    expect(textOf(eph!.args.blocks)).toMatch(/You approved \*Visio\*/);
  });

  it('after the final decision every copy (both stages, channels and DMs) shows the outcome with no buttons', async () => {
    const id = await atStage2();
    await approvedByDan(id);
    h.fake.reset();
    await h.drain();
    const refs = await h.t.tdb.db.query<{ conversation_id: string; message_id: string }>(
      `SELECT conversation_id, message_id FROM message_refs WHERE subject_id = $1 AND purpose IN ('prompt','requester')`,
      [id],
    );
    const updates = h.fake.of('chat.update');
    expect(updates.map((u) => `${u.args.channel}/${u.args.ts}`).sort()).toEqual(
      refs.map((r) => `${r.conversation_id}/${r.message_id}`).sort(),
    );
    for (const u of updates) {
      expect(decisionButtons(u.args.blocks)).toEqual([]);
      expect(textOf(u.args.blocks)).toMatch(/Approved\* by \*Dan Security\*[^\n]*\n>Reviewed the data flows/);
    }
  });
});
