import { createSlackAdapter } from '../../src/bots/slack/index.ts';
import { createTeamsAdapter } from '../../src/bots/teams/index.ts';
import { toDomainEvent } from '../../src/core/outbox.ts';
import { policyDefinitionSchema, type PolicyInput } from '../../src/core/policy-schema.ts';
import { createHttpApp, startHttpServer, type RunningServer } from '../../src/integrations/http/app.ts';
import { fanOut, runEffect } from '../../src/integrations/outbox-relay.ts';
import { attemptDelivery } from '../../src/integrations/webhooks/delivery-processor.ts';
import { defaultBackoff } from '../../src/integrations/webhooks/retry-policy.ts';
import { parseAllowList } from '../../src/integrations/webhooks/url-safety.ts';
import { type ChannelDriver, SECURITY_CHANNEL, type TestApp } from './channel-driver.ts';
import { FakeBotConnector } from './fake-bot-connector.ts';
import { FakeSlackApi } from './fake-slack-api.ts';
import { defaultPolicy, seedContoso, type Seeded } from './fixtures.ts';
import { SLACK_SIGNING_SECRET, SlackDriver } from './slack-channel-driver.ts';
import { APPROVERS_CHANNEL } from './teams-harness.ts';
import { TEAMS_AAD, TeamsDriver } from './teams-channel-driver.ts';
import { createTestContext, type TestContext } from './test-context.ts';
import { startReceiver, type Receiver } from './webhook-receiver.ts';

export { normaliseDates, type ChannelDriver, type Copy, type Person, type Said, type TestApp } from './channel-driver.ts';

/**
 * The world the channel-contract suite runs in: one Signoff with Slack and Teams mounted, each behind its driver
 * (`slack-channel-driver.ts`, `teams-channel-driver.ts`, both speaking `channel-driver.ts`). A new platform's driver
 * is added to `drivers` here.
 */
export interface ChannelWorld {
  t: TestContext;
  s: Seeded;
  drivers: ChannelDriver[];
  receiver: Receiver;
  /** a new application (its own policy) so each test has a request of its own */
  newApp(policy?: Partial<PolicyInput>): Promise<TestApp>;
  /**
   * What the outbox relay and workers do for every committed event, minus the queue: fan out, run each notifier's
   * effect, attempt each webhook. `twice` hands every event to every notifier once more, as a redelivered job would.
   */
  relay(opts?: { twice?: boolean }): Promise<string[]>;
  /** distinct webhook-ids the receiver accepted for the request, by event type */
  webhooks(requestId: string): Record<string, number>;
  close(): Promise<void>;
}

export async function startChannelWorld(): Promise<ChannelWorld> {
  const slackFake = await new FakeSlackApi().start();
  const connector = await new FakeBotConnector().start();
  const receiver = await startReceiver();
  const t = await createTestContext({
    SLACK_SIGNING_SECRET,
    SLACK_BOT_TOKEN: 'xoxb-contract',
    SLACK_API_URL: slackFake.url,
    TEAMS_EMULATOR: '1',
  });
  const s = await seedContoso(t.tdb.db, defaultPolicy);
  // dan (security) is linked in Teams too, so each platform has an approver of another group to refuse
  await t.tdb.db.query('UPDATE identities SET teams_aad_id = $1 WHERE id = $2', [TEAMS_AAD.dan, s.dan.id]);
  await t.tdb.db.query(
    `INSERT INTO webhook_endpoints (name, url, secret, events) VALUES ('device-manager', $1, $2, '{app.install,app.uninstall}')`,
    [receiver.url, receiver.secret],
  );
  // generous budgets: an answer then always carries the outcome, and modals are never the "Loading…" placeholder
  const slack = createSlackAdapter(t.ctx, { ackBudgetMs: 60_000, modalBudgetMs: 60_000 });
  const teams = createTeamsAdapter(t.ctx, { minSendIntervalMs: 0 });
  t.ctx.notifiers.push(slack.notifier, teams.notifier);
  const server: RunningServer = await startHttpServer(
    createHttpApp(t.ctx, {
      mount: (a) => {
        slack.mount(a);
        teams.mount(a);
      },
    }),
    0,
    { host: '127.0.0.1' },
  );
  const base = `http://127.0.0.1:${server.port}`;
  const teamsDriver = new TeamsDriver(base, connector);
  // the bot is added to both approver channels, as an admin does when setting Signoff up
  await teamsDriver.install(APPROVERS_CHANNEL);
  await teamsDriver.install(SECURITY_CHANNEL);
  let apps = 0;
  const rt = { ctx: t.ctx, allow: parseAllowList(t.ctx.config.WEBHOOK_ALLOW_HOSTS), backoff: defaultBackoff };

  return {
    t,
    s,
    receiver,
    drivers: [new SlackDriver(base, slackFake), teamsDriver],
    async newApp(policy = {}) {
      const n = ++apps;
      const app = { id: `App_contract_${n}_${Date.now()}`, name: `Contract ${n} Tool` };
      const definition = policyDefinitionSchema.parse({ ...defaultPolicy, ...policy });
      const p = await t.tdb.db.one<{ id: string }>('INSERT INTO policies (name, definition) VALUES ($1, $2) RETURNING id', [
        `contract-${app.id}`,
        JSON.stringify(definition),
      ]);
      await t.tdb.db.query('INSERT INTO applications (id, name, per_device, policy_id) VALUES ($1, $2, false, $3)', [
        app.id,
        app.name,
        p.id,
      ]);
      return app;
    },
    async relay(opts = {}) {
      const rows = await t.tdb.db.query<{ id: string; payload: any }>(`SELECT id, payload FROM outbox WHERE status <> 'done' ORDER BY seq`);
      for (const row of rows) {
        const out = await fanOut(t.ctx, row.id);
        for (const target of out.effects) await runEffect(t.ctx, row.id, target, true);
        if (opts.twice) for (const n of t.ctx.notifiers) await n.handle(toDomainEvent(row));
        for (const d of out.deliveries) await attemptDelivery(rt, d.id);
      }
      return rows.map((r) => r.payload.type as string);
    },
    webhooks(requestId) {
      const counts: Record<string, number> = {};
      for (const r of receiver.accepted.values()) {
        if (r.payload.data?.requestId === requestId) counts[r.payload.type] = (counts[r.payload.type] ?? 0) + 1;
      }
      return counts;
    },
    async close() {
      await server.close();
      await slackFake.stop();
      await connector.stop();
      await receiver.close();
      await t.close();
    },
  };
}
