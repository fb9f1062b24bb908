import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  applicationInputSchema,
  approverGroupInputSchema,
  catalogDocumentSchema,
  identityInputSchema,
  policyInputSchema,
  webhookInputSchema,
} from '../../src/core/catalog-schemas.ts';
import { formatSummary, parseCatalogYaml } from '../../src/integrations/catalog-yaml.ts';

const fields = (r: { success: boolean; error?: { issues: { path: PropertyKey[] }[] } }) =>
  r.error?.issues.map((i) => i.path.join('.')) ?? [];

describe('catalog schemas', () => {
  it('accept the spec example verbatim, with defaults filled in', () => {
    const { document } = parseCatalogYaml(readFileSync(new URL('../fixtures/contoso.yaml', import.meta.url), 'utf8'));
    expect(document.identities![1]).toEqual({
      username: 'CONTOSO\\bob',
      displayName: 'Bob User',
      email: 'bob@contoso.com',
      slack: 'U0BOB',
      guest: false,
    });
    expect(document.approverGroups![0]!.members).toEqual(['CONTOSO\\ada']);
    expect(document.applications![0]!.policy!.stages[0]).toEqual({
      approvers: ['it-approvers'],
      quorum: 'any',
      approverJustification: false,
      notifyApproversDirectly: false,
    });
    expect(document.webhooks![0]!.enabled).toBeUndefined();
  });

  it('accept both username forms and refuse anything else', () => {
    for (const username of ['CONTOSO\\ada', 'ada@contoso.com'])
      expect(identityInputSchema.safeParse({ username, displayName: 'A' }).success).toBe(true);
    for (const username of ['ada', 'CONTOSO\\', '\\ada', 'a b@c.d', 'CONTOSO\\a\\b'])
      expect(identityInputSchema.safeParse({ username, displayName: 'A' }).success).toBe(false);
  });

  it('reject unknown fields everywhere, including nested policy objects', () => {
    expect(fields(identityInputSchema.safeParse({ username: 'C\\a', displayName: 'A', nickname: 'x' }))).toEqual(['']);
    const app = { id: 'ScopeId_A/Application_B', name: 'X', policy: { stages: [{ approvers: ['g'], quota: 1 }] } };
    expect(fields(applicationInputSchema.safeParse(app))).toEqual(['policy.stages.0']);
    expect(fields(catalogDocumentSchema.safeParse({ identites: [] }))).toEqual(['']);
  });

  it('validate application ids, inline-or-named policy and install windows', () => {
    expect(fields(applicationInputSchema.safeParse({ id: 'has spaces in it', name: 'Visio' }))).toEqual(['id']);
    expect(applicationInputSchema.parse({ id: '6a3c1f0e-1111-4000-8000-000000000001', name: 'Intune app' }).id).toBe(
      '6a3c1f0e-1111-4000-8000-000000000001',
    );
    const both = { id: 'ScopeId_A/Application_B', name: 'X', policyName: 'p', policy: { stages: [{ approvers: ['g'] }] } };
    expect(fields(applicationInputSchema.safeParse(both))).toEqual(['policyName']);
    expect(
      fields(
        applicationInputSchema.safeParse({
          id: 'ScopeId_A/Application_B',
          name: 'X',
          installWindow: { from: '25:00', to: '06:00', timeZone: 'Mars/Base' },
        }),
      ),
    ).toEqual(['installWindow.from', 'installWindow.timeZone']);
    const closed = { id: 'ScopeId_A/Application_B', name: 'X', installWindow: { from: '22:00', to: '22:00' } };
    expect(fields(applicationInputSchema.safeParse(closed))).toEqual(['installWindow.to']);
    expect(applicationInputSchema.parse({ id: 'ScopeId_A/Application_B', name: 'X', version: 2.1 }).version).toBe('2.1');
  });

  it('keep the policy definition rules on named policies', () => {
    expect(fields(policyInputSchema.safeParse({ name: 'p', stages: [] }))).toEqual(['stages']);
    expect(fields(policyInputSchema.safeParse({ name: 'p', stages: [{ approvers: ['g'] }], escalateAfter: 'P3D' }))).toEqual([
      'escalateTo',
    ]);
    expect(policyInputSchema.parse({ name: 'p', stages: [{ approvers: ['g'] }] })).toMatchObject({
      name: 'p',
      justification: 'required',
      decisionDeadline: 'P14D',
    });
  });

  it('validate webhook secrets, events and URLs', () => {
    const hook = { name: 'dm', url: 'https://dm.example.com/hooks', events: ['app.install'] };
    expect(webhookInputSchema.safeParse(hook).success).toBe(true);
    expect(fields(webhookInputSchema.safeParse({ ...hook, secret: 'whsec_c2hvcnQ=' }))).toEqual(['secret']);
    expect(fields(webhookInputSchema.safeParse({ ...hook, secret: 'MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw' }))).toEqual(['secret']);
    expect(fields(webhookInputSchema.safeParse({ ...hook, events: ['app.install', 'app.install'] }))).toEqual(['events']);
    expect(fields(webhookInputSchema.safeParse({ ...hook, events: [] }))).toEqual(['events']);
    expect(fields(webhookInputSchema.safeParse({ ...hook, url: 'ftp://x.example.com' }))).toEqual(['url']);
  });

  it('reject duplicate names within a section, case-insensitively', () => {
    const r = catalogDocumentSchema.safeParse({ approverGroups: [{ name: 'a' }, { name: 'A' }] });
    expect(fields(r)).toEqual(['approverGroups.1']);
    expect(approverGroupInputSchema.parse({ name: 'ops' })).toEqual({ name: 'ops', members: [], emails: [] });
  });
});

describe('formatSummary', () => {
  it('prints one row per kind and a verdict', () => {
    const zero = { created: 0, updated: 0, unchanged: 0, deleted: 0 };
    const s = {
      identities: { ...zero, created: 2 },
      devices: zero,
      approverGroups: zero,
      policies: zero,
      applications: { ...zero, unchanged: 1 },
      changePolicies: zero,
      webhooks: { ...zero, deleted: 1 },
      dryRun: false,
    };
    const text = formatSummary(s);
    expect(text.split('\n')).toHaveLength(9);
    expect(text).toMatch(/^identities\s+2\s+0\s+0\s+0$/m);
    expect(text.split('\n').at(-1)).toBe('3 changes applied');
    expect(
      formatSummary({ ...s, dryRun: true })
        .split('\n')
        .at(-1),
    ).toBe('dry run: 3 changes would be made; nothing was written');
  });
});

describe('docs/catalog-yaml.md', () => {
  it('its full example is valid', () => {
    const md = readFileSync(new URL('../../docs/catalog-yaml.md', import.meta.url), 'utf8');
    const example = /## Full example[\s\S]*?```yaml\n([\s\S]*?)```/.exec(md)![1]!;
    const { document } = parseCatalogYaml(example, 'doc');
    expect(document.policies![0]!.questions).toHaveLength(2);
    expect(document.applications).toHaveLength(2);
  });
});
