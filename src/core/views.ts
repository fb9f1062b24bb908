import type { ChangeStatus, RequestStatus } from './request-state.ts';
import type { PolicyDefinition, Quorum } from './policy-schema.ts';

/** What the API returns and what the chat renderers draw from. camelCase, ISO timestamps. */
export interface IdentityRef {
  id: string;
  username: string;
  displayName: string;
  email: string | null;
}

export interface DeviceRef {
  id: string;
  clientGuid: string;
  name: string;
}

export interface DecisionView {
  stage: number;
  approver: { id: string | null; label: string };
  decision: 'approve' | 'deny';
  reason: string | null;
  channel: string;
  at: string;
}

export interface StageView {
  index: number;
  approverGroups: string[];
  quorum: Quorum;
  approverJustification: boolean;
  /** skipped: a later stage the request never reached; expired or cancelled: the stage waiting when it ended so */
  status: 'not_started' | 'waiting' | 'approved' | 'denied' | 'skipped' | 'expired' | 'cancelled';
  decisions: DecisionView[];
}

export interface HistoryEntry {
  at: string;
  action: string;
  actor: string;
  channel: string;
  details: unknown;
}

export interface RequestView {
  id: string;
  status: RequestStatus;
  source: 'chat' | 'api' | 'approved-request' | 'web';
  application: { id: string; name: string };
  requester: IdentityRef | null;
  device: DeviceRef | null;
  justification: string | null;
  answers: Record<string, unknown>;
  currentStage: number;
  stageCount: number;
  autoInstall: boolean;
  installOrderedAt: string | null;
  installDueAt: string | null;
  decidedAt: string | null;
  decidedBy: string | null;
  decisionReason: string | null;
  deadlineAt: string | null;
  escalated: boolean;
  accessExpiresAt: string | null;
  /** bumped by every state change (a vote, a decision, an escalation, an install order); the ETag */
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface RequestDetail extends RequestView {
  policy: PolicyDefinition;
  stages: StageView[];
  decisions: DecisionView[];
  history: HistoryEntry[];
}

export interface DiffEntry {
  path: string;
  op: 'add' | 'remove' | 'replace';
  before?: unknown;
  after?: unknown;
}

export interface ChangeView {
  id: string;
  status: ChangeStatus;
  resourceType: string;
  resourceId: string;
  before: unknown;
  after: unknown;
  diff: DiffEntry[];
  justification: string;
  requester: { id: string | null; label: string };
  approverGroups: string[];
  decidedAt: string | null;
  decidedBy: string | null;
  decisionNotes: string | null;
  /** bumped by every state change; the ETag */
  version: number;
  createdAt: string;
  updatedAt: string;
}

export interface ChangeDetail extends ChangeView {
  history: HistoryEntry[];
}

export interface Page<T> {
  items: T[];
  nextCursor: string | null;
}
