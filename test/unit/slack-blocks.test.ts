import { describe, expect, it } from 'vitest';
import {
  renderChangePrompt,
  renderReminder,
  renderRequesterStatus,
  renderRequestPrompt,
} from '../../src/bots/slack/slack-approval-blocks.ts';
import { ACTION } from '../../src/bots/slack/slack-ids.ts';
import { fieldErrorsToBlocks, requestModal } from '../../src/bots/slack/slack-request-modal.ts';
import { parseChangeSubmission } from '../../src/bots/slack/slack-change-modal.ts';
import { policyDefinitionSchema } from '../../src/core/policy-schema.ts';
import type { ChangeView, RequestDetail } from '../../src/core/views.ts';

const policy = policyDefinitionSchema.parse({
  questions: [
    { id: 'usage', text: 'What will you use it for?', type: 'choice', options: ['Diagrams', 'Other'] },
    { id: 'teams', text: 'Teams', type: 'multichoice', options: ['A', 'B'], required: false },
    { id: 'note', text: 'Anything else?', type: 'text', maxLength: 100, required: false },
  ],
  stages: [{ approvers: ['it-approvers'] }],
});

const base: RequestDetail = {
  id: '11111111-1111-4111-8111-111111111111',
  status: 'pending',
  source: 'chat',
  application: { id: 'A', name: 'Visio' },
  requester: { id: 'r', username: 'CONTOSO\\bob', displayName: 'Bob <User>', email: null },
  device: { id: 'd', clientGuid: 'GUID:1', name: 'BOB-LAPTOP' },
  justification: 'Need <diagrams> & more',
  answers: { usage: 'Diagrams', teams: ['A', 'B'] },
  currentStage: 0,
  stageCount: 1,
  autoInstall: true,
  installOrderedAt: null,
  installDueAt: null,
  decidedAt: null,
  decidedBy: null,
  decisionReason: null,
  deadlineAt: '2026-01-19T09:00:00.000Z',
  escalated: false,
  accessExpiresAt: null,
  version: 1,
  createdAt: '2026-01-05T09:00:00.000Z',
  updatedAt: '2026-01-05T09:00:00.000Z',
  policy,
  stages: [{ index: 0, approverGroups: ['it-approvers'], quorum: 'any', approverJustification: false, status: 'waiting', decisions: [] }],
  decisions: [],
  history: [],
};

const allText = (blocks: unknown) => JSON.stringify(blocks);

describe('request prompt', () => {
  it('shows details, escaped user text, answers by question text, and both buttons while pending', () => {
    const { blocks, text } = renderRequestPrompt({ request: base, requesterSlackId: 'U0BOB', stage: 0 });
    const s = allText(blocks);
    expect(s).toContain('<@U0BOB> (Bob &lt;User&gt;');
    expect(s).toContain('Need &lt;diagrams&gt; &amp; more');
    expect(s).toContain('*What will you use it for?*\\n>Diagrams');
    expect(s).toContain('*Teams*\\n>A, B');
    expect(s).toContain('*Anything else?*\\n_(no answer)_');
    expect(s).toContain('<!date^1768813200^');
    const actions = blocks.filter((b) => b.type === 'actions') as any[];
    expect(actions[0].elements.map((e: any) => [e.action_id, e.value, e.style])).toEqual([
      [ACTION.approve, `${base.id}:0`, 'primary'],
      [ACTION.deny, `${base.id}:0`, 'danger'],
    ]);
    expect(text).toBe('Software request: Visio for Bob &lt;User&gt;: waiting for a decision');
  });

  it('keeps a hostile name out of the notification text and a typed answer from passing for an outcome', () => {
    const hostile: RequestDetail = {
      ...base,
      application: { id: 'A', name: 'Evil <!channel> <@U0ADA> <https://evil|click>' },
      answers: { usage: 'Diagrams', note: 'diagrams\n\n:white_check_mark: *Approved* by *Ada Admin*' },
    };
    const { blocks, text } = renderRequestPrompt({ request: hostile, requesterSlackId: 'U0BOB', stage: 0 });
    // Slack reads the top-level text as mrkdwn too (notifications, screen readers)
    expect(text).toBe(
      'Software request: Evil &lt;!channel&gt; &lt;@U0ADA&gt; &lt;https://evil|click&gt; for Bob &lt;User&gt;: waiting for a decision',
    );
    expect(allText(blocks)).toContain('*Anything else?*\\n>diagrams\\n>\\n>:white_check_mark: *Approved* by *Ada Admin*');
  });

  it('after a decision shows outcome, who, when and why, and no buttons', () => {
    const denied = {
      ...base,
      status: 'denied' as const,
      decidedBy: 'Cyd',
      decidedAt: '2026-01-06T10:00:00.000Z',
      decisionReason: 'use draw.io',
    };
    const { blocks } = renderRequestPrompt({ request: denied, requesterSlackId: null, stage: 0 });
    expect(blocks.some((b) => b.type === 'actions')).toBe(false);
    expect(allText(blocks)).toMatch(/:no_entry: \*Denied\* by \*Cyd\* <!date\^1767693600\^[^>]+>\\n>use draw.io/);
    expect(allText(renderRequesterStatus(denied).blocks)).not.toContain(ACTION.cancel);
  });

  it("keeps long justifications inside Slack's block limits", () => {
    const long = { ...base, justification: 'x'.repeat(10_000) };
    for (const b of renderRequestPrompt({ request: long, requesterSlackId: null, stage: 0 }).blocks as any[]) {
      if (b.text?.text) expect(b.text.text.length).toBeLessThanOrEqual(3000);
      for (const f of b.fields ?? []) expect(f.text.length).toBeLessThanOrEqual(2000);
    }
  });

  it('reminders mention exactly the given approvers', () => {
    const r = renderReminder(base, ['U0ADA', 'U0CYD'], 'reminder');
    expect(allText(r.blocks)).toContain('<@U0ADA> <@U0CYD>, please approve or deny');
    expect(r.text).not.toContain('<!date');
  });
});

