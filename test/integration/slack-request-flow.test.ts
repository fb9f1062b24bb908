import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACTION, CALLBACK } from '../../src/bots/slack/slack-ids.ts';
import { closeOpenRequests } from '../support/close-open-requests.ts';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { buttonsOf, startSlackHarness, textOf, type SlackHarness } from '../support/slack-harness.ts';
import { webhooksOfRow } from '../support/outbox-webhooks.ts';

let h: SlackHarness;
let s: Seeded;
beforeAll(async () => {
  h = await startSlackHarness();
  s = await seedContoso(h.t.tdb.db);
});
afterAll(() => h.close());
beforeEach(() => closeOpenRequests(h, s, () => h.fake.reset()));

const requestsOfBob = () =>
  h.t.tdb.db.query<{ id: string; status: string; decided_by_label: string | null; decision_reason: string | null }>(
    'SELECT id, status, decided_by_label, decision_reason FROM requests WHERE requester_id = $1 ORDER BY created_at',
    [s.bob.id],
  );
const statusOf = async (id: string) => (await h.t.ctx.requests.get(id)).status;

/** Opens the request modal with /signoff request Visio and returns the view Slack was asked to show. */
async function openRequestModal(): Promise<any> {
  const seen = h.fake.of('views.open').length;
  const res = await h.command('U0BOB', 'request Visio');
  expect(res.status).toBe(200);
  return (await h.fake.waitFor('views.open', seen + 1))[seen]!.args.view;
}

/** A request bob submitted for Visio whose prompts went out; promptTs is its copy in the approvers' channel. */
async function submittedRequest(): Promise<{ requestId: string; promptTs: string }> {
  const r = await h.t.ctx.requests.submit(s.actor(s.bob), {
    applicationId: VISIO,
    clientGuid: BOB_LAPTOP,
    justification: 'Network diagrams for the migration',
    answers: { usage: 'Diagrams' },
  });
  await h.drain();
  const ref = await h.t.tdb.db.one<{ message_id: string }>(
    `SELECT message_id FROM message_refs WHERE subject_id = $1 AND conversation_id = 'C0APPROVE' AND purpose = 'prompt'`,
    [r.id],
  );
  return { requestId: r.id, promptTs: ref.message_id };
}

/** submittedRequest, then ada clicks Approve on the channel prompt (the outcome is not delivered yet). */
async function approvedRequest(): Promise<{ requestId: string; promptTs: string }> {
  const submitted = await submittedRequest();
  const seen = h.fake.of('chat.postEphemeral').length;
  await h.action('U0ADA', ACTION.approve, submitted.requestId, { messageTs: submitted.promptTs });
  await h.fake.waitFor('chat.postEphemeral', seen + 1);
  expect(await statusOf(submitted.requestId)).toBe('approved');
  return submitted;
}

