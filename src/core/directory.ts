import type { Queryable } from '../db/database.ts';
import type { Actor } from './audit-log.ts';
import type { DeviceManagerConfig } from './device-manager.ts';
import { AppError } from './errors.ts';
import { mayRequest } from './policy-evaluation.ts';
import { policyDefinitionSchema, type InstallWindow, type PolicyDefinition } from './policy-schema.ts';

/** Read-side lookups of identities, devices, groups and applications shared by every service and adapter. */
export interface IdentityRow {
  id: string;
  username: string;
  display_name: string;
  email: string | null;
  is_guest: boolean;
  slack_user_id: string | null;
  teams_aad_id: string | null;
}

export interface DeviceRow {
  id: string;
  client_guid: string;
  name: string;
  primary_user_id: string | null;
}

export interface ApplicationRow {
  id: string;
  name: string;
  description: string | null;
  version: string | null;
  visibility: 'visible' | 'hidden-until-approved';
  per_device: boolean;
  install_window: InstallWindow | null;
  policy_id: string | null;
  policy_definition: unknown | null;
}

export interface GroupRow {
  id: string;
  name: string;
  slack_channel: string | null;
  teams_channel: string | null;
  emails: string[];
}

const identityCols = 'id, username, display_name, email, is_guest, slack_user_id, teams_aad_id';

export const identityById = (db: Queryable, id: string) =>
  db.maybeOne<IdentityRow>(`SELECT ${identityCols} FROM identities WHERE id = $1`, [id]);

export const identityByUsername = (db: Queryable, username: string) =>
  db.maybeOne<IdentityRow>(`SELECT ${identityCols} FROM identities WHERE lower(username) = lower($1)`, [username]);

export const identityBySlackId = (db: Queryable, slackUserId: string) =>
  db.maybeOne<IdentityRow>(`SELECT ${identityCols} FROM identities WHERE slack_user_id = $1`, [slackUserId]);

export const identityByTeamsId = (db: Queryable, aadObjectId: string) =>
  db.maybeOne<IdentityRow>(`SELECT ${identityCols} FROM identities WHERE lower(teams_aad_id) = lower($1)`, [aadObjectId]);

/**
 * The identity an OpenID Connect token signs in as, through the explicit links only: the Entra object id (`oid`)
 * matches an identity's `oid` (or its `teams` link, which is the same Entra object id), else the UPN
 * (`preferred_username`/`upn`) matches an identity's `upn`. Never a display name or an email.
 */
export async function identityByOidcClaims(db: Queryable, claims: { oid?: string; upn?: string }): Promise<IdentityRow | undefined> {
  if (claims.oid) {
    const byOid = await db.maybeOne<IdentityRow>(
      `SELECT ${identityCols} FROM identities WHERE lower(oidc_oid) = lower($1) OR (oidc_oid IS NULL AND lower(teams_aad_id) = lower($1))
        ORDER BY (oidc_oid IS NOT NULL) DESC LIMIT 1`,
      [claims.oid],
    );
    if (byOid) return byOid;
  }
  if (claims.upn) return db.maybeOne<IdentityRow>(`SELECT ${identityCols} FROM identities WHERE lower(upn) = lower($1)`, [claims.upn]);
  return undefined;
}

export async function isAdminIdentity(db: Queryable, id: string): Promise<boolean> {
  return Boolean((await db.maybeOne<{ is_admin: boolean }>('SELECT is_admin FROM identities WHERE id = $1', [id]))?.is_admin);
}

export async function requireIdentity(db: Queryable, ref: { id?: string; username?: string }, field = 'username'): Promise<IdentityRow> {
  const found = ref.id ? await identityById(db, ref.id) : ref.username ? await identityByUsername(db, ref.username) : undefined;
  if (!found) throw unknownIdentity(ref.username ?? ref.id, field);
  return found;
}

export const unknownIdentity = (ref: string | undefined, field = 'username') =>
  new AppError('not_found', `No identity "${ref}" is known; add it under identities first.`, { field });

export const unknownDevice = (ref: string | undefined) =>
  new AppError('not_found', `No device "${ref}" is known.`, { field: 'clientGuid' });

/**
 * Who an API caller acts as when it names someone (`approver`, `reviewer`, `requestedBy`): that person, with
 * their rights. A key bound to one identity acts as that identity only, so naming another cannot get around
 * self-approval or multi-admin approval.
 */
export async function actingFor(db: Queryable, actor: Actor, username: string | undefined, field: string): Promise<Actor> {
  if (!username) return actor;
  const who = await requireIdentity(db, { username }, field);
  if (actor.id) {
    if (actor.id !== who.id)
      throw new AppError('forbidden', `This API key is bound to one person and acts only as them; it cannot act for ${who.username}.`, {
        field,
      });
    return actor; // named themselves: still recorded with the key
  }
  return { id: who.id, label: who.display_name, channel: actor.channel };
}

