import express from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createTeamsAdapter, type TeamsAdapter } from '../../src/bots/teams/index.ts';
import { toDomainEvent } from '../../src/core/outbox.ts';
import type { PolicyInput } from '../../src/core/policy-schema.ts';
import { FakeBotConnector } from './fake-bot-connector.ts';
import { defaultPolicy, seedContoso, type Seeded } from './fixtures.ts';
import { createTestContext, type TestContext } from './test-context.ts';

export const AAD = {
  ada: '6f1c2a4e-0000-4000-8000-00000000ada0',
  bob: '6f1c2a4e-0000-4000-8000-00000000b0b0',
  cyd: '6f1c2a4e-0000-4000-8000-00000000c0d0',
  stranger: '6f1c2a4e-0000-4000-8000-0000000000ff',
};
export const TENANT = '72f988bf-0000-4000-8000-000000000001';
export const APPROVERS_CHANNEL = '19:approvers@thread.tacv2';
const BOT = { id: '28:signoff-bot', name: 'Signoff' };

export interface TeamsHarness {
  t: TestContext;
  s: Seeded;
  connector: FakeBotConnector;
  adapter: TeamsAdapter;
  url: string;
  post(activity: Record<string, unknown>, headers?: Record<string, string>): Promise<{ status: number; body: any }>;
  message(user: keyof typeof AAD, text: string): Record<string, unknown>;
  invoke(
    user: keyof typeof AAD,
    verb: string,
    data: Record<string, unknown>,
    opts?: { replyToId?: string; conversationId?: string; trigger?: 'manual' | 'automatic' },
  ): Record<string, unknown>;
  installInChannel(channelId?: string): Record<string, unknown>;
  /** hands every outbox row not handled yet to the Teams notifier, in commit order */
  drain(): Promise<string[]>;
  close(): Promise<void>;
}

export async function startTeamsHarness(opts: { env?: Record<string, string>; policy?: PolicyInput } = {}): Promise<TeamsHarness> {
  const t = await createTestContext({ TEAMS_EMULATOR: '1', ...opts.env });
  const s = await seedContoso(t.tdb.db, opts.policy ?? defaultPolicy);
  const connector = await new FakeBotConnector().start();
  const adapter = createTeamsAdapter(t.ctx, { minSendIntervalMs: 0 });
  const app = express();
  adapter.mount(app);
  const server: Server = await new Promise((r) => {
    const srv = app.listen(0, '127.0.0.1', () => r(srv));
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/messages`;
  const handled = new Set<string>();
  let seq = 0;
  const from = (user: keyof typeof AAD) => ({ id: `29:${user}`, aadObjectId: AAD[user], name: user });
  const personal = (user: keyof typeof AAD) => ({ id: `a:personal-${user}`, conversationType: 'personal', tenantId: TENANT });
  const base = (user: keyof typeof AAD) => ({
    channelId: 'msteams',
    serviceUrl: connector.url,
    id: `in-${++seq}`,
    timestamp: new Date().toISOString(),
    from: from(user),
    recipient: BOT,
    conversation: personal(user),
    channelData: { tenant: { id: TENANT } },
  });
  return {
    t,
    s,
    connector,
    adapter,
    url,
    post: (activity, headers = {}) => postActivity(url, activity, headers),
    message: (user, text) => ({ ...base(user), type: 'message', text }),
    invoke: (user, verb, data, o = {}) => ({
      ...base(user),
      type: 'invoke',
      name: 'adaptiveCard/action',
      replyToId: o.replyToId,
      ...(o.conversationId
        ? {
            conversation: {
              id: o.conversationId,
              conversationType: o.conversationId.startsWith('19:') ? 'channel' : 'personal',
              tenantId: TENANT,
            },
          }
        : {}),
      value: { action: { type: 'Action.Execute', verb, data }, trigger: o.trigger ?? 'manual' },
    }),
    installInChannel: (channelId = APPROVERS_CHANNEL) => ({
      ...base('ada'),
      type: 'conversationUpdate',
      membersAdded: [BOT],
      conversation: { id: channelId, conversationType: 'channel', isGroup: true, tenantId: TENANT },
      channelData: {
        tenant: { id: TENANT },
        team: { id: '19:team-it@thread.tacv2', name: 'IT' },
        channel: { id: channelId },
        eventType: 'teamMemberAdded',
      },
    }),
    async drain() {
      const rows = await t.tdb.db.query<{ id: string; payload: any }>('SELECT id, payload FROM outbox ORDER BY seq');
      const done: string[] = [];
      for (const row of rows) {
        if (handled.has(row.id)) continue;
        await adapter.notifier.handle(toDomainEvent(row));
        handled.add(row.id);
        done.push(row.payload.type);
      }
      return done;
    },
    async close() {
      await new Promise((r) => server.close(r));
      await connector.stop();
      await t.close();
    },
  };
}

/** The adaptive card in a posted/updated activity body. */
export const cardOf = (body: any) => body?.attachments?.[0]?.content;

/** POSTs an activity to the bot's endpoint; the body comes back parsed when it is JSON. */
export async function postActivity(
  url: string,
  activity: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(activity),
  });
  const text = await res.text();
  let body: any = text;
  try {
    body = text ? JSON.parse(text) : undefined;
  } catch {
    /* plain text */
  }
  return { status: res.status, body };
}
