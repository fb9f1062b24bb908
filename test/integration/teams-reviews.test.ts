import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeActions } from '../../src/bots/teams/teams-cards.ts';
import { readableUtc } from '../../src/core/clock.ts';
import { BOB_LAPTOP, defaultPolicy, VISIO } from '../support/fixtures.ts';
import { AAD, APPROVERS_CHANNEL, cardOf, startTeamsHarness, type TeamsHarness } from '../support/teams-harness.ts';
import { webhooksOfRow } from '../support/outbox-webhooks.ts';
import { closeOpenRequests } from '../support/close-open-requests.ts';

const SECURITY_CHANNEL = '19:security@thread.tacv2';
const DAY = 86_400_000;
const verbs = (card: unknown) =>
  executeActions(card)
    .map((a) => a.verb)
    .sort();
const invokeCard = (res: { body: any }) => res.body.value;
const escapeRegExp = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
/** the moment as a card's {{DATE(...)}} function takes it */
const cardDate = (d: Date) => d.toISOString().replace(/\.\d{3}Z$/, 'Z');

describe('periodic access reviews in Teams', () => {
  let h: TeamsHarness;

  beforeAll(async () => {
    h = await startTeamsHarness({ policy: { ...defaultPolicy, accessReviewEvery: 'P30D', reviewers: ['it-approvers', 'security'] } });
    await h.post(h.installInChannel());
    await h.post(h.installInChannel(SECURITY_CHANNEL));
    await h.post(h.message('bob', 'hi'));
  });
  afterAll(() => h.close());

  /** as if cyd had never written to the bot: cards can then name him only by his AAD object id */
  const forgetCyd = () => h.t.tdb.db.query(`DELETE FROM teams_users WHERE aad_object_id = lower($1)`, [AAD.cyd]);

  /** One pending or approved request per user, device and application: bob's open Visio is closed first. */
  const clearBobsVisio = () => closeOpenRequests(h, h.s, () => h.connector.reset(), 'teams');

  /** bob's Visio, requested through the API and approved by ada, its messages sent: the request and when it was approved. */
  async function approvedForBob(): Promise<{ requestId: string; approvedAt: Date }> {
    await clearBobsVisio();
    const r = await h.t.ctx.requests.submit(
      { id: null, label: 'api:cm', channel: 'api' },
      {
        applicationId: VISIO,
        requesterUsername: 'CONTOSO\\bob',
        clientGuid: BOB_LAPTOP,
        justification: 'Diagrams',
        answers: { usage: 'Diagrams' },
      },
    );
    const approvedAt = h.t.clock.now();
    await h.t.ctx.requests.decide({ id: h.s.ada.id, label: 'Ada Admin', channel: 'teams' }, r.id, 'approve', null);
    await h.drain();
    h.connector.reset();
    return { requestId: r.id, approvedAt };
  }

  /** A fresh approval 30 days on: the sweeper has opened its review and the reviewer channels have their cards. */
  async function openReview(): Promise<{ requestId: string; reviewId: string }> {
    const { requestId } = await approvedForBob();
    h.t.clock.advance(30 * DAY + 60_000);
    await h.t.ctx.timers.sweep();
    await h.drain();
    h.connector.reset();
    return { requestId, reviewId: (await h.t.ctx.reviews.list({ requestId, status: 'pending' })).items[0]!.id };
  }

  /** An open review that cyd answered Remove (reason "Contract ended"), every copy told: when he did. */
  async function removedReview(): Promise<{ requestId: string; reviewId: string; removedAt: Date }> {
    const r = await openReview();
    const removedAt = h.t.clock.now();
    await h.post(h.invoke('cyd', 'reviewRemove', { kind: 'review', id: r.reviewId, reason: 'Contract ended' }));
    await h.drain();
    h.connector.reset();
    return { ...r, removedAt };
  }

  it('the sweeper starts a review; each reviewer channel gets a card, reviewers see Keep / Remove on refresh', async () => {
    await forgetCyd();
    const { requestId, approvedAt } = await approvedForBob();
    h.t.clock.advance(30 * DAY + 60_000);
    expect((await h.t.ctx.timers.sweep()).review).toBe(1);
    expect(await h.drain()).toEqual(['request.review_started']);
    const reviewId = (await h.t.ctx.reviews.list({ requestId, status: 'pending' })).items[0]!.id;

    const posts = h.connector.of('send');
    expect(posts.map((p) => p.conversationId).sort()).toEqual([APPROVERS_CHANNEL, SECURITY_CHANNEL].sort());
    for (const p of posts) {
      const card = cardOf(p.body);
      expect(card.version).toBe('1.5');
      expect(JSON.stringify(card)).toContain(
        `Does Bob User still need Visio on BOB-LAPTOP? Approved on ${readableUtc(approvedAt)}, by Ada Admin.`,
      );
      // the channel copy is read-only; reviewers' clients refresh it into their own view
      expect(verbs(card)).toEqual(['refresh']);
      // by Teams user id where the bot has heard from the reviewer (ada), else the AAD object id (cyd)
      expect(card.refresh.userIds.sort()).toEqual(['29:ada', AAD.cyd].sort());
    }
    expect(verbs(invokeCard(await h.post(h.invoke('ada', 'refresh', { kind: 'review', id: reviewId }, { trigger: 'automatic' }))))).toEqual(
      ['refresh', 'reviewKeep', 'reviewRemove'],
    );
    expect(verbs(invokeCard(await h.post(h.invoke('bob', 'refresh', { kind: 'review', id: reviewId }, { trigger: 'automatic' }))))).toEqual(
      ['refresh'],
    );
    // someone in a channel the card was posted to sees it read-only; asked from their own chat, it is not theirs to see
    expect(
      verbs(
        invokeCard(
          await h.post(
            h.invoke('stranger', 'refresh', { kind: 'review', id: reviewId }, { trigger: 'automatic', conversationId: APPROVERS_CHANNEL }),
          ),
        ),
      ),
    ).toEqual(['refresh']);
    const crafted = await h.post(h.invoke('stranger', 'refresh', { kind: 'review', id: reviewId }, { trigger: 'automatic' }));
    expect(crafted.body).toMatchObject({ statusCode: 403, type: 'application/vnd.microsoft.error' });
    expect(JSON.stringify(crafted.body)).not.toContain('Visio');
  });

  it("reminds reviewers in the thread of each channel copy at the policy's interval", async () => {
    const { requestId, reviewId } = await openReview();
    h.t.clock.advance(DAY + 60_000);
    expect((await h.t.ctx.timers.sweep()).review_reminder).toBe(1);
    expect(await h.drain()).toEqual(['request.review_reminder']);
    const copies = await h.t.tdb.db.query<{ conversation_id: string; message_id: string }>(
      `SELECT conversation_id, message_id FROM message_refs WHERE subject_type = 'review' AND subject_id = $1 AND purpose = 'prompt'`,
      [reviewId],
    );
    const replies = h.connector.of('reply');
    expect(replies.map((r) => [r.conversationId, r.activityId]).sort()).toEqual(
      copies.map((c) => [c.conversation_id, c.message_id]).sort(),
    );
    for (const r of replies)
      expect(JSON.stringify(cardOf(r.body))).toMatch(
        /Reminder: access review still open[\s\S]*Does Bob User still need Visio on BOB-LAPTOP\? Keep or remove it before/,
      );
    // the same event handled again posts nothing new
    const row = await h.t.tdb.db.one<{ id: string; payload: any }>(
      `SELECT id, payload FROM outbox WHERE subject_id = $1 AND type = 'request.review_reminder'`,
      [requestId],
    );
    h.connector.reset();
    await h.adapter.notifier.handle({ id: row.id, ...row.payload });
    expect(h.connector.of('send', 'reply')).toEqual([]);
  });

  it('"my requests" lists the open review for reviewers; opening it gives Keep / Remove', async () => {
    const { reviewId } = await openReview();
    const myRequests = async (user: 'ada' | 'bob') => {
      h.connector.reset();
      await h.post(h.message(user, 'my requests'));
      return JSON.stringify(cardOf(h.connector.posted()[0]!.body));
    };
    const ada = await myRequests('ada');
    expect(ada).toMatch(/Waiting for your decision[\s\S]*Access review: Visio for Bob User/);
    expect(ada).toContain(`"kind":"review","id":"${reviewId}"`);
    // bob's own access is not his to review
    expect(await myRequests('bob')).not.toContain('Access review');
    const opened = await h.post(h.invoke('ada', 'open', { kind: 'review', id: reviewId }));
    expect(verbs(invokeCard(opened))).toEqual(['refresh', 'reviewKeep', 'reviewRemove']);
  });

  it('refuses the requester and a Remove without a reason on the card, deciding nothing', async () => {
    const { reviewId } = await openReview();
    const own = await h.post(h.invoke('bob', 'reviewKeep', { kind: 'review', id: reviewId }));
    expect(own.status).toBe(200);
    expect(JSON.stringify(invokeCard(own))).toContain('You cannot review your own access.');
    expect(verbs(invokeCard(own))).toEqual(['refresh']);
    const stranger = await h.post(h.invoke('stranger', 'reviewRemove', { kind: 'review', id: reviewId, reason: 'x' }));
    expect(JSON.stringify(invokeCard(stranger))).toMatch(/not linked to a directory identity/);
    const noReason = await h.post(h.invoke('cyd', 'reviewRemove', { kind: 'review', id: reviewId, reason: '  ' }));
    expect(JSON.stringify(invokeCard(noReason))).toContain('Say why the access is no longer needed');
    expect(verbs(invokeCard(noReason))).toEqual(['refresh', 'reviewKeep', 'reviewRemove']);
    const wrongVerb = await h.post(h.invoke('cyd', 'approve', { kind: 'review', id: reviewId }));
    expect(wrongVerb.body).toMatchObject({ statusCode: 400 });
    expect((await h.t.ctx.reviews.get(reviewId)).status).toBe('pending');
  });

  it('Remove with a reason revokes; every copy is updated in place with the outcome and no buttons; the uninstall is ordered', async () => {
    const { requestId, reviewId } = await openReview();
    const removedAt = h.t.clock.now();
    const res = await h.post(h.invoke('cyd', 'reviewRemove', { kind: 'review', id: reviewId, reason: 'Contract ended' }));
    const answer = invokeCard(res);
    expect(JSON.stringify(answer)).toContain('You removed this access');
    expect(verbs(answer)).toEqual([]);

    h.connector.reset();
    expect(await h.drain()).toEqual(['request.review_decided', 'request.revoked']);
    const copies = await h.t.tdb.db.query<{ conversation_id: string; message_id: string }>(
      `SELECT conversation_id, message_id FROM message_refs WHERE platform = 'teams' AND subject_type = 'review' AND subject_id = $1 AND purpose = 'prompt'`,
      [reviewId],
    );
    expect(copies).toHaveLength(2);
    const updates = h.connector
      .of('update')
      .filter((u) => copies.some((c) => c.conversation_id === u.conversationId && c.message_id === u.activityId));
    expect(updates).toHaveLength(2);
    for (const u of updates) {
      const card = cardOf(u.body);
      expect(verbs(card)).toEqual([]);
      expect(card.refresh).toBeUndefined();
      expect(JSON.stringify(card)).toMatch(
        new RegExp(`${escapeRegExp(`Removed by Cyd Approver on {{DATE(${cardDate(removedAt)}, SHORT)}}`)}.*Reason: Contract ended`),
      );
    }
    const revoked = await h.t.tdb.db.one<{ payload: any }>(
      `SELECT payload FROM outbox WHERE subject_id = $1 AND type = 'request.revoked'`,
      [requestId],
    );
    expect(webhooksOfRow(revoked).map((w: any) => w.type)).toEqual(['request.revoked', 'app.uninstall']);
    // the requester's own copy of the request is told too
    expect(
      h.connector.posted().some((p) => p.conversationId === 'a:personal-bob' && /access revoked/.test(JSON.stringify(cardOf(p.body)))),
    ).toBe(true);
  });

  it('a second answer is told who decided and when', async () => {
    const { reviewId, removedAt } = await removedReview();
    const late = await h.post(h.invoke('ada', 'reviewKeep', { kind: 'review', id: reviewId }));
    expect(JSON.stringify(invokeCard(late))).toContain(`already removed by Cyd Approver at ${readableUtc(removedAt)}`);
    expect((await h.t.ctx.reviews.get(reviewId)).status).toBe('removed');
  });

  it('tells the requester in their personal chat that access is expiring, even without a Teams copy of the request', async () => {
    await clearBobsVisio();
    // submitted from Slack: no requester copy in Teams
    const r = await h.t.ctx.requests.submit(
      { id: h.s.bob.id, label: 'Bob User', channel: 'slack' },
      { applicationId: VISIO, clientGuid: BOB_LAPTOP, justification: 'Again', answers: { usage: 'Other' } },
    );
    await h.t.ctx.requests.decide({ id: h.s.ada.id, label: 'Ada Admin', channel: 'teams' }, r.id, 'approve', null);
    await h.drain();
    await h.t.tdb.db.query(`UPDATE requests SET access_warn_at = $2 WHERE id = $1`, [r.id, new Date(h.t.clock.now().getTime() - 1000)]);
    await h.t.ctx.timers.sweep();
    h.connector.reset();
    expect(await h.drain()).toEqual(['request.access_expiring']);
    const sent = h.connector.posted();
    expect(sent.map((p) => p.conversationId)).toEqual(['a:personal-bob']);
    expect(JSON.stringify(cardOf(sent[0]!.body))).toMatch(/Visio access is expiring.*Your access on BOB-LAPTOP ends on 2027-/);
  });
});
