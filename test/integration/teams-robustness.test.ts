import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeActions } from '../../src/bots/teams/teams-cards.ts';
import { TeamsSendError } from '../../src/bots/teams/teams-connector.ts';
import type { DomainEvent } from '../../src/core/events.ts';
import { BOB_LAPTOP, defaultPolicy, VISIO } from '../support/fixtures.ts';
import { AAD, APPROVERS_CHANNEL, cardOf, startTeamsHarness, type TeamsHarness } from '../support/teams-harness.ts';

const verbs = (card: unknown) =>
  executeActions(card)
    .map((a) => a.verb)
    .sort();

describe('Teams delivery under failure', () => {
  let h: TeamsHarness;
  beforeAll(async () => {
    h = await startTeamsHarness({ policy: { ...defaultPolicy, stages: [{ approvers: ['it-approvers'], notifyApproversDirectly: true }] } });
    await h.post(h.installInChannel());
    await h.post(h.message('bob', 'hi'));
  });
  afterAll(() => h.close());

  // each test asks for Visio on a device of its own, so no test depends on a request another one left behind
  let devices = 0;
  const submitFromApi = async () => {
    const clientGuid = `GUID:ROBUST-${String(++devices).padStart(4, '0')}`;
    await h.t.tdb.db.query(`INSERT INTO devices (client_guid, name, primary_user_id) VALUES ($1, $2, $3)`, [
      clientGuid,
      `BOB-R${devices}`,
      h.s.bob.id,
    ]);
    return h.t.ctx.requests.submit(
      { id: null, label: 'api:cm', channel: 'api' },
      {
        applicationId: VISIO,
        requesterUsername: 'CONTOSO\\bob',
        clientGuid,
        justification: 'API request',
        answers: { usage: 'Other' },
      },
    );
  };
  /** A pending request whose prompts (channel card, approvers' chats, bob's copy) have been posted. */
  const promptedRequest = async () => {
    h.connector.reset(); // failures scripted by an earlier test and not used up must not swallow these prompts
    const r = await submitFromApi();
    await h.drain();
    return r.id;
  };

  it('a 429 throws a retryable error with Retry-After; the retry posts each copy once', async () => {
    const r = await submitFromApi();
    h.connector.reset();
    h.connector.failNext({ kind: 'send', status: 429, retryAfter: '3' });
    const rows = await h.t.tdb.db.query<{ id: string; payload: any }>(`SELECT id, payload FROM outbox WHERE subject_id = $1`, [r.id]);
    const event: DomainEvent = { id: rows[0]!.id, ...rows[0]!.payload };
    const err = await h.adapter.notifier.handle(event).then(
      () => null,
      (e) => e,
    );
    expect(err).toBeInstanceOf(TeamsSendError);
    expect(err).toMatchObject({ retryable: true, status: 429, retryAfterMs: 3000 });
    await h.adapter.notifier.handle(event);
    await h.adapter.notifier.handle(event);
    const posts = h.connector.of('send');
    // channel prompt, a DM prompt for each approver (conversations created on the fly), bob's confirmation
    expect(posts.filter((p) => p.conversationId === APPROVERS_CHANNEL)).toHaveLength(1);
    const created = h.connector.of('create');
    expect(created.map((c) => c.body.members[0].id).sort()).toEqual([AAD.ada, AAD.cyd].sort());
    const dms = posts.filter((p) => created.some((c) => c.id === p.conversationId));
    expect(dms).toHaveLength(2);
    for (const dm of dms) expect(verbs(cardOf(dm.body))).toEqual(['approve', 'deny', 'refresh']);
    const toBob = posts.filter((p) => p.conversationId === 'a:personal-bob');
    expect(toBob).toHaveLength(1);
    expect(verbs(cardOf(toBob[0]!.body))).toEqual(['cancel', 'refresh']);
    expect(verbs(cardOf(posts.find((p) => p.conversationId === APPROVERS_CHANNEL)!.body))).toEqual(['refresh']);
    await h.drain();
  });

  it('a 5xx and a network failure are retryable; a 403 is logged and skipped', async () => {
    const r = await h.t.ctx.requests.get(await promptedRequest());
    const reminder: DomainEvent = {
      id: randomUUID(),
      type: 'request.reminder',
      occurredAt: new Date().toISOString(),
      subjectType: 'request',
      subjectId: r.id,
      actor: { id: null, label: 'Signoff', channel: 'system' },
      data: { requestId: r.id, stage: 0, approverGroups: [], deadlineAt: null },
    };
    h.connector.reset();
    h.connector.failNext({ kind: 'reply', status: 503 });
    await expect(h.adapter.notifier.handle(reminder)).rejects.toMatchObject({ retryable: true, status: 503 });
    h.connector.failNext({ status: 403, times: 10 });
    await expect(h.adapter.notifier.handle({ ...reminder, id: randomUUID() })).resolves.toBeUndefined();
  });

  it("reminders reply in the channel card's thread and follow up in approvers' chats, once per event", async () => {
    const r = await promptedRequest();
    const prompt = await h.t.tdb.db.one<{ message_id: string }>(
      `SELECT message_id FROM message_refs WHERE subject_id = $1 AND conversation_id = $2 AND purpose = 'prompt'`,
      [r, APPROVERS_CHANNEL],
    );
    const reminder: DomainEvent = {
      id: randomUUID(),
      type: 'request.reminder',
      occurredAt: new Date().toISOString(),
      subjectType: 'request',
      subjectId: r,
      actor: { id: null, label: 'Signoff', channel: 'system' },
      data: { requestId: r, stage: 0, approverGroups: [], deadlineAt: null },
    };
    h.connector.reset();
    await h.adapter.notifier.handle(reminder);
    await h.adapter.notifier.handle(reminder);
    const replies = h.connector.of('reply');
    expect(replies).toHaveLength(1);
    expect(replies[0]).toMatchObject({ conversationId: APPROVERS_CHANNEL, activityId: prompt.message_id });
    const card = cardOf(replies[0]!.body);
    expect(JSON.stringify(card)).toContain('Reminder: waiting for a decision');
    // the approvers are @mentioned, so Teams notifies them of the reply (by Teams user id once known)
    expect(JSON.stringify(card)).toContain('<at>Ada Admin</at> <at>Cyd Approver</at>');
    expect(card.msteams.entities).toEqual([
      { type: 'mention', text: '<at>Ada Admin</at>', mentioned: { id: '29:ada', name: 'Ada Admin' } },
      { type: 'mention', text: '<at>Cyd Approver</at>', mentioned: { id: AAD.cyd, name: 'Cyd Approver' } },
    ]);
    expect(h.connector.of('send')).toHaveLength(2); // the two approvers' personal chats
  });

  it('an update that fails with "activity not found" posts a fresh card and records the new id', async () => {
    const r = await promptedRequest();
    const before = await h.t.tdb.db.one<{ id: string; message_id: string }>(
      `SELECT id, message_id FROM message_refs WHERE subject_id = $1 AND conversation_id = $2 AND purpose = 'prompt'`,
      [r, APPROVERS_CHANNEL],
    );
    const decided = await h.post(h.invoke('cyd', 'deny', { kind: 'request', id: r, reason: 'Use draw.io' }));
    expect(JSON.stringify(decided.body.value)).toContain('You denied this request.');
    h.connector.reset();
    h.connector.failNext({ kind: 'update', status: 404, times: 1 });
    await h.drain();
    const fresh = h.connector.of('send').find((s) => s.conversationId === APPROVERS_CHANNEL)!;
    expect(fresh).toBeDefined();
    expect(executeActions(cardOf(fresh.body))).toEqual([]);
    expect(JSON.stringify(cardOf(fresh.body))).toContain('Denied by Cyd Approver');
    const after = await h.t.tdb.db.one<{ message_id: string }>(`SELECT message_id FROM message_refs WHERE id = $1`, [before.id]);
    expect(after.message_id).toBe(fresh.id);
    expect(after.message_id).not.toBe(before.message_id);
    // the other copies (DMs, bob's) were updated in place, none left with buttons
    for (const u of h.connector.of('update')) expect(executeActions(cardOf(u.body))).toEqual([]);
    expect(h.connector.of('update').length).toBeGreaterThanOrEqual(2);
  });

  it("spaces sends to one conversation instead of bursting past Teams' rate", async () => {
    const { BotConnectorClient } = await import('../../src/bots/teams/teams-connector.ts');
    const client = new BotConnectorClient(async () => null, { minIntervalMs: 150 });
    h.connector.reset();
    await Promise.all(
      Array.from({ length: 8 }, (_, i) => client.sendToConversation(h.connector.url, 'a:rate', { type: 'message', text: `m${i}` })),
    );
    expect(h.connector.of('send')).toHaveLength(8);
    const at = h.connector.calls.map((c) => c.at);
    // 8 sends at ~7/s start 7 intervals apart; arrival times carry the first request's connection set-up and the
    // machine's jitter, so allow one interval of slack (a burst would arrive within a few ms)
    expect(at.at(-1)! - at[0]!).toBeGreaterThanOrEqual(6 * 150);
  });
});

