import type { AppContext } from '../../app-context.ts';
import type { Database, Queryable } from '../../db/database.ts';
import { isUuid } from '../../core/request-queries.ts';
import { GroupCommit } from '../../db/group-commit.ts';

/**
 * The two statements of webhook delivery attempts, each shared by the attempts running at the same time (group
 * commit): the claim leases the deliveries, the record writes the attempts' outcomes and ends their leases.
 */

export interface ClaimedDelivery {
  id: string;
  message_id: string;
  endpoint_id: string;
  event_type: string;
  body: string;
  attempts: number;
  lease_token: string;
  url: string;
  secret: string;
  enabled: boolean;
  endpoint_name: string;
}

export type Claim =
  | { kind: 'leased'; delivery: ClaimedDelivery }
  /** an early duplicate of a scheduled retry: not leased, it waits for its turn */
  | { kind: 'early'; due: number }
  /** finished, gone, a connector order, or leased by another run */
  | { kind: 'none' };

export interface AttemptRecord {
  id: string;
  leaseToken: string;
  /** the attempt count the claim saw */
  seenAttempts: number;
  statusCode: number | null;
  latencyMs: number;
  excerpt: string | null;
  attemptError: string | null;
  status: 'pending' | 'succeeded' | 'failed';
  attempt: number;
  lastError: string | null;
  nextAttemptAt: Date | null;
}

// an early duplicate of a scheduled retry is not sent ahead of its backoff; within this much it is sent
const EARLY_SLACK_MS = 250;
// the lease outlasts the HTTP timeout by this much (signing, connecting, the record's flush)
const LEASE_MARGIN_MS = 10_000;

export const leaseMsFor = (ctx: AppContext) => ctx.config.WEBHOOK_TIMEOUT_MS + LEASE_MARGIN_MS;

/**
 * Leases the deliveries that are pending, due and not leased by a live run, and returns each with its endpoint.
 * Rows are locked in id order first, so claims and records of overlapping batches never deadlock; a run that
 * finds a row leased (another run is sending it) gets `none`.
 */
export async function claimDeliveries(q: Queryable, ids: string[], leaseMs: number): Promise<Claim[]> {
  // one malformed id must not fail the others' claim
  const valid = ids.filter(isUuid);
  if (valid.length === 0) return ids.map(() => ({ kind: 'none' }));
  const rows = await q.query<Partial<ClaimedDelivery> & { id: string; due: Date | null }>(
    `WITH l AS (
       SELECT id, next_attempt_at, (lease_until IS NULL OR lease_until < now()) AS free
         FROM webhook_deliveries WHERE id = ANY($1::uuid[]) AND status = 'pending' AND endpoint_id IS NOT NULL ORDER BY id FOR UPDATE),
     c AS (
       UPDATE webhook_deliveries d SET lease_until = now() + make_interval(secs => $2::float8 / 1000), lease_token = gen_random_uuid()
         FROM l WHERE d.id = l.id AND l.free AND (l.next_attempt_at IS NULL OR l.next_attempt_at <= $3::timestamptz)
       RETURNING d.id, d.message_id, d.endpoint_id, d.event_type, d.body, d.attempts, d.lease_token)
     SELECT l.id, l.next_attempt_at AS due, c.message_id, c.endpoint_id, c.event_type, c.body, c.attempts, c.lease_token,
            e.url, e.secret, e.enabled, e.name AS endpoint_name
       FROM l LEFT JOIN c ON c.id = l.id LEFT JOIN webhook_endpoints e ON e.id = c.endpoint_id
      WHERE l.free`,
    [valid, leaseMs, new Date(Date.now() + EARLY_SLACK_MS).toISOString()],
  );
  const byId = new Map(rows.map((r) => [r.id, r]));
  return ids.map((id): Claim => {
    const r = byId.get(id);
    // the same delivery twice in one batch: only the first run gets it
    byId.delete(id);
    if (!r) return { kind: 'none' };
    if (!r.lease_token) return { kind: 'early', due: new Date(r.due!).getTime() };
    return { kind: 'leased', delivery: r as ClaimedDelivery };
  });
}

