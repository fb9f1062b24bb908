import type { Queryable } from '../db/database.ts';
import { type AuditEntry, auditInsert } from './audit-log.ts';
import { type AnyNewEvent, outboxInsert } from './outbox.ts';
import type { RequestRow } from './request-queries.ts';

/** What a transition may change on a request row; the version is stepped by writeTransition, never set. */
export type RequestChanges = Partial<
  Omit<RequestRow, 'id' | 'version' | 'application_id' | 'requester_id' | 'device_id' | 'policy' | 'answers' | 'created_at' | 'source'>
>;

export interface VoteRecord {
  stage: number;
  approverId: string;
  approverLabel: string;
  decision: 'approve' | 'deny';
  reason: string | null;
  channel: string;
  at: Date;
}

export interface Transition {
  changes: RequestChanges;
  /** how far the version moves (an approval that also orders the install moves it twice, as two changes) */
  versionStep: number;
  /** the vote that caused it, written only if the row moves */
  vote?: VoteRecord;
  audit: AuditEntry[];
  events: AnyNewEvent[];
}

/**
 * The row as the transition leaves it: what events describe before the statement runs, and what writeTransition
 * returns (a change left undefined is written as NULL, as pg sends it).
 */
export const afterTransition = (row: RequestRow, t: Pick<Transition, 'changes' | 'versionStep'>): RequestRow => {
  const after = { ...row, version: row.version + t.versionStep };
  for (const [column, value] of Object.entries(t.changes)) (after as Record<string, unknown>)[column] = value ?? null;
  return after;
};

/**
 * A request transition in one statement: the row update guarded by the version (and status) it was decided on, the
 * vote, the audit rows and the outbox events as data-modifying CTEs that write only when the update did. A decision
 * reads without a lock and writes with this, so a race is settled by Postgres' row lock on the UPDATE: the loser
 * changes nothing, gets undefined back and reads again. A caller holding the row lock always wins.
 *
 * The winner gets the row back as the transition leaves it, built here rather than returned by Postgres: every
 * column a command shows moves only with the version the update is guarded by (the reminder, review and warning
 * timers, which do not, are shown nowhere), and a whole row out of Postgres, its policy and answers printed as JSON
 * and parsed again, cost both processes more than the rest of the answer.
 */
export async function writeTransition(q: Queryable, row: RequestRow, t: Transition): Promise<RequestRow | undefined> {
  const params: unknown[] = [row.id, row.version, row.status, row.version + t.versionStep];
  const set = Object.entries(t.changes).map(([column, value]) => `${column} = $${params.push(value)}`);
  const parts = [
    `moved AS (UPDATE requests SET version = $4${set.map((s) => `, ${s}`).join('')}
                WHERE id = $1 AND version = $2 AND status = $3 RETURNING id, version)`,
  ];
  if (t.vote) {
    const v = t.vote;
    const [stage, approver, label, decision, reason, channel, at] = [
      v.stage,
      v.approverId,
      v.approverLabel,
      v.decision,
      v.reason,
      v.channel,
      v.at,
    ].map((value) => `$${params.push(value)}`);
    parts.push(
      `vote AS (INSERT INTO request_decisions (request_id, stage, approver_id, approver_label, decision, reason, channel, created_at)
                SELECT id, ${stage}::int, ${approver}::uuid, ${label}::text, ${decision}::text, ${reason}::text, ${channel}::text, ${at}::timestamptz FROM moved)`,
    );
  }
  parts.push(...recordWhen('EXISTS (SELECT 1 FROM moved)', params, t.audit, t.events));
  const moved = await q.maybeOne(`WITH ${parts.join(',\n')} SELECT version FROM moved`, params);
  return moved ? afterTransition(row, t) : undefined;
}

export interface NewRequest {
  id: string;
  applicationId: string;
  requesterId: string;
  deviceId: string | null;
  source: RequestRow['source'];
  justification: string | null;
  answers: Record<string, unknown>;
  policy: unknown;
  deadlineAt: Date;
  now: Date;
  nextReminderAt: Date | null;
  escalateAt: Date | null;
}

/**
 * A submission in one statement: the pending request, unless the same application is already approved for the
 * person and device, with its audit row and event written only if it was. Undefined when an approved one exists;
 * a pending duplicate is refused by requests_one_pending_uq.
 */
export async function insertRequest(
  q: Queryable,
  r: NewRequest,
  audit: AuditEntry[],
  events: AnyNewEvent[],
): Promise<RequestRow | undefined> {
  const params: unknown[] = [
    r.id,
    r.applicationId,
    r.requesterId,
    r.deviceId,
    r.source,
    r.justification,
    JSON.stringify(r.answers),
    JSON.stringify(r.policy),
    r.deadlineAt,
    r.now,
    r.nextReminderAt,
    r.escalateAt,
  ];
  const record = recordWhen('EXISTS (SELECT 1 FROM req)', params, audit, events);
  return q.maybeOne<RequestRow>(
    `WITH req AS (
       INSERT INTO requests (id, application_id, requester_id, device_id, source, status, current_stage, justification, answers, policy,
                             deadline_at, stage_started_at, next_reminder_at, escalate_at, created_at, updated_at)
       SELECT $1::uuid, $2::text, $3::uuid, $4::uuid, $5::text, 'pending', 0, $6::text, $7::jsonb, $8::jsonb,
              $9::timestamptz, $10::timestamptz, $11::timestamptz, $12::timestamptz, $10::timestamptz, $10::timestamptz
        WHERE NOT EXISTS (SELECT 1 FROM requests a WHERE ${sameSubject('a', '$2::text', '$3::uuid', '$4::uuid')} AND a.status = 'approved')
       RETURNING *),
     ${record.join(',\n')}
     SELECT * FROM req`,
    params,
  );
}

const NIL_UUID = `'00000000-0000-0000-0000-000000000000'::uuid`;

/**
 * Rows of `alias` for the same application, requester and device, in the expressions the one-pending and
 * one-approved unique indexes are keyed on (an absent requester or device is the nil UUID there), so that a prepared
 * statement's generic plan looks all three up in the index whatever the table's statistics. Written as
 * `requester_id = $n`, a generic plan made while the table was small (a new installation; until autovacuum's next
 * ANALYZE) looked up the application alone and filtered every request of it: 8000 approvals of one application took
 * a submit from 7 to 20 ms.
 */
export function sameSubject(alias: string, application: string, requester: string, device: string): string {
  return (
    `${alias}.application_id = ${application} AND coalesce(${alias}.requester_id, ${NIL_UUID}) = coalesce(${requester}, ${NIL_UUID})` +
    ` AND coalesce(${alias}.device_id, ${NIL_UUID}) = coalesce(${device}, ${NIL_UUID})`
  );
}

/**
 * A guarded write's audit rows and events as data-modifying CTEs (`audit`, `events`) that write only when `guard`
 * holds; their parameters are appended to `params`.
 */
function recordWhen(guard: string, params: unknown[], audit: AuditEntry[], events: AnyNewEvent[]): string[] {
  const parts: string[] = [];
  if (audit.length) {
    const a = auditInsert(audit, params.length + 1, guard);
    params.push(...a.params);
    parts.push(`audit AS (${a.sql})`);
  }
  if (events.length) {
    const e = outboxInsert(events, params.length + 1, guard);
    params.push(...e.params);
    parts.push(`events AS (${e.sql})`);
  }
  return parts;
}
