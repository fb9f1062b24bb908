import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeActions } from '../../src/bots/teams/teams-cards.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { APPROVERS_CHANNEL, cardOf, startTeamsHarness, type TeamsHarness } from '../support/teams-harness.ts';
import { webhooksOfRow } from '../support/outbox-webhooks.ts';
import { closeOpenRequests } from '../support/close-open-requests.ts';

let h: TeamsHarness;
beforeAll(async () => {
  h = await startTeamsHarness();
  await h.post(h.installInChannel());
});
afterAll(() => h.close());

const verbs = (card: unknown) =>
  executeActions(card)
    .map((a) => a.verb)
    .sort();
const text = (card: unknown) => JSON.stringify(card);

/** One pending change per object: cancels what is pending and hands its events on, so an `it` starts from a clear slate. */
async function clearPendingChanges(): Promise<void> {
  for (const c of await h.t.tdb.db.query<{ id: string }>(`SELECT id FROM changes WHERE status = 'pending'`))
    await h.t.ctx.changes.cancel({ id: null, label: 'test:cleanup', channel: 'api' }, c.id);
  await h.drain();
  h.connector.reset();
}

/** One pending or approved request per user, device and application: bob's open Visio is closed first. */
const clearBobsVisio = () => closeOpenRequests(h, h.s, () => h.connector.reset(), 'teams');

/** ada types "change": the id of the form card she is sent. */
async function changeForm(): Promise<string> {
  await clearPendingChanges();
  await h.post(h.message('ada', 'change'));
  return h.connector.posted().at(-1)!.id!;
}

const submitChange = (formId: string) =>
  h.post(
    h.invoke(
      'ada',
      'submitChange',
      {
        kind: 'changeForm',
        resourceType: 'script',
        resourceId: 'cleanup.ps1',
        before: '{"timeout": 30, "run": "nightly"}',
        after: '{"timeout": 60, "run": "nightly", "notify": true}',
        justification: 'Jobs time out on big disks',
      },
      { replyToId: formId },
    ),
  );

/** ada's change submitted from the form, its events not yet handed to Teams. */
async function submittedChange(): Promise<{ formId: string; changeId: string }> {
  const formId = await changeForm();
  const res = await submitChange(formId);
  return { formId, changeId: res.body.value.refresh.action.data.id };
}

/** ada's change submitted and posted to the approvers channel. */
async function postedChange(): Promise<{ formId: string; changeId: string }> {
  const change = await submittedChange();
  await h.drain();
  h.connector.reset();
  return change;
}

/** bob's Visio request submitted from Slack and posted to the Teams approvers channel. */
async function slackRequest(): Promise<string> {
  await clearBobsVisio();
  const r = await h.t.ctx.requests.submit(h.s.actor(h.s.bob, 'slack'), {
    applicationId: VISIO,
    clientGuid: BOB_LAPTOP,
    justification: 'From Slack',
    answers: { usage: 'Diagrams' },
  });
  return r.id;
}

