import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/core/api-keys.ts';
import { loadConfig } from '../../src/config.ts';
import { AdminServiceClient } from '../../src/integrations/device-managers/adminservice-client.ts';
import { CallTrace } from '../../src/integrations/device-managers/connector-outcome.ts';
import { createHttpApp } from '../../src/integrations/http/app.ts';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { startFakeAdminService, type FakeAdminService } from '../support/fake-adminservice.ts';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { makeTestTls, type TestTls } from '../support/test-tls.ts';
import { waitFor } from '../support/webhook-receiver.ts';

const ACCOUNT = { username: 'CONTOSO\\svc-signoff', password: 'Pa55w0rd!-for-the-fake-only' };

let tls: TestTls;
let site: FakeAdminService;
let t: TestContext;
let s: Seeded;
let workers: RunningWorkers;
let admin: string;
const api = () => createHttpApp(t.ctx);
const system = { id: null, label: 'api:test', channel: 'api' as const };

beforeAll(async () => {
  tls = makeTestTls();
  site = await startFakeAdminService(tls, { ...ACCOUNT, auth: 'ntlm' });
  site.machines.set(BOB_LAPTOP.toUpperCase(), 'BOB-LAPTOP');
  site.applications.set(VISIO, 'Microsoft Visio');
  t = await createTestContext({
    CONFIGMGR_ADMINSERVICE_URL: site.url,
    CONFIGMGR_AUTH: 'negotiate',
    CONFIGMGR_USERNAME: ACCOUNT.username,
    CONFIGMGR_PASSWORD: ACCOUNT.password,
    CONFIGMGR_CA_FILE: tls.caFile,
    OUTBOX_RECONCILE_MS: '1000',
    DEVICE_MANAGER_MAX_ATTEMPTS: '6',
  });
  s = await seedContoso(t.tdb.db);
  admin = (await createApiKey(t.tdb.db, 'ops', ['admin'])).key;
  workers = await startWorkers(t.ctx, { backoff: { baseMs: 50, maxMs: 400 }, sweeper: false, lockDurationMs: 5000 });
});
afterAll(async () => {
  await workers?.stop();
  await site?.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t?.close();
  tls?.cleanup();
});
const pendingDeliveries = async () =>
  Number((await t.tdb.db.one<{ n: string }>(`SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending'`)).n);

/**
 * Each test starts from the same place whatever the one before it left (a failure mid-way included): no approval
 * standing, nothing in flight, no injected failures, Visio set up for Configuration Manager.
 */
beforeEach(async () => {
  site.onceOnly = false;
  site.clearInjections();
  const standing = await t.tdb.db.query<{ id: string }>(`SELECT id FROM requests WHERE status = 'approved'`);
  for (const { id } of standing) await t.ctx.requests.revoke(s.actor(s.ada), id, 'reset between tests');
  await waitFor(async () => (await pendingDeliveries()) === 0, 'earlier deliveries to finish', { state: pendingDeliveries });
  const ok = await putVisio({ kind: 'configmgr' });
  expect(ok.status, JSON.stringify(ok.body)).toBe(200);
});

const putVisio = (deviceManager: unknown) =>
  request(api())
    .put(`/api/v1/applications/${encodeURIComponent(VISIO)}`)
    .set('Authorization', `Bearer ${admin}`)
    .send({ id: VISIO, name: 'Visio', policyName: VISIO, deviceManager });

async function settledOrders(requestId: string, count: number) {
  return waitFor(
    async () => {
      const rows = await t.tdb.db.query<{ id: string; status: string; attempts: number; last_error: string | null }>(
        `SELECT id, status, attempts, last_error FROM webhook_deliveries WHERE request_id = $1 AND connector = 'configmgr' ORDER BY created_at`,
        [requestId],
      );
      return rows.length === count && rows.every((r) => r.status !== 'pending') ? rows : null;
    },
    `${count} connector orders to finish`,
    {
      state: () =>
        t.tdb.db.query(`SELECT status, attempts, last_error FROM webhook_deliveries WHERE request_id = $1 ORDER BY created_at`, [
          requestId,
        ]),
    },
  );
}

