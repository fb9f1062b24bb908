import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../../src/core/clock.ts';
import { parseDuration } from '../../../src/core/durations.ts';
import {
  accessTimers,
  evaluateStage,
  hasFieldErrors,
  mayRequest,
  nextInstallWindowOpening,
  requiredApprovals,
  stageTimers,
  validateSubmission,
} from '../../../src/core/policy-evaluation.ts';
import { policyInputSchema } from '../../../src/core/catalog-schemas.ts';
import { answerMatches, policyDefinitionSchema } from '../../../src/core/policy-schema.ts';

const policy = policyDefinitionSchema.parse({
  justification: 'required',
  questions: [
    { id: 'usage', text: 'Use?', type: 'choice', options: ['Diagrams', 'Other'] },
    { id: 'tags', text: 'Tags', type: 'multichoice', options: ['a', 'b'], required: false },
    { id: 'ticket', text: 'Ticket', type: 'text', pattern: '^INC\\d+$', required: false },
  ],
  stages: [
    { approvers: ['it'], quorum: 'any' },
    { approvers: ['sec'], quorum: 2, approverJustification: true },
  ],
  decisionDeadline: 'P14D',
  reminderEvery: 'P1D',
  escalateAfter: 'P3D',
  escalateTo: ['managers'],
  accessLifetime: 'P30D',
  accessReviewEvery: 'P7D',
});

describe('policy schema', () => {
  it('fills defaults and rejects 0 or 4 stages, escalation without a target and duplicate questions', () => {
    expect(policyDefinitionSchema.parse({ stages: [{ approvers: ['x'] }] })).toMatchObject({
      justification: 'required',
      decisionDeadline: 'P14D',
      requestors: { allMembers: true },
    });
    expect(policyDefinitionSchema.safeParse({ stages: [] }).success).toBe(false);
    expect(policyDefinitionSchema.safeParse({ stages: Array(4).fill({ approvers: ['x'] }) }).success).toBe(false);
    expect(policyDefinitionSchema.safeParse({ stages: [{ approvers: ['x'] }], escalateAfter: 'P1D' }).success).toBe(false);
    expect(
      policyDefinitionSchema.safeParse({
        stages: [{ approvers: ['x'] }],
        questions: [
          { id: 'a', text: 'a', type: 'text' },
          { id: 'a', text: 'b', type: 'text' },
        ],
      }).success,
    ).toBe(false);
    expect(policyDefinitionSchema.safeParse({ stages: [{ approvers: ['x'] }], decisionDeadline: '14 days' }).success).toBe(false);
  });
});

describe('question rules when a policy is saved', () => {
  const saved = (question: Record<string, unknown>) =>
    policyInputSchema.safeParse({
      name: 'p',
      stages: [{ approvers: ['x'] }],
      questions: [{ id: 'q', text: 'q', type: 'text', ...question }],
    });
  const problems = (question: Record<string, unknown>) => {
    const r = saved(question);
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
  };
  it('refuses a pattern only a backtracking engine runs (lookaround, backreferences) and length bounds no answer fits, naming the field; a nested quantifier is fine', () => {
    expect(problems({ pattern: '(a+)+$' })).toEqual([]);
    expect(problems({ pattern: '^(?=INC)\\w+$' })).toEqual([expect.stringMatching(/^questions\.0\.pattern: .*lookaround/)]);
    expect(problems({ pattern: '(a)\\1' })).toEqual([expect.stringMatching(/^questions\.0\.pattern: /)]);
    expect(problems({ minLength: 10, maxLength: 2 })).toEqual([expect.stringMatching(/^questions\.0\.maxLength: .*no answer could fit/)]);
    expect(problems({ minLength: 2, maxLength: 2, pattern: '^INC\\d+$' })).toEqual([]);
  });
  it('still reads a policy saved before those rules', () => {
    expect(
      policyDefinitionSchema.safeParse({
        stages: [{ approvers: ['x'] }],
        questions: [{ id: 'q', text: 'q', type: 'text', pattern: '^(?=I)\\w+$' }],
      }).success,
    ).toBe(true);
    expect(answerMatches('^(?=I)\\w+$', 'INC1')).toBe(true);
  });
  it('matches a nested quantifier on a long non-matching answer without backtracking (JavaScript would take years)', () => {
    expect(answerMatches('(a+)+$', `${'a'.repeat(5000)}!`)).toBe(false);
    expect(answerMatches('^INC\\d+$', 'INC42')).toBe(true);
    expect(answerMatches('^INC\\d+$', 'INC42 ')).toBe(false);
  });
});

describe('who may request', () => {
  it('lets members but not guests request under allMembers, and named people or groups otherwise', () => {
    expect(mayRequest(policy, { username: 'C\\bob', isGuest: false, groups: [] })).toBe(true);
    expect(mayRequest(policy, { username: 'C\\guest', isGuest: true, groups: [] })).toBe(false);
    const narrow = policyDefinitionSchema.parse({
      stages: [{ approvers: ['x'] }],
      requestors: { allMembers: false, identities: ['C\\ann'], groups: ['eng'] },
    });
    expect(mayRequest(narrow, { username: 'c\\ANN', isGuest: true, groups: [] })).toBe(true);
    expect(mayRequest(narrow, { username: 'C\\bob', isGuest: false, groups: ['eng'] })).toBe(true);
    expect(mayRequest(narrow, { username: 'C\\bob', isGuest: false, groups: ['sales'] })).toBe(false);
  });
});

