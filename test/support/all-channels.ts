import type express from 'express';
import { createSlackAdapter } from '../../src/bots/slack/index.ts';
import { signSlackBody } from '../../src/bots/slack/slack-verify.ts';
import { ACTION, CALLBACK, promptValue } from '../../src/bots/slack/slack-ids.ts';
import { createTeamsAdapter } from '../../src/bots/teams/index.ts';
import { createApiKey } from '../../src/core/api-keys.ts';
import type { Actor } from '../../src/core/audit-log.ts';
import { createLinkToken } from '../../src/core/link-tokens.ts';
import type { PolicyInput } from '../../src/core/policy-schema.ts';
import { createHttpApp, startHttpServer, type RunningServer } from '../../src/integrations/http/app.ts';
import { mountLinkRoutes } from '../../src/integrations/http/link-routes.ts';
import { FakeBotConnector } from './fake-bot-connector.ts';
import { FakeSlackApi } from './fake-slack-api.ts';
import { defaultPolicy, seedContoso, type Seeded } from './fixtures.ts';
import { createTestContext, type TestContext } from './test-context.ts';
import { HANG_LIMIT_MS } from './wait.ts';

const SECRET = 'all-channels-signing-secret';
const TENANT = '72f988bf-0000-4000-8000-000000000001';

export type Person = 'ada' | 'bob' | 'cyd' | 'dan';
export type DecisionChannel = 'api' | 'cli' | 'slack' | 'teams' | 'email';

/** What a channel said about one decision: `ok` when it decided, else the error code when the channel tells it. */
export interface ChannelResult {
  channel: DecisionChannel;
  ok: boolean;
  /** the stable error code: REST and CLI name it; email and chat only say refused or not */
  code?: string;
}

/**
 * Signoff as `npm start` runs it (REST API, Slack, Teams, email-link pages on one Express app), with a way to make
 * the same decision through each channel the way a person or system there would: a signed Slack view submission
 * from the reason modal, a Teams Action.Execute invoke from the card, a POST of an email link's confirmation form,
 * a REST call with an unbound key naming the approver, the CLI's core call.
 */
export interface AllChannels {
  t: TestContext;
  s: Seeded;
  slack: FakeSlackApi;
  connector: FakeBotConnector;
  apiKey: string;
  decide(
    channel: DecisionChannel,
    who: Person | 'nobody',
    verb: 'approve' | 'deny',
    requestId: string,
    opts: { stage?: number; reason?: string | null },
  ): Promise<ChannelResult>;
  /** a REST POST with the unbound key */
  post(
    path: string,
    body: Record<string, unknown>,
    headers?: Record<string, string>,
  ): Promise<ChannelResult & { status: number; body: any }>;
  close(): Promise<void>;
}