export const deviceByGuid = (db: Queryable, clientGuid: string) =>
  db.maybeOne<DeviceRow>('SELECT id, client_guid, name, primary_user_id FROM devices WHERE upper(client_guid) = upper($1)', [clientGuid]);

export const deviceById = (db: Queryable, id: string) =>
  db.maybeOne<DeviceRow>('SELECT id, client_guid, name, primary_user_id FROM devices WHERE id = $1', [id]);

export const devicesOfUser = (db: Queryable, identityId: string) =>
  db.query<DeviceRow>('SELECT id, client_guid, name, primary_user_id FROM devices WHERE primary_user_id = $1 ORDER BY name', [identityId]);

export async function groupNamesOf(db: Queryable, identityId: string): Promise<string[]> {
  const rows = await db.query<{ name: string }>(
    `SELECT g.name FROM approver_groups g JOIN approver_group_members m ON m.group_id = g.id WHERE m.identity_id = $1 ORDER BY g.name`,
    [identityId],
  );
  return rows.map((r) => r.name);
}

export const groupsByNames = (db: Queryable, names: string[]) =>
  db.query<GroupRow>('SELECT id, name, slack_channel, teams_channel, emails FROM approver_groups WHERE name = ANY($1) ORDER BY name', [
    names,
  ]);

/** Members of any of the named groups, each once. */
export const membersOfGroups = (db: Queryable, names: string[]) =>
  db.query<IdentityRow>(
    `SELECT DISTINCT ${identityCols
      .split(', ')
      .map((c) => `i.${c}`)
      .join(', ')}
       FROM identities i JOIN approver_group_members m ON m.identity_id = i.id JOIN approver_groups g ON g.id = m.group_id
      WHERE g.name = ANY($1) ORDER BY i.username`,
    [names],
  );

const appCols = `a.id, a.name, a.description, a.version, a.visibility, a.per_device, a.install_window, a.policy_id, p.definition AS policy_definition`;

export const applicationById = (db: Queryable, id: string) =>
  db.maybeOne<ApplicationRow>(`SELECT ${appCols} FROM applications a LEFT JOIN policies p ON p.id = a.policy_id WHERE a.id = $1`, [id]);

/** Accepts the model id or, for people typing in chat, the application's name. */
export const applicationByIdOrName = (db: Queryable, idOrName: string) =>
  db.maybeOne<ApplicationRow>(
    `SELECT ${appCols} FROM applications a LEFT JOIN policies p ON p.id = a.policy_id WHERE a.id = $1 OR lower(a.name) = lower($1) LIMIT 1`,
    [idOrName],
  );

/** An application's connector settings, for checking them against Intune or Configuration Manager. */
export const applicationConnector = (db: Queryable, id: string) =>
  db.maybeOne<{ id: string; name: string; per_device: boolean; device_manager: DeviceManagerConfig | null }>(
    'SELECT id, name, per_device, device_manager FROM applications WHERE id = $1',
    [id],
  );

export const listApplications = (db: Queryable) =>
  db.query<ApplicationRow>(`SELECT ${appCols} FROM applications a LEFT JOIN policies p ON p.id = a.policy_id ORDER BY a.name`);

export const unknownApplication = (id: string) =>
  new AppError('not_found', `No application with id "${id}" is in the catalog.`, { field: 'applicationId' });

export async function requireApplication(db: Queryable, id: string): Promise<ApplicationRow> {
  const app = await applicationById(db, id);
  if (!app) throw unknownApplication(id);
  return app;
}

/** Whether the identity may see the application: `hidden-until-approved` ones only once it has an approved request. */
export async function maySee(db: Queryable, app: ApplicationRow, identityId: string): Promise<boolean> {
  if (app.visibility !== 'hidden-until-approved') return true;
  const approved = await db.maybeOne(
    `SELECT 1 FROM requests WHERE application_id = $1 AND requester_id = $2 AND status = 'approved' LIMIT 1`,
    [app.id, identityId],
  );
  return approved !== undefined;
}

/**
 * The application as the identity may request it. A hidden one it may not see is refused exactly as an unknown id
 * is, whatever the channel, so asking cannot tell that it exists.
 */
export async function requireVisibleApplication(db: Queryable, id: string, identityId: string): Promise<ApplicationRow> {
  const app = await requireApplication(db, id);
  if (!(await maySee(db, app, identityId))) throw unknownApplication(id);
  return app;
}

