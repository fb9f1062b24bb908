import { createSlackAdapter } from '../../src/bots/slack/index.ts';
import { ACTION } from '../../src/bots/slack/slack-ids.ts';
import { signSlackBody } from '../../src/bots/slack/slack-verify.ts';
import { executeActions, questionInputId } from '../../src/bots/teams/teams-cards.ts';
import { createTeamsAdapter } from '../../src/bots/teams/index.ts';
import { readableUtc } from '../../src/core/clock.ts';
import { toDomainEvent } from '../../src/core/outbox.ts';
import { policyDefinitionSchema, type PolicyInput } from '../../src/core/policy-schema.ts';
import { createHttpApp, startHttpServer, type RunningServer } from '../../src/integrations/http/app.ts';
import { fanOut, runEffect } from '../../src/integrations/outbox-relay.ts';
import { attemptDelivery } from '../../src/integrations/webhooks/delivery-processor.ts';
import { defaultBackoff } from '../../src/integrations/webhooks/retry-policy.ts';
import { parseAllowList } from '../../src/integrations/webhooks/url-safety.ts';
import { FakeBotConnector, type RecordedCall } from './fake-bot-connector.ts';
import { FakeSlackApi, type SlackCall } from './fake-slack-api.ts';
import { defaultPolicy, seedContoso, type Seeded } from './fixtures.ts';
import { buttonsOf, stateFor, textOf } from './slack-harness.ts';
import { AAD, APPROVERS_CHANNEL, cardOf, TENANT } from './teams-harness.ts';
import { createTestContext, type TestContext } from './test-context.ts';
import { waitFor } from './wait.ts';
import { startReceiver, type Receiver } from './webhook-receiver.ts';

/**
 * One driver per chat platform, so the channel-contract suite states each scenario once. A driver acts as a person
 * would on that platform (a signed Slack request, a Teams invoke) and reads what the platform's fake received, in
 * platform-neutral terms: where a copy is (`channel:<group>`, `dm:<person>`), what it shows (dates as
 * `2026-01-05 09:07 UTC`), which buttons are left. Where the platforms genuinely differ, the driver hides it.
 */
export type Person = 'ada' | 'bob' | 'cyd' | 'dan';
const PEOPLE: Person[] = ['ada', 'bob', 'cyd', 'dan'];
const SLACK_ID: Record<Person, string> = { ada: 'U0ADA', bob: 'U0BOB', cyd: 'U0CYD', dan: 'U0DAN' };
const TEAMS_AAD: Record<Person, string> = { ada: AAD.ada, bob: AAD.bob, cyd: AAD.cyd, dan: '6f1c2a4e-0000-4000-8000-00000000da00' };
const DISPLAY: Record<Person, string> = { ada: 'Ada Admin', bob: 'Bob User', cyd: 'Cyd Approver', dan: 'Dan Security' };
const SECURITY_CHANNEL = '19:security@thread.tacv2';
const SIGNING_SECRET = 'channel-contract-signing-secret';

export interface TestApp {
  id: string;
  name: string;
}

/** One message about a request that Signoff keeps up to date: an approver prompt or the requester's own copy. */
export interface Copy {
  platform: 'slack' | 'teams';
  kind: 'prompt' | 'requester';
  /** `channel:<approver group>` or `dm:<person>` */
  where: string;
  /** the stage a prompt was posted for */
  stage: number;
  /** what it shows now (dates normalised to readableUtc) */
  text: string;
  /** what can still be pressed on it (Teams: `refresh` means per-viewer buttons are still coming) */
  buttons: string[];
  /** how often it was changed in place */
  updates: number;
  /** the platform's own handle of the message */
  ref: { conversation: string; message: string; requestId: string };
}

export interface Said {
  /** whether the click or command decided something */
  decided: boolean;
  /** what the person who acted was told (dates normalised) */
  said: string;
}

export interface ChannelDriver {
  readonly name: 'slack' | 'teams';
  /** `who` asks for `app` the way people do on this platform; returns the new request's id */
  submit(who: Person, app: TestApp, justification: string): Promise<string>;
  /** every prompt and requester copy of the request on this platform, as it looks now */
  copiesOf(requestId: string): Promise<Copy[]>;
  /** `who` presses `verb` on `copy` (with a reason where one is asked for) */
  click(copy: Copy, verb: 'approve' | 'deny', who: Person, reason?: string): Promise<Said>;
  /** thread replies under `copy` (in a personal chat or DM without threads: follow-ups about the same request), mentions as `@Display Name` */
  remindersUnder(copy: Copy): Promise<string[]>;
  /** what `who` can press on `copy` now (Teams: their own view, through the card's refresh) */
  buttonsFor(copy: Copy, who: Person): Promise<string[]>;
  /** messages posted to `who`'s DM / personal chat that are not copies (outcome notices), oldest first */
  repliesTo(who: Person): Promise<string[]>;
  /** the platform's own revoke / reapprove command, then its reason form */
  command(who: Person, verb: 'revoke' | 'reapprove', requestId: string, reason: string): Promise<Said>;
}

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