describe('submission validation', () => {
  it('reports each problem against its field', () => {
    const e = validateSubmission(policy, { justification: ' ', answers: { usage: 'Games', tags: ['a', 'z'], ticket: 'nope', extra: 1 } });
    expect(e.justification).toMatch(/required/);
    expect(e.answers.usage).toMatch(/"Games" is not one of the options/);
    expect(e.answers.tags).toMatch(/"z"/);
    expect(e.answers.ticket).toMatch(/format/);
    expect(e.unknown).toEqual(['extra']);
  });
  it('takes a multiple-choice answer as a set: an option given twice or an unknown one is refused', () => {
    const answer = (tags: unknown) => validateSubmission(policy, { justification: 'x', answers: { usage: 'Other', tags } }).answers.tags;
    expect(answer(['a', 'b'])).toBeUndefined();
    expect(answer(['a', 'a'])).toBe('Choose each option once ("a" is given more than once).');
    expect(answer(['b', 'a', 'b', 'a'])).toBe('Choose each option once ("b", "a" are given more than once).');
    expect(answer(['a', 'x', 'y', 'x'])).toBe('"x", "y" are not among the options.');
    expect(answer(['a', 1])).toBe('Choose one or more of the options.');
  });
  it('accepts a complete submission and optional answers left out', () => {
    expect(hasFieldErrors(validateSubmission(policy, { justification: 'Need it', answers: { usage: 'Other' } }))).toBe(false);
  });
  it('asks for the required answer', () => {
    expect(validateSubmission(policy, { justification: 'x', answers: {} }).answers.usage).toMatch(/answer/);
  });
});

describe('stage quorum', () => {
  const any = policy.stages[0]!;
  const two = policy.stages[1]!;
  const all = { ...any, quorum: 'all' as const };
  it('any: one approval settles the stage', () => {
    expect(evaluateStage(any, [], 3)).toBe('waiting');
    expect(evaluateStage(any, [{ approverId: 'a', decision: 'approve' }], 3)).toBe('approved');
  });
  it('a single deny denies, whatever the quorum', () => {
    expect(
      evaluateStage(
        two,
        [
          { approverId: 'a', decision: 'approve' },
          { approverId: 'b', decision: 'deny' },
        ],
        5,
      ),
    ).toBe('denied');
  });
  it('N: needs N distinct approvers, capped at the number who can decide', () => {
    expect(
      evaluateStage(
        two,
        [
          { approverId: 'a', decision: 'approve' },
          { approverId: 'a', decision: 'approve' },
        ],
        5,
      ),
    ).toBe('waiting');
    expect(
      evaluateStage(
        two,
        [
          { approverId: 'a', decision: 'approve' },
          { approverId: 'b', decision: 'approve' },
        ],
        5,
      ),
    ).toBe('approved');
    expect(requiredApprovals(two, 1)).toBe(1);
  });
  it('all: every eligible approver', () => {
    expect(evaluateStage(all, [{ approverId: 'a', decision: 'approve' }], 2)).toBe('waiting');
    expect(
      evaluateStage(
        all,
        [
          { approverId: 'a', decision: 'approve' },
          { approverId: 'b', decision: 'approve' },
        ],
        2,
      ),
    ).toBe('approved');
  });
});

describe('timers from an injected clock', () => {
  it('sets deadline from submission and reminder/escalation from the stage start', () => {
    const clock = new ManualClock('2026-03-01T08:00:00Z');
    const submitted = clock.now();
    const stageStart = clock.advance(parseDuration('P2D'));
    const t = stageTimers(policy, submitted, stageStart);
    expect(t.deadlineAt.toISOString()).toBe('2026-03-15T08:00:00.000Z');
    expect(t.nextReminderAt!.toISOString()).toBe('2026-03-04T08:00:00.000Z');
    expect(t.escalateAt!.toISOString()).toBe('2026-03-06T08:00:00.000Z');
  });
  it('sets access expiry, its warning a week before, and the first review', () => {
    const a = accessTimers(policy, new Date('2026-03-01T00:00:00Z'));
    expect(a.accessExpiresAt!.toISOString()).toBe('2026-03-31T00:00:00.000Z');
    expect(a.accessWarnAt!.toISOString()).toBe('2026-03-24T00:00:00.000Z');
    expect(a.nextReviewAt!.toISOString()).toBe('2026-03-08T00:00:00.000Z');
  });
});

describe('install window', () => {
  const window = { from: '22:00', to: '06:00', timeZone: 'Europe/Berlin' };
  it('is open overnight in Berlin time', () => {
    expect(nextInstallWindowOpening(window, new Date('2026-01-05T22:30:00Z'))).toBeNull(); // 23:30 Berlin
    expect(nextInstallWindowOpening(window, new Date('2026-01-06T04:59:00Z'))).toBeNull(); // 05:59 Berlin
  });
  it('opens at the next 22:00 Berlin time, across daylight saving', () => {
    expect(nextInstallWindowOpening(window, new Date('2026-01-05T10:00:00Z'))!.toISOString()).toBe('2026-01-05T21:00:00.000Z');
    expect(nextInstallWindowOpening(window, new Date('2026-07-05T10:00:00Z'))!.toISOString()).toBe('2026-07-05T20:00:00.000Z');
  });
  it("rolls over to tomorrow when today's opening has passed (window closes before it opens)", () => {
    const day = { from: '09:00', to: '10:00', timeZone: 'UTC' };
    expect(nextInstallWindowOpening(day, new Date('2026-01-05T11:00:00Z'))!.toISOString()).toBe('2026-01-06T09:00:00.000Z');
  });
});