describe('Configuration Manager connector (AdminService)', () => {
  it('checks the model name on the site when the application is configured', async () => {
    const unknown = await putVisio({
      kind: 'configmgr',
      modelName: 'ScopeId_2E4DAE44-C9A0-4694-8B7A-474424C080D4/Application_99999999-0000-4000-8000-000000000000',
    });
    expect(unknown.status).toBe(400);
    expect(unknown.body.detail).toMatch(/deviceManager\.modelName: the site has no application with model name ScopeId_2E4DAE44/);
    const ok = await putVisio({ kind: 'configmgr' });
    expect(ok.status).toBe(200);
    expect(ok.body.deviceManagerStatus).toMatchObject({
      kind: 'configmgr',
      state: 'ok',
      message: 'site application "Microsoft Visio" found',
    });
    // every call authenticated through a full NTLMv2 handshake offered as Negotiate, as the service account
    expect(site.calls.length).toBeGreaterThan(0);
    expect(site.calls.every((c) => c.scheme === 'Negotiate' && c.user === 'CONTOSO\\svc-signoff')).toBe(true);
  });

  it('approve creates the approved request once, revoke denies it (uninstall), reapprove approves the same request again', async () => {
    const before = site.methodCalls().length;
    const { request: r } = await t.ctx.requests.createApproved(system, {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      username: 'CONTOSO\\bob',
      comments: 'for the diagrams',
    });
    await settledOrders(r.id, 1);
    const [create] = site.methodCalls().slice(before);
    expect(create).toMatchObject({
      path: '/AdminService/wmi/SMS_UserApplicationRequest.CreateApprovedRequest',
      body: {
        ApplicationID: VISIO,
        AutoInstall: true,
        ClientGUID: BOB_LAPTOP,
        Username: 'CONTOSO\\bob',
        Comments: expect.stringMatching(/Approved in Signoff by api:test: for the diagrams/),
      },
    });
    const guid = site.requests[0]!.RequestGuid;

    await t.ctx.requests.revoke(s.actor(s.ada), r.id, 'left the team');
    await settledOrders(r.id, 2);
    await t.ctx.requests.reapprove(s.actor(s.ada), r.id, 'back in the team');
    await settledOrders(r.id, 3);
    const calls = site
      .methodCalls()
      .slice(before)
      .map((c) => c.path);
    expect(calls).toEqual([
      '/AdminService/wmi/SMS_UserApplicationRequest.CreateApprovedRequest',
      `/AdminService/wmi/SMS_UserApplicationRequest('${guid}')/AdminService.Deny`,
      `/AdminService/wmi/SMS_UserApplicationRequest('${guid}')/AdminService.Approve`,
    ]);
    expect(site.requests).toHaveLength(1);
    expect(site.clientActions).toEqual([
      { action: 'install', machine: 'BOB-LAPTOP', user: 'CONTOSO\\bob', model: VISIO },
      { action: 'uninstall', machine: 'BOB-LAPTOP', user: 'CONTOSO\\bob', model: VISIO },
      { action: 'install', machine: 'BOB-LAPTOP', user: 'CONTOSO\\bob', model: VISIO },
    ]);
    await t.ctx.requests.revoke(s.actor(s.ada), r.id, 'cleanup');
    await settledOrders(r.id, 4);
  });

  it('a machine-only pre-approval uses SMS_ApplicationRequest without a username', async () => {
    const before = site.methodCalls().length;
    const { request: r } = await t.ctx.requests.createApproved(system, { applicationId: VISIO, clientGuid: BOB_LAPTOP });
    await settledOrders(r.id, 1);
    expect(site.methodCalls().slice(before)).toEqual([
      expect.objectContaining({
        path: '/AdminService/wmi/SMS_ApplicationRequest.CreateApprovedRequest',
        body: { ApplicationID: VISIO, AutoInstall: true, ClientGUID: BOB_LAPTOP, Comments: expect.any(String) },
      }),
    ]);
    await t.ctx.requests.revoke(s.actor(s.ada), r.id, 'cleanup');
    await settledOrders(r.id, 2);
    expect(site.clientActions.at(-1)).toEqual({ action: 'uninstall', machine: 'BOB-LAPTOP', user: null, model: VISIO });
  });

  it('ordering the install again repeats CreateApprovedRequest; a 2006-era site that refuses the repeat leaves the approval standing', async () => {
    const { request: r } = await t.ctx.requests.createApproved(system, {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      username: 'CONTOSO\\bob',
    });
    await settledOrders(r.id, 1);
    await t.ctx.requests.createApproved(system, {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      username: 'CONTOSO\\bob',
      comments: 'reinstall please',
    });
    await settledOrders(r.id, 2);
    expect(site.clientActions.slice(-2).map((a) => a.action)).toEqual(['install', 'install']);

    site.onceOnly = true;
    await t.ctx.requests.installNow(system, r.id);
    const orders = await settledOrders(r.id, 3);
    expect(orders[2]).toMatchObject({ status: 'succeeded', attempts: 1 });
    const log = await t.tdb.db.one<{ response_excerpt: string }>('SELECT response_excerpt FROM webhook_attempts WHERE delivery_id = $1', [
      orders[2]!.id,
    ]);
    expect(log.response_excerpt).toMatch(/accepts CreateApprovedRequest once, so it was not asked to install again/);
    await t.ctx.requests.revoke(s.actor(s.ada), r.id, 'cleanup');
    await settledOrders(r.id, 4);
  });

  it('retries while the site answers 503, honouring Retry-After, then delivers', async () => {
    // the site has the earlier (denied) request for this user and device, so approval is Approve on it
    site.inject((c) => c.method === 'POST', 503, 2, { 'retry-after': '1' });
    const { request: r } = await t.ctx.requests.createApproved(system, {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      username: 'CONTOSO\\bob',
    });
    const [order] = await settledOrders(r.id, 1);
    expect(order).toMatchObject({ status: 'succeeded', attempts: 3 });
    const attempts = await t.tdb.db.query<{ status_code: number; created_at: Date }>(
      'SELECT status_code, created_at FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt',
      [order!.id],
    );
    expect(attempts.map((a) => a.status_code)).toEqual([503, 503, 200]);
    expect(new Date(attempts[1]!.created_at).getTime() - new Date(attempts[0]!.created_at).getTime()).toBeGreaterThanOrEqual(950);
    await t.ctx.requests.revoke(s.actor(s.ada), r.id, 'cleanup');
    await settledOrders(r.id, 2);
  });

  it('a wrong password fails with a message naming the credentials, and nothing else is tried', async () => {
    const config = loadConfig({
      ...process.env,
      NODE_ENV: 'test',
      CONFIGMGR_ADMINSERVICE_URL: site.url,
      CONFIGMGR_USERNAME: ACCOUNT.username,
      CONFIGMGR_PASSWORD: 'wrong',
      CONFIGMGR_CA_FILE: tls.caFile,
    });
    await expect(new AdminServiceClient(config).call(new CallTrace(), 'reading SMS_Site', 'GET', 'wmi/SMS_Site')).rejects.toMatchObject({
      statusCode: 401,
      retryable: false,
      misconfigured: true,
      message: expect.stringMatching(/reading SMS_Site: HTTP 401.*check the connection credentials/),
    });
  });

  it('refuses a server certificate from a CA it was not given', async () => {
    const config = loadConfig({
      ...process.env,
      NODE_ENV: 'test',
      CONFIGMGR_ADMINSERVICE_URL: site.url,
      CONFIGMGR_USERNAME: ACCOUNT.username,
      CONFIGMGR_PASSWORD: ACCOUNT.password,
    });
    await expect(new AdminServiceClient(config).call(new CallTrace(), 'reading SMS_Site', 'GET', 'wmi/SMS_Site')).rejects.toMatchObject({
      retryable: true,
      message: expect.stringMatching(/reading SMS_Site: (SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE)/),
    });
  });
});

describe('Basic authentication', () => {
  it('sends the account as Basic when CONFIGMGR_AUTH=basic', async () => {
    const basicSite = await startFakeAdminService(tls, { ...ACCOUNT, auth: 'basic' });
    try {
      const config = loadConfig({
        ...process.env,
        NODE_ENV: 'test',
        CONFIGMGR_ADMINSERVICE_URL: basicSite.url,
        CONFIGMGR_AUTH: 'basic',
        CONFIGMGR_USERNAME: ACCOUNT.username,
        CONFIGMGR_PASSWORD: ACCOUNT.password,
        CONFIGMGR_CA_FILE: tls.caFile,
      });
      await new AdminServiceClient(config).call(new CallTrace(), 'reading SMS_Application', 'GET', 'wmi/SMS_Application');
      expect(basicSite.calls.map((c) => [c.scheme, c.user])).toEqual([['Basic', ACCOUNT.username]]);
    } finally {
      await basicSite.close();
    }
  });
});
