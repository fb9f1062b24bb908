import type { Queryable } from '../../db/database.ts';

// web_sessions rows, keyed by the SHA-256 of the cookie's token (sessions.ts holds the rules).

export interface SessionRow<P = unknown> {
  token_hash: string;
  identity_id: string | null;
  csrf_token: string;
  pending: P | null;
  last_seen_at: Date;
  expires_at: Date;
  is_admin: boolean | null;
}

/** A session that has not expired, with whether its identity is an admin. */
export function liveSession<P>(db: Queryable, tokenHash: string): Promise<SessionRow<P> | undefined> {
  return db.maybeOne<SessionRow<P>>(
    `SELECT s.*, i.is_admin FROM web_sessions s LEFT JOIN identities i ON i.id = s.identity_id WHERE s.token_hash = $1 AND s.expires_at > now()`,
    [tokenHash],
  );
}

export async function touchSession(db: Queryable, tokenHash: string): Promise<void> {
  await db.query('UPDATE web_sessions SET last_seen_at = now() WHERE token_hash = $1', [tokenHash]);
}

export async function insertSession(
  db: Queryable,
  s: { tokenHash: string; identityId: string | null; csrf: string; pending: unknown; via: 'oidc' | 'link' | null; expires: Date },
): Promise<void> {
  await db.query(
    'INSERT INTO web_sessions (token_hash, identity_id, csrf_token, pending, signed_in_via, expires_at) VALUES ($1,$2,$3,$4,$5,$6)',
    [s.tokenHash, s.identityId, s.csrf, s.pending ? JSON.stringify(s.pending) : null, s.via, s.expires],
  );
}

/** Deletes up to 50 expired sessions. */
export async function deleteExpiredSessions(db: Queryable): Promise<void> {
  await db.query(`DELETE FROM web_sessions WHERE token_hash IN (SELECT token_hash FROM web_sessions WHERE expires_at < now() LIMIT 50)`);
}

export async function deleteSession(db: Queryable, tokenHash: string): Promise<void> {
  await db.query('DELETE FROM web_sessions WHERE token_hash = $1', [tokenHash]);
}

export async function identityIsAdmin(db: Queryable, identityId: string): Promise<boolean> {
  const row = await db.maybeOne<{ is_admin: boolean }>('SELECT is_admin FROM identities WHERE id = $1', [identityId]);
  return Boolean(row?.is_admin);
}
