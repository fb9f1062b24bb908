import { readFileSync } from 'node:fs';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAudit } from '../../src/core/audit-chain.ts';
import { catalogKinds } from '../../src/core/catalog-schemas.ts';
import type { ApplySummary } from '../../src/core/catalog-service.ts';
import { applyCatalogFile, parseCatalogYaml } from '../../src/integrations/catalog-yaml.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

const FIXTURE = new URL('../fixtures/contoso.yaml', import.meta.url).pathname;
const VISIO = 'ScopeId_2E4DAE44-C9A0-4694-8B7A-474424C080D4/Application_88808a3a-86e4-4820-be59-aa7d61cb8c33';
const TABLES = [
  'identities',
  'devices',
  'approver_groups',
  'approver_group_members',
  'policies',
  'applications',
  'change_policies',
  'webhook_endpoints',
  'audit_events',
];

let t: TestContext;
const dir = mkdtempSync(join(tmpdir(), 'signoff-catalog-'));
const file = (name: string, text: string) => {
  const p = join(dir, name);
  writeFileSync(p, text);
  return p;
};
const base = readFileSync(FIXTURE, 'utf8');

async function snapshot(): Promise<Record<string, unknown>> {
  const out: Record<string, unknown> = {};
  for (const table of TABLES) out[table] = (await t.tdb.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM ${table}`)).n;
  // updated_at would move on any rewrite, so it proves "no writes" beyond counts
  out.stamps = await t.tdb.db.query(`SELECT 'i' AS k, updated_at FROM identities UNION ALL SELECT 'a', updated_at FROM applications
    UNION ALL SELECT 'p', updated_at FROM policies UNION ALL SELECT 'g', updated_at FROM approver_groups UNION ALL SELECT 'w', updated_at FROM webhook_endpoints ORDER BY 1, 2`);
  return out;
}

const counts = (s: ApplySummary, what: 'created' | 'updated' | 'unchanged' | 'deleted') =>
  Object.fromEntries(catalogKinds.map((k) => [k, s[k][what]]));

beforeAll(async () => {
  // the sandbox has no DNS; the example's webhook host is allowed by name so the real URL guard passes it
  t = await createTestContext();
});
afterAll(() => t.close());

describe('signoff apply (the spec example)', () => {
  it('creates everything in the example', async () => {
    const s = await applyCatalogFile(t.ctx.catalog, FIXTURE);
    expect(counts(s, 'created')).toEqual({
      identities: 2,
      devices: 1,
      approverGroups: 1,
      policies: 0,
      applications: 1,
      changePolicies: 1,
      webhooks: 1,
    });
    const app = await t.ctx.catalog.getApplication(VISIO);
    expect(app).toMatchObject({
      name: 'Visio',
      visibility: 'visible',
      perDevice: true,
      requestable: true,
      policyName: null,
      installWindow: { from: '22:00', to: '06:00', timeZone: 'Europe/Berlin' },
      policy: {
        justification: 'required',
        decisionDeadline: 'P14D',
        escalateTo: ['it-approvers'],
        stages: [{ approvers: ['it-approvers'], quorum: 'any' }],
      },
    });
    // the inline policy is stored under the application's id, where the request domain finds it
    const policy = await t.tdb.db.one('SELECT p.name FROM policies p JOIN applications a ON a.policy_id = p.id WHERE a.id = $1', [VISIO]);
    expect(policy.name).toBe(`app:${VISIO}`);
    expect(await t.ctx.catalog.getApproverGroup('it-approvers')).toMatchObject({
      members: ['CONTOSO\\ada'],
      slackChannel: 'C0APPROVE',
      emails: ['it-approvals@contoso.com'],
    });
    expect(await t.ctx.catalog.getDevice('guid:5d3f1a2b-0000-4000-8000-000000000001')).toMatchObject({
      name: 'BOB-LAPTOP',
      primaryUser: 'CONTOSO\\bob',
    });
    expect(await t.ctx.catalog.getIdentity('contoso\\ADA')).toMatchObject({
      displayName: 'Ada Admin',
      slack: 'U0ADA',
      teams: '6f1c2a4e-0000-4000-8000-00000000ada0',
      guest: false,
    });
    const hook = await t.ctx.catalog.getWebhook('device-manager');
    expect(hook).toMatchObject({
      url: 'https://dm.example.com/hooks',
      events: ['app.install', 'app.uninstall', 'change.apply'],
      enabled: true,
      secretHint: 'whsec_…LaSw',
    });
    expect(JSON.stringify(hook)).not.toContain('MfKQ9r8G');
    expect((await t.ctx.catalog.getChangePolicy('protect-scripts')).approvers).toEqual(['it-approvers']);
    const audit = await t.tdb.db.query<{ action: string; after: unknown }>('SELECT action, after FROM audit_events ORDER BY id');
    expect(audit.map((a) => a.action)).toEqual([
      'identity.created',
      'identity.created',
      'device.created',
      'approver_group.created',
      'application.created',
      'change_policy.created',
      'webhook.created',
    ]);
    expect(JSON.stringify(audit)).not.toContain('MfKQ9r8G');
    expect((await verifyAudit(t.tdb.db)).ok).toBe(true);
  });

  it('applying the same file again changes nothing: no rows, no audit events, all unchanged', async () => {
    const before = await snapshot();
    const s = await applyCatalogFile(t.ctx.catalog, FIXTURE);
    expect(counts(s, 'unchanged')).toEqual({
      identities: 2,
      devices: 1,
      approverGroups: 1,
      policies: 0,
      applications: 1,
      changePolicies: 1,
      webhooks: 1,
    });
    for (const what of ['created', 'updated', 'deleted'] as const) expect(Object.values(counts(s, what)).every((n) => n === 0)).toBe(true);
    expect(await snapshot()).toEqual(before);
  });

  it('reports an edit as updated and audits before and after', async () => {
    const edited = file(
      'edited.yaml',
      base.replace('name: Visio', 'name: Visio Professional').replace('displayName: Bob User', 'displayName: Bob Builder'),
    );
    const s = await applyCatalogFile(t.ctx.catalog, edited);
    expect(s.applications).toEqual({ created: 0, updated: 1, unchanged: 0, deleted: 0 });
    expect(s.identities).toEqual({ created: 0, updated: 1, unchanged: 1, deleted: 0 });
    const last = await t.tdb.db.one<{ before: any; after: any }>(
      `SELECT before, after FROM audit_events WHERE action = 'application.updated'`,
    );
    expect([last.before.name, last.after.name]).toEqual(['Visio', 'Visio Professional']);
    await applyCatalogFile(t.ctx.catalog, FIXTURE);
  });

  it('dry run reports what would change and writes nothing', async () => {
    const before = await snapshot();
    const edited = file('dry.yaml', base.replace('name: BOB-LAPTOP', 'name: BOB-DESKTOP'));
    const s = await applyCatalogFile(t.ctx.catalog, edited, { dryRun: true, prune: true });
    expect(s.dryRun).toBe(true);
    expect(s.devices.updated).toBe(1);
    expect(await snapshot()).toEqual(before);
  });

  it('leaves what the file no longer names alone, and removes it with prune', async () => {
    const withExtra = file('extra.yaml', `${base}policies:\n  - { name: shared, stages: [ { approvers: [it-approvers] } ] }\n`);
    await applyCatalogFile(t.ctx.catalog, withExtra);
    const withoutHook = file(
      'nohook.yaml',
      `${base.replace(/webhooks:\n.*\n/, 'webhooks: []\n').replace(/changePolicies:\n.*\n/, '')}policies: []\n`,
    );
    let s = await applyCatalogFile(t.ctx.catalog, withoutHook);
    expect(s.webhooks.deleted).toBe(0);
    expect(await t.ctx.catalog.listWebhooks()).toHaveLength(1);
    s = await applyCatalogFile(t.ctx.catalog, withoutHook, { prune: true });
    expect(s.webhooks.deleted).toBe(1);
    expect(s.policies.deleted).toBe(1); // the shared one; Visio's inline policy belongs to Visio
    expect(s.changePolicies.deleted).toBe(0); // the section is absent, so the file does not manage it
    expect(await t.ctx.catalog.listWebhooks()).toHaveLength(0);
    expect((await t.ctx.catalog.listPolicies()).map((p) => p.name)).toEqual([`app:${VISIO}`]);
    const audit = await t.tdb.db.query<{ action: string; details: any }>(
      `SELECT action, details FROM audit_events WHERE action LIKE '%.deleted' ORDER BY id`,
    );
    expect(audit.map((a) => [a.action, a.details.pruned])).toEqual([
      ['webhook.deleted', true],
      ['policy.deleted', true],
    ]);
    await applyCatalogFile(t.ctx.catalog, FIXTURE);
  });

  it('prune refuses to remove something still referenced, and changes nothing', async () => {
    const noAda = file('noada.yaml', base.replace(/ {2}- \{ username: 'CONTOSO\\ada'.*\n/, ''));
    const before = await snapshot();
    await expect(applyCatalogFile(t.ctx.catalog, noAda, { prune: true })).rejects.toMatchObject({
      code: 'conflict',
      message: expect.stringContaining('identity "CONTOSO\\ada" is still referenced: member of approver group "it-approvers"'),
    });
    expect(await snapshot()).toEqual(before);
    const noAdaAnywhere = file(
      'noada2.yaml',
      noAda.length ? readFileSync(noAda, 'utf8').replace("members: ['CONTOSO\\ada']", 'members: []') : '',
    );
    await applyCatalogFile(t.ctx.catalog, noAdaAnywhere, { prune: true });
    expect(await t.ctx.catalog.listIdentities()).toHaveLength(1);
    await applyCatalogFile(t.ctx.catalog, FIXTURE);
    // a group named by a policy cannot be pruned
    const noGroup = file(
      'nogroup.yaml',
      base.replace(/approverGroups:\n.*\n/, 'approverGroups: []\n').replace(/applications:[\s\S]*?changePolicies:/, 'changePolicies:'),
    );
    const mid = await snapshot();
    await expect(applyCatalogFile(t.ctx.catalog, noGroup, { prune: true })).rejects.toMatchObject({
      code: 'conflict',
      message: expect.stringMatching(/approver group "it-approvers" is still referenced: .*Visio/),
    });
    expect(await snapshot()).toEqual(mid);
  });
});

describe('bad files change nothing', () => {
  const expectRejected = async (text: string, match: RegExp, code = 'validation_failed') => {
    const before = await snapshot();
    const err = await applyCatalogFile(t.ctx.catalog, file('bad.yaml', text)).catch((e) => e);
    expect(err).toMatchObject({ code });
    expect(err.message).toMatch(match);
    expect(await snapshot()).toEqual(before);
    return err;
  };

  it('reports broken YAML with its line', async () => {
    await expectRejected(`${base}identities: [ { username: x\n`, /^bad\.yaml:27:1: yaml: Map keys must be unique$/);
    await expectRejected(
      base.replace('name: Visio', 'name: Visio\n   bad: indent'),
      /^bad\.yaml:11:1: yaml: Sequence item without - indicator$/,
    );
    await expectRejected(
      `identities:\n  - { username: 'A\\b', displayName: A }\n  - { username: 'a\\b', displayName: B }\n`,
      /bad\.yaml:3:\d+: identities\.1: duplicates username/,
    );
  });

  it('names an unknown field and its line', async () => {
    const text = base.replace('perDevice: true', 'perDevice: true\n    colour: blue');
    const err = await expectRejected(text, /^bad\.yaml:13:5: applications\.0: unknown field "colour"$/);
    expect(err.details.errors[0]).toMatchObject({ field: 'applications.0', line: 13 });
  });

  it('names a policy stage that points at a missing group, with its line', async () => {
    const text = base.replace('stages: [ { approvers: [it-approvers]', 'stages: [ { approvers: [nobody-here]');
    await expectRejected(
      text,
      /^bad\.yaml:17:30: applications\[0\] "ScopeId_.*": policy\.stages\.0\.approvers: no approver group "nobody-here" exists/,
    );
  });

  it('rejects a group member or device user that is not an identity, and a bad webhook secret', async () => {
    await expectRejected(
      base.replace("members: ['CONTOSO\\ada']", "members: ['CONTOSO\\zed']"),
      /approverGroups\[0\] "it-approvers": members: no identity "CONTOSO\\zed" exists/,
    );
    await expectRejected(
      base.replace("primaryUser: 'CONTOSO\\bob'", "primaryUser: 'CONTOSO\\zed'"),
      /devices\[0\].*primaryUser: no identity/,
    );
    await expectRejected(
      base.replace('whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw', 'whsec_short'),
      /webhooks\.0\.secret: must encode 24 to 64 bytes/,
    );
    await expectRejected(base.replace('change.apply]', 'change.explode]'), /webhooks\.0\.events\.2: must be one of/);
  });

  it('parses the example without touching the database', () => {
    const { document } = parseCatalogYaml(base);
    expect(document.identities?.[0]?.username).toBe('CONTOSO\\ada');
    expect(document.policies).toBeUndefined();
  });
});

describe('the documented example', () => {
  it('applies cleanly on top of the spec example, then is unchanged', async () => {
    const md = readFileSync(new URL('../../docs/catalog-yaml.md', import.meta.url), 'utf8');
    const example = file('doc.yaml', /## Full example[\s\S]*?```yaml\n([\s\S]*?)```/.exec(md)![1]!);
    const s = await applyCatalogFile(t.ctx.catalog, example);
    expect(s.policies.created).toBe(1);
    expect(s.applications).toMatchObject({ created: 1, updated: 1 });
    const again = await applyCatalogFile(t.ctx.catalog, example);
    expect(catalogKinds.every((k) => again[k].created + again[k].updated + again[k].deleted === 0)).toBe(true);
  });
});
