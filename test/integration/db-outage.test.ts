import type express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSlackAdapter } from '../../src/bots/slack/index.ts';
import { ACTION } from '../../src/bots/slack/slack-ids.ts';
import { signSlackBody } from '../../src/bots/slack/slack-verify.ts';
import { createTeamsAdapter } from '../../src/bots/teams/index.ts';
import { buildContext } from '../../src/build-context.ts';
import type { AppContext } from '../../src/app-context.ts';
import { createApiKey } from '../../src/core/api-keys.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { createHttpApp, startHttpServer, type RunningServer } from '../../src/integrations/http/app.ts';
import { mountLinkRoutes } from '../../src/integrations/http/link-routes.ts';
import { createLogger } from '../../src/logger.ts';
import { FakeBotConnector } from '../support/fake-bot-connector.ts';
import { FakeSlackApi } from '../support/fake-slack-api.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { PgProxy, type ProxyMode } from '../support/pg-proxy.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { TEST_CONNECT_TIMEOUT_MS } from '../support/test-db.ts';

/**
 * Postgres away (refusing, starting up, shutting down, dropping sockets, not answering): every edge answers
 * "unavailable, try again" — REST a 503 problem with Retry-After, Slack and Teams a polite reply — never a 500.
 */
const SECRET = 'outage-signing-secret';
const TENANT = '72f988bf-0000-4000-8000-000000000001';

let t: TestContext;
let proxy: PgProxy;
let slack: FakeSlackApi;
let connector: FakeBotConnector;
const opened: { db: Database; server: RunningServer }[] = [];
let key: string;

/** Signoff as npm start runs it, on a database reached through the proxy. */
async function serve(connectTimeoutMs: number): Promise<{ base: string; ctx: AppContext }> {
  const db = await openDatabase(proxy.url(t.tdb.url), { poolSize: 4, idleTimeoutMs: 1000, connectTimeoutMs });
  const ctx = buildContext({
    config: { ...t.ctx.config, DATABASE_CONNECT_TIMEOUT_MS: connectTimeoutMs },
    db,
    clock: t.clock,
    logger: createLogger('silent'),
  });
  const slackAdapter = createSlackAdapter(ctx, { ackBudgetMs: 60_000 });
  const teamsAdapter = createTeamsAdapter(ctx, { minSendIntervalMs: 0 });
  const app = createHttpApp(ctx, {
    mount: (a: express.Express) => {
      slackAdapter.mount(a);
      teamsAdapter.mount(a);
      mountLinkRoutes(a, ctx);
    },
  });
  const server = await startHttpServer(app, 0, { host: '127.0.0.1' });
  opened.push({ db, server });
  return { base: `http://127.0.0.1:${server.port}`, ctx };
}

beforeAll(async () => {
  slack = await new FakeSlackApi().start();
  connector = await new FakeBotConnector().start();
  t = await createTestContext({
    SLACK_SIGNING_SECRET: SECRET,
    SLACK_BOT_TOKEN: 'xoxb-outage',
    SLACK_API_URL: slack.url,
    TEAMS_EMULATOR: '1',
  });
  await seedContoso(t.tdb.db);
  key = (await createApiKey(t.tdb.db, 'portal', ['requests:read', 'requests:write'])).key;
  proxy = await new PgProxy().start();
});
afterAll(async () => {
  for (const o of opened) {
    await o.server.close();
    await o.db.close().catch(() => undefined);
  }
  await proxy.stop();
  await slack.stop();
  await connector.stop();
  await t.close();
});

