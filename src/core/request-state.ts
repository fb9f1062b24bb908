import { AppError } from './errors.ts';

export const requestStatuses = ['pending', 'approved', 'denied', 'cancelled', 'expired', 'revoked'] as const;
export type RequestStatus = (typeof requestStatuses)[number];

export type RequestAction = 'approve' | 'deny' | 'cancel' | 'expire' | 'revoke' | 'reapprove';

/** The explicit state machine of a request. Anything not listed is an illegal transition. */
const transitions: Record<RequestStatus, Partial<Record<RequestAction, RequestStatus>>> = {
  pending: { approve: 'approved', deny: 'denied', cancel: 'cancelled', expire: 'expired' },
  approved: { revoke: 'revoked' },
  denied: { reapprove: 'approved' },
  revoked: { reapprove: 'approved' },
  cancelled: {},
  expired: {},
};

const verbs: Record<RequestAction, string> = {
  approve: 'approved',
  deny: 'denied',
  cancel: 'cancelled',
  expire: 'expired',
  revoke: 'revoked',
  reapprove: 'reapproved',
};

export function nextRequestStatus(from: RequestStatus, action: RequestAction): RequestStatus {
  const to = transitions[from][action];
  if (!to) {
    throw new AppError('invalid_transition', `A request that is ${from} cannot be ${verbs[action]}.`, {
      status: from,
      action,
      allowed: Object.keys(transitions[from]),
    });
  }
  return to;
}

export const canTransition = (from: RequestStatus, action: RequestAction) => Boolean(transitions[from][action]);

export const changeStatuses = ['pending', 'approved', 'rejected', 'cancelled', 'expired'] as const;
export type ChangeStatus = (typeof changeStatuses)[number];
export type ChangeAction = 'approve' | 'reject' | 'cancel' | 'expire';

const changeTransitions: Record<ChangeStatus, Partial<Record<ChangeAction, ChangeStatus>>> = {
  pending: { approve: 'approved', reject: 'rejected', cancel: 'cancelled', expire: 'expired' },
  approved: {},
  rejected: {},
  cancelled: {},
  expired: {},
};

export function nextChangeStatus(from: ChangeStatus, action: ChangeAction): ChangeStatus {
  const to = changeTransitions[from][action];
  if (!to) {
    const verb = { approve: 'approved', reject: 'rejected', cancel: 'cancelled', expire: 'expired' }[action];
    throw new AppError('invalid_transition', `A change that is ${from} cannot be ${verb}.`, { status: from, action });
  }
  return to;
}
