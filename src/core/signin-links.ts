import { createHash, randomBytes } from 'node:crypto';
import type { Database, Queryable } from '../db/database.ts';
import { appendAudit, type Actor } from './audit-log.ts';
import { readableUtc } from './clock.ts';
import { identityById, type IdentityRow } from './directory.ts';
import { AppError } from './errors.ts';

/**
 * One-time sign-in links for the web app (`signoff signin-link --user U`), for a first run without an identity
 * provider. Only the SHA-256 of the token is stored; a link works once and for a short time.
 */

const hash = (token: string) => createHash('sha256').update(token).digest('hex');

export async function createSigninLink(
  db: Database,
  actor: Actor,
  identity: IdentityRow,
  now: Date,
  ttlMs: number,
): Promise<{ token: string; expiresAt: Date }> {
  const token = randomBytes(32).toString('base64url');
  const expiresAt = new Date(now.getTime() + ttlMs);
  await db.tx(async (tx) => {
    const row = await tx.one<{ id: string }>(
      'INSERT INTO web_signin_links (token_hash, identity_id, created_at, expires_at) VALUES ($1,$2,$3,$4) RETURNING id',
      [hash(token), identity.id, now, expiresAt],
    );
    await appendAudit(tx, {
      actor,
      action: 'signin_link.created',
      subjectType: 'identity',
      subjectId: identity.id,
      details: { linkId: row.id, expiresAt: expiresAt.toISOString() },
      at: now,
    });
  });
  return { token, expiresAt };
}

/** Who a link would sign in, without using it (the confirmation page). */
export async function peekSigninLink(db: Queryable, token: string, now: Date): Promise<IdentityRow> {
  const row = await db.maybeOne<{ identity_id: string; expires_at: Date; used_at: Date | null }>(
    'SELECT identity_id, expires_at, used_at FROM web_signin_links WHERE token_hash = $1',
    [hash(token)],
  );
  if (!row) throw new AppError('not_found', 'This sign-in link is not valid.');
  if (row.used_at)
    throw new AppError('already_decided', `This sign-in link was already used at ${readableUtc(row.used_at)}; ask for a new one.`);
  if (new Date(row.expires_at) <= now) throw new AppError('invalid_transition', 'This sign-in link has expired; ask for a new one.');
  const who = await identityById(db, row.identity_id);
  if (!who) throw new AppError('not_found', 'The person this link was for no longer exists.');
  return who;
}

/** Spends the link (once: the UPDATE settles concurrent uses) and returns who it signs in. */
export async function useSigninLink(db: Database, token: string, now: Date): Promise<IdentityRow> {
  const row = await db.maybeOne<{ id: string; identity_id: string }>(
    'UPDATE web_signin_links SET used_at = $2 WHERE token_hash = $1 AND used_at IS NULL AND expires_at > $2 RETURNING id, identity_id',
    [hash(token), now],
  );
  if (!row) {
    await peekSigninLink(db, token, now);
    throw new AppError('already_decided', 'This sign-in link was already used; ask for a new one.');
  }
  const who = await identityById(db, row.identity_id);
  if (!who) throw new AppError('not_found', 'The person this link was for no longer exists.');
  return who;
}
