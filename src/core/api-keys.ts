import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Database, Queryable } from '../db/database.ts';
import { appendAudit, type Actor } from './audit-log.ts';
import { AppError } from './errors.ts';

export const apiScopes = ['requests:read', 'requests:write', 'changes:write', 'admin'] as const;
export type ApiScope = (typeof apiScopes)[number];

export interface ApiKeyPrincipal {
  id: string;
  name: string;
  scopes: ApiScope[];
  identityId: string | null;
  /** the bound identity's display name: what people read as who acted */
  identityLabel?: string | null;
}

const hash = (key: string) => createHash('sha256').update(key).digest('hex');

/** Creates a key; the plain key is returned once and only its SHA-256 is stored. */
export async function createApiKey(
  db: Queryable,
  name: string,
  scopes: string[],
  identityId: string | null = null,
): Promise<{ id: string; key: string }> {
  if (!name.trim()) throw new AppError('validation_failed', 'An API key needs a name (--name).', { field: 'name' });
  const bad = scopes.filter((s) => !(apiScopes as readonly string[]).includes(s));
  if (bad.length || scopes.length === 0) {
    throw new AppError(
      'validation_failed',
      `Scopes must be one or more of ${apiScopes.join(', ')}${bad.length ? `; unknown: ${bad.join(', ')}` : ''}.`,
      { field: 'scopes' },
    );
  }
  const secret = randomBytes(24).toString('base64url');
  const prefix = `sk_${randomBytes(4).toString('hex')}`;
  const key = `${prefix}_${secret}`;
  const row = await db.one<{ id: string }>(
    'INSERT INTO api_keys (name, prefix, key_hash, scopes, identity_id) VALUES ($1,$2,$3,$4,$5) RETURNING id',
    [name.trim(), prefix, hash(key), [...new Set(scopes)], identityId],
  );
  return { id: row.id, key };
}

/** Creates a key and records who created it, with its name, scopes and identity (never the key), in the audit log. */
export async function issueApiKey(
  db: Database,
  actor: Actor,
  at: Date,
  input: { name: string; scopes: string[]; identityId: string | null },
): Promise<{ id: string; key: string }> {
  return db.tx(async (tx) => {
    const created = await createApiKey(tx, input.name, input.scopes, input.identityId);
    await appendAudit(tx, {
      actor,
      action: 'apikey.created',
      subjectType: 'api_key',
      subjectId: created.id,
      at,
      details: { name: input.name.trim(), scopes: [...new Set(input.scopes)], identityId: input.identityId },
    });
    return created;
  });
}

export interface ApiKeyListing {
  id: string;
  name: string;
  prefix: string;
  scopes: string[];
  identity: string | null;
  created_at: Date;
  last_used_at: Date | null;
  revoked_at: Date | null;
}

/** Every key with what it may do and when it was last used; never the key or its hash. */
export function listApiKeys(db: Queryable, includeRevoked = false): Promise<ApiKeyListing[]> {
  return db.query<ApiKeyListing>(
    `SELECT k.id, k.name, k.prefix, k.scopes, i.username AS identity, k.created_at, k.last_used_at, k.revoked_at
       FROM api_keys k LEFT JOIN identities i ON i.id = k.identity_id
      ${includeRevoked ? '' : 'WHERE k.revoked_at IS NULL'} ORDER BY k.created_at`,
  );
}

/** How many keys not revoked carry this name (names need not be unique; ids tell keys apart). */
export async function activeKeysNamed(db: Queryable, name: string): Promise<number> {
  return Number((await db.one<{ n: string }>('SELECT count(*) AS n FROM api_keys WHERE name = $1 AND revoked_at IS NULL', [name])).n);
}

/**
 * Revokes by id, by key prefix (sk_xxxxxxxx, printed with the key), or by name when exactly one active key has
 * it; the key stops working at once. Audited.
 */
export async function revokeApiKey(db: Database, actor: Actor, at: Date, ref: string): Promise<ApiKeyListing> {
  return db.tx(async (tx) => {
    const matches = await tx.query<{ id: string }>(
      `SELECT id FROM api_keys WHERE revoked_at IS NULL AND (id::text = $1 OR prefix = $1 OR name = $1) FOR UPDATE`,
      [ref.trim()],
    );
    if (matches.length === 0) throw new AppError('not_found', `No active API key "${ref}" (give its id, its sk_… prefix or its name).`);
    if (matches.length > 1)
      throw new AppError(
        'conflict',
        `${matches.length} active keys are named "${ref}"; give the id or sk_… prefix from \`signoff apikey list\`.`,
      );
    const id = matches[0]!.id;
    const key = await tx.one<ApiKeyListing>(
      `UPDATE api_keys k SET revoked_at = $2 WHERE id = $1
       RETURNING k.id, k.name, k.prefix, k.scopes, (SELECT username FROM identities WHERE id = k.identity_id) AS identity, k.created_at, k.last_used_at, k.revoked_at`,
      [id, at],
    );
    await appendAudit(tx, {
      actor,
      action: 'apikey.revoked',
      subjectType: 'api_key',
      subjectId: id,
      at,
      details: { name: key.name, scopes: key.scopes },
    });
    return key;
  });
}

/** Resolves a presented key; unknown or revoked keys are one and the same 401. */
export function verifyApiKey(db: Queryable, presented: string): Promise<ApiKeyPrincipal> {
  return verifyApiKeyDigest(db, apiKeyDigest(presented));
}

/** What is stored of a presented key: its SHA-256, in hex. */
export const apiKeyDigest = hash;

/** verifyApiKey for a key already digested (apiKeyDigest). */
export async function verifyApiKeyDigest(db: Queryable, digest: string): Promise<ApiKeyPrincipal> {
  const row = await db.maybeOne<{
    id: string;
    name: string;
    scopes: ApiScope[];
    identity_id: string | null;
    identity_label: string | null;
    key_hash: string;
    revoked_at: Date | null;
    stale_use: boolean;
  }>(
    `SELECT k.id, k.name, k.scopes, k.identity_id, i.display_name AS identity_label, k.key_hash, k.revoked_at,
            (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute') AS stale_use
       FROM api_keys k LEFT JOIN identities i ON i.id = k.identity_id WHERE k.key_hash = $1`,
    [digest],
  );
  if (!row || row.revoked_at || !timingSafeEqual(Buffer.from(row.key_hash), Buffer.from(digest))) {
    throw new AppError('unauthenticated', 'The API key is not valid; create one with `npx signoff apikey create`.');
  }
  // last use to the minute: a busy key does not pay a write (and its commit) on every call
  if (row.stale_use) stampApiKeyUse(db, row.id);
  return { id: row.id, name: row.name, scopes: row.scopes, identityId: row.identity_id, identityLabel: row.identity_label };
}

/** Stamps a key's last use; not awaited by the call it serves, and a failure only leaves the stamp older. */
export function stampApiKeyUse(db: Queryable, id: string): void {
  void db.query('UPDATE api_keys SET last_used_at = now() WHERE id = $1', [id]).catch(() => undefined);
}

export function requireScope(p: ApiKeyPrincipal, scope: ApiScope): void {
  if (!p.scopes.includes(scope) && !p.scopes.includes('admin')) {
    throw new AppError('forbidden', `This API key lacks the "${scope}" scope.`, { requiredScope: scope });
  }
}

/** Resolves presented keys for the REST API; a process may keep what it resolved (see api-key-cache.ts). */
export interface ApiKeyVerifier {
  verify(presented: string): Promise<ApiKeyPrincipal>;
  /** forgets every key this process keeps: a key was revoked here, so the next call must read it again */
  forgetAll(): void;
}