describe('Teams input that is not what the bot expects', () => {
  let h: TeamsHarness;
  beforeAll(async () => {
    h = await startTeamsHarness();
  });
  afterAll(() => h.close());

  it('answers a message with no text (an image or a file alone) with help, not an error', async () => {
    h.connector.reset();
    const res = await h.post({
      ...h.message('bob', ''),
      text: undefined,
      attachments: [{ contentType: 'image/png', contentUrl: 'https://example.com/a.png' }],
    });
    expect(res.status).toBe(200);
    const card = JSON.stringify(cardOf(h.connector.posted()[0]!.body));
    expect(card).toContain('my requests');
    expect(card).not.toMatch(/went wrong/i);
  });

  it('answers an adaptiveCard/action invoke without an action with a 400 error body', async () => {
    const res = await h.post({ ...h.invoke('bob', 'refresh', {}), value: {} });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({
      statusCode: 400,
      type: 'application/vnd.microsoft.error',
      value: { code: 'BadRequest', message: expect.stringMatching(/no action/) },
    });
  });

  it('Deny and Reject need a reason on the card, as in Slack; who may not decide hears that first', async () => {
    const r = await h.t.ctx.requests.submit(
      { id: null, label: 'api:cm', channel: 'api' },
      {
        applicationId: VISIO,
        requesterUsername: 'CONTOSO\\bob',
        clientGuid: BOB_LAPTOP,
        justification: 'API request',
        answers: { usage: 'Other' },
      },
    );
    const deny = (who: keyof typeof AAD, reason: string) => h.post(h.invoke(who, 'deny', { kind: 'request', id: r.id, stage: 0, reason }));
    expect(JSON.stringify((await deny('bob', '')).body.value)).toContain('You cannot decide your own request.');
    const blank = await deny('cyd', '   ');
    expect(JSON.stringify(blank.body.value)).toContain('Say why (Reason) before denying');
    expect(JSON.stringify(blank.body.value)).toContain('Reason (required to deny)');
    expect((await h.t.ctx.requests.get(r.id)).status).toBe('pending');
    expect(JSON.stringify((await deny('cyd', 'Use draw.io')).body.value)).toContain('You denied this request.');
    expect((await h.t.ctx.requests.get(r.id)).status).toBe('denied');

    const change = await h.t.ctx.changes.submit(h.s.actor(h.s.ada, 'teams'), {
      resourceType: 'script',
      resourceId: 'reject-me.ps1',
      before: { a: 1 },
      after: { a: 2 },
      justification: 'tidy',
    });
    const reject = await h.post(h.invoke('cyd', 'deny', { kind: 'change', id: change.id, notes: '' }));
    expect(JSON.stringify(reject.body.value)).toContain('Say why (Approver notes) before rejecting');
    expect((await h.t.ctx.changes.get(change.id)).status).toBe('pending');
  });

  it('answers personal commands in a channel with a pointer to the personal chat, not with the list', async () => {
    h.connector.reset();
    await h.post({
      ...h.message('ada', '<at>Signoff</at> my requests'),
      conversation: { id: APPROVERS_CHANNEL, conversationType: 'channel', isGroup: true },
    });
    const card = JSON.stringify(cardOf(h.connector.posted()[0]!.body));
    expect(card).toContain('Ask me in our personal chat');
    expect(card).not.toContain('Your requests');
    // "pending", Slack's word, works in the personal chat
    h.connector.reset();
    await h.post(h.message('ada', 'pending'));
    expect(JSON.stringify(cardOf(h.connector.posted()[0]!.body))).toContain('Your requests');
  });

  it('tells an unlinked user the id an admin has to link', async () => {
    h.connector.reset();
    await h.post(h.message('stranger', 'request visio'));
    expect(JSON.stringify(cardOf(h.connector.posted()[0]!.body))).toContain(`teams: ${AAD.stranger}`);
    const res = await h.post(h.invoke('stranger', 'startRequest', {}));
    expect(JSON.stringify(res.body)).toContain(`teams: ${AAD.stranger}`);
  });
});

describe('Teams authentication', () => {
  let h: TeamsHarness;
  beforeAll(async () => {
    h = await startTeamsHarness({
      env: { MICROSOFT_APP_ID: '00000000-0000-4000-8000-0000000000b0', MICROSOFT_APP_PASSWORD: 'not-a-real-secret', TEAMS_EMULATOR: '0' },
    });
  });
  afterAll(() => h.close());

  it('answers 401 to an activity without a token and to one with a forged token, and acts on neither', async () => {
    const none = await h.post(h.message('bob', 'request Visio'));
    expect(none.status).toBe(401);
    const forged = await h.post(h.invoke('ada', 'approve', { kind: 'request', id: randomUUID() }), {
      authorization: 'Bearer eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJtZSJ9.c2lnbmF0dXJl',
    });
    expect(forged.status).toBe(401);
    expect(h.connector.calls).toEqual([]);
    expect(await h.t.tdb.db.query(`SELECT 1 FROM conversation_refs`)).toHaveLength(0);
  });
});