export async function startAllChannels(opts: { policy?: PolicyInput; poolSize?: number } = {}): Promise<AllChannels> {
  const slack = await new FakeSlackApi().start();
  const connector = await new FakeBotConnector().start();
  const t = await createTestContext(
    { SLACK_SIGNING_SECRET: SECRET, SLACK_BOT_TOKEN: 'xoxb-all', SLACK_API_URL: slack.url, TEAMS_EMULATOR: '1' },
    { poolSize: opts.poolSize ?? 20 },
  );
  const s = await seedContoso(t.tdb.db, opts.policy ?? defaultPolicy);
  const apiKey = (await createApiKey(t.tdb.db, 'cm-connector', ['requests:read', 'requests:write'])).key;
  // a generous ack budget: a view submission's answer then carries the decision's outcome, as it does when Postgres is quick
  const slackAdapter = createSlackAdapter(t.ctx, { ackBudgetMs: 60_000 });
  const teamsAdapter = createTeamsAdapter(t.ctx, { minSendIntervalMs: 0 });
  const app = createHttpApp(t.ctx, {
    mount: (a: express.Express) => {
      slackAdapter.mount(a);
      teamsAdapter.mount(a);
      mountLinkRoutes(a, t.ctx);
    },
  });
  const server: RunningServer = await startHttpServer(app, 0, { host: '127.0.0.1' });
  const base = `http://127.0.0.1:${server.port}`;
  const people = { ada: s.ada, bob: s.bob, cyd: s.cyd, dan: s.dan };
  const slackIds: Record<Person, string> = { ada: 'U0ADA', bob: 'U0BOB', cyd: 'U0CYD', dan: 'U0DAN' };
  const aad: Partial<Record<Person, string>> = {
    ada: '6f1c2a4e-0000-4000-8000-00000000ada0',
    bob: '6f1c2a4e-0000-4000-8000-00000000b0b0',
    cyd: '6f1c2a4e-0000-4000-8000-00000000c0d0',
  };
  let seq = 0;

  const post = async (path: string, body: Record<string, unknown>, headers: Record<string, string> = {}) => {
    const res = await fetch(`${base}${path}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${apiKey}`, 'content-type': 'application/json', ...headers },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as { code?: string };
    return { channel: 'api' as const, ok: res.status === 200, code: res.ok ? undefined : json.code, status: res.status, body: json };
  };
  const rest = (who: Person | 'nobody', verb: string, id: string, o: { stage?: number; reason?: string | null }): Promise<ChannelResult> =>
    post(`/api/v1/requests/${id}/${verb}`, {
      ...(who === 'nobody' ? {} : { approver: people[who].username }),
      ...(o.stage !== undefined ? { stage: o.stage } : {}),
      ...(o.reason ? { reason: o.reason } : {}),
    });

  const cli = async (
    who: Person,
    verb: 'approve' | 'deny',
    id: string,
    o: { stage?: number; reason?: string | null },
  ): Promise<ChannelResult> => {
    const actor: Actor = { id: people[who].id, label: who, channel: 'cli' };
    try {
      await t.ctx.requests.decide(actor, id, verb, o.reason ?? null, { stage: o.stage });
      return { channel: 'cli', ok: true };
    } catch (e) {
      return { channel: 'cli', ok: false, code: (e as { code?: string }).code ?? 'internal' };
    }
  };

  // what Slack shows the person who decided: anything else is a refusal (already decided, not theirs to decide, ...)
  const DECIDED = /^:(white_check_mark|ballot_box_with_check): You|^:no_entry: You denied/;
  const slackPost = (payload: unknown) => {
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
    }).then((r) => r.text());
  };
  /**
   * The ephemeral answer to one Slack call. Each call comes from a channel of its own, so concurrent calls are told
   * apart; a modal opened instead (the stage needs a justification) means nothing was decided yet.
   */
  const slackAnswer = async (channel: string, triggerId?: string): Promise<ChannelResult> => {
    for (const started = Date.now(); Date.now() - started < HANG_LIMIT_MS; ) {
      const said = slack.of('chat.postEphemeral').find((c) => c.args.channel === channel);
      if (said) return { channel: 'slack', ok: DECIDED.test(String(said.args.text ?? '')) };
      if (triggerId && slack.of('views.open').some((c) => c.args.trigger_id === triggerId)) return { channel: 'slack', ok: false };
      await new Promise((r) => setTimeout(r, 5));
    }
    throw new Error(
      `hung: Slack never answered in ${channel} within ${HANG_LIMIT_MS / 1000} s; calls seen: ${slack.calls.map((c) => c.method).join(', ')}`,
    );
  };

  /** The reason modal's submission (Deny always, Approve where the stage asks for a justification). */
  const slackSubmit = async (
    who: Person,
    verb: 'approve' | 'deny',
    id: string,
    stage: number,
    reason: string | null,
  ): Promise<ChannelResult> => {
    const channel = `C0ALL${++seq}`;
    const view = {
      id: `V${seq}`,
      type: 'modal',
      callback_id: CALLBACK.decisionReason,
      private_metadata: JSON.stringify({ kind: 'request', id, decision: verb, channel, stage }),
      state: { values: { reason: { value: { type: 'plain_text_input', value: reason } } } },
    };
    // inline errors keep the modal open; otherwise it closes and the outcome follows as an ephemeral message
    if ((await slackPost({ type: 'view_submission', user: { id: slackIds[who] }, team: { id: 'T0CONTOSO' }, view })).includes('"errors"'))
      return { channel: 'slack', ok: false };
    return slackAnswer(channel);
  };

  /** An Approve click that needs no reason decides at once, after the ack. */
  const slackClick = async (who: Person, id: string, stage: number): Promise<ChannelResult> => {
    const channel = `C0ALL${++seq}`;
    const triggerId = `trig-all-${seq}`;
    await slackPost({
      type: 'block_actions',
      user: { id: slackIds[who] },
      team: { id: 'T0CONTOSO' },
      trigger_id: triggerId,
      channel: { id: channel },
      container: { type: 'message', channel_id: channel, message_ts: '1.0' },
      response_url: `${slack.origin}/response/all-${seq}`,
      actions: [{ type: 'button', action_id: ACTION.approve, value: promptValue(id, stage), block_id: 'b', action_ts: '1' }],
    });
    return slackAnswer(channel, triggerId);
  };

  const teamsInvoke = async (
    who: Person,
    verb: 'approve' | 'deny',
    id: string,
    stage: number,
    reason: string | null,
  ): Promise<ChannelResult> => {
    const activity = {
      type: 'invoke',
      name: 'adaptiveCard/action',
      channelId: 'msteams',
      serviceUrl: connector.url,
      id: `in-${++seq}`,
      timestamp: new Date().toISOString(),
      from: { id: `29:${who}`, aadObjectId: aad[who], name: who },
      recipient: { id: '28:signoff-bot', name: 'Signoff' },
      conversation: { id: '19:approvers@thread.tacv2', conversationType: 'channel', tenantId: TENANT },
      channelData: { tenant: { id: TENANT } },
      value: {
        action: { type: 'Action.Execute', verb, data: { kind: 'request', id, stage, ...(reason ? { reason } : {}) } },
        trigger: 'manual',
      },
    };
    const res = await fetch(`${base}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(activity),
    });
    const text = await res.text();
    return { channel: 'teams', ok: res.status === 200 && /"You (approved|denied)|Your (approval|decision) is recorded/.test(text) };
  };

  const emailLink = async (
    who: Person,
    verb: 'approve' | 'deny',
    id: string,
    stage: number,
    reason: string | null,
  ): Promise<ChannelResult> => {
    const token = await createLinkToken(t.tdb.db, {
      requestId: id,
      approverId: people[who].id,
      stage,
      action: verb,
      expiresAt: new Date(t.ctx.clock.now().getTime() + 86_400_000),
    });
    const res = await fetch(`${base}/links/${token}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(reason ? { reason } : {}).toString(),
    });
    await res.text();
    return { channel: 'email', ok: res.status === 200 };
  };

  const currentStage = async (id: string) =>
    (await t.tdb.db.one<{ current_stage: number }>('SELECT current_stage FROM requests WHERE id = $1', [id])).current_stage;

  return {
    t,
    s,
    slack,
    connector,
    apiKey,
    post,
    async decide(channel, who, verb, id, o) {
      // prompts, cards and links are bound to a stage: the one asked for, else the one pending when it was sent
      const stage = o.stage ?? (channel === 'api' || channel === 'cli' ? undefined : await currentStage(id));
      const reason = o.reason ?? null;
      if (who === 'nobody' || channel === 'api') return rest(who, verb, id, { stage, reason });
      if (channel === 'cli') return cli(who, verb, id, { stage, reason });
      if (channel === 'slack')
        return verb === 'approve' && !reason ? slackClick(who, id, stage!) : slackSubmit(who, verb, id, stage!, reason);
      if (channel === 'teams' && aad[who]) return teamsInvoke(who, verb, id, stage!, reason);
      if (channel === 'email') return emailLink(who, verb, id, stage!, reason);
      return rest(who, verb, id, { stage, reason });
    },
    async close() {
      await server.close();
      await slack.stop();
      await connector.stop();
      await t.close();
    },
  };
}
