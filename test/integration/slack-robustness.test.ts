import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION, CALLBACK } from '../../src/bots/slack/slack-ids.ts';
import { SlackApiError } from '../../src/bots/slack/slack-api.ts';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { buttonsOf, startSlackHarness, textOf, type SlackHarness } from '../support/slack-harness.ts';

let h: SlackHarness;
let s: Seeded;
beforeAll(async () => {
  // the default budget: with 300 ms, a decision that is merely slow on a loaded machine (not blocked) would be
  // acked empty before it commits, and the { response_action: 'clear' } checks below would fail
  h = await startSlackHarness({ modalBudgetMs: 1500 }); // the production value: one test below exceeds it on purpose
  s = await seedContoso(h.t.tdb.db);
});
afterAll(() => h.close());

async function pendingRequest(): Promise<string> {
  await h.t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
  const r = await h.t.ctx.requests.submit(s.actor(s.bob), {
    applicationId: VISIO,
    clientGuid: BOB_LAPTOP,
    justification: 'diagrams',
    answers: { usage: 'Diagrams' },
  });
  await h.drain();
  h.fake.reset();
  return r.id;
}

const lastEventOf = async (id: string) => {
  const row = await h.t.tdb.db.one<{ id: string; payload: any }>(
    'SELECT id, payload FROM outbox WHERE subject_id = $1 ORDER BY seq DESC LIMIT 1',
    [id],
  );
  return { id: row.id, ...row.payload };
};

describe('opening modals while the database is slow', () => {
  it('opens a Loading… modal before the trigger_id expires, then replaces it with the request form', async () => {
    h.fake.reset();
    // another transaction holds the catalog: building the form has to wait for it
    const runner = h.t.tdb.db.dataSource.createQueryRunner();
    await runner.connect();
    await runner.startTransaction();
    await runner.query('LOCK TABLE applications IN ACCESS EXCLUSIVE MODE');
    try {
      expect((await h.command('U0BOB', 'request Visio')).status).toBe(200);
      const [opened] = await h.fake.waitFor('views.open');
      expect(textOf(opened!.args.view.blocks)).toMatch(/Loading/);
      expect(h.fake.of('views.update')).toHaveLength(0);
    } finally {
      await runner.rollbackTransaction();
      await runner.release();
    }
    const [update] = await h.fake.waitFor('views.update');
    expect(h.fake.of('views.open')).toHaveLength(1);
    expect(update!.args.view_id).toMatch(/^V/);
    expect(update!.args.view.callback_id).toBe(CALLBACK.requestModal);
    expect(textOf(update!.args.view.blocks)).toContain('What will you use it for?');
  });
});

describe('deciding robustly', () => {
  it('Deny opens a reason modal; the reason is required and shown on every copy', async () => {
    const id = await pendingRequest();
    await h.action('U0CYD', ACTION.deny, id);
    const [open] = await h.fake.waitFor('views.open');
    const view = open!.args.view;
    expect(textOf(view.blocks)).toContain('*Visio* for *Bob User* on BOB-LAPTOP');
    expect((await h.submit('U0CYD', view, { reason: '  ' })).body.errors.reason).toMatch(/Say why/);
    expect((await h.submit('U0CYD', view, { reason: 'Use draw.io instead' })).body).toEqual({ response_action: 'clear' });
    await h.fake.waitFor('chat.postEphemeral');
    expect(await h.drain()).toEqual(['request.denied']);
    const update = h.fake.of('chat.update').find((u) => u.args.channel === 'C0APPROVE')!;
    expect(textOf(update.args.blocks)).toMatch(/Denied\* by \*Cyd Approver\* <!date[^\n]*\n>Use draw\.io instead/);
    expect(buttonsOf(update.args.blocks)).toEqual([]);
    const dm = h.fake.of('chat.postMessage').find((p) => p.args.channel === 'D0BOB')!;
    expect(textOf(dm.args.blocks)).toMatch(
      /Denied: your request for \*Visio\*.*\n.*Denied\* by \*Cyd Approver\*[^\n]*\n>Use draw\.io instead/,
    );
  });

  it('a replayed approval payload (same signed bytes) yields one decision', async () => {
    const id = await pendingRequest();
    const body = new URLSearchParams({
      payload: JSON.stringify({
        type: 'block_actions',
        user: { id: 'U0ADA' },
        trigger_id: 't',
        channel: { id: 'C0APPROVE' },
        container: { type: 'message', channel_id: 'C0APPROVE' },
        actions: [{ action_id: ACTION.approve, value: id }],
      }),
    }).toString();
    const headers = h.signedHeaders(body);
    await Promise.all([
      h.post(body, 'application/x-www-form-urlencoded', headers),
      h.post(body, 'application/x-www-form-urlencoded', headers),
      h.post(body, 'application/x-www-form-urlencoded', headers),
    ]);
    const eph = await h.fake.waitFor('chat.postEphemeral', 3);
    expect(eph.filter((e) => /You approved/.test(textOf(e.args.blocks)))).toHaveLength(1);
    expect(eph.filter((e) => /Already decided/.test(textOf(e.args.blocks)))).toHaveLength(2);
    expect(await h.t.tdb.db.query('SELECT 1 FROM request_decisions WHERE request_id = $1', [id])).toHaveLength(1);
  });

  it('acknowledges within the budget while the database is blocked, then finishes the work', async () => {
    const id = await pendingRequest();
    await h.action('U0CYD', ACTION.deny, id);
    const [open] = await h.fake.waitFor('views.open');
    // another transaction holds the request row: the decision cannot complete until it lets go
    const runner = h.t.tdb.db.dataSource.createQueryRunner();
    await runner.connect();
    await runner.startTransaction();
    await runner.query('SELECT id FROM requests WHERE id = $1 FOR UPDATE', [id]);
    try {
      const res = await h.submit('U0CYD', open!.args.view, { reason: 'not licensed' });
      expect(res.status).toBe(200);
      expect(res.body).toBeUndefined();
      expect((await h.t.ctx.requests.get(id)).status).toBe('pending');
    } finally {
      await runner.rollbackTransaction();
      await runner.release();
    }
    const [eph] = await h.fake.waitFor('chat.postEphemeral');
    expect(textOf(eph!.args.blocks)).toMatch(/You denied \*Visio\*/);
    expect((await h.t.ctx.requests.get(id)).status).toBe('denied');
  });

  it('acknowledges a slash command at once even when Slack is slow to open the modal', async () => {
    const hold = h.fake.holdNext('views.open');
    const res = await h.command('U0BOB', 'request Visio');
    expect(res.status).toBe(200);
    await h.fake.waitFor('views.open');
    hold.release();
  });
});

