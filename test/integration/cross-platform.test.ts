import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlackAdapter, type SlackAdapter } from '../../src/bots/slack/index.ts';
import { executeActions } from '../../src/bots/teams/teams-cards.ts';
import { toDomainEvent } from '../../src/core/outbox.ts';
import { BOB_LAPTOP, VISIO } from '../support/fixtures.ts';
import { FakeSlackApi } from '../support/fake-slack-api.ts';
import { buttonsOf, textOf } from '../support/slack-harness.ts';
import { APPROVERS_CHANNEL, cardOf, startTeamsHarness, type TeamsHarness } from '../support/teams-harness.ts';

/**
 * Slack and Teams on one Signoff, as a company running both has it: a request made on one platform is decided
 * on the other, every copy on both ends up showing the outcome, and the requester hears back where they asked.
 */
let h: TeamsHarness;
let fake: FakeSlackApi;
let slack: SlackAdapter;
const handled = new Set<string>();

/** Every outbox event not yet handled, to both platforms' notifiers, in commit order. */
async function drain(): Promise<string[]> {
  const rows = await h.t.tdb.db.query<{ id: string; payload: any }>('SELECT id, payload FROM outbox ORDER BY seq');
  const done: string[] = [];
  for (const row of rows) {
    if (handled.has(row.id)) continue;
    await slack.notifier.handle(toDomainEvent(row));
    await h.adapter.notifier.handle(toDomainEvent(row));
    handled.add(row.id);
    done.push(row.payload.type);
  }
  return done;
}

const verbs = (card: unknown) =>
  executeActions(card)
    .map((a) => a.verb)
    .sort();
const slackTo = (method: string, channel: string) => fake.of(method).filter((c) => c.args.channel === channel);
const slackPromptTs = async (requestId: string) =>
  (
    await h.t.tdb.db.one<{ message_id: string }>(
      `SELECT message_id FROM message_refs WHERE platform = 'slack' AND subject_id = $1 AND conversation_id = 'C0APPROVE' AND purpose = 'prompt'`,
      [requestId],
    )
  ).message_id;

beforeAll(async () => {
  fake = await new FakeSlackApi().start();
  h = await startTeamsHarness({
    env: { SLACK_SIGNING_SECRET: 'cross-platform-secret', SLACK_BOT_TOKEN: 'xoxb-test-token', SLACK_API_URL: fake.url },
  });
  slack = createSlackAdapter(h.t.ctx);
  await h.post(h.installInChannel());
  await h.post(h.message('bob', 'hi'));
});
afterAll(async () => {
  await h?.close();
  await fake?.stop();
});

describe('one request, two platforms', () => {
  it('requested in Slack, approved in Teams: both prompts show the outcome; bob hears in Slack only', async () => {
    const r = await h.t.ctx.requests.submit(h.s.actor(h.s.bob, 'slack'), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: 'From Slack',
      answers: { usage: 'Diagrams' },
    });
    expect(await drain()).toEqual(['request.submitted']);
    const slackPrompt = slackTo('chat.postMessage', 'C0APPROVE')[0]!;
    expect(buttonsOf(slackPrompt.args.blocks).map((b) => b.text)).toEqual(['Approve', 'Deny']);
    expect(slackTo('chat.postMessage', 'D0BOB')).toHaveLength(1); // bob's copy, with Cancel
    const teamsPrompt = h.connector.of('send').find((c) => c.conversationId === APPROVERS_CHANNEL)!;
    expect(teamsPrompt).toBeDefined();

    fake.reset();
    h.connector.reset();
    const res = await h.post(
      h.invoke('cyd', 'approve', { kind: 'request', id: r.id, stage: 0, reason: 'Standard tool' }, { conversationId: APPROVERS_CHANNEL }),
    );
    expect(JSON.stringify(res.body.value)).toContain('You approved this request.');
    expect(await drain()).toEqual(['request.approved']);

    // Slack: the channel prompt and bob's copy updated in place, buttons gone; bob told in a DM
    const updates = fake.of('chat.update');
    expect(updates.map((u) => u.args.channel).sort()).toEqual(['C0APPROVE', 'D0BOB']);
    const channelCopy = updates.find((u) => u.args.channel === 'C0APPROVE')!;
    expect(channelCopy.args.ts).toBe(await slackPromptTs(r.id));
    expect(textOf(channelCopy.args.blocks)).toMatch(/Approved\* by \*Cyd Approver\*/);
    expect(buttonsOf(channelCopy.args.blocks).filter((b) => b.text === 'Approve' || b.text === 'Deny')).toEqual([]);
    expect(textOf(slackTo('chat.postMessage', 'D0BOB')[0]!.args.blocks)).toMatch(/Approved: your request for \*Visio\*/);
    // Teams: the channel card updated in place with no buttons; nothing sent to bob in Teams
    const teamsUpdate = h.connector.of('update').find((u) => u.activityId === teamsPrompt.id)!;
    expect(verbs(cardOf(teamsUpdate.body))).toEqual([]);
    expect(JSON.stringify(cardOf(teamsUpdate.body))).toContain('Cyd Approver');
    expect(h.connector.of('send').filter((c) => c.conversationId === 'a:personal-bob')).toEqual([]);
  });

  it('requested in Teams, denied in Slack: both prompts show the outcome; bob hears in Teams only', async () => {
    await h.t.tdb.db.query(`UPDATE requests SET status = 'cancelled' WHERE status IN ('pending', 'approved')`);
    fake.reset();
    h.connector.reset();
    await h.post(h.message('bob', 'request visio'));
    const form = h.connector.posted()[0]!;
    const submitted = await h.post(
      h.invoke(
        'bob',
        'submitRequest',
        { kind: 'form', applicationId: VISIO, device: h.s.deviceId, justification: 'From Teams', q_usage: 'Diagrams' },
        { replyToId: form.id, conversationId: 'a:personal-bob' },
      ),
    );
    const id = submitted.body.value.refresh.action.data.id as string;
    expect(await drain()).toEqual(['request.submitted']);
    expect(slackTo('chat.postMessage', 'C0APPROVE')).toHaveLength(1);
    // bob asked in Teams: no Slack DM for him
    expect(slackTo('chat.postMessage', 'D0BOB')).toEqual([]);

    fake.reset();
    h.connector.reset();
    // as the Slack bot acts for a linked user (Slack's own click handling is covered in slack-*.test.ts)
    await h.t.ctx.requests.decide({ id: h.s.ada.id, label: 'Ada Admin', channel: 'slack' }, id, 'deny', 'Use draw.io', { stage: 0 });
    expect(await drain()).toEqual(['request.denied']);
    // Slack: the channel prompt updated; still nothing for bob in Slack
    const channelCopy = fake.of('chat.update').find((u) => u.args.channel === 'C0APPROVE')!;
    expect(channelCopy.args.ts).toBe(await slackPromptTs(id));
    expect(textOf(channelCopy.args.blocks)).toMatch(/Denied\* by \*Ada Admin\*/);
    expect(fake.of('chat.postMessage').filter((c) => c.args.channel === 'D0BOB')).toEqual([]);
    // Teams: bob's own copy (the form he submitted) and the channel card updated, and a notice in his chat
    const updated = h.connector.of('update');
    expect(updated.map((u) => u.activityId)).toContain(form.id);
    for (const u of updated) expect(verbs(cardOf(u.body))).toEqual([]);
    const notice = h.connector.of('send').find((c) => c.conversationId === 'a:personal-bob')!;
    expect(JSON.stringify(cardOf(notice.body))).toContain('Ada Admin denied Visio on BOB-LAPTOP. Reason: \\"Use draw.io\\".');
  });
});
