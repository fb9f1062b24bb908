import { describe, expect, it } from 'vitest';
import { webhookEmissions, type DomainEvent, type RequestSnapshot } from '../../../src/core/events.ts';
import { toDomainEvent } from '../../../src/core/outbox.ts';

const snapshot: RequestSnapshot = {
  requestId: 'r1',
  status: 'approved',
  applicationId: 'app-1',
  applicationName: 'Visio',
  username: 'CONTOSO\\bob',
  requesterName: 'Bob User',
  clientGuid: 'GUID:1',
  deviceName: 'BOB-LAPTOP',
  justification: 'diagrams',
  answers: {},
  stage: 0,
  decidedBy: 'Ada Admin',
  decidedAt: '2026-01-05T09:00:00.000Z',
  reason: null,
};
const envelope = {
  id: 'e1',
  occurredAt: '2026-01-05T09:00:00.000Z',
  subjectId: 'r1',
  actor: { id: 'a', label: 'Ada Admin', channel: 'slack' },
};
const install = {
  requestId: 'r1',
  applicationId: 'app-1',
  applicationName: 'Visio',
  clientGuid: 'GUID:1',
  deviceName: 'BOB-LAPTOP',
  username: 'CONTOSO\\bob',
};

describe('webhooks derived from domain events', () => {
  it('an approval with an install sends request.approved (the snapshot alone) and app.install', () => {
    const event: DomainEvent = {
      ...envelope,
      type: 'request.approved',
      subjectType: 'request',
      data: { ...snapshot, previousStatus: 'pending', installReason: 'approved' },
    };
    expect(webhookEmissions(event)).toEqual([
      { type: 'request.approved', data: snapshot },
      { type: 'app.install', data: { ...install, reason: 'approved' } },
    ]);
  });

  it('an approval whose install waits for its window sends no app.install', () => {
    const event: DomainEvent = {
      ...envelope,
      type: 'request.approved',
      subjectType: 'request',
      data: { ...snapshot, previousStatus: 'pending', installReason: null },
    };
    expect(webhookEmissions(event).map((w) => w.type)).toEqual(['request.approved']);
  });

  it('a revocation after an install sends request.revoked (with why) and app.uninstall with the reason', () => {
    const event: DomainEvent = {
      ...envelope,
      type: 'request.revoked',
      subjectType: 'request',
      data: { ...snapshot, status: 'revoked', why: 'revoke', uninstallReason: 'left' },
    };
    expect(webhookEmissions(event)).toEqual([
      { type: 'request.revoked', data: { ...snapshot, status: 'revoked', why: 'revoke' } },
      { type: 'app.uninstall', data: { ...install, reason: 'left' } },
    ]);
  });

  it('reminders and stage changes send nothing', () => {
    const event: DomainEvent = {
      ...envelope,
      type: 'request.reminder',
      subjectType: 'request',
      data: { requestId: 'r1', stage: 0, approverGroups: ['it'], deadlineAt: null },
    };
    expect(webhookEmissions(event)).toEqual([]);
  });

  it('an outbox row written before derivation (webhooks stored beside data) sends the same webhooks', () => {
    const legacyApproved = {
      type: 'request.approved',
      occurredAt: envelope.occurredAt,
      subjectType: 'request',
      subjectId: 'r1',
      actor: envelope.actor,
      data: { ...snapshot, previousStatus: 'pending' },
      webhooks: [
        { type: 'request.approved', data: snapshot },
        { type: 'app.install', data: { ...install, reason: 'ok' } },
      ],
    };
    expect(webhookEmissions(toDomainEvent({ id: 'e1', payload: legacyApproved as never }))).toEqual(legacyApproved.webhooks);
    const legacyInstall = {
      type: 'request.install_ordered',
      occurredAt: envelope.occurredAt,
      subjectType: 'request',
      subjectId: 'r1',
      actor: envelope.actor,
      data: { requestId: 'r1', why: 'install window opened' },
      webhooks: [{ type: 'app.install', data: { ...install, reason: 'install window opened' } }],
    };
    const event = toDomainEvent({ id: 'e2', payload: legacyInstall as never });
    expect(webhookEmissions(event)).toEqual(legacyInstall.webhooks);
    expect(event.type === 'request.install_ordered' && event.data.reason).toBe('install window opened');
  });
});
