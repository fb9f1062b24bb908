import type { Database, Tx } from './database.ts';

// Webhook attempt totals for the metrics: attempts are folded into per-outcome counts once settled, so a scrape
// reads only recent rows and the counters keep counting attempts whose rows are later deleted.

/** Upper bounds of the delivery latency histogram, in seconds. */
export const DELIVERY_LATENCY_BUCKETS = [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * The outcome of one recorded attempt, with the labels the delivery processor's verdicts use: 2xx succeeded,
 * 410 gone, 408/429/5xx and network errors retry, other statuses failed, refused at send time refused.
 */
const ATTEMPT_OUTCOME_SQL = `CASE
    WHEN status_code BETWEEN 200 AND 299 THEN 'succeeded'
    WHEN status_code = 410 THEN 'gone'
    WHEN status_code IN (408, 429) OR status_code >= 500 THEN 'retry'
    WHEN status_code IS NOT NULL THEN 'failed'
    WHEN error LIKE 'refused at send time:%' THEN 'refused'
    ELSE 'retry' END`;

export interface AttemptRow {
  outcome: string;
  n: number;
  sum_ms: number;
  buckets: number[];
}

/**
 * How long after an attempt's created_at it may still be uncommitted (the insert and its commit are a few
 * statements apart; a wide margin costs only a slightly larger live scan).
 */
const SETTLE = '5 minutes';
/** fold at most this often, so scrapes mostly just read */
const FOLD_EVERY = '1 minute';

const bucketSql = DELIVERY_LATENCY_BUCKETS.map((b) => `count(*) FILTER (WHERE latency_ms <= ${b * 1000})`).join(', ');
export const aggregateAttemptsSql = (where: string) => `
  SELECT outcome, count(*)::bigint AS n, coalesce(sum(latency_ms), 0)::bigint AS sum_ms, ARRAY[${bucketSql}]::bigint[] AS buckets
    FROM (SELECT latency_ms, ${ATTEMPT_OUTCOME_SQL} AS outcome FROM webhook_attempts WHERE ${where}) a
   GROUP BY outcome`;

const MERGE_TOTALS = `ON CONFLICT (outcome) DO UPDATE SET n = t.n + EXCLUDED.n, sum_ms = t.sum_ms + EXCLUDED.sum_ms,
  buckets = ARRAY(SELECT coalesce(a, 0) + coalesce(b, 0) FROM unnest(t.buckets, EXCLUDED.buckets) WITH ORDINALITY AS u(a, b, i) ORDER BY i)`;

/**
 * Moves settled attempts into webhook_attempt_totals, so later scrapes need not read them again. One scraper
 * folds at a time (SKIP LOCKED: the others just read); totals and the watermark change in one transaction.
 */
export async function foldSettledAttempts(db: Database): Promise<void> {
  await db.tx(async (tx) => {
    const due = await tx.maybeOne<{ from_at: Date; to_at: Date }>(
      `SELECT folded_through AS from_at, now() - interval '${SETTLE}' AS to_at FROM webhook_attempt_rollup
        WHERE folded_through < now() - interval '${SETTLE}' - interval '${FOLD_EVERY}' FOR UPDATE SKIP LOCKED`,
    );
    if (!due) return;
    await tx.query(
      `INSERT INTO webhook_attempt_totals AS t (outcome, n, sum_ms, buckets)
       ${aggregateAttemptsSql('created_at > $1 AND created_at <= $2')}
       ${MERGE_TOTALS}`,
      [due.from_at, due.to_at],
    );
    await tx.query(`UPDATE webhook_attempt_rollup SET folded_through = $1`, [due.to_at]);
  });
}

/**
 * Before an endpoint's deliveries are deleted with it: counts its attempts not folded yet into the totals, in
 * the caller's transaction. The watermark row is locked first, so a fold running meanwhile cannot count them too.
 */
export async function foldAttemptsOfEndpoint(tx: Tx, endpointId: string): Promise<void> {
  await tx.query('SELECT 1 FROM webhook_attempt_rollup FOR UPDATE');
  await tx.query(
    `INSERT INTO webhook_attempt_totals AS t (outcome, n, sum_ms, buckets)
     ${aggregateAttemptsSql('created_at > (SELECT folded_through FROM webhook_attempt_rollup) AND delivery_id IN (SELECT id FROM webhook_deliveries WHERE endpoint_id = $1)')}
     ${MERGE_TOTALS}`,
    [endpointId],
  );
}
