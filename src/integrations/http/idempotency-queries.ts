import type { Queryable } from '../../db/database.ts';

// idempotency_keys rows: one per (API key, Idempotency-Key); the claim races in Postgres (idempotency.ts holds the rules).

export interface IdempotencyKeyRow {
  method: string;
  path: string;
  request_hash: string;
  status_code: number | null;
  response_headers: Record<string, string> | null;
  response_body: string | null;
  created_at: Date;
  completed_at: Date | null;
}

/** Every key older than the cutoff, whoever used it. */
export async function deleteKeysBefore(db: Queryable, cutoff: Date): Promise<void> {
  await db.query('DELETE FROM idempotency_keys WHERE created_at < $1', [cutoff]);
}

/** This caller's key, if it is older than the cutoff (expired: the key may be used afresh). */
export async function deleteExpiredKey(db: Queryable, apiKeyId: string, key: string, cutoff: Date): Promise<void> {
  await db.query('DELETE FROM idempotency_keys WHERE api_key_id = $1 AND key = $2 AND created_at < $3', [apiKeyId, key, cutoff]);
}

/** Claims the key for this request; false when another request holds it. */
export async function claimKey(
  db: Queryable,
  k: { apiKeyId: string; key: string; method: string; path: string; requestHash: string; at: Date },
): Promise<boolean> {
  const row = await db.maybeOne(
    `INSERT INTO idempotency_keys (api_key_id, key, method, path, request_hash, created_at) VALUES ($1,$2,$3,$4,$5,$6)
     ON CONFLICT (api_key_id, key) DO NOTHING RETURNING key`,
    [k.apiKeyId, k.key, k.method, k.path, k.requestHash, k.at],
  );
  return row !== undefined;
}

export function keyRow(db: Queryable, apiKeyId: string, key: string): Promise<IdempotencyKeyRow | undefined> {
  return db.maybeOne<IdempotencyKeyRow>('SELECT * FROM idempotency_keys WHERE api_key_id = $1 AND key = $2', [apiKeyId, key]);
}

/** Takes over an unanswered claim still stamped `claimedAt`; false when someone else took it over first. */
export async function reclaimKey(db: Queryable, apiKeyId: string, key: string, at: Date, claimedAt: Date): Promise<boolean> {
  const row = await db.maybeOne(
    `UPDATE idempotency_keys SET created_at = $3 WHERE api_key_id = $1 AND key = $2 AND completed_at IS NULL AND created_at = $4 RETURNING key`,
    [apiKeyId, key, at, claimedAt],
  );
  return row !== undefined;
}

/** Releases an unanswered claim (the request failed on our side). */
export async function releaseKey(db: Queryable, apiKeyId: string, key: string): Promise<void> {
  await db.query('DELETE FROM idempotency_keys WHERE api_key_id = $1 AND key = $2 AND completed_at IS NULL', [apiKeyId, key]);
}

/** Stores the response a retry with this key replays. */
export async function completeKey(
  db: Queryable,
  apiKeyId: string,
  key: string,
  r: { status: number; headers: Record<string, string>; body: string; at: Date },
): Promise<void> {
  await db.query(
    `UPDATE idempotency_keys SET status_code = $3, response_headers = $4, response_body = $5, completed_at = $6 WHERE api_key_id = $1 AND key = $2`,
    [apiKeyId, key, r.status, JSON.stringify(r.headers), r.body, r.at],
  );
}
