import request from 'supertest';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/core/api-keys.ts';
import { createHttpApp } from '../../src/integrations/http/app.ts';
import { startWorkers, type RunningWorkers } from '../../src/integrations/queue/workers.ts';
import { startFakeGraph, type FakeGraph } from '../support/fake-graph.ts';
import { BOB_LAPTOP, seedContoso, VISIO, type Seeded } from '../support/fixtures.ts';
import { addEndpoint, cleanupRedis } from '../support/queue-harness.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { makeTestTls, type TestTls } from '../support/test-tls.ts';
import { startReceiver, waitFor, type Receiver } from '../support/webhook-receiver.ts';

const GROUP = '0b5e8c1a-1111-4000-8000-00000000a001';
const APP = '7d2c9e4f-2222-4000-8000-00000000a002';
const DEVICE = 'de71ce00-3333-4000-8000-00000000d001';
const BOB_OBJECT_ID = '6f1c2a4e-0000-4000-8000-00000000b0b0';

let tls: TestTls;
let graph: FakeGraph;
let t: TestContext;
let s: Seeded;
let workers: RunningWorkers;
let receiver: Receiver;
let admin: string;
const api = () => createHttpApp(t.ctx);
const system = { id: null, label: 'api:test', channel: 'api' as const };

beforeAll(async () => {
  tls = makeTestTls();
  graph = await startFakeGraph(tls);
  t = await createTestContext({
    INTUNE_TENANT_ID: graph.tenantId,
    INTUNE_CLIENT_ID: graph.clientId,
    INTUNE_CLIENT_SECRET: graph.clientSecret,
    INTUNE_AUTHORITY_HOST: graph.url,
    INTUNE_GRAPH_URL: graph.url,
    INTUNE_CA_FILE: tls.caFile,
    OUTBOX_RECONCILE_MS: '1000',
    DEVICE_MANAGER_MAX_ATTEMPTS: '6',
    DEVICE_MANAGER_TIMEOUT_MS: '20000',
  });
  s = await seedContoso(t.tdb.db);
  graph.groups.set(GROUP, { displayName: 'Visio users', securityEnabled: true, groupTypes: [], members: new Set() });
  graph.devices.push({ id: DEVICE, displayName: 'BOB-LAPTOP' });
  graph.users.push({ id: BOB_OBJECT_ID, userPrincipalName: 'bob@contoso.com', onPremisesSamAccountName: 'bob' });
  graph.apps.set(APP, {
    displayName: 'Visio',
    assignments: [{ intent: 'required', target: { '@odata.type': '#microsoft.graph.groupAssignmentTarget', groupId: GROUP } }],
  });
  admin = (await createApiKey(t.tdb.db, 'ops', ['admin'])).key;
  receiver = await startReceiver();
  await addEndpoint(t.tdb.db, { name: 'dm-hook', url: receiver.url, secret: receiver.secret, events: ['app.install', 'app.uninstall'] });
  workers = await startWorkers(t.ctx, { backoff: { baseMs: 50, maxMs: 400 }, sweeper: false, lockDurationMs: 5000 });
});
afterAll(async () => {
  await workers?.stop();
  await receiver?.close();
  await graph?.close();
  await cleanupRedis(t.ctx.config.QUEUE_PREFIX);
  await t?.close();
  tls?.cleanup();
});
const pendingDeliveries = async () =>
  Number((await t.tdb.db.one<{ n: string }>(`SELECT count(*) AS n FROM webhook_deliveries WHERE status = 'pending'`)).n);

/**
 * Each test starts from the same place whatever the one before it left (a failure mid-way included): no approval
 * standing, nothing in flight, no injected failures, the Visio group empty and Visio set up for Intune.
 */
beforeEach(async () => {
  const standing = await t.tdb.db.query<{ id: string }>(`SELECT id FROM requests WHERE status = 'approved'`);
  for (const { id } of standing) await t.ctx.requests.revoke(s.actor(s.ada), id, 'reset between tests');
  await waitFor(async () => (await pendingDeliveries()) === 0, 'earlier deliveries to finish', { state: pendingDeliveries });
  graph.clearInjections();
  graph.groups.set(GROUP, { displayName: 'Visio users', securityEnabled: true, groupTypes: [], members: new Set() });
  const ok = await putVisio({ kind: 'intune', groupId: GROUP, appId: APP });
  expect(ok.status, JSON.stringify(ok.body)).toBe(200);
});

