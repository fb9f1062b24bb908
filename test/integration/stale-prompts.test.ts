import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ACTION, promptValue } from '../../src/bots/slack/slack-ids.ts';
import type { PolicyInput } from '../../src/core/policy-schema.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { startSlackHarness, type SlackHarness } from '../support/slack-harness.ts';
import { APPROVERS_CHANNEL, startTeamsHarness, type TeamsHarness } from '../support/teams-harness.ts';

/**
 * A prompt is bound to the stage it was posted for: a click on an older stage's prompt (a copy not yet updated, a
 * retried click) decides nothing and is told who settled that stage and when.
 */
const twoStages: PolicyInput = {
  justification: 'required',
  stages: [{ approvers: ['it-approvers'], quorum: 'any' }, { approvers: ['security'] }],
  decisionDeadline: 'P14D',
};
const submitAndSettleStage1 = async (t: SlackHarness['t'], s: { bob: { id: string; username: string }; ada: { id: string } }) => {
  const r = await t.ctx.requests.submit(
    { id: s.bob.id, label: 'Bob User', channel: 'api' },
    { applicationId: VISIO, clientGuid: BOB_LAPTOP, justification: 'diagrams' },
  );
  await t.ctx.requests.decide({ id: s.ada.id, label: 'Ada Admin', channel: 'email' }, r.id, 'approve', null, { stage: 0 });
  return r.id;
};
const decisionsOf = async (t: SlackHarness['t'], id: string) => (await t.ctx.requests.get(id)).decisions.length;

describe('stale prompts in Slack', () => {
  let h: SlackHarness;
  beforeAll(async () => {
    h = await startSlackHarness();
  });
  afterAll(() => h.close());

  it('a click on the stage 1 prompt after stage 1 was settled says who settled it and changes nothing', async () => {
    const s = await seedContoso(h.t.tdb.db, twoStages);
    const id = await submitAndSettleStage1(h.t, s);
    h.fake.reset();
    await h.action('U0CYD', ACTION.deny, promptValue(id, 0));
    const [said] = await h.fake.waitFor('chat.postEphemeral');
    expect(JSON.stringify(said!.args)).toMatch(
      /Stage 1 of this request is already settled \(approved by Ada Admin at \d{4}-\d\d-\d\d \d\d:\d\d UTC\); it is now at stage 2\. Nothing was changed/,
    );
    expect(await decisionsOf(h.t, id)).toBe(1);
    expect((await h.t.ctx.requests.get(id)).status).toBe('pending');
  });
});

describe('stale cards in Teams', () => {
  let h: TeamsHarness;
  beforeAll(async () => {
    h = await startTeamsHarness({ policy: twoStages });
  });
  afterAll(() => h.close());

  it('Approve on the stage 1 card after stage 1 was settled answers with who settled it and changes nothing', async () => {
    const id = await submitAndSettleStage1(h.t, h.s);
    const res = await h.post(h.invoke('cyd', 'approve', { kind: 'request', id, stage: 0 }, { conversationId: APPROVERS_CHANNEL }));
    expect(res.status).toBe(200);
    expect(JSON.stringify(res.body.value)).toMatch(
      /Stage 1 of this request is already settled \(approved by Ada Admin at \d{4}-\d\d-\d\d \d\d:\d\d UTC\); it is now at stage 2/,
    );
    expect(await decisionsOf(h.t, id)).toBe(1);
  });
});
