import { ACTION } from '../../src/bots/slack/slack-ids.ts';
import { signSlackBody } from '../../src/bots/slack/slack-verify.ts';
import {
  type ChannelDriver,
  type Copy,
  DISPLAY,
  groupOfChannel,
  normaliseDates,
  PEOPLE,
  type Person,
  type Said,
  type TestApp,
} from './channel-driver.ts';
import type { FakeSlackApi, SlackCall } from './fake-slack-api.ts';
import { buttonsOf, stateFor, textOf } from './slack-harness.ts';
import { waitFor } from './wait.ts';

/**
 * The contract suite's Slack driver: people act through signed slash commands, block actions and modal
 * submissions to `/slack/events`, and what they see is read back from the fake Slack Web API's calls.
 */
const SLACK_ID: Record<Person, string> = { ada: 'U0ADA', bob: 'U0BOB', cyd: 'U0CYD', dan: 'U0DAN' };
export const SLACK_SIGNING_SECRET = 'channel-contract-signing-secret';
/** Slack mrkdwn as read: dates normalised, bold markers gone */
const slackText = (s: string) => normaliseDates(s).replace(/\*/g, '');
const requestIdIn = (text: string) => /Request `?([0-9a-f]{8}-[0-9a-f-]{27})`?/.exec(text)?.[1];

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

export class SlackDriver implements ChannelDriver {
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
        'x-slack-signature': signSlackBody(SLACK_SIGNING_SECRET, at, body),
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
