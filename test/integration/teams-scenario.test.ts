import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeActions } from '../../src/bots/teams/teams-cards.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { AAD, APPROVERS_CHANNEL, cardOf, startTeamsHarness, type TeamsHarness } from '../support/teams-harness.ts';
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

const forgetTeamsRefs = (...keys: string[]) =>
  h.t.tdb.db.query(`DELETE FROM conversation_refs WHERE platform = 'teams' AND key = ANY($1::text[])`, [keys]);
/** as if cyd had never written to the bot: cards can then name him only by his AAD object id */
const forgetCyd = () => h.t.tdb.db.query(`DELETE FROM teams_users WHERE aad_object_id = lower($1)`, [AAD.cyd]);

/** One pending or approved request per user, device and application: bob's open Visio is closed first. */
const clearBobsVisio = () => closeOpenRequests(h, h.s, () => h.connector.reset(), 'teams');

/** bob types "request visio": the id of the form card he is sent. */
async function requestForm(): Promise<string> {
  await clearBobsVisio();
  await h.post(h.message('bob', 'request visio'));
  return h.connector.posted().at(-1)!.id!;
}

const submitForm = (formMessageId: string) =>
  h.post(
    h.invoke(
      'bob',
      'submitRequest',
      {
        kind: 'form',
        applicationId: VISIO,
        device: h.s.deviceId,
        justification: 'Network diagrams for the migration',
        q_usage: 'Diagrams',
      },
      { replyToId: formMessageId },
    ),
  );

/** bob's request submitted from the form, its events not yet handed to Teams. */
async function submitted(): Promise<{ requestId: string; formMessageId: string }> {
  const formMessageId = await requestForm();
  const res = await submitForm(formMessageId);
  return { requestId: res.body.value.refresh.action.data.id, formMessageId };
}

/** bob's request submitted from the form and posted to the approvers channel. */
async function submittedFromCard(): Promise<{ requestId: string; formMessageId: string }> {
  const r = await submitted();
  await h.drain();
  h.connector.reset();
  return r;
}

/** bob's request approved by ada on the channel card, the approval not yet handed to Teams. */
async function approvedOnCard(): Promise<{ requestId: string; formMessageId: string }> {
  const r = await submittedFromCard();
  const res = await h.post(
    h.invoke(
      'ada',
      'approve',
      { kind: 'request', id: r.requestId, stage: 0, reason: 'Standard tool' },
      { conversationId: APPROVERS_CHANNEL },
    ),
  );
  expect(text(res.body.value)).toContain('You approved this request.');
  return r;
}

