import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.ts';
import { applicationInputSchema } from '../../src/core/catalog-schemas.ts';

const app = (deviceManager: unknown) =>
  applicationInputSchema.safeParse({
    id: 'ScopeId_2E4DAE44-C9A0-4694-8B7A-474424C080D4/Application_88808a3a-86e4-4820-be59-aa7d61cb8c33',
    name: 'Visio',
    deviceManager,
  });
const problems = (r: ReturnType<typeof app>) => r.error?.issues.map((i) => `${i.path.join('.')}: ${i.message}`) ?? [];

describe('device-manager settings', () => {
  it('take intune with a group GUID (and an optional app GUID) or configmgr with an optional model name', () => {
    expect(app({ kind: 'intune', groupId: '0b5e8c1a-1111-4000-8000-00000000a001' }).success).toBe(true);
    expect(app({ kind: 'configmgr' }).success).toBe(true);
    expect(problems(app({ kind: 'intune', groupId: 'visio-users' }))).toEqual([
      expect.stringMatching(/^deviceManager\.groupId: must be the object id of the Entra ID group/),
    ]);
    expect(problems(app({ kind: 'configmgr', modelName: 'Visio' }))).toEqual([
      expect.stringMatching(/^deviceManager\.modelName: must be a model name/),
    ]);
    expect(problems(app({ kind: 'sccm' }))).toEqual([expect.stringMatching(/^deviceManager\.kind: /)]);
    // a secret has no place in the catalog: unknown keys are refused
    expect(problems(app({ kind: 'intune', groupId: '0b5e8c1a-1111-4000-8000-00000000a001', clientSecret: 'x' }))).toEqual([
      expect.stringMatching(/^deviceManager: /),
    ]);
  });
});

describe('connector configuration', () => {
  it('needs a complete Intune connection, with a secret or a certificate but not both', () => {
    expect(() => loadConfig({ INTUNE_TENANT_ID: 't' })).toThrow(
      /INTUNE_CLIENT_ID: is required[\s\S]*INTUNE_CLIENT_SECRET: give either it or INTUNE_CLIENT_CERTIFICATE_PATH/,
    );
    expect(() =>
      loadConfig({
        INTUNE_TENANT_ID: 't',
        INTUNE_CLIENT_ID: 'c',
        INTUNE_CLIENT_SECRET: 's',
        INTUNE_CLIENT_CERTIFICATE_PATH: '/nonexistent.pem',
      }),
    ).toThrow(/INTUNE_CLIENT_CERTIFICATE_PATH: must name a file that exists/);
    expect(loadConfig({ INTUNE_TENANT_ID: 't', INTUNE_CLIENT_ID: 'c', INTUNE_CLIENT_SECRET: 's' }).INTUNE_GRAPH_URL).toBe(
      'https://graph.microsoft.com',
    );
  });
  it('needs an https AdminService URL with a DOMAIN\\user account, and never echoes the password', () => {
    try {
      loadConfig({
        CONFIGMGR_ADMINSERVICE_URL: 'http://smsprov.contoso.com/AdminService',
        CONFIGMGR_USERNAME: 'svc',
        CONFIGMGR_PASSWORD: 'hunter2',
        CONFIGMGR_AUTH: 'kerberos',
      });
      expect.unreachable();
    } catch (e) {
      const msg = (e as Error).message;
      expect(msg).toMatch(/CONFIGMGR_ADMINSERVICE_URL: must be an https:\/\/ URL/);
      expect(msg).toMatch(/CONFIGMGR_AUTH: /);
      expect(msg).toMatch(/CONFIGMGR_USERNAME: must be DOMAIN\\user/);
      expect(msg).not.toMatch(/hunter2/);
    }
  });
});
