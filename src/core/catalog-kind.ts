import type { Queryable, Tx } from '../db/database.ts';
import { AppError } from './errors.ts';
import type { CatalogKind } from './catalog-schemas.ts';

/**
 * What the generic upsert/delete/apply machinery needs to know about one kind of catalog object.
 * `D` is the desired state in a form that can be built both from input and from the database, so
 * "unchanged" is a plain comparison and applying the same file twice writes nothing.
 */
export interface KindOps<I, R extends BaseRow, D> {
  kind: CatalogKind;
  /** audit subject type */
  subjectType: string;
  /** human noun for messages: "identity", "approver group" */
  noun: string;
  keyOf(input: I): string;
  keyOfRow(row: R): string;
  /** normalises a natural key the way its unique index does (lower/upper case) */
  normKey(key: string): string;
  /** by row id (a uuid) or by natural key */
  find(q: Queryable, ref: string, lock?: boolean): Promise<R | undefined>;
  list(q: Queryable): Promise<R[]>;
  /** resolves references; throws validation_failed naming the missing ones */
  desired(tx: Tx, input: I, existing: R | undefined): Promise<D>;
  current(q: Queryable, row: R): Promise<D>;
  insert(tx: Tx, d: D, now: Date): Promise<R>;
  update(tx: Tx, row: R, d: D, now: Date): Promise<void>;
  /** what still refers to the row, in words; non-empty means it cannot be deleted */
  blockers(tx: Tx, row: R): Promise<string[]>;
  /** what refers to the row by its name, in words; non-empty means it cannot be renamed (the name would dangle) */
  renameBlockers?(tx: Tx, row: R): Promise<string[]>;
  remove(tx: Tx, row: R): Promise<void>;
  /** the public (and audited) shape of a desired state: no internal ids, no secrets */
  present(d: D): Record<string, unknown>;
  /** rows that `apply --prune` may remove (inline policies belong to their application) */
  prunable?(row: R): boolean;
  /** what the view shows beside the desired state but is not part of it (never compared, never audited) */
  observed?(q: Queryable, row: R): Promise<Record<string, unknown>>;
}

export interface BaseRow {
  id: string;
  created_at: Date;
  updated_at: Date;
}

export const isUuid = (s: string) => /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(s);

/** Looks a row up by uuid first, then by its natural key. */
export async function findByIdOrKey<R>(q: Queryable, table: string, keySql: string, ref: string, lock: boolean): Promise<R | undefined> {
  const suffix = lock ? ' FOR UPDATE' : '';
  if (isUuid(ref)) {
    const byId = await q.maybeOne<R>(`SELECT * FROM ${table} WHERE id = $1${suffix}`, [ref]);
    if (byId) return byId;
  }
  return q.maybeOne<R>(`SELECT * FROM ${table} WHERE ${keySql}${suffix}`, [ref]);
}

export function referenceError(field: string, message: string): AppError {
  return new AppError('validation_failed', `${field}: ${message}`, { errors: [{ field, message }] });
}

/** Identities by username (case-insensitive), in input order; throws naming every unknown one. */
export async function resolveIdentities(q: Queryable, usernames: string[], field: string): Promise<{ id: string; username: string }[]> {
  if (usernames.length === 0) return [];
  const rows = await q.query<{ id: string; username: string }>('SELECT id, username FROM identities WHERE lower(username) = ANY($1)', [
    usernames.map((u) => u.toLowerCase()),
  ]);
  const byLower = new Map(rows.map((r) => [r.username.toLowerCase(), r]));
  const missing = usernames.filter((u) => !byLower.has(u.toLowerCase()));
  if (missing.length) {
    throw referenceError(
      field,
      `no identity ${missing.map((m) => `"${m}"`).join(', ')} exists; add ${missing.length > 1 ? 'them' : 'it'} under identities first`,
    );
  }
  return usernames.map((u) => byLower.get(u.toLowerCase())!);
}

/** Throws naming every approver group that does not exist. */
export async function requireGroups(q: Queryable, names: string[], field: string): Promise<void> {
  if (names.length === 0) return;
  const rows = await q.query<{ name: string }>('SELECT name FROM approver_groups WHERE name = ANY($1)', [names]);
  const known = new Set(rows.map((r) => r.name));
  const missing = [...new Set(names.filter((n) => !known.has(n)))];
  if (missing.length) {
    throw referenceError(
      field,
      `no approver group ${missing.map((m) => `"${m}"`).join(', ')} exists; add ${missing.length > 1 ? 'them' : 'it'} under approverGroups first`,
    );
  }
}

export const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