describe('Configuration Manager scenario 1 in Slack', () => {
  it('bob opens the request modal with /signoff request Visio and sees the policy fields', async () => {
    const view = await openRequestModal();
    expect(view.callback_id).toBe(CALLBACK.requestModal);
    const byId = Object.fromEntries(view.blocks.filter((b: any) => b.block_id).map((b: any) => [b.block_id, b]));
    expect(byId.app.element.type).toBe('external_select');
    expect(byId.app.element.initial_option).toMatchObject({ value: VISIO, text: { text: 'Visio' } });
    expect(byId.device.element.options.map((o: any) => o.text.text)).toEqual(['BOB-LAPTOP']);
    expect(byId.justification.optional).toBe(false);
    expect(byId.q_usage.label.text).toBe('What will you use it for?');
    expect(byId.q_usage.element.options.map((o: any) => o.value)).toEqual(['Diagrams', 'Other']);
  });

  it('the application select searches only what bob may request', async () => {
    await h.t.tdb.db.query(
      `INSERT INTO applications (id, name, visibility, per_device, policy_id) SELECT 'App_Hidden', 'Secret Tool', 'hidden-until-approved', true, policy_id FROM applications WHERE id = $1`,
      [VISIO],
    );
    const all = await h.suggest('U0BOB', ACTION.modalApp, '');
    expect(all.body.options.map((o: any) => o.text.text)).toEqual(['Visio']);
    const none = await h.suggest('U0BOB', ACTION.modalApp, 'secret');
    expect(none.body.options).toEqual([]);
  });

  it('shows validation errors inline and creates nothing', async () => {
    const before = (await requestsOfBob()).length;
    const view = await openRequestModal();
    const res = await h.submit('U0BOB', view, { justification: '   ', q_usage: 'Games' });
    expect(res.status).toBe(200);
    expect(res.body.response_action).toBe('errors');
    expect(res.body.errors.justification).toMatch(/justification is required/i);
    expect(res.body.errors.q_usage).toMatch(/not one of the options/);
    // a device select left empty asks for a choice (bob has a device: nothing says he has none)
    const noDevice = await h.submit('U0BOB', view, { device: null, justification: 'diagrams', q_usage: 'Diagrams' });
    expect(noDevice.body.errors).toEqual({ device: 'Choose the device to install on.' });
    // a hand-made device value that is no id: a field error, not a failure of ours
    const forged = await h.submit('U0BOB', view, { device: 'not-a-uuid', justification: 'diagrams', q_usage: 'Diagrams' });
    expect(forged.body.response_action).toBe('errors');
    expect(JSON.stringify(forged.body.errors)).toMatch(/not-a-uuid/);
    expect(await requestsOfBob()).toHaveLength(before);
  });

  it('submits, confirms in the modal, prompts C0APPROVE and DMs bob', async () => {
    const earlier = new Set((await requestsOfBob()).map((r) => r.id));
    const view = await openRequestModal();
    const res = await h.submit('U0BOB', view, { justification: 'Network diagrams for the migration', q_usage: 'Diagrams' });
    expect(res.body.response_action).toBe('update');
    expect(textOf(res.body.view.blocks)).toMatch(/Your request for \*Visio\* on BOB-LAPTOP is submitted/);
    const mine = (await requestsOfBob()).filter((r) => !earlier.has(r.id));
    expect(mine).toHaveLength(1);
    const [r] = mine;
    expect(r!.status).toBe('pending');
    const requestId = r!.id;

    expect(await h.drain()).toEqual(['request.submitted']);
    const posts = h.fake.of('chat.postMessage');
    const prompt = posts.find((p) => p.args.channel === 'C0APPROVE')!;
    expect(
      await h.t.tdb.db.query(`SELECT 1 FROM message_refs WHERE subject_id = $1 AND conversation_id = 'C0APPROVE' AND purpose = 'prompt'`, [
        requestId,
      ]),
    ).toHaveLength(1);
    const shown = textOf(prompt.args.blocks);
    expect(shown).toContain('Software request: Visio');
    expect(shown).toContain('<@U0BOB>');
    expect(shown).toContain('BOB-LAPTOP');
    expect(shown).toContain('Network diagrams for the migration');
    expect(shown).toMatch(/What will you use it for\?\*\n>Diagrams/);
    expect(buttonsOf(prompt.args.blocks).map((b) => [b.text, b.action_id, b.value])).toEqual([
      ['Approve', ACTION.approve, `${requestId}:0`],
      ['Deny', ACTION.deny, `${requestId}:0`],
    ]);
    expect(h.fake.last('conversations.open')!.args.users).toBe('U0BOB');
    const dm = posts.find((p) => p.args.channel === 'D0BOB')!;
    expect(textOf(dm.args.blocks)).toMatch(/Your request for \*Visio\* on BOB-LAPTOP was submitted/);
    expect(buttonsOf(dm.args.blocks).map((b) => b.text)).toEqual(['Cancel request', 'History']);

    const audit = await h.t.tdb.db.query<{ details: any }>(
      `SELECT details FROM audit_events WHERE action = 'message.sent' AND subject_id = $1`,
      [requestId],
    );
    expect(audit.map((a) => a.details.channel).sort()).toEqual(['C0APPROVE', 'D0BOB']);
  });

  it('a retried event does not post again', async () => {
    const { requestId } = await submittedRequest();
    const before = h.fake.of('chat.postMessage').length;
    const row = await h.t.tdb.db.one<{ id: string; payload: any }>(
      `SELECT id, payload FROM outbox WHERE subject_id = $1 AND type = 'request.submitted'`,
      [requestId],
    );
    await h.adapter.notifier.handle({ id: row.id, ...row.payload });
    expect(h.fake.of('chat.postMessage').length).toBe(before);
  });

  it('refuses bob (self-approval), dan (not an approver) and an unlinked Slack user with ephemeral messages', async () => {
    const { requestId, promptTs } = await submittedRequest();
    h.fake.reset();
    await h.action('U0BOB', ACTION.approve, requestId, { messageTs: promptTs });
    await h.action('U0DAN', ACTION.approve, requestId, { messageTs: promptTs });
    await h.action('U0NOBODY', ACTION.approve, requestId, { messageTs: promptTs });
    const eph = await h.fake.waitFor('chat.postEphemeral', 3);
    const bobSaw = eph.find((e) => e.args.user === 'U0BOB')!;
    const danSaw = eph.find((e) => e.args.user === 'U0DAN')!;
    const nobodySaw = eph.find((e) => e.args.user === 'U0NOBODY')!;
    expect(bobSaw.args.channel).toBe('C0APPROVE');
    expect(textOf(bobSaw.args.blocks)).toMatch(/cannot decide your own request/);
    expect(textOf(danSaw.args.blocks)).toMatch(/Only members of it-approvers/);
    expect(textOf(nobodySaw.args.blocks)).toContain('`slack: U0NOBODY`');
    expect(await statusOf(requestId)).toBe('pending');
    expect(await h.t.tdb.db.query('SELECT 1 FROM request_decisions WHERE request_id = $1', [requestId])).toHaveLength(0);
  });

  it('ada and cyd click Approve at the same moment: one decision, the other is told who decided', async () => {
    const { requestId, promptTs } = await submittedRequest();
    h.fake.reset();
    await Promise.all([
      h.action('U0ADA', ACTION.approve, requestId, { messageTs: promptTs }),
      h.action('U0CYD', ACTION.approve, requestId, { messageTs: promptTs }),
    ]);
    const eph = await h.fake.waitFor('chat.postEphemeral', 2);
    const texts = eph.map((e) => textOf(e.args.blocks));
    expect(texts.filter((t) => /You approved \*Visio\* for \*Bob User\*/.test(t))).toHaveLength(1);
    expect(texts.filter((t) => /Already decided: this was \*approved\* by \*(Ada Admin|Cyd Approver)\* <!date\^/.test(t))).toHaveLength(1);
    expect(await h.t.tdb.db.query('SELECT 1 FROM request_decisions WHERE request_id = $1', [requestId])).toHaveLength(1);
    expect(await statusOf(requestId)).toBe('approved');
  });

  it('updates every copy in place with the outcome and no buttons, tells bob, and orders the install', async () => {
    const { requestId, promptTs } = await approvedRequest();
    h.fake.reset();
    expect(await h.drain()).toEqual(['request.approved']);
    const [approver] = await h.t.tdb.db.query<{ decided_by_label: string }>('SELECT decided_by_label FROM requests WHERE id = $1', [
      requestId,
    ]);
    const updates = h.fake.of('chat.update');
    expect(updates.map((u) => u.args.channel).sort()).toEqual(['C0APPROVE', 'D0BOB']);
    for (const u of updates) {
      expect(
        buttonsOf(u.args.blocks).filter(
          (b) => b.action_id === ACTION.approve || b.action_id === ACTION.deny || b.action_id === ACTION.cancel,
        ),
      ).toEqual([]);
    }
    const channelCopy = updates.find((u) => u.args.channel === 'C0APPROVE')!;
    expect(channelCopy.args.ts).toBe(promptTs);
    expect(textOf(channelCopy.args.blocks)).toMatch(new RegExp(`Approved\\* by \\*${approver!.decided_by_label}\\* <!date\\^\\d+`));
    expect(channelCopy.args.blocks.some((b: any) => b.type === 'actions')).toBe(false);
    const outcome = h.fake.of('chat.postMessage').find((p) => p.args.channel === 'D0BOB')!;
    // the notification itself says who decided and when, not only the updated copy
    expect(textOf(outcome.args.blocks)).toMatch(
      new RegExp(
        `Approved: your request for \\*Visio\\* on BOB-LAPTOP\\.\\n.*Approved\\* by \\*${approver!.decided_by_label}\\* <!date\\^\\d+[^\\n]*\\nThe installation has been ordered`,
      ),
    );
    expect(buttonsOf(outcome.args.blocks).map((b) => b.text)).toContain('Install now');

    const row = await h.t.tdb.db.one<{ payload: any }>(`SELECT payload FROM outbox WHERE subject_id = $1 AND type = 'request.approved'`, [
      requestId,
    ]);
    const install = webhooksOfRow(row).find((w: any) => w.type === 'app.install');
    expect(install!.data).toMatchObject({
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      deviceName: 'BOB-LAPTOP',
      username: 'CONTOSO\\bob',
      requestId,
    });
  });

  it('bob can ask for the install now from his DM', async () => {
    const { requestId } = await approvedRequest();
    await h.drain();
    h.fake.reset();
    await h.action('U0BOB', ACTION.installNow, requestId, { channel: 'D0BOB' });
    const [eph] = await h.fake.waitFor('chat.postEphemeral');
    expect(textOf(eph!.args.blocks)).toMatch(/installation of \*Visio\* on BOB-LAPTOP has been ordered now/);
    const row = await h.t.tdb.db.one<{ payload: any }>(
      `SELECT payload FROM outbox WHERE subject_id = $1 AND type = 'request.install_ordered'`,
      [requestId],
    );
    expect(webhooksOfRow(row)[0]).toMatchObject({ type: 'app.install', data: { clientGuid: BOB_LAPTOP } });
  });
});