const putVisio = (deviceManager: unknown) =>
  request(api())
    .put(`/api/v1/applications/${encodeURIComponent(VISIO)}`)
    .set('Authorization', `Bearer ${admin}`)
    .send({ id: VISIO, name: 'Visio', policyName: VISIO, deviceManager });

const members = () => [...graph.groups.get(GROUP)!.members];

/** The connector orders of a request, oldest first, once none is pending. */
async function settledOrders(requestId: string, count: number) {
  return waitFor(
    async () => {
      const rows = await t.tdb.db.query<{ id: string; status: string; event_type: string; attempts: number; last_error: string | null }>(
        `SELECT id, status, event_type, attempts, last_error FROM webhook_deliveries WHERE request_id = $1 AND connector = 'intune' ORDER BY created_at`,
        [requestId],
      );
      return rows.length === count && rows.every((r) => r.status !== 'pending') ? rows : null;
    },
    `${count} connector orders to finish`,
    {
      state: () =>
        t.tdb.db.query(
          `SELECT status, event_type, attempts, last_error FROM webhook_deliveries WHERE request_id = $1 ORDER BY created_at`,
          [requestId],
        ),
    },
  );
}

describe('Intune connector (Microsoft Graph)', () => {
  it('refuses a group or app that does not exist, naming the field, and stores a working setting as ok', async () => {
    const missing = await putVisio({ kind: 'intune', groupId: '0b5e8c1a-9999-4000-8000-00000000ffff' });
    expect(missing.status).toBe(400);
    expect(missing.body.code).toBe('validation_failed');
    expect(missing.body.detail).toMatch(/deviceManager\.groupId: no Entra ID group with id 0b5e8c1a-9999/);

    graph.apps.set('7d2c9e4f-2222-4000-8000-0000000000ee', { displayName: 'Project', assignments: [] });
    const unassigned = await putVisio({ kind: 'intune', groupId: GROUP, appId: '7d2c9e4f-2222-4000-8000-0000000000ee' });
    expect(unassigned.status).toBe(400);
    expect(unassigned.body.detail).toMatch(/deviceManager\.appId: Intune app "Project" is not assigned to group "Visio users"/);

    expect((await putVisio({ kind: 'intune', groupId: 'not-a-guid' })).body.errors).toEqual([
      { field: 'deviceManager.groupId', message: expect.stringMatching(/GUID/) },
    ]);

    const ok = await putVisio({ kind: 'intune', groupId: GROUP, appId: APP });
    expect(ok.status).toBe(200);
    expect(ok.body.deviceManager).toEqual({ kind: 'intune', groupId: GROUP, appId: APP });
    expect(ok.body.deviceManagerStatus).toMatchObject({
      kind: 'intune',
      state: 'ok',
      message: expect.stringMatching(/assigned to it as required/),
    });
    // the token request is the documented client-credentials grant for Graph's .default scope
    expect(graph.tokenRequests[0]).toMatchObject({
      grant_type: 'client_credentials',
      client_id: graph.clientId,
      scope: 'https://graph.microsoft.com/.default',
    });
    expect(graph.calls.every((c) => c.authorization?.startsWith('Bearer fake-token-'))).toBe(true);
  });

  it('approve adds the device once, revoke removes it once, reapprove adds it again, access expiry removes it; the webhook still arrives', async () => {
    const writesBefore = graph.writes().length;
    const { request: r } = await t.ctx.requests.createApproved(system, {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      username: 'CONTOSO\\bob',
    });
    await settledOrders(r.id, 1);
    expect(members()).toEqual([DEVICE]);
    const adds = graph.writes().slice(writesBefore);
    expect(adds).toEqual([
      expect.objectContaining({
        method: 'POST',
        path: `/v1.0/groups/${GROUP}/members/$ref`,
        body: { '@odata.id': `${graph.url}/v1.0/directoryObjects/${DEVICE}` },
      }),
    ]);

    await t.ctx.requests.revoke(s.actor(s.ada), r.id, 'no longer needed');
    await settledOrders(r.id, 2);
    expect(members()).toEqual([]);
    await t.ctx.requests.reapprove(s.actor(s.ada), r.id, 'needed after all');
    await settledOrders(r.id, 3);
    expect(members()).toEqual([DEVICE]);

    // access runs out: the sweeper revokes, the device leaves the group
    t.clock.advance(366 * 24 * 3600 * 1000);
    await t.ctx.timers.sweep();
    const orders = await settledOrders(r.id, 4);
    expect(members()).toEqual([]);
    expect(orders.map((o) => [o.event_type, o.status, o.attempts])).toEqual([
      ['request.approved', 'succeeded', 1],
      ['request.revoked', 'succeeded', 1],
      ['request.approved', 'succeeded', 1],
      ['request.revoked', 'succeeded', 1],
    ]);
    expect(
      graph
        .writes()
        .slice(writesBefore)
        .map((c) => c.method),
    ).toEqual(['POST', 'DELETE', 'POST', 'DELETE']);
    // the generic webhook beside it, unchanged: signed app.install and app.uninstall for the same decisions
    await waitFor(() => receiver.accepted.size >= 4, 'the webhooks');
    expect([...receiver.accepted.values()].map((m) => m.payload.type)).toEqual([
      'app.install',
      'app.uninstall',
      'app.install',
      'app.uninstall',
    ]);
    expect([...receiver.accepted.values()].every((m) => m.verified)).toBe(true);
  });

  it('waits out 429 throttling for as long as Retry-After says, then delivers', async () => {
    graph.inject(
      (c) => c.method === 'POST',
      { status: 429, headers: { 'retry-after': '1' }, body: { error: { code: 'TooManyRequests', message: 'Too many requests' } } },
      1,
    );
    const started = Date.now();
    const { request: r } = await t.ctx.requests.createApproved(system, {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      username: 'CONTOSO\\bob',
    });
    const [order] = await settledOrders(r.id, 1);
    expect(order).toMatchObject({ status: 'succeeded', attempts: 2 });
    expect(members()).toEqual([DEVICE]);
    const attempts = await t.tdb.db.query<{ status_code: number | null; created_at: Date }>(
      'SELECT status_code, created_at FROM webhook_attempts WHERE delivery_id = $1 ORDER BY attempt',
      [order!.id],
    );
    expect(attempts.map((a) => a.status_code)).toEqual([429, 204]);
    // backoff alone is ~50 ms; Graph asked for a second
    expect(new Date(attempts[1]!.created_at).getTime() - new Date(attempts[0]!.created_at).getTime()).toBeGreaterThanOrEqual(950);
    expect(Date.now() - started).toBeGreaterThanOrEqual(950);
    await t.ctx.requests.revoke(s.actor(s.ada), r.id, 'cleanup');
    await settledOrders(r.id, 2);
  });

  it('gets a new token when Graph stops accepting the cached one mid-run', async () => {
    const tokensBefore = graph.tokenRequests.length;
    graph.expireIssuedTokens();
    const { request: r } = await t.ctx.requests.createApproved(system, {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      username: 'CONTOSO\\bob',
    });
    const [order] = await settledOrders(r.id, 1);
    expect(order).toMatchObject({ status: 'succeeded', attempts: 1 });
    expect(members()).toEqual([DEVICE]);
    expect(graph.tokenRequests.length).toBe(tokensBefore + 1);
    const log = await t.tdb.db.one<{ response_excerpt: string }>('SELECT response_excerpt FROM webhook_attempts WHERE delivery_id = $1', [
      order!.id,
    ]);
    expect(log.response_excerpt).toMatch(/-> 401\nthe access token was refused; getting a new one/);
    await t.ctx.requests.revoke(s.actor(s.ada), r.id, 'cleanup');
    await settledOrders(r.id, 2);
  });

  it('retries while Graph answers 500, then delivers; every attempt is visible through the delivery API', async () => {
    graph.inject((c) => c.method === 'POST', { status: 500, body: { error: { code: 'InternalServerError', message: 'boom' } } }, 3);
    const { request: r } = await t.ctx.requests.createApproved(system, {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      username: 'CONTOSO\\bob',
    });
    const [order] = await settledOrders(r.id, 1);
    expect(order).toMatchObject({ status: 'succeeded', attempts: 4 });
    const detail = await request(api()).get(`/api/v1/deliveries/${order!.id}`).set('Authorization', `Bearer ${admin}`);
    expect(detail.body).toMatchObject({
      target: 'intune',
      endpoint: null,
      applicationId: VISIO,
      status: 'succeeded',
      eventType: 'request.approved',
    });
    expect(detail.body.attemptLog.map((a: { statusCode: number }) => a.statusCode)).toEqual([500, 500, 500, 204]);
    expect(detail.body.payload.data).toMatchObject({
      operation: 'grant',
      requestId: r.id,
      deviceName: 'BOB-LAPTOP',
      username: 'CONTOSO\\bob',
    });
    const list = await request(api()).get('/api/v1/deliveries?target=intune&limit=200').set('Authorization', `Bearer ${admin}`);
    expect(list.body.items.some((i: { id: string }) => i.id === order!.id)).toBe(true);
    await t.ctx.requests.revoke(s.actor(s.ada), r.id, 'cleanup');
    await settledOrders(r.id, 2);
  });

  it('a group deleted in the tenant fails that application with a clear message and blocks nothing else; redelivery after the fix works', async () => {
    const OTHER = 'ScopeId_2E4DAE44-C9A0-4694-8B7A-474424C080D4/Application_00000000-0000-4000-8000-0000000000b2';
    const OTHER_GROUP = '0b5e8c1a-1111-4000-8000-00000000a0b2';
    graph.groups.set(OTHER_GROUP, { displayName: 'Project users', securityEnabled: true, groupTypes: [], members: new Set() });
    const put = await request(api())
      .put(`/api/v1/applications/${encodeURIComponent(OTHER)}`)
      .set('Authorization', `Bearer ${admin}`)
      .send({ id: OTHER, name: 'Project', policyName: VISIO, perDevice: false, deviceManager: { kind: 'intune', groupId: OTHER_GROUP } });
    expect(put.status).toBe(201);

    const saved = graph.groups.get(GROUP)!;
    graph.groups.delete(GROUP);
    const { request: broken } = await t.ctx.requests.createApproved(system, {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      username: 'CONTOSO\\bob',
    });
    const { request: fine } = await t.ctx.requests.createApproved(system, {
      applicationId: OTHER,
      clientGuid: BOB_LAPTOP,
      username: 'CONTOSO\\bob',
    });
    const [failed] = await settledOrders(broken.id, 1);
    const [delivered] = await settledOrders(fine.id, 1);
    expect(delivered!.status).toBe('succeeded');
    // Project is per user: the user (known by their Teams link) joins the group
    expect([...graph.groups.get(OTHER_GROUP)!.members]).toEqual([BOB_OBJECT_ID]);
    expect(failed).toMatchObject({ status: 'failed', attempts: 1 });
    expect(failed!.last_error).toMatch(new RegExp(`adding device BOB-LAPTOP to group ${GROUP}: HTTP 404`));

    const app = await request(api())
      .get(`/api/v1/applications/${encodeURIComponent(VISIO)}`)
      .set('Authorization', `Bearer ${admin}`);
    expect(app.body.deviceManagerStatus).toMatchObject({ state: 'error', message: expect.stringMatching(/HTTP 404/) });
    const metrics = await request(api()).get('/metrics');
    expect(metrics.text).toMatch(
      new RegExp(`signoff_device_manager_up\\{application="${VISIO.replace(/[/]/g, '\\/')}",kind="intune"\\} 0`),
    );
    expect(metrics.text).toMatch(
      /signoff_device_manager_up\{application="[^"]*Application_00000000-0000-4000-8000-0000000000b2",kind="intune"\} 1/,
    );

    graph.groups.set(GROUP, saved);
    const again = await request(api()).post(`/api/v1/deliveries/${failed!.id}/redeliver`).set('Authorization', `Bearer ${admin}`);
    expect(again.status).toBe(202);
    await waitFor(
      async () =>
        (await t.tdb.db.one<{ status: string }>('SELECT status FROM webhook_deliveries WHERE id = $1', [failed!.id])).status ===
        'succeeded',
      'the redelivery',
    );
    expect(members()).toEqual([DEVICE]);
    const fixed = await request(api())
      .get(`/api/v1/applications/${encodeURIComponent(VISIO)}`)
      .set('Authorization', `Bearer ${admin}`);
    expect(fixed.body.deviceManagerStatus.state).toBe('ok');
  });
});