/** Dates as people read them everywhere: Slack date tokens, Teams DATE/TIME functions and ISO-with-seconds all become readableUtc. */
export function normaliseDates(text: string): string {
  return text
    .replace(/<!date\^(\d+)\^[^|>]*\|[^>]*>/g, (_, s: string) => readableUtc(new Date(Number(s) * 1000)))
    .replace(/\{\{DATE\(([^,]+), SHORT\)\}\} \{\{TIME\(\1\)\}\}/g, (_, iso: string) => readableUtc(iso))
    .replace(/(\d{4}-\d{2}-\d{2} \d{2}:\d{2}):\d{2} UTC/g, '$1 UTC');
}

export async function startChannelWorld(): Promise<ChannelWorld> {
  const slackFake = await new FakeSlackApi().start();
  const connector = await new FakeBotConnector().start();
  const receiver = await startReceiver();
  const t = await createTestContext({
    SLACK_SIGNING_SECRET: SIGNING_SECRET,
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

const groupOfChannel = (id: string) =>
  id === 'C0APPROVE' || id === APPROVERS_CHANNEL ? 'it-approvers' : id === 'C0SECURITY' || id === SECURITY_CHANNEL ? 'security' : id;
/** Slack mrkdwn as read: dates normalised, bold markers gone */
const slackText = (s: string) => normaliseDates(s).replace(/\*/g, '');
const requestIdIn = (text: string) => /Request `?([0-9a-f]{8}-[0-9a-f-]{27})`?/.exec(text)?.[1];

// ---------------------------------------------------------------------------------------------------------- Slack

const SLACK_VERB: Record<string, string> = {
  [ACTION.approve]: 'approve',
  [ACTION.deny]: 'deny',
  [ACTION.cancel]: 'cancel',
  [ACTION.installNow]: 'installNow',
  [ACTION.history]: 'history',
};
// what Slack shows the person who decided; anything else is a refusal
const SLACK_DECIDED =
  /^:(white_check_mark|ballot_box_with_check|no_entry|leftwards_arrow_with_hook): You (approved|denied|revoked)|^:ballot_box_with_check: Your approval/;

class SlackDriver implements ChannelDriver {
  readonly name = 'slack' as const;
  private seq = 0;
  constructor(
    private readonly base: string,
    private readonly fake: FakeSlackApi,
  ) {}

  private async post(body: string, contentType: string): Promise<any> {
    const at = Math.floor(Date.now() / 1000);
    const res = await fetch(`${this.base}/slack/events`, {
      method: 'POST',
      body,
      headers: {
        'content-type': contentType,
        'x-slack-request-timestamp': String(at),
        'x-slack-signature': signSlackBody(SIGNING_SECRET, at, body),
      },
    });
    const raw = await res.text();
    try {
      return raw ? JSON.parse(raw) : undefined;
    } catch {
      return raw;
    }
  }
  private interaction(payload: unknown) {
    return this.post(new URLSearchParams({ payload: JSON.stringify(payload) }).toString(), 'application/x-www-form-urlencoded');
  }
  private after(mark: number, pick: (c: SlackCall) => boolean): SlackCall | undefined {
    return this.fake.calls.slice(mark).find(pick);
  }
  private dmOf(who: Person) {
    return `D${SLACK_ID[who].slice(1)}`;
  }
  private whereOf(channel: string): string {
    const person = PEOPLE.find((p) => this.dmOf(p) === channel);
    return person ? `dm:${person}` : `channel:${groupOfChannel(channel)}`;
  }

  /** The modal that opened for this trigger, or the words said instead (an ephemeral to `user` after `mark`). */
  private async modalOrWords(mark: number, trigger: string, user: string): Promise<{ view?: any; said?: string }> {
    return waitFor(
      () => {
        const open = this.after(mark, (c) => c.method === 'views.open' && c.args.trigger_id === trigger);
        if (open) return { view: open.args.view };
        const said = this.after(mark, (c) => (c.method === 'chat.postEphemeral' && c.args.user === user) || c.method === 'response_url');
        return said ? { said: String(said.args.text ?? '') } : undefined;
      },
      `Slack to open a modal or answer ${user}`,
      { state: () => this.fake.calls.slice(mark).map((c) => c.method) },
    );
  }

  /** Submits a reason modal and waits for the ephemeral that says what happened. */
  private async submitReason(view: any, who: Person, reason: string): Promise<Said> {
    const mark = this.fake.calls.length;
    const res = await this.interaction({
      type: 'view_submission',
      user: { id: SLACK_ID[who] },
      team: { id: 'T0CONTOSO' },
      view: { ...view, id: `V${++this.seq}`, state: { values: stateFor(view, { reason }) } },
    });
    if (res?.response_action === 'errors') return { decided: false, said: Object.values(res.errors ?? {}).join(' ') };
    const said = await waitFor(
      () => this.after(mark, (c) => c.method === 'chat.postEphemeral' && c.args.user === SLACK_ID[who]),
      `the answer to ${who}'s reason`,
    );
    const text = slackText(String(said.args.text ?? ''));
    return { decided: SLACK_DECIDED.test(text), said: text };
  }

  async submit(who: Person, app: TestApp, justification: string): Promise<string> {
    const trigger = `trig-contract-${++this.seq}`;
    const mark = this.fake.calls.length;
    await this.post(
      new URLSearchParams({
        team_id: 'T0CONTOSO',
        channel_id: this.dmOf(who),
        user_id: SLACK_ID[who],
        command: '/signoff',
        text: `request ${app.name}`,
        trigger_id: trigger,
        response_url: `${this.fake.origin}/response/cmd-${this.seq}`,
      }).toString(),
      'application/x-www-form-urlencoded',
    );
    const { view } = await this.modalOrWords(mark, trigger, SLACK_ID[who]);
    if (!view) throw new Error(`no request modal for ${app.name}`);
    const res = await this.interaction({
      type: 'view_submission',
      user: { id: SLACK_ID[who] },
      team: { id: 'T0CONTOSO' },
      view: {
        id: `V${++this.seq}`,
        type: 'modal',
        callback_id: view.callback_id,
        private_metadata: view.private_metadata,
        state: { values: stateFor(view, { justification, q_usage: 'Diagrams' }) },
      },
    });
    const id = requestIdIn(textOf(res?.view?.blocks));
    if (!id) throw new Error(`Slack did not confirm the request: ${JSON.stringify(res)}`);
    return id;
  }

  async copiesOf(requestId: string): Promise<Copy[]> {
    const copies: Copy[] = [];
    for (const post of this.fake.of('chat.postMessage')) {
      if (post.args.thread_ts || !post.result) continue;
      const buttons = buttonsOf(post.args.blocks);
      const prompt = buttons.find((b) => b.action_id === ACTION.approve && b.value.startsWith(`${requestId}:`));
      const mine = buttons.some((b) => b.action_id === ACTION.cancel && b.value === requestId);
      if (!prompt && !mine) continue;
      const channel = String(post.result.channel);
      const ts = String(post.result.ts);
      const updates = this.fake.of('chat.update').filter((u) => u.args.channel === channel && u.args.ts === ts);
      const now = updates.at(-1)?.args ?? post.args;
      copies.push({
        platform: 'slack',
        kind: prompt ? 'prompt' : 'requester',
        where: this.whereOf(channel),
        stage: prompt ? Number(prompt.value.split(':')[1]) : 0,
        text: slackText(textOf(now.blocks)),
        buttons: buttonsOf(now.blocks).map((b) => SLACK_VERB[b.action_id] ?? b.action_id),
        updates: updates.length,
        ref: { conversation: channel, message: ts, requestId },
      });
    }
    return copies;
  }

  async click(copy: Copy, verb: 'approve' | 'deny', who: Person, reason?: string): Promise<Said> {
    const trigger = `trig-contract-${++this.seq}`;
    const mark = this.fake.calls.length;
    // the button as the copy carried it when posted: a click from a client that has not redrawn the message yet
    await this.interaction({
      type: 'block_actions',
      user: { id: SLACK_ID[who] },
      team: { id: 'T0CONTOSO' },
      trigger_id: trigger,
      channel: { id: copy.ref.conversation },
      container: { type: 'message', channel_id: copy.ref.conversation, message_ts: copy.ref.message },
      response_url: `${this.fake.origin}/response/act-${this.seq}`,
      actions: [
        {
          type: 'button',
          action_id: verb === 'approve' ? ACTION.approve : ACTION.deny,
          value: `${copy.ref.requestId}:${copy.stage}`,
          block_id: 'b',
          action_ts: '1',
        },
      ],
    });
    const next = await this.modalOrWords(mark, trigger, SLACK_ID[who]);
    if (next.view) return reason ? this.submitReason(next.view, who, reason) : { decided: false, said: 'asked for a reason' };
    const said = slackText(next.said!);
    return { decided: SLACK_DECIDED.test(said), said };
  }

  async buttonsFor(copy: Copy): Promise<string[]> {
    return copy.buttons;
  }

  async remindersUnder(copy: Copy): Promise<string[]> {
    return this.fake
      .of('chat.postMessage')
      .filter((p) => p.args.thread_ts === copy.ref.message && String(p.result?.channel ?? p.args.channel) === copy.ref.conversation)
      .map((p) =>
        slackText(textOf(p.args.blocks)).replace(
          /<@(U\w+)>/g,
          (_, id: string) => `@${DISPLAY[PEOPLE.find((x) => SLACK_ID[x] === id)!] ?? id}`,
        ),
      );
  }

  async repliesTo(who: Person): Promise<string[]> {
    const copies = new Set(await this.allCopyTs());
    return this.fake
      .of('chat.postMessage')
      .filter((p) => p.result && String(p.result.channel) === this.dmOf(who) && !copies.has(String(p.result.ts)))
      .map((p) => slackText(textOf(p.args.blocks) || String(p.args.text ?? '')));
  }
  private async allCopyTs(): Promise<string[]> {
    return this.fake
      .of('chat.postMessage')
      .filter((p) =>
        buttonsOf(p.args.blocks).some(
          (b) => b.action_id === ACTION.approve || b.action_id === ACTION.deny || b.action_id === ACTION.cancel,
        ),
      )
      .map((p) => String(p.result?.ts));
  }

  async command(who: Person, verb: 'revoke' | 'reapprove', requestId: string, reason: string): Promise<Said> {
    const trigger = `trig-contract-${++this.seq}`;
    const mark = this.fake.calls.length;
    const res = await this.post(
      new URLSearchParams({
        team_id: 'T0CONTOSO',
        channel_id: this.dmOf(who),
        user_id: SLACK_ID[who],
        command: '/signoff',
        text: `${verb} ${requestId.slice(0, 8)}`,
        trigger_id: trigger,
        response_url: `${this.fake.origin}/response/cmd-${this.seq}`,
      }).toString(),
      'application/x-www-form-urlencoded',
    );
    // a refusal is the command's own ephemeral answer
    if (res?.text) return { decided: false, said: slackText(String(res.text)) };
    const next = await this.modalOrWords(mark, trigger, SLACK_ID[who]);
    if (!next.view) return { decided: false, said: slackText(next.said!) };
    return this.submitReason(next.view, who, reason);
  }
}

// ---------------------------------------------------------------------------------------------------------- Teams

const TEAMS_DECIDED = /^You (approved|denied|revoked)|^Your (approval|decision) is recorded/;

/** Every text a person reads on a card: text blocks and facts, dates normalised. */
function cardText(card: unknown): string {
  const out: string[] = [];
  const walk = (v: unknown) => {
    if (Array.isArray(v)) return v.forEach(walk);
    if (!v || typeof v !== 'object') return;
    const o = v as Record<string, unknown>;
    if (o.type === 'TextBlock' && typeof o.text === 'string') out.push(o.text);
    if (typeof o.title === 'string' && typeof o.value === 'string') out.push(`${o.title}: ${o.value}`);
    for (const [k, x] of Object.entries(o)) if (k !== 'refresh' && k !== 'actions') walk(x);
  };
  walk(card);
  return normaliseDates(out.join('\n'));
}

/** The banner an invoke answer carries: the one styled container that is neither the header (bleeds) nor the outcome (separated). */
function bannerOf(card: any): string {
  const banner = (card?.body ?? []).find((b: any) => b.type === 'Container' && b.style && !b.bleed && !b.separator);
  return banner ? cardText(banner) : '';
}

class TeamsDriver implements ChannelDriver {
  readonly name = 'teams' as const;
  private seq = 0;
  /** the form card each request was submitted from: it becomes the requester's copy */
  private readonly requesterCopies = new Map<string, { conversation: string; message: string }>();
  constructor(
    private readonly base: string,
    private readonly connector: FakeBotConnector,
  ) {}

  private activity(who: Person, conversation: string, extra: Record<string, unknown>) {
    return {
      channelId: 'msteams',
      serviceUrl: this.connector.url,
      id: `in-${++this.seq}`,
      timestamp: new Date().toISOString(),
      from: { id: `29:${who}`, aadObjectId: TEAMS_AAD[who], name: who },
      recipient: { id: '28:signoff-bot', name: 'Signoff' },
      conversation: { id: conversation, conversationType: conversation.startsWith('19:') ? 'channel' : 'personal', tenantId: TENANT },
      channelData: { tenant: { id: TENANT } },
      ...extra,
    };
  }
  private async send(activity: Record<string, unknown>): Promise<{ status: number; body: any }> {
    const res = await fetch(`${this.base}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
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
  private invoke(who: Person, conversation: string, replyToId: string, verb: string, data: Record<string, unknown>) {
    return this.send(
      this.activity(who, conversation, {
        type: 'invoke',
        name: 'adaptiveCard/action',
        replyToId,
        value: { action: { type: 'Action.Execute', verb, data }, trigger: 'manual' },
      }),
    );
  }
  /** `who` writes to Signoff in their personal chat; the card Signoff answers with */
  private async say(who: Person, text: string): Promise<RecordedCall> {
    const mark = this.connector.calls.length;
    await this.send(this.activity(who, `a:personal-${who}`, { type: 'message', text }));
    const reply = this.connector.calls
      .slice(mark)
      .find((c) => c.status < 300 && (c.kind === 'reply' || c.kind === 'send') && c.conversationId === `a:personal-${who}`);
    if (!reply) throw new Error(`Teams did not answer "${text}"`);
    return reply;
  }

  install(channel: string) {
    return this.send({
      ...this.activity('ada', channel, { type: 'conversationUpdate', membersAdded: [{ id: '28:signoff-bot', name: 'Signoff' }] }),
      channelData: {
        tenant: { id: TENANT },
        team: { id: '19:team-it@thread.tacv2', name: 'IT' },
        channel: { id: channel },
        eventType: 'teamMemberAdded',
      },
    });
  }

  /** Personal chats: the one a person wrote from, or one the bot created with them as the member. */
  private personOf(conversation: string): Person | undefined {
    const named = /^a:personal-(\w+)$/.exec(conversation)?.[1] as Person | undefined;
    if (named) return named;
    const created = this.connector.of('create').find((c) => c.id === conversation);
    const aad = created?.body?.members?.[0]?.aadObjectId;
    return PEOPLE.find((p) => TEAMS_AAD[p] === aad);
  }
  private whereOf(conversation: string): string {
    const person = this.personOf(conversation);
    return person ? `dm:${person}` : `channel:${groupOfChannel(conversation)}`;
  }
  private current(conversation: string, message: string, posted: any): { card: any; updates: number } {
    const updates = this.connector.of('update').filter((u) => u.conversationId === conversation && u.activityId === message);
    return { card: cardOf((updates.at(-1) ?? { body: posted }).body), updates: updates.length };
  }
  private prompts(): RecordedCall[] {
    return this.connector.of('send').filter((c) => c.body?.summary === 'Approval needed');
  }

  async submit(who: Person, app: TestApp, justification: string): Promise<string> {
    const form = await this.say(who, `request ${app.name}`);
    const action = executeActions(cardOf(form.body)).find((a) => a.verb === 'submitRequest');
    if (!action) throw new Error(`no request form for ${app.name}: ${cardText(cardOf(form.body))}`);
    const res = await this.invoke(who, form.conversationId, form.id!, 'submitRequest', {
      ...action.data,
      justification,
      [questionInputId('usage')]: 'Diagrams',
    });
    const id = res.body?.value?.refresh?.action?.data?.id as string | undefined;
    if (!id) throw new Error(`Teams did not confirm the request: ${JSON.stringify(res.body)}`);
    this.requesterCopies.set(id, { conversation: form.conversationId, message: form.id! });
    return id;
  }

  async copiesOf(requestId: string): Promise<Copy[]> {
    const copies: Copy[] = [];
    for (const post of this.prompts()) {
      const posted = cardOf(post.body);
      if (!JSON.stringify(posted).includes(requestId) && !cardText(posted).includes(`Request ${requestId.slice(0, 8)}`)) continue;
      // base cards carry no stage; their status line says which one was waiting when it was posted
      const stage = Number(/stage (\d+) of \d+/.exec(cardText(posted))?.[1] ?? 1) - 1;
      copies.push(this.copy('prompt', post.conversationId, post.id!, post.body, requestId, stage));
    }
    const mine = this.requesterCopies.get(requestId);
    if (mine) {
      const form = this.connector.calls.find((c) => c.id === mine.message);
      copies.push(this.copy('requester', mine.conversation, mine.message, form?.body, requestId, 0));
    }
    return copies;
  }
  private copy(kind: Copy['kind'], conversation: string, message: string, posted: any, requestId: string, stage: number): Copy {
    const { card, updates } = this.current(conversation, message, posted);
    return {
      platform: 'teams',
      kind,
      where: this.whereOf(conversation),
      stage,
      text: cardText(card),
      buttons: executeActions(card).map((a) => a.verb),
      updates,
      ref: { conversation, message, requestId },
    };
  }

  /**
   * Teams shows each approver their own buttons through the card's refresh; the driver does what the client does
   * (a refresh as the clicker) and presses the button there. Someone who is shown none (the requester, a
   * non-member, a settled stage) clicks what a card not yet refreshed still offers: the copy's stage-bound action.
   */
  async click(copy: Copy, verb: 'approve' | 'deny', who: Person, reason?: string): Promise<Said> {
    const { conversation, message, requestId } = copy.ref;
    const refreshed = await this.invoke(who, conversation, message, 'refresh', { kind: 'request', id: requestId });
    const offered = executeActions(refreshed.body?.value).find((a) => a.verb === verb);
    const data = { ...(offered?.data ?? { kind: 'request', id: requestId, stage: copy.stage }), ...(reason ? { reason } : {}) };
    return this.answer(await this.invoke(who, conversation, message, verb, data));
  }
  async remindersUnder(copy: Copy): Promise<string[]> {
    const { conversation, message } = copy.ref;
    const posted = this.connector.calls.find((c) => c.id === message);
    const app = /^Application: (.+)$/m.exec(cardText(cardOf(posted?.body)))?.[1] ?? '';
    const copies = new Set(this.prompts().map((p) => p.id));
    const mentions = (t: string) => t.replace(/<at>([^<]+)<\/at>/g, '@$1');
    // a channel card gets replies in its thread; a personal chat has no threads, so follow-ups naming the same app
    const replies = this.connector.of('reply').filter((c) => c.conversationId === conversation && c.activityId === message);
    const followUps = this.personOf(conversation)
      ? this.connector
          .of('send')
          .filter((c) => c.conversationId === conversation && !copies.has(c.id!) && app && cardText(cardOf(c.body)).includes(app))
      : [];
    return [...replies, ...followUps].map((c) => mentions(cardText(cardOf(c.body))));
  }

  async buttonsFor(copy: Copy, who: Person): Promise<string[]> {
    const { conversation, message, requestId } = copy.ref;
    const card = this.current(conversation, message, this.connector.calls.find((c) => c.id === message)?.body).card;
    const userIds: string[] = card?.refresh?.userIds ?? [];
    // people the card does not name see it as posted; the others get their own view from a refresh
    if (!userIds.includes(`29:${who}`) && !userIds.includes(TEAMS_AAD[who])) return executeActions(card?.body).map((a) => a.verb);
    const refreshed = await this.invoke(who, conversation, message, 'refresh', { kind: 'request', id: requestId });
    return executeActions(refreshed.body?.value?.body).map((a) => a.verb);
  }

  private answer(res: { status: number; body: any }): Said {
    const said = res.body?.type === 'application/vnd.microsoft.error' ? String(res.body.value?.message ?? '') : bannerOf(res.body?.value);
    return { decided: res.status === 200 && TEAMS_DECIDED.test(said), said };
  }

  async repliesTo(who: Person): Promise<string[]> {
    const copies = new Set([...this.prompts().map((p) => p.id), ...[...this.requesterCopies.values()].map((c) => c.message)]);
    return this.connector
      .posted()
      .filter((c) => this.personOf(c.conversationId) === who && !copies.has(c.id!))
      .map((c) => cardText(cardOf(c.body)));
  }

  async command(who: Person, verb: 'revoke' | 'reapprove', requestId: string, reason: string): Promise<Said> {
    const form = await this.say(who, `${verb} ${requestId.slice(0, 8)}`);
    const action = executeActions(cardOf(form.body)).find((a) => a.verb === verb);
    if (!action) return { decided: false, said: cardText(cardOf(form.body)) };
    return this.answer(await this.invoke(who, form.conversationId, form.id!, verb, { ...action.data, reason }));
  }
}
