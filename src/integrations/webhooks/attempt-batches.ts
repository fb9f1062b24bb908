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
 * One statement for the attempts of a moment: it records the attempts that finished (the attempt rows, the
 * deliveries' new state, the end of their leases), gives back the leases of deliveries sent away unsent, and leases
 * the deliveries about to be sent, returning each with its endpoint. Every row any side touches is locked in id order
 * first, so overlapping batches of other processes never deadlock.
 *
 * - A record applies only while its delivery is pending with the attempt count its claim saw and still holds its
 *   lease, so a duplicate that took over an expired lease never records twice. It tests the row `l` locked (the
 *   newest version): a test on the updated table's status let a generic plan read every pending delivery through
 *   the pending index per batch (1430 rows for a batch of 56 during a 3000-delivery drain). The rows are found by
 *   an array of ids, not a subquery over the CTEs: the generic plan estimated those at ten rows and hash-joined them
 *   against a sequential scan of the whole table (4000 rows read for 48 locked).
 * - A release ends the lease of a delivery its endpoint's gate sent away after its claim (no attempt made); a claim
 *   of the same delivery in the same batch gets `none`.
 * - A claim leases a delivery that is pending, due and not leased by a live run; one that finds it leased (another
 *   run is sending it, or recording it in this very batch) gets `none`, an early duplicate of a scheduled retry
 *   gets `early`.
 * - The commit does not wait for the WAL flush (synchronous_commit off, this statement only): a lease or an attempt
 *   record lost in a crash costs a resend with the same webhook-id, never a decision.
 * - clock_timestamp(): the metrics rollup folds attempts by created_at.
 */
export async function writeAttempts(
  q: Queryable,
  recs: AttemptRecord[],
  claimIds: string[],
  leaseMs: number,
  releases: LeaseRelease[] = [],
): Promise<Claim[]> {
  const col = <K extends keyof AttemptRecord>(k: K) => recs.map((r) => r[k]);
  // one malformed id must not fail the others' claim
  const valid = claimIds.filter(isUuid);
  const rows = await q.query<Partial<ClaimedDelivery> & { id: string | null; due: Date | null }>(
    `WITH v AS (
       SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::int[], $4::int[], $5::int[], $6::text[], $7::text[], $8::text[], $9::int[],
                            $10::text[], $11::timestamptz[])
         AS v(id, token, seen, code, latency, excerpt, attempt_error, status, attempt, last_error, next_at)),
     k AS (SELECT DISTINCT unnest($12::uuid[]) AS id),
     l AS (
       SELECT d.id, d.status, d.attempts, d.lease_token, d.endpoint_id, d.next_attempt_at,
              (d.lease_until IS NULL OR d.lease_until < now()) AS free, d.id = ANY($1::uuid[]) AS recording,
              d.id = ANY($16::uuid[]) AS releasing
         FROM webhook_deliveries d WHERE d.id = ANY($15::uuid[]) ORDER BY d.id FOR UPDATE),
     u AS (
       UPDATE webhook_deliveries d SET status = v.status, attempts = v.attempt,
              last_status_code = CASE WHEN v.status = 'failed' THEN coalesce(v.code, d.last_status_code) ELSE v.code END,
              last_error = v.last_error, next_attempt_at = v.next_at, completed_at = CASE WHEN v.status = 'pending' THEN NULL ELSE now() END,
              lease_until = NULL, lease_token = NULL
         FROM v JOIN l ON l.id = v.id
        WHERE d.id = l.id AND l.status = 'pending' AND l.attempts = v.seen AND l.lease_token = v.token
       RETURNING d.id, v.token),
     a AS (
       INSERT INTO webhook_attempts (delivery_id, attempt, status_code, latency_ms, response_excerpt, error, created_at)
       SELECT v.id, (SELECT count(*) + 1 FROM webhook_attempts w WHERE w.delivery_id = v.id), v.code, v.latency, v.excerpt, v.attempt_error,
              clock_timestamp()
         FROM v JOIN u ON u.id = v.id AND u.token = v.token),
     r AS (
       UPDATE webhook_deliveries d SET lease_until = NULL, lease_token = NULL
         FROM unnest($16::uuid[], $17::uuid[]) AS r(id, token) JOIN l ON l.id = r.id
        WHERE d.id = l.id AND l.lease_token = r.token AND NOT l.recording),
     c AS (
       UPDATE webhook_deliveries d SET lease_until = now() + make_interval(secs => $13::float8 / 1000), lease_token = gen_random_uuid()
         FROM l WHERE d.id = l.id AND l.id IN (SELECT id FROM k) AND NOT l.recording AND NOT l.releasing AND l.status = 'pending' AND l.endpoint_id IS NOT NULL
          AND l.free AND (l.next_attempt_at IS NULL OR l.next_attempt_at <= $14::timestamptz)
       RETURNING d.id, d.message_id, d.endpoint_id, d.event_type, d.body, d.attempts, d.lease_token)
     SELECT x.*, e.url, e.secret, e.enabled, e.name AS endpoint_name
       FROM (SELECT set_config('synchronous_commit', 'off', true) AS async_commit) s
       LEFT JOIN LATERAL (
         SELECT l.id, l.next_attempt_at AS due, c.message_id, c.endpoint_id, c.event_type, c.body, c.attempts, c.lease_token
           FROM l JOIN k ON k.id = l.id LEFT JOIN c ON c.id = l.id
          WHERE l.free AND NOT l.recording AND NOT l.releasing AND l.status = 'pending' AND l.endpoint_id IS NOT NULL) x ON true
       LEFT JOIN webhook_endpoints e ON e.id = x.endpoint_id`,
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
      valid,
      leaseMs,
      new Date(Date.now() + EARLY_SLACK_MS).toISOString(),
      [...recs.map((r) => r.id), ...valid, ...releases.map((r) => r.id)],
      releases.map((r) => r.id),
      releases.map((r) => r.leaseToken),
    ],
  );
  const byId = new Map(rows.filter((r) => r.id).map((r) => [r.id!, r]));
  return claimIds.map((id): Claim => {
    const r = byId.get(id);
    // the same delivery twice in one batch: only the first run gets it
    byId.delete(id);
    if (!r) return { kind: 'none' };
    if (!r.lease_token) return { kind: 'early', due: new Date(r.due!).getTime() };
    return { kind: 'leased', delivery: r as ClaimedDelivery };
  });
}