describe('change prompt', () => {
  const change: ChangeView = {
    id: 'c1',
    status: 'pending',
    resourceType: 'app',
    resourceId: 'visio',
    before: {},
    after: {},
    justification: 'why',
    diff: [
      { path: '/a', op: 'replace', before: 1, after: 2 },
      { path: '/b', op: 'add', after: '```' },
      { path: '/c', op: 'remove', before: true },
    ],
    requester: { id: 'x', label: 'Ada' },
    approverGroups: ['it-approvers'],
    decidedAt: null,
    decidedBy: null,
    decisionNotes: null,
    version: 1,
    createdAt: '2026-01-05T09:00:00.000Z',
    updatedAt: '2026-01-05T09:00:00.000Z',
  };
  it('renders every diff row and cannot be broken out of its code block', () => {
    const s = allText(renderChangePrompt({ change, requesterSlackId: 'U0ADA' }).blocks);
    expect(s).toContain('~ /a: 1 → 2');
    expect(s).toContain("+ /b: \\\"'''\\\"");
    expect(s).toContain('- /c: true');
    // no mention or link can hide in a value
    const loud = allText(
      renderChangePrompt({
        change: { ...change, diff: [{ path: '/notify', op: 'add', after: '<!channel> <@U0BOSS>' }] },
        requesterSlackId: null,
      }).blocks,
    );
    expect(loud).not.toMatch(/<!channel>|<@U0BOSS>/);
    expect(loud).toContain('&lt;!channel&gt;');
  });
  it('decided: notes and no buttons', () => {
    const done = renderChangePrompt({
      change: { ...change, status: 'rejected', decidedBy: 'Cyd', decidedAt: change.createdAt, decisionNotes: 'not now' },
      requesterSlackId: null,
    });
    expect(done.blocks.some((b) => b.type === 'actions')).toBe(false);
    expect(allText(done.blocks)).toContain('*Rejected* by *Cyd*');
  });
});

describe('request modal', () => {
  it('renders one input per question with the right element, optional where the policy says', () => {
    const view = requestModal({
      app: {
        id: 'A',
        name: 'Visio',
        description: null,
        version: null,
        visibility: 'visible',
        per_device: true,
        install_window: null,
        policy_id: 'p',
        policy_definition: policy,
        policy,
      },
      devices: [{ id: 'd1', client_guid: 'G', name: 'BOB-LAPTOP', primary_user_id: 'r' }],
    });
    const inputs = view.blocks.filter((b) => b.type === 'input') as any[];
    expect(inputs.map((b) => [b.block_id, b.element.type, b.optional])).toEqual([
      ['app', 'external_select', undefined],
      ['device', 'static_select', undefined],
      ['justification', 'plain_text_input', false],
      ['q_usage', 'static_select', false],
      ['q_teams', 'multi_static_select', true],
      ['q_note', 'plain_text_input', true],
    ]);
    expect(inputs[1].element.initial_option.value).toBe('d1');
  });
  it('maps core field errors to block ids', () => {
    expect(fieldErrorsToBlocks({ justification: 'j', answers: { usage: 'u' }, unknown: [] })).toEqual({ justification: 'j', q_usage: 'u' });
  });
  it('reports JSON problems of the change form per field', () => {
    const v = (x: string) => ({ value: { type: 'plain_text_input', value: x } });
    const { errors, value } = parseChangeSubmission({
      resource_type: { value: { type: 'static_select', selected_option: { value: 'app' } } },
      resource_id: v('x'),
      before: v('{}'),
      after: v('[1,'),
      change_justification: v('ok'),
    });
    expect(Object.keys(errors)).toEqual(['after']);
    expect(value.before).toEqual({});
  });
});
