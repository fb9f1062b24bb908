import { describe, expect, it } from 'vitest';
import { canTransition, nextChangeStatus, nextRequestStatus, requestStatuses } from '../../../src/core/request-state.ts';

describe('request state machine', () => {
  it.each([
    ['pending', 'approve', 'approved'],
    ['pending', 'deny', 'denied'],
    ['pending', 'cancel', 'cancelled'],
    ['pending', 'expire', 'expired'],
    ['approved', 'revoke', 'revoked'],
    ['denied', 'reapprove', 'approved'],
    ['revoked', 'reapprove', 'approved'],
  ] as const)('%s --%s--> %s', (from, action, to) => {
    expect(nextRequestStatus(from, action)).toBe(to);
  });

  it('refuses every transition out of a final state with a typed error that says why', () => {
    for (const from of ['cancelled', 'expired'] as const) {
      for (const action of ['approve', 'deny', 'cancel', 'expire', 'revoke', 'reapprove'] as const) {
        expect(canTransition(from, action)).toBe(false);
        expect(() => nextRequestStatus(from, action)).toThrowError(
          expect.objectContaining({ code: 'invalid_transition', message: expect.stringContaining(`is ${from}`) }),
        );
      }
    }
  });

  it('never cancels or re-decides an approved request silently', () => {
    expect(() => nextRequestStatus('approved', 'cancel')).toThrow(/approved cannot be cancelled/);
    expect(() => nextRequestStatus('approved', 'approve')).toThrow(/approved cannot be approved/);
    expect(requestStatuses).toHaveLength(6);
  });

  it('changes are decided once', () => {
    expect(nextChangeStatus('pending', 'approve')).toBe('approved');
    expect(() => nextChangeStatus('rejected', 'approve')).toThrowError(expect.objectContaining({ code: 'invalid_transition' }));
  });
});