describe('Configuration Manager scenario 1 through Teams', () => {
  it('stores the channel reference when the bot is added to the approvers channel, and says how to route a group there', async () => {
    await forgetTeamsRefs(APPROVERS_CHANNEL, '19:team-it@thread.tacv2');
    h.connector.reset();
    const res = await h.post(h.installInChannel());
    expect(res.status).toBe(200);
    const refs = await h.t.tdb.db.query<{ key: string; kind: string; reference: any }>(
      `SELECT key, kind, reference FROM conversation_refs WHERE platform = 'teams' ORDER BY key`,
    );
    expect(refs.map((r) => [r.key, r.kind])).toEqual(
      expect.arrayContaining([
        [APPROVERS_CHANNEL, 'channel'],
        ['19:team-it@thread.tacv2', 'team'],
      ]),
    );
    expect(refs.find((r) => r.key === APPROVERS_CHANNEL)!.reference.serviceUrl).toBe(h.connector.url);
    const welcome = h.connector.posted().find((c) => c.conversationId === APPROVERS_CHANNEL)!;
    expect(text(cardOf(welcome.body))).toContain(APPROVERS_CHANNEL);
  });

  it('welcomes bob in his personal chat and answers help', async () => {
    await forgetTeamsRefs(AAD.bob);
    h.connector.reset();
    await h.post({ ...h.message('bob', ''), type: 'conversationUpdate', text: undefined, membersAdded: [{ id: '28:signoff-bot' }] });
    const welcome = cardOf(h.connector.posted()[0]!.body);
    expect(text(welcome)).toContain('Welcome to Signoff, Bob User');
    expect(verbs(welcome)).toEqual(['myRequests', 'startRequest']);
    h.connector.reset();
    await h.post(h.message('bob', 'help'));
    expect(text(cardOf(h.connector.posted()[0]!.body))).toContain('my requests');
    const ref = await h.t.tdb.db.maybeOne(`SELECT kind FROM conversation_refs WHERE key = $1`, [AAD.bob]);
    expect(ref).toEqual({ kind: 'personal' });
  });

  it('"request visio" shows the form with his device, a justification and the policy question', async () => {
    await clearBobsVisio();
    await h.post(h.message('bob', 'request visio'));
    const sent = h.connector.posted()[0]!;
    const form = cardOf(sent.body);
    const inputs = JSON.stringify(form);
    expect(form.version).toBe('1.5');
    expect(inputs).toContain('"id":"device"');
    expect(inputs).toContain('BOB-LAPTOP');
    expect(inputs).toContain('"id":"justification"');
    expect(inputs).toContain('"id":"q_usage"');
    expect(inputs).toContain('What will you use it for?');
    expect(verbs(form)).toEqual(['submitRequest']);
  });

  it('returns validation errors on the same card, next to each field, with the values kept', async () => {
    const formMessageId = await requestForm();
    const requestsBefore = await h.t.tdb.db.query('SELECT id FROM requests ORDER BY id');
    const res = await h.post(
      h.invoke(
        'bob',
        'submitRequest',
        { kind: 'form', applicationId: VISIO, device: h.s.deviceId, justification: '  ' },
        { replyToId: formMessageId },
      ),
    );
    expect(res.status).toBe(200);
    expect(res.body.statusCode).toBe(200);
    expect(res.body.type).toBe('application/vnd.microsoft.card.adaptive');
    const card = text(res.body.value);
    expect(card).toContain('Please fix the highlighted fields.');
    expect(card).toContain('A business justification is required.');
    expect(card).toContain('Please answer this question.');
    expect(card).toContain(`"value":"${h.s.deviceId}"`);
    expect(await h.t.tdb.db.query('SELECT id FROM requests ORDER BY id')).toEqual(requestsBefore);
  });

  it("submits and turns the form into bob's copy of the request, with Cancel", async () => {
    await forgetCyd();
    const formMessageId = await requestForm();
    const res = await submitForm(formMessageId);
    expect(res.body.statusCode).toBe(200);
    const card = res.body.value;
    expect(text(card)).toContain('Visio for Bob User');
    expect(text(card)).toContain('Request submitted');
    expect(verbs(card)).toEqual(['cancel', 'refresh']);
    // Teams refreshes by Teams user id: ada (who added the bot) and bob have written to it, so theirs are
    // known; cyd never has, so only his AAD object id is
    expect(card.refresh.userIds.sort()).toEqual(['29:ada', '29:bob', AAD.cyd].sort());
    const requestId = card.refresh.action.data.id;
    const refs = await h.t.tdb.db.query<{ purpose: string; message_id: string }>(
      `SELECT purpose, message_id FROM message_refs WHERE subject_id = $1`,
      [requestId],
    );
    expect(refs).toEqual([{ purpose: 'requester', message_id: formMessageId }]);
  });

  it('posts the prompt to the approvers channel: read-only for everyone, refreshed per viewer', async () => {
    await forgetCyd();
    const { requestId, formMessageId } = await submitted();
    h.connector.reset();
    expect(await h.drain()).toEqual(['request.submitted']);
    const posts = h.connector.of('send');
    expect(posts.map((p) => p.conversationId)).toEqual([APPROVERS_CHANNEL]);
    const prompt = cardOf(posts[0]!.body);
    expect(text(prompt)).toContain('Network diagrams for the migration');
    expect(text(prompt)).toContain('BOB-LAPTOP');
    expect(verbs(prompt)).toEqual(['refresh']);
    expect(prompt.refresh.userIds.sort()).toEqual(['29:ada', '29:bob', AAD.cyd].sort());
    // bob's own copy was brought up to date in place, still saying it was submitted (no flash without the banner)
    const updates = h.connector.of('update');
    expect(updates.map((u) => u.activityId)).toEqual([formMessageId]);
    expect(text(cardOf(updates[0]!.body))).toContain('Request submitted');
    expect(verbs(cardOf(updates[0]!.body))).toEqual(['cancel', 'refresh']);
    // the approvers' prompt carries no such banner
    expect(text(prompt)).not.toContain('Request submitted');
    const audit = await h.t.tdb.db.query(`SELECT details FROM audit_events WHERE action = 'message.sent' AND subject_id = $1`, [requestId]);
    expect(audit.length).toBeGreaterThanOrEqual(2);
  });

  it('gives each viewer their own card on refresh: approver buttons, requester Cancel, others read-only', async () => {
    const { requestId } = await submittedFromCard();
    const asApprover = await h.post(
      h.invoke('cyd', 'refresh', { kind: 'request', id: requestId }, { trigger: 'automatic', conversationId: APPROVERS_CHANNEL }),
    );
    expect(verbs(asApprover.body.value)).toEqual(['approve', 'deny', 'refresh']);
    expect(text(asApprover.body.value)).toContain('"id":"reason"');
    const asRequester = await h.post(
      h.invoke('bob', 'refresh', { kind: 'request', id: requestId }, { trigger: 'automatic', conversationId: APPROVERS_CHANNEL }),
    );
    expect(verbs(asRequester.body.value)).toEqual(['cancel', 'refresh']);
    const asStranger = await h.post(
      h.invoke('stranger', 'refresh', { kind: 'request', id: requestId }, { conversationId: APPROVERS_CHANNEL }),
    );
    expect(verbs(asStranger.body.value)).toEqual(['refresh']);
    expect(text(asStranger.body.value)).not.toContain('"id":"reason"');
  });

  it("a refresh crafted in one's own chat shows nothing of a request that is not theirs; a card with a bad stage decides nothing", async () => {
    const { requestId } = await submittedFromCard();
    // Dan is linked but in none of the policy's groups; asked from his own chat, the request is not his to see
    await h.t.tdb.db.query(`UPDATE identities SET teams_aad_id = $1 WHERE username = 'CONTOSO\\dan'`, [AAD.stranger]);
    try {
      const asDan = await h.post(h.invoke('stranger', 'refresh', { kind: 'request', id: requestId }, { trigger: 'automatic' }));
      expect(asDan.body).toMatchObject({ statusCode: 404, type: 'application/vnd.microsoft.error' });
      expect(JSON.stringify(asDan.body)).not.toMatch(/Visio|Network diagrams|Bob/);
    } finally {
      await h.t.tdb.db.query(`UPDATE identities SET teams_aad_id = NULL WHERE username = 'CONTOSO\\dan'`);
    }
    for (const stage of ['not-a-stage', -1, 1.5, 5]) {
      const bad = await h.post(
        h.invoke('ada', 'approve', { kind: 'request', id: requestId, stage }, { conversationId: APPROVERS_CHANNEL }),
      );
      expect(bad.body, String(stage)).toMatchObject({ statusCode: 400, type: 'application/vnd.microsoft.error' });
    }
    expect((await h.t.ctx.requests.get(requestId)).status).toBe('pending');
  });

  it('refuses bob approving his own request on the card', async () => {
    const { requestId } = await submittedFromCard();
    const res = await h.post(
      h.invoke('bob', 'approve', { kind: 'request', id: requestId, stage: 0 }, { conversationId: APPROVERS_CHANNEL }),
    );
    expect(res.body.statusCode).toBe(200);
    expect(text(res.body.value)).toContain('You cannot decide your own request.');
    expect((await h.t.ctx.requests.get(requestId)).status).toBe('pending');
  });

  it('ada and cyd clicking at once give one decision; each sees the outcome inline with no buttons', async () => {
    const { requestId } = await submittedFromCard();
    const [a, c] = await Promise.all([
      h.post(
        h.invoke(
          'ada',
          'approve',
          { kind: 'request', id: requestId, stage: 0, reason: 'Standard tool' },
          { conversationId: APPROVERS_CHANNEL },
        ),
      ),
      h.post(h.invoke('cyd', 'approve', { kind: 'request', id: requestId, stage: 0, reason: 'ok' }, { conversationId: APPROVERS_CHANNEL })),
    ]);
    for (const r of [a, c]) {
      expect(r.body.statusCode).toBe(200);
      expect(executeActions(r.body.value)).toEqual([]);
    }
    const banners = [text(a.body.value), text(c.body.value)];
    expect(banners.filter((b) => b.includes('You approved this request.'))).toHaveLength(1);
    expect(banners.filter((b) => b.includes('already approved'))).toHaveLength(1);
    const detail = await h.t.ctx.requests.get(requestId);
    expect(detail.status).toBe('approved');
    expect(detail.decisions).toHaveLength(1);
  });

  it('updates every copy in place with outcome, who, when and why and no buttons; tells bob; orders the install', async () => {
    const { requestId } = await approvedOnCard();
    h.connector.reset();
    expect(await h.drain()).toEqual(['request.approved']);
    const decider = (await h.t.ctx.requests.get(requestId)).decidedBy!;
    const updates = h.connector.of('update');
    expect(updates.map((u) => u.conversationId).sort()).toEqual([APPROVERS_CHANNEL, 'a:personal-bob'].sort());
    for (const u of updates) {
      const card = cardOf(u.body);
      expect(executeActions(card)).toEqual([]);
      expect(card.refresh).toBeUndefined();
      expect(text(card)).toContain(`Approved by ${decider} on {{DATE(`);
      expect(text(card)).toMatch(/Reason: (Standard tool|ok)/);
    }
    const told = h.connector.of('send');
    expect(told.map((s) => s.conversationId)).toEqual(['a:personal-bob']);
    expect(text(cardOf(told[0]!.body))).toContain('Visio approved');
    const row = await h.t.tdb.db.one<{ payload: any }>(`SELECT payload FROM outbox WHERE subject_id = $1 AND type = 'request.approved'`, [
      requestId,
    ]);
    expect(webhooksOfRow(row).map((w: any) => w.type)).toEqual(['request.approved', 'app.install']);
    expect(webhooksOfRow(row)[1].data).toMatchObject({ clientGuid: BOB_LAPTOP, deviceName: 'BOB-LAPTOP', username: 'CONTOSO\\bob' });
  });

  it('handling the same event again posts nothing new', async () => {
    const { requestId } = await approvedOnCard();
    await h.drain();
    const row = await h.t.tdb.db.one<{ id: string; payload: any }>(
      `SELECT id, payload FROM outbox WHERE subject_id = $1 AND type = 'request.approved'`,
      [requestId],
    );
    h.connector.reset();
    await h.adapter.notifier.handle({ id: row.id, ...row.payload });
    expect(h.connector.of('send')).toEqual([]);
    expect(h.connector.of('update').length).toBe(2);
  });

  it('"my requests" lists the approved request', async () => {
    await approvedOnCard();
    await h.drain();
    h.connector.reset();
    await h.post(h.message('bob', 'my requests'));
    const card = cardOf(h.connector.posted()[0]!.body);
    expect(text(card)).toContain('Visio');
    expect(text(card)).toContain('approved');
  });

  it('answers malformed invokes with the Bot Framework error body', async () => {
    const unknown = await h.post(h.invoke('ada', 'launchMissiles', {}));
    expect(unknown.body).toMatchObject({ statusCode: 400, type: 'application/vnd.microsoft.error', value: { code: 'BadRequest' } });
    const missing = await h.post(h.invoke('ada', 'approve', { kind: 'request', id: '00000000-0000-4000-8000-000000000000' }));
    expect(missing.body).toMatchObject({ statusCode: 404, type: 'application/vnd.microsoft.error', value: { code: 'NotFound' } });
  });
});
