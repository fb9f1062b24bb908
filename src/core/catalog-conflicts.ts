import { AppError } from './errors.ts';

// columns and tables in the catalog's words, for conflicts the checks could not see coming (a race, an API key)
const UNIQUE_FIELDS: Record<string, string> = {
  slack_user_id: 'slack',
  teams_aad_id: 'teams',
  username: 'username',
  name: 'name',
  client_guid: 'clientGuid',
  email: 'email',
};
const REFERRING_TABLES: Record<string, string> = { api_keys: 'an API key bound to it (revoke the key first)' };

/** A unique or foreign-key violation that slipped past the catalog's checks (a race, an API key), as a clear 409. */
export function catalogConflict(e: unknown): AppError | undefined {
  const err = e as { code?: string; detail?: string; driverError?: { code?: string; detail?: string } };
  const code = err.code ?? err.driverError?.code;
  const detail = err.detail ?? err.driverError?.detail;
  if (code === '23505') {
    // "Key (slack_user_id)=(U0ADA) already exists.": name the field as the catalog spells it, and the value
    const m = /^Key \((?:lower\()?([a-z_]+)\)?\)=\((.*)\) already exists/.exec(detail ?? '');
    const field = m ? (UNIQUE_FIELDS[m[1]!] ?? m[1]!) : undefined;
    if (m && field) return new AppError('conflict', `Another record already has ${field} "${m[2]}".`, { field });
    return new AppError('conflict', `That would duplicate an existing object${detail ? ` (${detail})` : ''}.`);
  }
  if (code === '23503') {
    const table = /referenced from table "([a-z_]+)"/.exec(detail ?? '')?.[1];
    const by = table ? (REFERRING_TABLES[table] ?? table.replace(/_/g, ' ')) : 'other records';
    return new AppError('conflict', `That object is still referenced by ${by}.`);
  }
  return undefined;
}