describe('multi-admin approval of a change through Teams', () => {
  it('"change" shows the form; bad JSON and a missing justification come back on the card', async () => {
    await clearPendingChanges();
    const changesBefore = await h.t.tdb.db.query('SELECT id FROM changes ORDER BY id');
    await h.post(h.message('ada', 'change'));
    const sent = h.connector.posted()[0]!;
    const formId = sent.id!;
    expect(verbs(cardOf(sent.body))).toEqual(['submitChange']);
    expect(text(cardOf(sent.body))).toContain('"title":"script"');
    const res = await h.post(
      h.invoke(
        'ada',
        'submitChange',
        { kind: 'changeForm', resourceType: 'script', resourceId: 'cleanup.ps1', before: '{"timeout": 30', after: '{"timeout": 60}' },
        { replyToId: formId },
      ),
    );
    expect(res.body.statusCode).toBe(200);
    expect(text(res.body.value)).toContain('This is not valid JSON');
    expect(text(res.body.value)).toContain('A business justification is required.');
    expect(await h.t.tdb.db.query('SELECT id FROM changes ORDER BY id')).toEqual(changesBefore);
  });

  it('submits; the change card shows the diff, and the requester sees only Cancel', async () => {
    const res = await submitChange(await changeForm());
    const card = res.body.value;
    expect(text(card)).toContain('Change to script \\"cleanup.ps1\\"');
    expect(text(card)).toContain('"text":"/timeout"');
    expect(text(card)).toContain('"text":"30"');
    expect(text(card)).toContain('"text":"60"');
    expect(text(card)).toContain('"text":"/notify"');
    expect(verbs(card)).toEqual(['cancel', 'refresh']);
    expect((await h.t.ctx.changes.get(card.refresh.action.data.id)).status).toBe('pending');
  });

  it('ada finds her pending change under my requests, and opening it offers Cancel', async () => {
    const { changeId } = await submittedChange();
    h.connector.reset();
    await h.post(h.message('ada', 'my requests'));
    const list = JSON.stringify(cardOf(h.connector.posted()[0]!.body));
    expect(list).toContain('Your change to script \\"cleanup.ps1\\"');
    const opened = await h.post(h.invoke('ada', 'open', { kind: 'change', id: changeId }));
    expect(verbs(opened.body.value)).toEqual(['cancel', 'refresh']);
  });

  it('posts the change to the approvers channel and refuses ada approving her own change on the card', async () => {
    const { formId, changeId } = await submittedChange();
    h.connector.reset();
    expect(await h.drain()).toEqual(['change.submitted']);
    const prompt = h.connector.of('send').find((s) => s.conversationId === APPROVERS_CHANNEL)!;
    expect(verbs(cardOf(prompt.body))).toEqual(['refresh']);
    // ada's own copy, brought up to date in place, keeps saying it was submitted
    const own0 = h.connector.of('update').find((u) => u.activityId === formId)!;
    expect(text(cardOf(own0.body))).toContain('Change submitted for approval by another admin.');
    const own = await h.post(
      h.invoke('ada', 'approve', { kind: 'change', id: changeId, notes: 'lgtm' }, { conversationId: APPROVERS_CHANNEL }),
    );
    expect(own.body.statusCode).toBe(200);
    expect(text(own.body.value)).toContain('You cannot approve or reject your own change; another admin must.');
    expect(verbs(own.body.value)).toEqual(['cancel', 'refresh']);
    expect((await h.t.ctx.changes.get(changeId)).status).toBe('pending');
  });

  it('cyd sees Approve/Reject with a notes field, approves, and every copy shows the outcome without buttons', async () => {
    const { changeId } = await postedChange();
    const view = await h.post(
      h.invoke('cyd', 'refresh', { kind: 'change', id: changeId }, { trigger: 'automatic', conversationId: APPROVERS_CHANNEL }),
    );
    expect(verbs(view.body.value)).toEqual(['approve', 'deny', 'refresh']);
    expect(text(view.body.value)).toContain('"id":"notes"');
    const res = await h.post(
      h.invoke(
        'cyd',
        'approve',
        { kind: 'change', id: changeId, notes: 'Checked with the storage team' },
        { conversationId: APPROVERS_CHANNEL },
      ),
    );
    expect(text(res.body.value)).toContain('You approved this change');
    expect(executeActions(res.body.value)).toEqual([]);
    h.connector.reset();
    expect(await h.drain()).toEqual(['change.approved']);
    const updates = h.connector.of('update');
    expect(updates.map((u) => u.conversationId).sort()).toEqual([APPROVERS_CHANNEL, 'a:personal-ada'].sort());
    for (const u of updates) {
      expect(executeActions(cardOf(u.body))).toEqual([]);
      expect(text(cardOf(u.body))).toContain('Approved by Cyd Approver');
      expect(text(cardOf(u.body))).toContain('Notes: Checked with the storage team');
    }
    expect(text(cardOf(h.connector.of('send').find((s) => s.conversationId === 'a:personal-ada')!.body))).toContain('was approved');
    const row = await h.t.tdb.db.one<{ payload: any }>(`SELECT payload FROM outbox WHERE subject_id = $1 AND type = 'change.approved'`, [
      changeId,
    ]);
    expect(webhooksOfRow(row).map((w: any) => w.type)).toEqual(['change.approved', 'change.apply']);
  });
});

describe('cross-platform: requested in Slack, approved in Teams', () => {
  it('posts the Teams prompt for a Slack request, decides it from Teams, updates the Teams copy and leaves the requester to Slack', async () => {
    const id = await slackRequest();
    h.connector.reset();
    await h.drain();
    expect(h.connector.of('send').map((s) => s.conversationId)).toEqual([APPROVERS_CHANNEL]);
    const res = await h.post(h.invoke('cyd', 'approve', { kind: 'request', id }, { conversationId: APPROVERS_CHANNEL }));
    expect(text(res.body.value)).toContain('You approved this request.');
    const detail = await h.t.ctx.requests.get(id);
    expect(detail.decisions[0]).toMatchObject({ channel: 'teams', approver: { label: 'Cyd Approver' } });
    h.connector.reset();
    await h.drain();
    expect(h.connector.of('update').map((u) => u.conversationId)).toEqual([APPROVERS_CHANNEL]);
    expect(executeActions(cardOf(h.connector.of('update')[0]!.body))).toEqual([]);
    // bob asked in Slack, so Slack tells him; Teams does not message him
    expect(h.connector.of('send')).toEqual([]);
  });

  it('updates the Teams copies when the decision is made elsewhere (a revoke in Slack)', async () => {
    // requested in Slack, approved from the Teams prompt
    const id = await slackRequest();
    await h.drain();
    await h.post(h.invoke('cyd', 'approve', { kind: 'request', id }, { conversationId: APPROVERS_CHANNEL }));
    await h.drain();
    await h.t.ctx.requests.revoke(h.s.actor(h.s.ada, 'slack'), id, 'Licence moved to another team');
    h.connector.reset();
    await h.drain();
    const update = h.connector.of('update').find((u) => u.conversationId === APPROVERS_CHANNEL)!;
    expect(text(cardOf(update.body))).toContain('Revoked by CONTOSO\\\\ada');
    expect(text(cardOf(update.body))).toContain('Licence moved to another team');
    expect(executeActions(cardOf(update.body))).toEqual([]);
  });
});