/** Records attempts alone (inside a transaction of the caller's, e.g. with the endpoint's 410 Gone). */
export async function recordAttempts(q: Queryable, recs: AttemptRecord[]): Promise<void> {
  await writeAttempts(q, recs, [], 0);
}

/** Ends a lease without recording (the attempt did not happen, or its record failed: the next run may go ahead). */
export async function releaseLease(q: Queryable, id: string, leaseToken: string): Promise<void> {
  await q.query(`UPDATE webhook_deliveries SET lease_until = NULL, lease_token = NULL WHERE id = $1 AND lease_token = $2`, [
    id,
    leaseToken,
  ]);
}

/** A lease ended without an attempt (the endpoint's gate sent the delivery away after its claim). */
export interface LeaseRelease {
  id: string;
  leaseToken: string;
}

type AttemptOp = { claim: string } | { record: AttemptRecord } | { release: LeaseRelease };

interface Batches {
  /** claims and records of this process share one statement per flush (writeAttempts) */
  claim(id: string): Promise<Claim>;
  record(rec: AttemptRecord): Promise<void>;
  /**
   * Records without waiting (a success: the job may finish now). The lease keeps a duplicate from sending meanwhile;
   * a record that fails leaves the lease to expire and the reconciler to resend, under the same webhook-id.
   */
  recordLater(rec: AttemptRecord): void;
  /** ends a lease without an attempt, in the next batch (the gate's refusals of a moment: one statement, not one each) */
  release(id: string, leaseToken: string): Promise<void>;
  /** resolves once every record handed to recordLater has been written (or has failed) */
  settled(): Promise<void>;
  /** attempts of this process between their claim and their record (the batch waits for them a little) */
  sending: number;
}

// how long the first claim or record of a batch waits for the attempts expected to join it
const GROUP_WAIT_MS = 2;

const batchesOf = new WeakMap<Database, Batches>();

/** The attempt batches of a database handle (one per process and database). */
export function attemptBatches(ctx: AppContext): Batches {
  const known = batchesOf.get(ctx.db);
  if (known) return known;
  const db = ctx.db;
  const leaseMs = leaseMsFor(ctx);
  const later = new Set<Promise<void>>();
  const writes = new GroupCommit<AttemptOp, Claim | null>(
    async (ops) => {
      const recs: AttemptRecord[] = [];
      const ids: string[] = [];
      const releases: LeaseRelease[] = [];
      for (const op of ops) {
        if ('claim' in op) ids.push(op.claim);
        else if ('record' in op) recs.push(op.record);
        else releases.push(op.release);
      }
      const claims = await writeAttempts(db, recs, ids, leaseMs, releases);
      let next = 0;
      return ops.map((op) => ('claim' in op ? claims[next++]! : null));
    },
    // a batch waits only while this process is busy sending: then other attempts are about to finish or start
    { maxWaitMs: GROUP_WAIT_MS, expectMore: () => b.sending > 0 },
  );
  const b: Batches = {
    sending: 0,
    claim: async (id) => (await writes.submit({ claim: id }))!,
    record: async (rec) => {
      await writes.submit({ record: rec });
    },
    release: async (id, leaseToken) => {
      await writes.submit({ release: { id, leaseToken } });
    },
    recordLater: (rec) => {
      const p: Promise<void> = writes
        .submit({ record: rec })
        .then(() => undefined)
        .catch(() => releaseLease(db, rec.id, rec.leaseToken).catch(() => undefined))
        .finally(() => later.delete(p));
      later.add(p);
    },
    settled: async () => {
      await Promise.allSettled([...later]);
    },
  };
  batchesOf.set(db, b);
  return b;
}
