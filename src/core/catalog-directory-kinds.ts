import type { Queryable, Tx } from '../db/database.ts';
import { findByIdOrKey, plural, resolveIdentities, type BaseRow, type KindOps } from './catalog-kind.ts';
import type { ApproverGroupInput, DeviceInput, IdentityInput } from './catalog-schemas.ts';
import { policyNamesDeciderSql } from './policy-schema.ts';

/** Identities, devices and approver groups: the directory side of the catalog. */

interface IdentityDbRow extends BaseRow {
  username: string;
  display_name: string;
  email: string | null;
  is_guest: boolean;
  slack_user_id: string | null;
  teams_aad_id: string | null;
  oidc_oid: string | null;
  upn: string | null;
  is_admin: boolean;
}
interface IdentityState {
  username: string;
  displayName: string;
  email: string | null;
  guest: boolean;
  slack: string | null;
  teams: string | null;
  oid: string | null;
  upn: string | null;
  admin: boolean;
}

export const identityKind: KindOps<IdentityInput, IdentityDbRow, IdentityState> = {
  kind: 'identities',
  subjectType: 'identity',
  noun: 'identity',
  keyOf: (i) => i.username,
  keyOfRow: (r) => r.username,
  normKey: (k) => k.toLowerCase(),
  find: (q, ref, lock = false) => findByIdOrKey(q, 'identities', 'lower(username) = lower($1)', ref, lock),
  list: (q) => q.query('SELECT * FROM identities ORDER BY lower(username)'),
  desired: async (_tx, i) => ({
    username: i.username,
    displayName: i.displayName,
    email: i.email ?? null,
    guest: i.guest,
    slack: i.slack ?? null,
    teams: i.teams ?? null,
    oid: i.oid?.toLowerCase() ?? null,
    upn: i.upn ?? null,
    admin: i.admin ?? false,
  }),
  current: async (_q, r) => ({
    username: r.username,
    displayName: r.display_name,
    email: r.email,
    guest: r.is_guest,
    slack: r.slack_user_id,
    teams: r.teams_aad_id,
    oid: r.oidc_oid,
    upn: r.upn,
    admin: r.is_admin,
  }),
  insert: (tx, d, now) =>
    tx.one(
      `INSERT INTO identities (username, display_name, email, is_guest, slack_user_id, teams_aad_id, oidc_oid, upn, is_admin, created_at, updated_at)
       VALUES ($1,$2,$3,$4,$5,$6,$8,$9,$10,$7,$7) RETURNING *`,
      [d.username, d.displayName, d.email, d.guest, d.slack, d.teams, now, d.oid, d.upn, d.admin],
    ),
  update: async (tx, r, d, now) => {
    await tx.query(
      `UPDATE identities SET username=$2, display_name=$3, email=$4, is_guest=$5, slack_user_id=$6, teams_aad_id=$7, updated_at=$8,
              oidc_oid=$9, upn=$10, is_admin=$11 WHERE id=$1`,
      [r.id, d.username, d.displayName, d.email, d.guest, d.slack, d.teams, now, d.oid, d.upn, d.admin],
    );
  },
  blockers: async (tx, r) => {
    const out: string[] = [];
    const groups = await tx.query<{ name: string }>(
      'SELECT g.name FROM approver_groups g JOIN approver_group_members m ON m.group_id = g.id WHERE m.identity_id = $1 ORDER BY g.name',
      [r.id],
    );
    if (groups.length) out.push(`member of approver group ${groups.map((g) => `"${g.name}"`).join(', ')}`);
    const devices = await tx.query<{ name: string }>('SELECT name FROM devices WHERE primary_user_id = $1 ORDER BY name', [r.id]);
    if (devices.length) out.push(`primary user of device ${devices.map((d) => `"${d.name}"`).join(', ')}`);
    out.push(...(await policiesNamingRequestor(tx, r.username)));
    const { n } = await tx.one<{ n: number }>(
      `SELECT (SELECT count(*) FROM requests WHERE requester_id = $1 OR decided_by = $1)::int
            + (SELECT count(*) FROM request_decisions WHERE approver_id = $1)::int
            + (SELECT count(*) FROM changes WHERE requester_id = $1 OR decided_by = $1)::int AS n`,
      [r.id],
    );
    if (n > 0) out.push(`${plural(n, 'request, decision or change')} in the history`);
    return out;
  },
  renameBlockers: (tx, r) => policiesNamingRequestor(tx, r.username),
  remove: async (tx, r) => {
    await tx.query('DELETE FROM identities WHERE id = $1', [r.id]);
  },
  present: (d) => ({ ...d }),
};

