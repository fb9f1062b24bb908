import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { ACTION, CALLBACK } from '../../src/bots/slack/slack-ids.ts';
import { closeOpenRequests } from '../support/close-open-requests.ts';
import { BOB_LAPTOP, defaultPolicy, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { buttonsOf, startSlackHarness, textOf, type SlackHarness } from '../support/slack-harness.ts';
import { webhooksOfRow } from '../support/outbox-webhooks.ts';

let h: SlackHarness;
let s: Seeded;
const DAY = 86_400_000;

beforeAll(async () => {
  h = await startSlackHarness();
  // the policy names two reviewer groups, so the review lands in two channels
  s = await seedContoso(h.t.tdb.db, { ...defaultPolicy, accessReviewEvery: 'P30D', reviewers: ['it-approvers', 'security'] });
  // someone linked in Slack but in no group
  await h.t.tdb.db.query(
    `INSERT INTO identities (username, display_name, email, slack_user_id) VALUES ('CONTOSO\\eve', 'Eve Else', 'eve@contoso.com', 'U0EVE')`,
  );
});
afterAll(() => h.close());
beforeEach(() => closeOpenRequests(h, s, () => h.fake.reset()));

const reviewButtons = (blocks: any[]) =>
  buttonsOf(blocks).filter((b) => b.action_id === ACTION.reviewKeep || b.action_id === ACTION.reviewRemove);
const ephemeralText = async () => textOf((await h.fake.waitFor('chat.postEphemeral'))[0]!.args.blocks);
/** review buttons about one review only: whatever else is open is another `it`'s */
const buttonsFor = (reviewId: string, blocks: any[]) => reviewButtons(blocks).filter((b) => b.value === reviewId);
const reviewsOf = (requestId: string) =>
  h.t.tdb.db.query<{ id: string }>(`SELECT id FROM access_reviews WHERE request_id = $1`, [requestId]);
const remindersOf = async (requestId: string) =>
  (await h.t.tdb.db.query(`SELECT 1 FROM outbox WHERE subject_id = $1 AND type = 'request.review_reminder'`, [requestId])).length;

/** A request of bob's for Visio that ada approved, its notices delivered. */
async function approvedRequest(): Promise<string> {
  const r = await h.t.ctx.requests.submit(s.actor(s.bob), {
    applicationId: VISIO,
    clientGuid: BOB_LAPTOP,
    justification: 'Diagrams',
    answers: { usage: 'Diagrams' },
  });
  await h.t.ctx.requests.decide({ id: s.ada.id, label: 'Ada Admin', channel: 'slack' }, r.id, 'approve', 'fine');
  await h.drain();
  return r.id;
}

/** approvedRequest, then its access review falls due and the reviewers' prompts go out. */
async function startedReview(): Promise<{ requestId: string; reviewId: string }> {
  const requestId = await approvedRequest();
  h.t.clock.advance(30 * DAY + 60_000);
  await h.t.ctx.timers.sweep();
  await h.drain();
  const review = await h.t.tdb.db.one<{ id: string }>(`SELECT id FROM access_reviews WHERE request_id = $1 AND status = 'pending'`, [
    requestId,
  ]);
  return { requestId, reviewId: review.id };
}

/** startedReview, then dan removes the access from the security channel with a reason; the outcome is delivered. */
async function removedReview(): Promise<{ requestId: string; reviewId: string }> {
  const started = await startedReview();
  const opened = h.fake.of('views.open').length;
  const told = h.fake.of('chat.postEphemeral').length;
  await h.action('U0DAN', ACTION.reviewRemove, started.reviewId, { channel: 'C0SECURITY' });
  const view = (await h.fake.waitFor('views.open', opened + 1))[opened]!.args.view;
  expect((await h.submit('U0DAN', view, { reason: 'Moved to another team' })).body).toEqual({ response_action: 'clear' });
  await h.fake.waitFor('chat.postEphemeral', told + 1);
  await h.drain();
  return started;
}

describe('periodic access reviews in Slack', () => {
  it("the sweeper starts a review and the reviewers' channels get the question with Keep / Remove", async () => {
    const r = await h.t.ctx.requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'Diagrams',
      answers: { usage: 'Diagrams' },
    });
    const requestId = r.id;
    await h.t.ctx.requests.decide({ id: s.ada.id, label: 'Ada Admin', channel: 'slack' }, r.id, 'approve', 'fine');
    await h.drain();
    h.fake.reset();

    h.t.clock.advance(30 * DAY + 60_000);
    const swept = await h.t.ctx.timers.sweep();
    expect(swept.review).toBeGreaterThanOrEqual(1);
    expect(await reviewsOf(requestId)).toHaveLength(1);
    expect(await h.drain()).toEqual(['request.review_started']);
    const reviewId = (
      await h.t.tdb.db.one<{ id: string }>(`SELECT id FROM access_reviews WHERE request_id = $1 AND status = 'pending'`, [requestId])
    ).id;

    const posts = h.fake.of('chat.postMessage');
    expect(posts.map((p) => p.args.channel).sort()).toEqual(['C0APPROVE', 'C0SECURITY']);
    for (const p of posts) {
      const text = textOf(p.args.blocks);
      expect(text).toMatch(/Does \*Bob User\* still need \*Visio\* on \*BOB-LAPTOP\*\? Approved <!date\^\d+\^[^>]+>, by \*Ada Admin\*\./);
      expect(text).toContain('it-approvers, security');
      expect(reviewButtons(p.args.blocks).map((b) => [b.text, b.value])).toEqual([
        ['Keep', reviewId],
        ['Remove', reviewId],
      ]);
    }
    const refs = await h.t.tdb.db.query(
      `SELECT conversation_id FROM message_refs WHERE subject_type = 'review' AND subject_id = $1 AND purpose = 'prompt'`,
      [reviewId],
    );
    expect(refs).toHaveLength(2);
    // a retried event posts nothing twice
    const row = await h.t.tdb.db.one<{ id: string; payload: any }>(
      `SELECT id, payload FROM outbox WHERE subject_id = $1 AND type = 'request.review_started'`,
      [requestId],
    );
    expect(row.payload.data).toMatchObject({ reviewId, reviewers: ['it-approvers', 'security'], approvedBy: 'Ada Admin' });
    expect(row.payload.data.reviewerUsernames.sort()).toEqual(['CONTOSO\\ada', 'CONTOSO\\cyd', 'CONTOSO\\dan']);
  });

  it('the requester reviewing their own access and people outside the reviewer groups get an ephemeral refusal', async () => {
    const { reviewId } = await startedReview();
    h.fake.reset();
    await h.action('U0BOB', ACTION.reviewKeep, reviewId);
    expect(await ephemeralText()).toMatch(/cannot review your own access/);
    h.fake.reset();
    await h.action('U0EVE', ACTION.reviewRemove, reviewId);
    expect(await ephemeralText()).toMatch(/Only members of it-approvers, security can review this access/);
    expect(h.fake.of('views.open')).toHaveLength(0);
    expect((await h.t.ctx.reviews.get(reviewId)).status).toBe('pending');
  });

  it("reminds the reviewers in each prompt's thread at the policy's interval, mentioning who can answer", async () => {
    const { requestId, reviewId } = await startedReview();
    h.fake.reset();
    h.t.clock.advance(DAY + 60_000);
    expect((await h.t.ctx.timers.sweep()).review_reminder).toBeGreaterThanOrEqual(1);
    expect(await remindersOf(requestId)).toBe(1);
    expect(await h.drain()).toEqual(['request.review_reminder']);
    const prompts = await h.t.tdb.db.query<{ conversation_id: string; message_id: string }>(
      `SELECT conversation_id, message_id FROM message_refs WHERE subject_type = 'review' AND subject_id = $1 AND purpose = 'prompt'`,
      [reviewId],
    );
    const replies = h.fake.of('chat.postMessage');
    expect(replies.map((r) => [r.args.channel, r.args.thread_ts]).sort()).toEqual(
      prompts.map((p) => [p.conversation_id, p.message_id]).sort(),
    );
    for (const r of replies) {
      const text = textOf(r.args.blocks);
      expect(text).toMatch(
        /Reminder: this access review is still open\. <@U0ADA> <@U0CYD> <@U0DAN>, please keep or remove the access before <!date/,
      );
      expect(text).not.toContain('<@U0BOB>');
    }
    // not again until the next interval
    await h.t.ctx.timers.sweep();
    expect(await remindersOf(requestId)).toBe(1);
  });

  it('App Home lists the open review under "Waiting on you" for reviewers only, with Keep / Remove', async () => {
    const { reviewId } = await startedReview();
    const homeOf = async (user: string) => {
      h.fake.reset();
      await h.event({ type: 'app_home_opened', user, tab: 'home' });
      const [publish] = await h.fake.waitFor('views.publish');
      return publish!.args.view.blocks as any[];
    };
    const dan = await homeOf('U0DAN');
    expect(textOf(dan)).toMatch(
      /Waiting on you[\s\S]*\*Access review\*: Does \*Bob User\* still need \*Visio\* on \*BOB-LAPTOP\*\?[\s\S]*Answer by <!date/,
    );
    expect(buttonsFor(reviewId, dan).map((b) => [b.text, b.value])).toEqual([
      ['Keep', reviewId],
      ['Remove', reviewId],
    ]);
    // whose access it is, and someone in no reviewer group, have nothing to answer
    expect(buttonsFor(reviewId, await homeOf('U0BOB'))).toEqual([]);
    expect(buttonsFor(reviewId, await homeOf('U0EVE'))).toEqual([]);
  });

  it('Remove asks for a reason in a modal, then revokes: every copy shows the outcome, the uninstall is ordered', async () => {
    const { requestId, reviewId } = await startedReview();
    h.fake.reset();
    await h.action('U0DAN', ACTION.reviewRemove, reviewId, { channel: 'C0SECURITY' });
    const [open] = await h.fake.waitFor('views.open');
    const view = open!.args.view;
    expect(view.callback_id).toBe(CALLBACK.reviewRemove);
    expect(textOf(view.blocks)).toMatch(/Does \*Bob User\* still need \*Visio\*/);
    const empty = await h.submit('U0DAN', view, { reason: '  ' });
    expect(empty.body).toEqual({ response_action: 'errors', errors: { reason: expect.any(String) } });
    expect((await h.t.ctx.reviews.get(reviewId)).status).toBe('pending');

    const ok = await h.submit('U0DAN', view, { reason: 'Moved to another team' });
    expect(ok.body).toEqual({ response_action: 'clear' });
    expect(await ephemeralText()).toMatch(/You removed \*Visio\* for \*Bob User\* on BOB-LAPTOP/);

    h.fake.reset();
    expect(await h.drain()).toEqual(['request.review_decided', 'request.revoked']);
    const refs = await h.t.tdb.db.query<{ conversation_id: string; message_id: string }>(
      `SELECT conversation_id, message_id FROM message_refs WHERE subject_type = 'review' AND subject_id = $1`,
      [reviewId],
    );
    const updates = h.fake
      .of('chat.update')
      .filter((u) => refs.some((r) => r.conversation_id === u.args.channel && r.message_id === u.args.ts));
    expect(updates).toHaveLength(2);
    for (const u of updates) {
      expect(reviewButtons(u.args.blocks)).toEqual([]);
      expect(textOf(u.args.blocks)).toMatch(
        /Removed\* by \*Dan Security\* <!date\^\d+[^>]*>\. Access is revoked[^\n]*\n>Moved to another team/,
      );
    }
    // the requester is told, and the device manager gets the uninstall
    expect(h.fake.of('chat.postMessage').some((p) => p.args.channel === 'D0BOB' && /revoked/i.test(p.args.text))).toBe(true);
    const revoked = await h.t.tdb.db.one<{ payload: any }>(
      `SELECT payload FROM outbox WHERE subject_id = $1 AND type = 'request.revoked'`,
      [requestId],
    );
    expect(webhooksOfRow(revoked).map((w: any) => w.type)).toEqual(['request.revoked', 'app.uninstall']);
    expect(webhooksOfRow(revoked)[1].data).toMatchObject({
      clientGuid: BOB_LAPTOP,
      username: 'CONTOSO\\bob',
      reason: 'Moved to another team',
    });
    expect((await h.t.ctx.requests.get(requestId)).status).toBe('revoked');
  });

  it('a late click is told who decided and when, and changes nothing', async () => {
    const { reviewId } = await removedReview();
    h.fake.reset();
    await h.action('U0ADA', ACTION.reviewKeep, reviewId);
    expect(await ephemeralText()).toMatch(/Already decided: this was \*removed\* by \*Dan Security\*/);
    expect((await h.t.ctx.reviews.get(reviewId)).status).toBe('removed');
    // and it is no longer waiting on anyone
    h.fake.reset();
    await h.event({ type: 'app_home_opened', user: 'U0ADA', tab: 'home' });
    const [home] = await h.fake.waitFor('views.publish');
    expect(buttonsFor(reviewId, home!.args.view.blocks)).toEqual([]);
  });

  it('Keep answers at once, and the copies show who kept it', async () => {
    const r = await h.t.ctx.requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'Back again',
      answers: { usage: 'Other' },
    });
    await h.t.ctx.requests.decide(s.actor(s.cyd), r.id, 'approve', null);
    await h.drain();
    h.t.clock.advance(30 * DAY + 60_000);
    await h.t.ctx.timers.sweep();
    h.fake.reset();
    await h.drain();
    const review = (await h.t.ctx.reviews.list({ requestId: r.id, status: 'pending' })).items[0]!;
    await h.action('U0CYD', ACTION.reviewKeep, review.id);
    expect(await ephemeralText()).toMatch(/You kept \*Visio\* for \*Bob User\*/);
    h.fake.reset();
    expect(await h.drain()).toEqual(['request.review_decided']);
    const updates = h.fake.of('chat.update');
    expect(updates.map((u) => u.args.channel).sort()).toEqual(['C0APPROVE', 'C0SECURITY']);
    for (const u of updates) {
      expect(reviewButtons(u.args.blocks)).toEqual([]);
      expect(textOf(u.args.blocks)).toMatch(/Kept\* by \*Cyd Approver\*/);
    }
    expect((await h.t.ctx.requests.get(r.id)).status).toBe('approved');
  });

  it('warns the requester by DM before their access expires', async () => {
    const approved = await approvedRequest();
    await h.t.tdb.db.query(`UPDATE requests SET access_warn_at = $2 WHERE id = $1`, [approved, new Date(h.t.clock.now().getTime() - 1000)]);
    await h.t.ctx.timers.sweep();
    h.fake.reset();
    expect(await h.drain()).toEqual(['request.access_expiring']);
    const dm = h.fake.of('chat.postMessage');
    expect(dm.map((p) => p.args.channel)).toEqual(['D0BOB']);
    expect(textOf(dm[0]!.args.blocks)).toMatch(/Your access to \*Visio\* on BOB-LAPTOP ends/);
  });
});
