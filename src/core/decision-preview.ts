import type { Queryable } from '../db/database.ts';
import { authorizeStage, deciderFor, type DecideOptions } from './request-decisions.ts';
import type { Actor } from './audit-log.ts';
import { AppError } from './errors.ts';
import { isUuid, type RequestRow } from './request-queries.ts';

/** What a chat surface shows in the modal that asks an approver's reason, and the stage the modal decides. */
export interface DecisionPreview {
  id: string;
  stage: number;
  applicationName: string;
  requesterName: string | null;
  deviceName: string | null;
  justification: string | null;
}

/**
 * Refuses, changing nothing, an approve or deny that could not be made now (state, stage, version, own request,
 * rights), so chat can say so before anyone types a reason. One statement: the request, the decider's groups and
 * the names the modal shows. decide() checks again under the row lock.
 */
export async function previewDecision(
  db: Queryable,
  actor: Actor,
  id: string,
  opts: Omit<DecideOptions, 'denyNeedsReason'> = {},
): Promise<DecisionPreview> {
  if (!isUuid(id)) throw new AppError('not_found', `No request with id "${id}".`);
  const found = await db.maybeOne<
    RequestRow & { app_name: string; requester_name: string | null; device_name: string | null; decider_groups: string[] }
  >(
    `SELECT r.*, a.name AS app_name, i.display_name AS requester_name, d.name AS device_name,
            ARRAY(SELECT g.name FROM approver_groups g JOIN approver_group_members m ON m.group_id = g.id
                   WHERE m.identity_id = $2::uuid ORDER BY g.name) AS decider_groups
       FROM requests r
       JOIN applications a ON a.id = r.application_id
       LEFT JOIN identities i ON i.id = r.requester_id
       LEFT JOIN devices d ON d.id = r.device_id
      WHERE r.id = $1`,
    [id, actor.id],
  );
  if (!found) throw new AppError('not_found', `No request with id "${id}".`);
  const { app_name, requester_name, device_name, decider_groups, ...row } = found;
  // the same refusals, in the same order, as decide()
  const acting = await deciderFor(db, actor, row, opts);
  await authorizeStage(db, acting, row, acting.id === actor.id ? decider_groups : undefined);
  return {
    id: row.id,
    stage: opts.stage ?? row.current_stage,
    applicationName: app_name,
    requesterName: requester_name,
    deviceName: device_name,
    justification: row.justification,
  };
}