interface DeviceDbRow extends BaseRow {
  client_guid: string;
  name: string;
  primary_user_id: string | null;
}
interface DeviceState {
  clientGuid: string;
  name: string;
  primaryUser: string | null;
  primaryUserId: string | null;
}

export const deviceKind: KindOps<DeviceInput, DeviceDbRow, DeviceState> = {
  kind: 'devices',
  subjectType: 'device',
  noun: 'device',
  keyOf: (i) => i.clientGuid,
  keyOfRow: (r) => r.client_guid,
  normKey: (k) => k.toUpperCase(),
  find: (q, ref, lock = false) => findByIdOrKey(q, 'devices', 'upper(client_guid) = upper($1)', ref, lock),
  list: (q) => q.query('SELECT * FROM devices ORDER BY name, client_guid'),
  desired: async (tx, i) => {
    const [user] = i.primaryUser ? await resolveIdentities(tx, [i.primaryUser], 'primaryUser') : [];
    return { clientGuid: i.clientGuid, name: i.name, primaryUser: user?.username ?? null, primaryUserId: user?.id ?? null };
  },
  current: async (q, r) => {
    const user = r.primary_user_id
      ? await q.maybeOne<{ username: string }>('SELECT username FROM identities WHERE id = $1', [r.primary_user_id])
      : undefined;
    return { clientGuid: r.client_guid, name: r.name, primaryUser: user?.username ?? null, primaryUserId: r.primary_user_id };
  },
  insert: (tx, d, now) =>
    tx.one('INSERT INTO devices (client_guid, name, primary_user_id, created_at, updated_at) VALUES ($1,$2,$3,$4,$4) RETURNING *', [
      d.clientGuid,
      d.name,
      d.primaryUserId,
      now,
    ]),
  update: async (tx, r, d, now) => {
    await tx.query('UPDATE devices SET client_guid=$2, name=$3, primary_user_id=$4, updated_at=$5 WHERE id=$1', [
      r.id,
      d.clientGuid,
      d.name,
      d.primaryUserId,
      now,
    ]);
  },
  blockers: async (tx, r) => {
    const { n } = await tx.one<{ n: number }>('SELECT count(*)::int AS n FROM requests WHERE device_id = $1', [r.id]);
    return n > 0 ? [`${plural(n, 'request')} for this device`] : [];
  },
  remove: async (tx, r) => {
    await tx.query('DELETE FROM devices WHERE id = $1', [r.id]);
  },
  present: ({ primaryUserId: _id, ...rest }) => rest,
};

interface GroupDbRow extends BaseRow {
  name: string;
  slack_channel: string | null;
  teams_channel: string | null;
  emails: string[];
}
interface GroupState {
  name: string;
  members: { id: string; username: string }[];
  slackChannel: string | null;
  teamsChannel: string | null;
  emails: string[];
}

const byUsername = (a: { username: string }, b: { username: string }) => {
  const x = a.username.toLowerCase();
  const y = b.username.toLowerCase();
  return x < y ? -1 : x > y ? 1 : 0;
};

