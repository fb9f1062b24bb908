import { describe, expect, it } from 'vitest';
import type { DomainEventType } from '../../../src/core/events.ts';
import {
  originOf,
  promptPlan,
  promptTargets,
  requesterPlan,
  type Person,
  type Platform,
} from '../../../src/notifications/notification-plan.ts';

const all: Platform[] = ['slack', 'teams', 'email'];
const ada: Person = { id: 'ada', slack: 'U1', teams: 'aad-1', email: 'ada@example.com' };
const admin = { id: 'admin', channel: 'slack' };
const plan = (
  type: DomainEventType,
  origin: string | null,
  opts: { requester?: Person | null; actor?: { id: string | null; channel: string }; registered?: Platform[] } = {},
) =>
  requesterPlan({
    event: { type, actor: opts.actor ?? admin },
    requester: opts.requester === undefined ? ada : opts.requester,
    origin,
    registered: opts.registered ?? all,
  });

describe('what the requester is told, and where', () => {
  it('a request made in Slack is confirmed in Slack only; Teams stays quiet', () => {
    expect(plan('request.submitted', 'slack', { actor: { id: 'ada', channel: 'slack' } })).toEqual({
      slack: { purpose: 'status', where: 'dm' },
    });
  });

  it('a request made in Teams gets no Slack DMs, at submission or at the outcome', () => {
    expect(plan('request.submitted', 'teams', { actor: { id: 'ada', channel: 'teams' } })).toEqual({});
    expect(plan('request.approved', 'teams')).toEqual({
      teams: { purpose: 'outcome', where: 'copy' },
      email: { purpose: 'outcome', where: 'mail' },
    });
    expect(plan('request.install_ordered', 'teams')).toEqual({ teams: { purpose: 'notice', where: 'copy' } });
  });

  it('a request made through the API is confirmed in both chats', () => {
    expect(plan('request.submitted', 'api', { actor: { id: null, channel: 'api' } })).toEqual({
      slack: { purpose: 'status', where: 'dm' },
      teams: { purpose: 'status', where: 'dm' },
    });
    expect(plan('change.submitted', 'api', { actor: { id: null, channel: 'api' } })).toEqual({
      slack: { purpose: 'status', where: 'dm' },
      teams: { purpose: 'status', where: 'dm' },
    });
  });

  it('each outcome reaches the requester in chat and by email; their own cancel is not echoed in chat', () => {
    for (const type of ['request.approved', 'request.denied', 'request.expired', 'request.revoked', 'request.cancelled'] as const) {
      expect(plan(type, 'slack')).toEqual({
        slack: { purpose: 'outcome', where: 'dm' },
        teams: { purpose: 'outcome', where: 'copy' },
        email: { purpose: 'outcome', where: 'mail' },
      });
    }
    expect(plan('request.cancelled', 'slack', { actor: { id: 'ada', channel: 'slack' } })).toEqual({
      email: { purpose: 'outcome', where: 'mail' },
    });
  });

  it('change outcomes go to chat only, never email', () => {
    expect(plan('change.rejected', 'api')).toEqual({
      slack: { purpose: 'outcome', where: 'dm' },
      teams: { purpose: 'outcome', where: 'copy' },
    });
    expect(plan('change.cancelled', 'api', { actor: { id: 'ada', channel: 'api' } })).toEqual({});
  });

  it('a stage moving on is a notice on the Teams copy only', () => {
    expect(plan('request.stage_advanced', 'teams')).toEqual({ teams: { purpose: 'notice', where: 'copy' } });
    expect(plan('request.stage_advanced', 'slack')).toEqual({ teams: { purpose: 'notice', where: 'copy' } });
  });

  it('an expiry notice reaches Teams personally only when Slack does not deliver it', () => {
    expect(plan('request.access_expiring', 'api')).toEqual({
      slack: { purpose: 'notice', where: 'dm' },
      teams: { purpose: 'notice', where: 'copy' },
    });
    expect(plan('request.access_expiring', 'api', { registered: ['teams', 'email'] })).toEqual({
      teams: { purpose: 'notice', where: 'copy-else-dm' },
    });
    expect(plan('request.access_expiring', 'api', { requester: { id: 'bo', teams: 'aad-2' } })).toEqual({
      teams: { purpose: 'notice', where: 'copy-else-dm' },
    });
  });

  it('unlinked platforms, unregistered platforms and machine requests are told nothing', () => {
    expect(plan('request.approved', 'api', { requester: { id: 'bo' } })).toEqual({ teams: { purpose: 'outcome', where: 'copy' } });
    expect(plan('request.approved', 'api', { registered: ['teams'] })).toEqual({ teams: { purpose: 'outcome', where: 'copy' } });
    expect(plan('request.approved', 'api', { requester: null })).toEqual({});
  });

  it('decisions, reminders and reviews say nothing to the requester', () => {
    for (const type of [
      'request.decision_recorded',
      'request.reminder',
      'request.escalated',
      'request.review_started',
      'request.review_reminder',
      'request.review_decided',
      'audit.checkpoint',
    ] as const) {
      expect(plan(type, 'api')).toEqual({});
    }
  });

  it('the origin is where the subject was submitted', () => {
    expect(
      originOf(
        [
          { action: 'request.submitted', channel: 'teams' },
          { action: 'request.approved', channel: 'slack' },
        ],
        'request.submitted',
      ),
    ).toBe('teams');
    expect(originOf([], 'change.submitted')).toBeNull();
  });
});

