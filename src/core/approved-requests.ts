import type { Database, Tx } from '../db/database.ts';
import { everyApproverGroup } from './approval-rights.ts';
import type { Actor, AuditEntry } from './audit-log.ts';
import type { Clock } from './clock.ts';
import {
  groupNamesOf,
  lookupForSubmit,
  policyOf,
  unknownApplication,
  unknownDevice,
  unknownIdentity,
  type ApplicationRow,
  type IdentityRow,
} from './directory.ts';
import { AppError } from './errors.ts';
import { policyDefinitionSchema, type PolicyDefinition } from './policy-schema.ts';
import { requestViewOf, type RequestRow } from './request-queries.ts';
import { finishRequest, orderInstall } from './request-transitions.ts';
import { sameSubject } from './request-write.ts';
import type { RequestView } from './views.ts';

export interface CreateApprovedInput {
  applicationId: string;
  clientGuid: string;
  username?: string;
  comments?: string;
  autoInstall?: boolean;
}

/** The policy used for machine pre-approvals of applications that have none. */
const preApprovalPolicy: PolicyDefinition = policyDefinitionSchema.parse({
  justification: 'none',
  stages: [{ approvers: ['(pre-approved)'] }],
});

/**
 * A trusted system (an unbound key) may create approved requests: a system pre-approval, recorded with the key's
 * name. A key bound to a person only what that person could approve: an application whose policy names them as an
 * approver, never for themselves.
 */
async function mayPreApprove(tx: Tx, actor: Actor, app: ApplicationRow, user: IdentityRow | null): Promise<void> {
  if (user && user.id === actor.id) throw new AppError('self_approval', 'You cannot approve your own request.');
  const groups = app.policy_definition ? everyApproverGroup(policyOf(app)) : [];
  const mine = await groupNamesOf(tx, actor.id!);
  if (!groups.some((g) => mine.includes(g))) {
    throw new AppError(
      'not_an_approver',
      `Only approvers of ${app.name}${groups.length ? ` (${groups.join(', ')})` : ''} or a trusted system key can create approved requests for it.`,
      { approverGroups: groups },
    );
  }
}

const subject = sameSubject('r', '$1::text', '$2::uuid', '$3::uuid');
/**
 * The approved request for an application, requester ($2, may be null) and device, else the pending one, locked;
 * each looked up in its unique index. (With `status IN ('approved', 'pending')`, a generic plan made while the table
 * was small scanned every request of the application: a deployment wave for one application slowed with each approval
 * until autovacuum's next ANALYZE.)
 */
export const SUBJECT_REQUEST_SQL = `WITH approved AS (SELECT * FROM requests r WHERE ${subject} AND r.status = 'approved' FOR UPDATE),
      pending AS (SELECT * FROM requests r WHERE ${subject} AND r.status = 'pending' AND NOT EXISTS (SELECT 1 FROM approved) FOR UPDATE)
 SELECT * FROM approved UNION ALL SELECT * FROM pending LIMIT 1`;

/**
 * Configuration Manager's CreateApprovedRequest: approve (or pre-approve, for a device alone) without a prompt.
 * Calling again for the same triple returns the same request and, with autoInstall, orders the install again.
 * A deployment wave sends thousands of these: the application, the person and the device are read in one
 * statement, the approval and its audit rows in another, and the view is built from what was read and written.
 */
export async function createApprovedRequest(
  db: Database,
  clock: Clock,
  actor: Actor,
  input: CreateApprovedInput,
): Promise<{ request: RequestView; created: boolean }> {
  const now = clock.now();
  const comments = input.comments ?? null;
  return db.tx(async (tx) => {
    const found = await lookupForSubmit(tx, { applicationId: input.applicationId, username: input.username, clientGuid: input.clientGuid });
    const { app, device } = found;
    if (!app) throw unknownApplication(input.applicationId);
    if (!device) throw unknownDevice(input.clientGuid);
    if (input.username && !found.identity) throw unknownIdentity(input.username);
    const user = found.identity;
    if (actor.id) await mayPreApprove(tx, actor, app, user);
    // a machine-only pre-approval always installs
    const autoInstall = user ? input.autoInstall !== false : true;
    // an application requested per person (perDevice: false) is approved for the person, as a submit would be,
    // whichever device the call names: one approval per person, not one per device alongside theirs
    const onDevice = user && !app.per_device ? null : device;
    await tx.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`approved:${app.id}:${user?.id ?? ''}:${onDevice?.id ?? ''}`]);
    const existing = await tx.maybeOne<RequestRow>(SUBJECT_REQUEST_SQL, [app.id, user?.id ?? null, onDevice?.id ?? null]);
    // the request found (or made) is for this application, person and device: its context is what was read
    const ctx = { app, requester: user, device: onDevice };
    if (existing?.status === 'approved') {
      const row = autoInstall ? await orderInstall(tx, actor, existing, now, comments ?? 'approved request created again', ctx) : existing;
      return { request: requestViewOf(row, ctx), created: false };
    }
    if (existing) {
      const pending = { ...existing, auto_install: autoInstall };
      const row = await finishRequest(tx, actor, pending, 'approve', comments, now, ctx, { changes: { auto_install: autoInstall } });
      return { request: requestViewOf(row, ctx), created: false };
    }
    const policy = app.policy_definition ? policyOf(app) : preApprovalPolicy;
    const row = await tx.one<RequestRow>(
      `INSERT INTO requests (application_id, requester_id, device_id, source, status, justification, policy, auto_install, created_at, updated_at)
       VALUES ($1,$2,$3,'approved-request','pending',$4,$5,$6,$7,$7) RETURNING *`,
      [app.id, user?.id ?? null, onDevice?.id ?? null, comments, JSON.stringify(policy), autoInstall, now],
    );
    const createdAudit: AuditEntry = {
      actor,
      action: 'request.created_approved',
      subjectType: 'request',
      subjectId: row.id,
      details: { comments, autoInstall, machineOnly: !user },
      at: now,
    };
    const approved = await finishRequest(tx, actor, row, 'approve', comments, now, ctx, { auditFirst: [createdAudit] });
    return { request: requestViewOf(approved, ctx), created: true };
  });
}
