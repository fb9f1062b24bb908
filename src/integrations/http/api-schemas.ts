import { z } from 'zod';
import { requestStatuses } from '../../core/request-state.ts';

/** Shared pieces of the REST API's schemas. Response schemas document the views for OpenAPI; they do not validate. */
export const text = (max: number) => z.string().trim().min(1).max(max);
export const optionalText = (max: number) => z.string().trim().max(max).optional();

export const pageQuery = {
  limit: z.coerce.number().int().min(1).max(200).default(50),
  cursor: z.string().min(1).max(200).optional(),
};

export const requestStatusSchema = z.enum(requestStatuses);
export const changeStatusSchema = z.enum(['pending', 'approved', 'rejected', 'cancelled', 'expired']);

const isoDate = z.iso.datetime();
const nullableDate = isoDate.nullable();

export const requestViewSchema = z.object({
  id: z.uuid(),
  status: requestStatusSchema,
  source: z.enum(['chat', 'api', 'approved-request', 'web']),
  application: z.object({ id: z.string(), name: z.string() }),
  requester: z.object({ id: z.uuid(), username: z.string(), displayName: z.string(), email: z.string().nullable() }).nullable(),
  device: z.object({ id: z.uuid(), clientGuid: z.string(), name: z.string() }).nullable(),
  justification: z.string().nullable(),
  answers: z.record(z.string(), z.unknown()),
  currentStage: z.number().int(),
  stageCount: z.number().int(),
  autoInstall: z.boolean(),
  installOrderedAt: nullableDate,
  installDueAt: nullableDate,
  decidedAt: nullableDate,
  decidedBy: z.string().nullable(),
  decisionReason: z.string().nullable(),
  deadlineAt: nullableDate,
  escalated: z.boolean(),
  accessExpiresAt: nullableDate,
  version: z.number().int().describe('bumped by every state change; the ETag, for If-Match'),
  createdAt: isoDate,
  updatedAt: isoDate,
});

const decisionViewSchema = z.object({
  stage: z.number().int(),
  approver: z.object({ id: z.uuid().nullable(), label: z.string() }),
  decision: z.enum(['approve', 'deny']),
  reason: z.string().nullable(),
  channel: z.string(),
  at: isoDate,
});

export const historyEntrySchema = z.object({
  at: isoDate,
  action: z.string(),
  actor: z.string(),
  channel: z.string(),
  details: z.unknown(),
});

export const requestDetailSchema = requestViewSchema.extend({
  policy: z.record(z.string(), z.unknown()),
  stages: z.array(
    z.object({
      index: z.number().int(),
      approverGroups: z.array(z.string()),
      quorum: z.string(),
      approverJustification: z.boolean(),
      status: z.enum(['not_started', 'waiting', 'approved', 'denied', 'skipped', 'expired', 'cancelled']),
      decisions: z.array(decisionViewSchema),
    }),
  ),
  decisions: z.array(decisionViewSchema),
  history: z.array(historyEntrySchema),
});

export const decisionResultSchema = z.object({
  outcome: z.enum(['recorded', 'stage_approved', 'approved', 'denied']),
  request: requestViewSchema,
});

const diffEntrySchema = z.object({
  path: z.string(),
  op: z.enum(['add', 'remove', 'replace']),
  before: z.unknown().optional(),
  after: z.unknown().optional(),
});

export const changeViewSchema = z.object({
  id: z.uuid(),
  status: changeStatusSchema,
  resourceType: z.string(),
  resourceId: z.string(),
  before: z.unknown(),
  after: z.unknown(),
  diff: z.array(diffEntrySchema),
  justification: z.string(),
  requester: z.object({ id: z.uuid().nullable(), label: z.string() }),
  approverGroups: z.array(z.string()),
  decidedAt: nullableDate,
  decidedBy: z.string().nullable(),
  decisionNotes: z.string().nullable(),
  version: z.number().int().describe('bumped by every state change; the ETag, for If-Match'),
  createdAt: isoDate,
  updatedAt: isoDate,
});

export const changeDetailSchema = changeViewSchema.extend({ history: z.array(historyEntrySchema) });

export const pageOf = <T extends z.ZodType>(item: T) => z.object({ items: z.array(item), nextCursor: z.string().nullable() });

export const auditEventSchema = z.object({
  id: z.string(),
  occurredAt: isoDate,
  actor: z.object({ id: z.uuid().nullable(), label: z.string(), channel: z.string() }),
  action: z.string(),
  subjectType: z.string(),
  subjectId: z.string(),
  before: z.unknown(),
  after: z.unknown(),
  details: z.unknown(),
  sealed: z
    .boolean()
    .describe(
      'false: written but not chained yet (the sealer chains a row shortly after commit, once every transaction that began before it has ended); it has no sequence or hashes yet',
    ),
  sequence: z.number().int().nullable().describe('position in the hash chain, from 1'),
  prevHash: z.string().nullable(),
  hash: z.string().nullable(),
});
