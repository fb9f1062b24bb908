import { describe, expect, it } from 'vitest';
import { requestPolicy } from '../../../src/core/policy-schema.ts';

// a policy snapshot as Postgres hands it back: stored before `quorum` and `approverJustification` had defaults to give
const stored = () => ({ justification: 'optional', stages: [{ approvers: ['approvers'] }], decisionDeadline: 'P14D' });

describe('requestPolicy', () => {
  it('validates a stored snapshot once per row read and gives it the defaults of fields added since', () => {
    const row = { policy: stored() };
    const first = requestPolicy(row);
    expect(first.stages[0]).toMatchObject({ approvers: ['approvers'], quorum: 'any', approverJustification: false });
    // the same row (or a copy of it spreading the same policy) is not validated again
    expect(requestPolicy({ ...row })).toBe(first);
    // the same policy read again is a new object: validated afresh
    const again = requestPolicy({ policy: stored() });
    expect(again).not.toBe(first);
    expect(again).toEqual(first);
  });

  it('refuses a snapshot that is not a policy, every time it is asked', () => {
    const row = { policy: { stages: [] } };
    expect(() => requestPolicy(row)).toThrow();
    expect(() => requestPolicy(row)).toThrow();
    expect(() => requestPolicy({ policy: null })).toThrow();
  });
});
