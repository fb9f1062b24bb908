import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseCatalogYaml } from '../../src/integrations/catalog-yaml.ts';
import { checkUncheckedDeviceManagers } from '../../src/integrations/device-managers/connector-checks.ts';
import { seedContoso, VISIO } from '../support/fixtures.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

let t: TestContext;
beforeAll(async () => {
  // no connector credentials in this process, as when an administrator runs `signoff apply` from a laptop
  t = await createTestContext();
  await seedContoso(t.tdb.db);
});
afterAll(async () => {
  await t.close();
});

const yaml = (deviceManager: string) =>
  parseCatalogYaml(`
applications:
  - id: '${VISIO}'
    name: Visio
    policyName: '${VISIO}'
    deviceManager: ${deviceManager}
  - id: visio-web
    name: Visio for the web
`).document;

describe('deviceManager in the catalog file', () => {
  it('is saved as unchecked when this process cannot reach the service, and a second apply changes and checks nothing', async () => {
    const first = await t.ctx.catalog.applyDocument(yaml('{ kind: intune, groupId: 0b5e8c1a-1111-4000-8000-00000000a001 }'));
    expect(first.applications).toMatchObject({ created: 1, updated: 1 });
    const app = await t.ctx.catalog.getApplication(VISIO);
    expect(app.deviceManager).toEqual({ kind: 'intune', groupId: '0b5e8c1a-1111-4000-8000-00000000a001' });
    expect(app.deviceManagerStatus).toMatchObject({
      kind: 'intune',
      state: 'unchecked',
      message: expect.stringMatching(/INTUNE_TENANT_ID/),
    });
    expect((await t.ctx.catalog.getApplication('visio-web')).deviceManagerStatus).toBeNull();
    // a worker without the connection leaves it unchecked rather than calling it broken
    expect(await checkUncheckedDeviceManagers(t.ctx)).toBe(0);

    const audit = async () => Number((await t.tdb.db.one<{ n: string }>('SELECT count(*) AS n FROM audit_events')).n);
    const before = await audit();
    const second = await t.ctx.catalog.applyDocument(yaml('{ kind: intune, groupId: 0b5e8c1a-1111-4000-8000-00000000a001 }'));
    expect(second.applications).toMatchObject({ created: 0, updated: 0, unchanged: 2 });
    expect(await audit()).toBe(before);
  });

  it('refuses a configmgr setting on an application whose id is not a model name unless modelName is given, naming the place', async () => {
    const doc = parseCatalogYaml(`
applications:
  - { id: visio-web, name: Visio for the web, deviceManager: { kind: configmgr } }
`).document;
    await expect(t.ctx.catalog.applyDocument(doc)).rejects.toMatchObject({
      code: 'validation_failed',
      message: expect.stringMatching(
        /applications\[0\] "visio-web": deviceManager\.modelName: the application id "visio-web" is not a Configuration Manager model name/,
      ),
    });
  });

  it('forgets the status when the setting is removed', async () => {
    await t.ctx.catalog.applyDocument(yaml('null'));
    expect((await t.ctx.catalog.getApplication(VISIO)).deviceManagerStatus).toBeNull();
    expect(await t.tdb.db.query('SELECT * FROM device_manager_status')).toEqual([]);
  });
});