describe('what approvers get', () => {
  it('each event posts, replies or redraws', () => {
    expect(promptPlan('request.submitted')).toEqual({ post: 'stage', reply: null, update: 'subject' });
    expect(promptPlan('request.reminder')).toEqual({ post: null, reply: 'reminder', update: null });
    expect(promptPlan('request.escalated')).toEqual({ post: 'escalation', reply: 'escalation', update: 'subject' });
    expect(promptPlan('request.review_started').post).toBe('review');
    expect(promptPlan('request.review_reminder').reply).toBe('review_reminder');
    expect(promptPlan('request.review_decided').update).toBe('review');
    expect(promptPlan('change.submitted').post).toBe('change');
    expect(promptPlan('request.approved')).toEqual({ post: null, reply: null, update: 'subject' });
    // the copies show when an install was ordered; an expiry notice changes nothing on them
    expect(promptPlan('request.install_ordered')).toEqual({ post: null, reply: null, update: 'subject' });
    expect(promptPlan('request.access_expiring')).toEqual({ post: null, reply: null, update: null });
  });

  const people = [
    { id: 'a', address: 'X1' },
    { id: 'b', address: null },
  ];

  it('Slack prompts the channels, and DMs linked approvers when asked or when no group has a channel', () => {
    expect(promptTargets('slack', 'stage', { channels: ['C1', 'C1'], people, direct: false })).toEqual({ channels: ['C1'], direct: [] });
    expect(promptTargets('slack', 'stage', { channels: ['C1'], people, direct: true })).toEqual({
      channels: ['C1'],
      direct: [{ id: 'a', address: 'X1' }],
    });
    for (const kind of ['stage', 'review', 'change'] as const) {
      expect(promptTargets('slack', kind, { channels: [], people, direct: false }).direct).toEqual([{ id: 'a', address: 'X1' }]);
    }
  });

  it('Teams falls back to personal chats for reviews only, and DMs stage approvers when asked', () => {
    expect(promptTargets('teams', 'stage', { channels: [], people, direct: false })).toEqual({ channels: [], direct: [] });
    expect(promptTargets('teams', 'change', { channels: [], people, direct: true })).toEqual({ channels: [], direct: [] });
    expect(promptTargets('teams', 'review', { channels: [], people, direct: false }).direct).toEqual([{ id: 'a', address: 'X1' }]);
    expect(promptTargets('teams', 'review', { channels: ['T1'], people, direct: false }).direct).toEqual([]);
    expect(promptTargets('teams', 'stage', { channels: ['T1'], people, direct: true }).direct).toEqual([{ id: 'a', address: 'X1' }]);
  });
});
