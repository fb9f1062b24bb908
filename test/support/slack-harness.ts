import express from 'express';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createSlackAdapter, type SlackAdapter } from '../../src/bots/slack/index.ts';
import { signSlackBody } from '../../src/bots/slack/slack-verify.ts';
import { toDomainEvent } from '../../src/core/outbox.ts';
import { FakeSlackApi } from './fake-slack-api.ts';
import { createTestContext, type TestContext } from './test-context.ts';

export const SIGNING_SECRET = 'test-signing-secret-0123456789';

/** Signoff's Slack adapter on a real Express server, talking to the fake Web API, plus a signed-request client. */
export interface SlackHarness {
  t: TestContext;
  fake: FakeSlackApi;
  adapter: SlackAdapter;
  baseUrl: string;
  /** wall clock the adapter sees (signature window, rate-limit pauses); tests move it with `skewMs` */
  clock: { skewMs: number; now(): number };
  post(body: string, contentType: string, headers?: Record<string, string>): Promise<{ status: number; body: any; raw: string }>;
  signedHeaders(body: string, atSeconds?: number): Record<string, string>;
  command(user: string, text: string, opts?: { channel?: string }): Promise<{ status: number; body: any }>;
  action(
    user: string,
    actionId: string,
    value: string,
    opts?: { channel?: string; messageTs?: string; view?: { id: string; type: string } },
  ): Promise<{ status: number; body: any }>;
  submit(user: string, view: any, values: Record<string, unknown>): Promise<{ status: number; body: any }>;
  suggest(user: string, actionId: string, value: string): Promise<{ status: number; body: any }>;
  event(event: Record<string, unknown>): Promise<{ status: number; body: any }>;
  /** hands every outbox row not yet handled to the Slack notifier, in commit order */
  drain(): Promise<string[]>;
  close(): Promise<void>;
}

let triggerSeq = 0;

/**
 * `modalBudgetMs` is generous by default: tests read the modal views.open carries, which on a loaded machine
 * would otherwise sometimes be the "Loading…" placeholder (slack-robustness covers that path on purpose).
 */
export async function startSlackHarness(
  opts: { ackBudgetMs?: number; modalBudgetMs?: number; pool?: { poolSize?: number; connectTimeoutMs?: number } } = {},
): Promise<SlackHarness> {
  const fake = await new FakeSlackApi().start();
  const t = await createTestContext(
    { SLACK_SIGNING_SECRET: SIGNING_SECRET, SLACK_BOT_TOKEN: 'xoxb-test-token', SLACK_API_URL: fake.url },
    opts.pool,
  );
  const clock = {
    skewMs: 0,
    now() {
      return Date.now() + this.skewMs;
    },
  };
  const adapter = createSlackAdapter(t.ctx, {
    ackBudgetMs: opts.ackBudgetMs,
    modalBudgetMs: opts.modalBudgetMs ?? 10_000,
    now: () => clock.now(),
  });
  const app = express();
  adapter.mount(app);
  const server: Server = await new Promise((resolve) => {
    const s = app.listen(0, '127.0.0.1', () => resolve(s));
  });
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const handled = new Set<string>();

  const signedHeaders = (body: string, atSeconds = Math.floor(clock.now() / 1000)) => ({
    'x-slack-request-timestamp': String(atSeconds),
    'x-slack-signature': signSlackBody(SIGNING_SECRET, atSeconds, body),
  });
  const post = async (body: string, contentType: string, headers: Record<string, string> = signedHeaders(body)) => {
    const res = await fetch(`${baseUrl}/slack/events`, { method: 'POST', headers: { 'content-type': contentType, ...headers }, body });
    const raw = await res.text();
    let parsed: any;
    try {
      parsed = raw ? JSON.parse(raw) : undefined;
    } catch {
      parsed = raw;
    }
    return { status: res.status, body: parsed, raw };
  };
  const form = (fields: Record<string, string>) => new URLSearchParams(fields).toString();
  const interaction = (payload: unknown) => post(form({ payload: JSON.stringify(payload) }), 'application/x-www-form-urlencoded');

  return {
    t,
    fake,
    adapter,
    baseUrl,
    clock,
    post,
    signedHeaders,
    command: (user, text, o = {}) =>
      post(
        form({
          token: 'legacy',
          team_id: 'T0CONTOSO',
          channel_id: o.channel ?? 'C0GENERAL',
          user_id: user,
          command: '/signoff',
          text,
          trigger_id: `trig-${++triggerSeq}`,
          response_url: `${fake.origin}/response/cmd-${triggerSeq}`,
        }),
        'application/x-www-form-urlencoded',
      ),
    action: (user, actionId, value, o = {}) =>
      interaction({
        type: 'block_actions',
        user: { id: user },
        team: { id: 'T0CONTOSO' },
        trigger_id: `trig-${++triggerSeq}`,
        ...(o.view
          ? { container: { type: 'view', view_id: o.view.id }, view: o.view }
          : {
              channel: { id: o.channel ?? 'C0APPROVE' },
              container: { type: 'message', channel_id: o.channel ?? 'C0APPROVE', message_ts: o.messageTs ?? '1.0' },
              response_url: `${fake.origin}/response/act-${triggerSeq}`,
            }),
        actions: [{ type: 'button', action_id: actionId, value, block_id: 'b', action_ts: '1' }],
      }),
    submit: (user, view, values) =>
      interaction({
        type: 'view_submission',
        user: { id: user },
        team: { id: 'T0CONTOSO' },
        view: {
          id: view.id ?? 'V1',
          type: 'modal',
          callback_id: view.callback_id,
          private_metadata: view.private_metadata ?? '',
          state: { values: stateFor(view, values) },
        },
      }),
    suggest: (user, actionId, value) =>
      interaction({ type: 'block_suggestion', user: { id: user }, action_id: actionId, block_id: 'app', value }),
    event: (event) => {
      const body = JSON.stringify({
        type: 'event_callback',
        team_id: 'T0CONTOSO',
        event,
        event_id: `Ev${++triggerSeq}`,
        event_time: Math.floor(Date.now() / 1000),
      });
      return post(body, 'application/json');
    },
    async drain() {
      const rows = await t.tdb.db.query<{ id: string; type: string; payload: any }>('SELECT id, type, payload FROM outbox ORDER BY seq');
      const done: string[] = [];
      for (const r of rows) {
        if (handled.has(r.id)) continue;
        await adapter.notifier.handle(toDomainEvent(r));
        handled.add(r.id);
        done.push(r.type);
      }
      return done;
    },
    async close() {
      await new Promise<void>((resolve) => server.close(() => resolve()));
      await fake.stop();
      await t.close();
    },
  };
}