/**
 * The attempt rows, the deliveries' new state and the end of their leases, in one statement (it commits by
 * itself). A record applies only while its delivery is pending with the attempt count its claim saw and still
 * holds its lease, so a duplicate that took over an expired lease never records twice. Its commit does not wait for
 * the WAL flush (synchronous_commit off, this statement only): an attempt record lost in a crash costs a resend
 * with the same webhook-id, never a decision. clock_timestamp(): the metrics rollup folds attempts by created_at.
 */
export async function recordAttempts(q: Queryable, recs: AttemptRecord[]): Promise<void> {
  const col = <K extends keyof AttemptRecord>(k: K) => recs.map((r) => r[k]);
  await q.query(
    `WITH v AS (
       SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::int[], $5::int[], $6::text[], $7::text[], $8::text[], $9::int[],
                            $10::text[], $11::timestamptz[])
         AS v(id, token, seen, code, latency, excerpt, attempt_error, status, attempt, last_error, next_at)),
     l AS (SELECT id FROM webhook_deliveries WHERE id IN (SELECT id FROM v) ORDER BY id FOR UPDATE),
     u AS (
       UPDATE webhook_deliveries d SET status = v.status, attempts = v.attempt,
              last_status_code = CASE WHEN v.status = 'failed' THEN coalesce(v.code, d.last_status_code) ELSE v.code END,
              last_error = v.last_error, next_attempt_at = v.next_at, completed_at = CASE WHEN v.status = 'pending' THEN NULL ELSE now() END,
              lease_until = NULL, lease_token = NULL
         FROM v JOIN l ON l.id = v.id
        WHERE d.id = v.id AND d.status = 'pending' AND d.attempts = v.seen AND d.lease_token = v.token
       RETURNING d.id, v.token),
     a AS (
       INSERT INTO webhook_attempts (delivery_id, attempt, status_code, latency_ms, response_excerpt, error, created_at)
       SELECT v.id, (SELECT count(*) + 1 FROM webhook_attempts w WHERE w.delivery_id = v.id), v.code, v.latency, v.excerpt, v.attempt_error,
              clock_timestamp()
         FROM v JOIN u ON u.id = v.id AND u.token = v.token)
     SELECT set_config('synchronous_commit', 'off', true) AS async_commit`,
    [
      col('id'),
      col('leaseToken'),
      col('seenAttempts'),
      col('statusCode'),
      col('latencyMs'),
      col('excerpt'),
      col('attemptError'),
      col('status'),
      col('attempt'),
      col('lastError'),
      recs.map((r) => r.nextAttemptAt?.toISOString() ?? null),
    ],
  );
}

/** Ends a lease without recording (the attempt did not happen, or its record failed: the next run may go ahead). */
export async function releaseLease(q: Queryable, id: string, leaseToken: string): Promise<void> {
  await q.query(`UPDATE webhook_deliveries SET lease_until = NULL, lease_token = NULL WHERE id = $1 AND lease_token = $2`, [
    id,
    leaseToken,
  ]);
}

interface Batches {
  claims: GroupCommit<string, Claim>;
  records: GroupCommit<AttemptRecord, null>;
  /** attempts of this process between their claim and their record (the record batch waits for them a little) */
  sending: number;
}

// how long the first claim or record of a batch waits for the attempts expected to join it
const GROUP_WAIT_MS = 2;

const batchesOf = new WeakMap<Database, Batches>();

/** The claim and record batches of a database handle (one of each per process and database). */
export function attemptBatches(ctx: AppContext): Batches {
  const known = batchesOf.get(ctx.db);
  if (known) return known;
  const db = ctx.db;
  const leaseMs = leaseMsFor(ctx);
  const b: Batches = {
    sending: 0,
    // a claim waits only while this process is busy sending: then other jobs are about to start too
    claims: new GroupCommit<string, Claim>((ids) => claimDeliveries(db, ids, leaseMs), {
      maxWaitMs: GROUP_WAIT_MS,
      expectMore: () => b.sending > 0,
    }),
    records: new GroupCommit<AttemptRecord, null>(
      async (recs) => {
        await recordAttempts(db, recs);
        return recs.map(() => null);
      },
      { maxWaitMs: GROUP_WAIT_MS, expectMore: () => b.sending > 0 },
    ),
  };
  batchesOf.set(db, b);
  return b;
}