const api = (base: string, method: 'GET' | 'POST', path: string, body?: unknown) =>
  fetch(`${base}${path}`, {
    method,
    headers: { authorization: `Bearer ${key}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
const slashCommand = (base: string, text: string) => {
  const body = new URLSearchParams({ command: '/signoff', text, user_id: 'U0BOB', channel_id: 'C0OUTAGE', trigger_id: 'T1' }).toString();
  const at = Math.floor(Date.now() / 1000);
  return fetch(`${base}/slack/events`, {
    method: 'POST',
    body,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': String(at),
      'x-slack-signature': signSlackBody(SECRET, at, body),
    },
  });
};
const slackClick = (base: string, channel: string) => {
  const payload = {
    type: 'block_actions',
    user: { id: 'U0ADA' },
    channel: { id: channel },
    trigger_id: 'T2',
    actions: [{ action_id: ACTION.approve, value: '00000000-0000-4000-8000-000000000000:0' }],
  };
  const body = new URLSearchParams({ payload: JSON.stringify(payload) }).toString();
  const at = Math.floor(Date.now() / 1000);
  return fetch(`${base}/slack/events`, {
    method: 'POST',
    body,
    headers: {
      'content-type': 'application/x-www-form-urlencoded',
      'x-slack-request-timestamp': String(at),
      'x-slack-signature': signSlackBody(SECRET, at, body),
    },
  });
};
let seq = 0;
const teamsActivity = (base: string, extra: Record<string, unknown>) =>
  fetch(`${base}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({
      channelId: 'msteams',
      serviceUrl: connector.url,
      id: `outage-${++seq}`,
      timestamp: new Date().toISOString(),
      from: { id: '29:bob', aadObjectId: '6f1c2a4e-0000-4000-8000-00000000b0b0', name: 'bob' },
      recipient: { id: '28:signoff-bot', name: 'Signoff' },
      conversation: { id: 'a:personal-bob', conversationType: 'personal', tenantId: TENANT },
      channelData: { tenant: { id: TENANT } },
      ...extra,
    }),
  });

async function expectUnavailable(res: Response, what: string) {
  const text = await res.text();
  expect(res.status, `${what}: ${text}`).toBe(503);
  expect(res.headers.get('content-type'), what).toMatch(/^application\/problem\+json/);
  expect(JSON.parse(text), what).toMatchObject({ code: 'dependency_unavailable', status: 503, retryable: true });
  expect(Number(res.headers.get('retry-after')), what).toBeGreaterThan(0);
}

describe('Postgres unavailable', () => {
  const modes: ProxyMode[] = ['reset', 'starting', 'shutdown', 'drop'];
  for (const mode of modes) {
    it(`${mode}: REST answers 503 dependency_unavailable with Retry-After, Slack and Teams say so politely, and all recover`, async () => {
      const { base } = await serve(TEST_CONNECT_TIMEOUT_MS);
      expect((await api(base, 'GET', '/api/v1/requests')).status).toBe(200);
      proxy.set(mode);
      try {
        await expectUnavailable(await api(base, 'GET', '/api/v1/requests'), `${mode} GET`);
        await expectUnavailable(
          await api(base, 'POST', '/api/v1/requests', {
            applicationId: VISIO,
            username: 'CONTOSO\\bob',
            clientGuid: BOB_LAPTOP,
            justification: 'x',
            answers: { usage: 'Other' },
          }),
          `${mode} POST`,
        );

        const command = await slashCommand(base, 'my');
        expect(command.status).toBe(200);
        expect(await command.json()).toMatchObject({
          response_type: 'ephemeral',
          text: expect.stringMatching(/cannot reach its database right now.*try again in a minute/),
        });

        // a button click is answered after its ack, privately in the channel it came from
        slack.reset();
        expect((await slackClick(base, `C0CLICK${mode}`)).status).toBe(200);
        const [said] = await slack.waitFor('chat.postEphemeral');
        expect(said!.args).toMatchObject({
          channel: `C0CLICK${mode}`,
          user: 'U0ADA',
          text: expect.stringMatching(/cannot reach its database right now/),
        });

        connector.reset();
        expect((await teamsActivity(base, { type: 'message', text: 'my requests' })).status).toBeLessThan(500);
        expect(JSON.stringify(connector.posted().map((c) => c.body))).toMatch(/cannot reach its database right now/);
        const invoke = await teamsActivity(base, {
          type: 'invoke',
          name: 'adaptiveCard/action',
          value: { action: { type: 'Action.Execute', verb: 'myRequests', data: {} }, trigger: 'manual' },
        });
        expect(JSON.stringify(await invoke.json())).toMatch(/cannot reach its database right now/);
      } finally {
        proxy.set('pass');
      }
      expect((await api(base, 'GET', '/api/v1/requests')).status).toBe(200);
    });
  }

  it('a server that does not answer fails after DATABASE_CONNECT_TIMEOUT_MS as 503, not a hung request or a 500', async () => {
    const { base } = await serve(500);
    proxy.set('hang');
    try {
      await expectUnavailable(await api(base, 'GET', '/api/v1/requests'), 'hang');
    } finally {
      proxy.set('pass');
    }
  });
});