export const approverGroupKind: KindOps<ApproverGroupInput, GroupDbRow, GroupState> = {
  kind: 'approverGroups',
  subjectType: 'approver_group',
  noun: 'approver group',
  keyOf: (i) => i.name,
  keyOfRow: (r) => r.name,
  normKey: (k) => k,
  find: (q, ref, lock = false) => findByIdOrKey(q, 'approver_groups', 'name = $1', ref, lock),
  list: (q) => q.query('SELECT * FROM approver_groups ORDER BY name'),
  desired: async (tx, i) => {
    const members = await resolveIdentities(tx, i.members, 'members');
    const unique = [...new Map(members.map((m) => [m.id, m])).values()].sort(byUsername);
    return { name: i.name, members: unique, slackChannel: i.slackChannel ?? null, teamsChannel: i.teamsChannel ?? null, emails: i.emails };
  },
  current: async (q, r) => {
    const members = await q.query<{ id: string; username: string }>(
      'SELECT i.id, i.username FROM identities i JOIN approver_group_members m ON m.identity_id = i.id WHERE m.group_id = $1',
      [r.id],
    );
    return {
      name: r.name,
      members: members.sort(byUsername),
      slackChannel: r.slack_channel,
      teamsChannel: r.teams_channel,
      emails: r.emails ?? [],
    };
  },
  insert: async (tx, d, now) => {
    const row = await tx.one<GroupDbRow>(
      'INSERT INTO approver_groups (name, slack_channel, teams_channel, emails, created_at, updated_at) VALUES ($1,$2,$3,$4,$5,$5) RETURNING *',
      [d.name, d.slackChannel, d.teamsChannel, JSON.stringify(d.emails), now],
    );
    await setMembers(tx, row.id, d.members);
    return row;
  },
  update: async (tx, r, d, now) => {
    await tx.query('UPDATE approver_groups SET name=$2, slack_channel=$3, teams_channel=$4, emails=$5, updated_at=$6 WHERE id=$1', [
      r.id,
      d.name,
      d.slackChannel,
      d.teamsChannel,
      JSON.stringify(d.emails),
      now,
    ]);
    await setMembers(tx, r.id, d.members);
  },
  blockers: async (tx, r) => {
    const out: string[] = [];
    const policies = await policiesNamingGroup(tx, r.name);
    if (policies.length) out.push(`used by ${policies.join(', ')}`);
    const cps = await tx.query<{ name: string }>('SELECT name FROM change_policies WHERE $1 = ANY(approvers) ORDER BY name', [r.name]);
    if (cps.length) out.push(`approver of change policy ${cps.map((c) => `"${c.name}"`).join(', ')}`);
    return out;
  },
  renameBlockers: async (tx, r) => {
    const out = await approverGroupKind.blockers(tx, r);
    // requests still open, and open reviews, keep the policy they were made under, with its group names
    const { n } = await tx.one<{ n: number }>(
      `SELECT (SELECT count(*) FROM requests WHERE status IN ('pending', 'approved') AND ${policyNamesDeciderSql('policy', '$1::text')})::int
            + (SELECT count(*) FROM access_reviews WHERE status = 'pending' AND $1 = ANY(reviewer_groups))::int AS n`,
      [r.name],
    );
    if (n > 0) out.push(`${plural(n, 'open request or review')} made under a policy naming it`);
    return out;
  },
  remove: async (tx, r) => {
    await tx.query('DELETE FROM approver_groups WHERE id = $1', [r.id]);
  },
  present: (d) => ({ ...d, members: d.members.map((m) => m.username) }),
};

async function setMembers(tx: Tx, groupId: string, members: { id: string }[]): Promise<void> {
  const ids = members.map((m) => m.id);
  await tx.query('DELETE FROM approver_group_members WHERE group_id = $1 AND NOT (identity_id = ANY($2::uuid[]))', [groupId, ids]);
  if (ids.length) {
    await tx.query('INSERT INTO approver_group_members (group_id, identity_id) SELECT $1, unnest($2::uuid[]) ON CONFLICT DO NOTHING', [
      groupId,
      ids,
    ]);
  }
}

/** Policies (and applications' inline policies) that name a group anywhere, described for an error message. */
export async function policiesNamingGroup(q: Queryable, group: string): Promise<string[]> {
  const rows = await q.query<{ name: string; app_name: string | null }>(
    `SELECT p.name, a.name AS app_name FROM policies p LEFT JOIN applications a ON a.policy_id = p.id AND p.name = 'app:' || a.id
      WHERE ${policyNamesDeciderSql('p.definition', '$1::text')}
         OR coalesce(p.definition #> '{requestors,groups}', '[]') ? $1::text
      ORDER BY p.name`,
    [group],
  );
  return rows.map((r) => (r.app_name ? `the policy of application "${r.app_name}"` : `policy "${r.name}"`));
}

/** Policies that name a person among those who may request, described for an error message (empty when none). */
async function policiesNamingRequestor(q: Queryable, username: string): Promise<string[]> {
  const policies = await q.query<{ name: string }>(
    `SELECT name FROM policies WHERE coalesce(definition #> '{requestors,identities}', '[]') @> jsonb_build_array($1::text) ORDER BY name`,
    [username],
  );
  return policies.length ? [`named as a requestor in policy ${policies.map((p) => `"${p.name}"`).join(', ')}`] : [];
}