/**
 * Builds view.state.values the way Slack does from what a user entered: a string for text inputs, the
 * option value for selects (an array for multi-selects). Blocks not named keep their initial option.
 */
export function stateFor(view: any, values: Record<string, unknown>): Record<string, Record<string, unknown>> {
  const state: Record<string, Record<string, unknown>> = {};
  for (const block of view.blocks ?? []) {
    if (block.type !== 'input') continue;
    const el = block.element;
    const given = values[block.block_id];
    let v: Record<string, unknown>;
    if (el.type === 'plain_text_input') v = { type: el.type, value: given === undefined ? null : String(given) };
    else if (el.type === 'multi_static_select')
      v = { type: el.type, selected_options: ((given as string[]) ?? []).map((x) => ({ value: x })) };
    else {
      const value = given === undefined ? el.initial_option?.value : given;
      v = { type: el.type, selected_option: value === undefined || value === null ? null : { value } };
    }
    state[block.block_id] = { [el.action_id]: v };
  }
  return state;
}

/** Every text a user would read in a set of blocks, flattened (for assertions on what is shown). */
export function textOf(blocks: any[] | undefined): string {
  const out: string[] = [];
  const walk = (x: any) => {
    if (!x || typeof x !== 'object') return;
    if (Array.isArray(x)) return x.forEach(walk);
    if (typeof x.text === 'string') out.push(x.text);
    for (const [k, v] of Object.entries(x)) if (k !== 'text' || typeof v !== 'string') walk(v);
  };
  walk(blocks);
  return out.join('\n');
}

export const buttonsOf = (blocks: any[] | undefined): { action_id: string; value: string; text: string }[] =>
  (blocks ?? [])
    .filter((b) => b.type === 'actions')
    .flatMap((b) =>
      b.elements.filter((e: any) => e.type === 'button').map((e: any) => ({ action_id: e.action_id, value: e.value, text: e.text.text })),
    )
    .concat(
      (blocks ?? [])
        .filter((b) => b.accessory?.type === 'button')
        .map((b) => ({ action_id: b.accessory.action_id, value: b.accessory.value, text: b.accessory.text.text })),
    );
