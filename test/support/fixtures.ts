import type { Database } from '../../src/db/database.ts';
import type { Actor } from '../../src/core/audit-log.ts';
import { policyDefinitionSchema, type PolicyInput } from '../../src/core/policy-schema.ts';

export const VISIO = 'ScopeId_2E4DAE44-C9A0-4694-8B7A-474424C080D4/Application_88808a3a-86e4-4820-be59-aa7d61cb8c33';
export const BOB_LAPTOP = 'GUID:5D3F1A2B-0000-4000-8000-000000000001';

export interface Seeded {
  ada: { id: string; username: string };
  bob: { id: string; username: string };
  cyd: { id: string; username: string };
  dan: { id: string; username: string };
  deviceId: string;
  actor(who: { id: string; username: string }, channel?: Actor['channel']): Actor;
}

/** Direct SQL seed in the shape of the spec's YAML example, plus two more approvers for quorum tests. */
export async function seedContoso(db: Database, policy: PolicyInput = defaultPolicy, installWindow: unknown = null): Promise<Seeded> {
  const ident = async (username: string, displayName: string, email: string, slack: string | null, teams: string | null) =>
    db.one<{ id: string; username: string }>(
      `INSERT INTO identities (username, display_name, email, slack_user_id, teams_aad_id) VALUES ($1,$2,$3,$4,$5) RETURNING id, username`,
      [username, displayName, email, slack, teams],
    );
  const ada = await ident('CONTOSO\\ada', 'Ada Admin', 'ada@contoso.com', 'U0ADA', '6f1c2a4e-0000-4000-8000-00000000ada0');
  const bob = await ident('CONTOSO\\bob', 'Bob User', 'bob@contoso.com', 'U0BOB', '6f1c2a4e-0000-4000-8000-00000000b0b0');
  const cyd = await ident('CONTOSO\\cyd', 'Cyd Approver', 'cyd@contoso.com', 'U0CYD', '6f1c2a4e-0000-4000-8000-00000000c0d0');
  const dan = await ident('CONTOSO\\dan', 'Dan Security', 'dan@contoso.com', 'U0DAN', null);
  const device = await db.one<{ id: string }>(
    `INSERT INTO devices (client_guid, name, primary_user_id) VALUES ($1,'BOB-LAPTOP',$2) RETURNING id`,
    [BOB_LAPTOP, bob.id],
  );
  const group = async (name: string, members: string[], slack: string, teams: string) => {
    const g = await db.one<{ id: string }>(
      `INSERT INTO approver_groups (name, slack_channel, teams_channel, emails) VALUES ($1,$2,$3,$4) RETURNING id`,
      [name, slack, teams, JSON.stringify([`${name}@contoso.com`])],
    );
    for (const m of members) await db.query('INSERT INTO approver_group_members VALUES ($1,$2)', [g.id, m]);
  };
  await group('it-approvers', [ada.id, cyd.id], 'C0APPROVE', '19:approvers@thread.tacv2');
  await group('security', [dan.id], 'C0SECURITY', '19:security@thread.tacv2');
  const p = await db.one<{ id: string }>(`INSERT INTO policies (name, definition) VALUES ($1,$2) RETURNING id`, [
    VISIO,
    JSON.stringify(policyDefinitionSchema.parse(policy)),
  ]);
  await db.query(`INSERT INTO applications (id, name, per_device, install_window, policy_id) VALUES ($1,'Visio',true,$2,$3)`, [
    VISIO,
    installWindow ? JSON.stringify(installWindow) : null,
    p.id,
  ]);
  await db.query(
    `INSERT INTO change_policies (name, resource_types, approvers) VALUES ('protect-scripts', '{script,app}', '{it-approvers}')`,
  );
  return {
    ada,
    bob,
    cyd,
    dan,
    deviceId: device.id,
    actor: (who, channel = 'slack') => ({ id: who.id, label: who.username, channel }),
  };
}

export const defaultPolicy: PolicyInput = {
  justification: 'required',
  questions: [{ id: 'usage', text: 'What will you use it for?', type: 'choice', options: ['Diagrams', 'Other'] }],
  stages: [{ approvers: ['it-approvers'], quorum: 'any', approverJustification: false }],
  decisionDeadline: 'P14D',
  reminderEvery: 'P1D',
  escalateAfter: 'P3D',
  escalateTo: ['it-approvers'],
  accessLifetime: 'P365D',
};