describe('updating copies when Slack misbehaves', () => {
  it('a copy that can no longer be updated is replaced by a fresh message that says so', async () => {
    const id = await pendingRequest();
    await h.t.ctx.requests.decide(s.actor(s.ada), id, 'approve');
    h.fake.failNext('chat.update', 'message_not_found', 1, (a) => a.channel === 'C0APPROVE');
    await h.adapter.notifier.handle(await lastEventOf(id));
    const fresh = h.fake.of('chat.postMessage').find((p) => p.args.channel === 'C0APPROVE')!;
    expect(textOf(fresh.args.blocks)).toMatch(/previous message about this request could not be updated/);
    expect(textOf(fresh.args.blocks)).toMatch(/Approved\* by \*CONTOSO\\ada\*/);
    const refs = await h.t.tdb.db.query<{ message_id: string; data: any }>(
      `SELECT message_id, data FROM message_refs WHERE subject_id = $1 AND conversation_id = 'C0APPROVE' ORDER BY created_at`,
      [id],
    );
    expect(refs).toHaveLength(2);
    const lost = refs.find((r) => r.data.gone)!;
    const replacement = refs.find((r) => !r.data.gone)!;
    expect(replacement.data.replaces).toBe(lost.message_id);

    // a retry of the same event updates the replacement and posts nothing new
    h.fake.reset();
    await h.adapter.notifier.handle(await lastEventOf(id));
    expect(h.fake.of('chat.update').map((u) => u.args.ts)).toContain(replacement.message_id);
    expect(h.fake.of('chat.update').map((u) => u.args.ts)).not.toContain(lost.message_id);
    expect(h.fake.of('chat.postMessage')).toHaveLength(0);
  });

  it('a 429 is thrown to the queue with Retry-After, honoured until it passes, then the retry succeeds', async () => {
    const id = await pendingRequest();
    await h.t.ctx.requests.decide(s.actor(s.ada), id, 'approve');
    const event = await lastEventOf(id);
    h.fake.rateLimitNext('chat.update', 7);
    const err = await h.adapter.notifier.handle(event).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(SlackApiError);
    expect(err).toMatchObject({ transient: true, retryAfterMs: 7000 });
    expect(h.fake.of('chat.update')).toHaveLength(1);

    // within the window nothing is sent to Slack at all
    await expect(h.adapter.notifier.handle(event)).rejects.toMatchObject({ slackError: 'ratelimited' });
    expect(h.fake.of('chat.update')).toHaveLength(1);

    h.clock.skewMs += 8000;
    await h.adapter.notifier.handle(event);
    expect(h.fake.of('chat.update').length).toBeGreaterThanOrEqual(3);
    expect(h.fake.of('chat.postMessage').filter((p) => p.args.channel === 'D0BOB')).toHaveLength(1);
  });

  it('a 5xx or network failure is thrown so the queue retries; the retry does not double-post', async () => {
    const id = await pendingRequest();
    await h.t.ctx.requests.decide(s.actor(s.ada), id, 'deny', 'no');
    const event = await lastEventOf(id);
    h.fake.statusNext('chat.postMessage', 503);
    await expect(h.adapter.notifier.handle(event)).rejects.toMatchObject({ transient: true, slackError: 'http_503' });
    await h.adapter.notifier.handle(event);
    await h.adapter.notifier.handle(event);
    const dms = h.fake.of('chat.postMessage').filter((p) => p.args.channel === 'D0BOB');
    expect(dms).toHaveLength(2); // the failed attempt and the one that landed
    expect(await h.t.tdb.db.query(`SELECT 1 FROM message_refs WHERE subject_id = $1 AND purpose = 'outcome'`, [id])).toHaveLength(1);
  });
});

describe('an approver channel Signoff cannot post to', () => {
  it("falls back to DMing the stage's approvers, so the request is not left unseen", async () => {
    h.fake.failNext('chat.postMessage', 'not_in_channel', 1, (a) => a.channel === 'C0APPROVE');
    const id = await pendingRequest();
    const refs = await h.t.tdb.db.query<{ conversation_id: string }>(
      `SELECT conversation_id FROM message_refs WHERE subject_id = $1 AND purpose = 'prompt' ORDER BY conversation_id`,
      [id],
    );
    expect(refs.map((r) => r.conversation_id)).toEqual(['D0ADA', 'D0CYD']);
  });
});