/** The policy an application is requested under; an application without one cannot be requested. */
export function policyOf(app: ApplicationRow): PolicyDefinition {
  if (!app.policy_definition) {
    throw new AppError('not_requestable', `"${app.name}" has no approval policy yet, so it cannot be requested.`);
  }
  return policyDefinitionSchema.parse(app.policy_definition);
}

/**
 * Applications the identity may see in a catalog: `hidden-until-approved` ones appear only once the
 * identity has an approved request for them.
 */
export async function visibleApplications(db: Queryable, identityId: string): Promise<ApplicationRow[]> {
  return db.query<ApplicationRow>(
    `SELECT ${appCols} FROM applications a LEFT JOIN policies p ON p.id = a.policy_id
      WHERE a.policy_id IS NOT NULL AND (a.visibility = 'visible' OR EXISTS (
        SELECT 1 FROM requests r WHERE r.application_id = a.id AND r.requester_id = $1 AND r.status = 'approved'))
      ORDER BY a.name`,
    [identityId],
  );
}

const asJson = (select: string) => `(SELECT to_jsonb(x) FROM (${select}) x)`;

/** The select list of `lookupTogether` for ids given as SQL expressions, to read them within another statement. */
export const togetherColumns = (appId: string, identityId: string, deviceId: string) =>
  `${asJson(`SELECT ${appCols} FROM applications a LEFT JOIN policies p ON p.id = a.policy_id WHERE a.id = ${appId}`)} AS app,
   ${asJson(`SELECT ${identityCols} FROM identities WHERE id = ${identityId}`)} AS identity,
   ${asJson(`SELECT id, client_guid, name, primary_user_id FROM devices WHERE id = ${deviceId}`)} AS device`;

export interface Together {
  app: ApplicationRow | null;
  identity: IdentityRow | null;
  device: DeviceRow | null;
}

/** An application, an identity and a device by id, in one round trip (null where absent or not asked for). */
export async function lookupTogether(
  db: Queryable,
  ids: { applicationId: string | null; identityId: string | null; deviceId: string | null },
): Promise<{
  app: ApplicationRow | null;
  identity: IdentityRow | null;
  device: DeviceRow | null;
}> {
  const row = await db.one<Together>(`SELECT ${togetherColumns('$1::text', '$2::uuid', '$3::uuid')}`, [
    ids.applicationId,
    ids.identityId,
    ids.deviceId,
  ]);
  return { app: row.app, identity: row.identity, device: row.device };
}

/**
 * What a submission reads before it writes, in one round trip: the application, the requester (by id or username)
 * with the names of their groups, and the device named by id or client GUID.
 */
export async function lookupForSubmit(
  db: Queryable,
  ref: { applicationId: string; identityId?: string; username?: string; deviceId?: string; clientGuid?: string },
): Promise<{
  app: ApplicationRow | null;
  identity: (IdentityRow & { group_names: string[] }) | null;
  device: DeviceRow | null;
}> {
  const row = await db.one<{
    app: ApplicationRow | null;
    identity: (IdentityRow & { group_names: string[] }) | null;
    device: DeviceRow | null;
  }>(
    `SELECT ${asJson(`SELECT ${appCols} FROM applications a LEFT JOIN policies p ON p.id = a.policy_id WHERE a.id = $1::text`)} AS app,
            ${asJson(`SELECT ${identityCols}, ARRAY(SELECT g.name FROM approver_groups g JOIN approver_group_members m ON m.group_id = g.id
                                                   WHERE m.identity_id = i.id ORDER BY g.name) AS group_names
                        FROM identities i WHERE ${ref.identityId ? 'id = $2::uuid' : 'lower(username) = lower($2::text)'}`)} AS identity,
            ${asJson(`SELECT id, client_guid, name, primary_user_id FROM devices
                       WHERE ${ref.deviceId ? 'id = $3::uuid' : 'upper(client_guid) = upper($3::text)'} LIMIT 1`)} AS device`,
    // the text names the column each reference is looked up by, so a prepared plan uses that column's index
    [ref.applicationId, ref.identityId ?? ref.username ?? null, ref.deviceId ?? ref.clientGuid ?? null],
  );
  return row;
}

/** The applications this person may request: visible (or already approved) and allowed by the policy's requestors. */
export async function requestableApplications(db: Queryable, who: IdentityRow): Promise<ApplicationRow[]> {
  const groups = await groupNamesOf(db, who.id);
  return (await visibleApplications(db, who.id)).filter((a) => {
    const parsed = policyDefinitionSchema.safeParse(a.policy_definition);
    return parsed.success && mayRequest(parsed.data, { username: who.username, isGuest: who.is_guest, groups });
  });
}
