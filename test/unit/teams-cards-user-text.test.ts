import { describe, expect, it } from 'vitest';
import { plainText, requestCard } from '../../src/bots/teams/teams-cards.ts';
import { policyDefinitionSchema } from '../../src/core/policy-schema.ts';
import type { RequestDetail } from '../../src/core/views.ts';

const ZW = /\u200B/g;
const phishing = 'Need [Approve here](https://evil.example/phish) **URGENT** {{DATE(2020-01-01T00:00:00Z, SHORT)}}\n- item';

describe('user text on Teams cards', () => {
  it('neutralises links, emphasis, lists and {{DATE()}} without changing what is read', () => {
    const shown = plainText(phishing);
    expect(shown).not.toMatch(/\]\(|\*\*|\{\{|^- /m);
    expect(shown.replace(ZW, '')).toBe(phishing);
  });

  it("the approvers' card shows a justification, answer and reason as typed, not as markdown", () => {
    const policy = policyDefinitionSchema.parse({
      justification: 'required',
      questions: [{ id: 'usage', text: 'Why?', type: 'text' }],
      stages: [{ approvers: ['it-approvers'] }],
    });
    const request = {
      id: '6b0c7b1e-0000-4000-8000-000000000001',
      status: 'denied',
      source: 'chat',
      application: { id: 'App/1', name: 'Visio' },
      requester: { id: 'u', username: 'CONTOSO\\bob', displayName: 'Bob User', email: null },
      device: null,
      justification: phishing,
      answers: { usage: '[click](https://evil.example)' },
      policy,
      currentStage: 0,
      stageCount: 1,
      stages: [],
      decisions: [],
      history: [],
      decidedBy: 'Ada Admin',
      decidedAt: '2026-11-28T20:00:00Z',
      decisionReason: '**no** [see](https://evil.example)',
      createdAt: '2026-11-28T19:00:00Z',
      updatedAt: '2026-11-28T20:00:00Z',
      deadlineAt: null,
      installOrderedAt: null,
      installDueAt: null,
      accessExpiresAt: null,
    } as unknown as RequestDetail;
    const card = JSON.stringify(requestCard({ request, can: { decide: false, cancel: false, installNow: false }, refreshUserIds: [] }));
    expect(card).not.toContain('](https://evil');
    expect(card).not.toContain('**URGENT');
    expect(card).not.toContain('{{DATE(2020');
    expect(card.replace(/\\u200b|\u200B/gi, '')).toContain('Need [Approve here](https://evil.example/phish) **URGENT**');
  });
});
