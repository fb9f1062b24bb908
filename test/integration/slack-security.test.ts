import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signSlackBody } from '../../src/bots/slack/slack-verify.ts';
import { seedContoso } from '../support/fixtures.ts';
import { SIGNING_SECRET, startSlackHarness, type SlackHarness } from '../support/slack-harness.ts';

let h: SlackHarness;
beforeAll(async () => {
  h = await startSlackHarness();
  await seedContoso(h.t.tdb.db);
});
afterAll(() => h.close());

const commandBody = new URLSearchParams({
  command: '/signoff',
  text: 'request Visio',
  user_id: 'U0BOB',
  channel_id: 'C0GENERAL',
  trigger_id: 'trig-x',
}).toString();
const FORM = 'application/x-www-form-urlencoded';
const nowSec = () => Math.floor(h.clock.now() / 1000);

describe('request verification', () => {
  const refused: [string, () => Record<string, string>][] = [
    ['no headers at all', () => ({})],
    ['no signature', () => ({ 'x-slack-request-timestamp': String(nowSec()) })],
    ['no timestamp', () => ({ 'x-slack-signature': signSlackBody(SIGNING_SECRET, nowSec(), commandBody) })],
    [
      'a bad signature',
      () => ({ 'x-slack-request-timestamp': String(nowSec()), 'x-slack-signature': signSlackBody('wrong-secret', nowSec(), commandBody) }),
    ],
    [
      'a signature over another body',
      () => ({
        'x-slack-request-timestamp': String(nowSec()),
        'x-slack-signature': signSlackBody(SIGNING_SECRET, nowSec(), `${commandBody}&x=1`),
      }),
    ],
    ['a timestamp 6 minutes old', () => h.signedHeaders(commandBody, nowSec() - 360)],
    ['a timestamp 6 minutes in the future', () => h.signedHeaders(commandBody, nowSec() + 360)],
    [
      'a non-numeric timestamp',
      () => ({ 'x-slack-request-timestamp': 'soon', 'x-slack-signature': signSlackBody(SIGNING_SECRET, 'soon', commandBody) }),
    ],
  ];
  for (const [what, headers] of refused) {
    it(`refuses ${what} with 401 and does nothing`, async () => {
      h.fake.reset();
      const res = await h.post(commandBody, FORM, headers());
      expect(res.status).toBe(401);
      expect(res.body).toMatchObject({ error: 'invalid_signature', code: 'unauthenticated', status: 401 });
      expect(h.fake.calls).toEqual([]);
    });
  }

  it('refuses a url_verification with a bad signature (nothing is parsed first)', async () => {
    const body = JSON.stringify({ type: 'url_verification', challenge: 'abc' });
    const res = await h.post(body, 'application/json', {
      'x-slack-request-timestamp': String(nowSec()),
      'x-slack-signature': `v0=${'0'.repeat(64)}`,
    });
    expect(res.status).toBe(401);
  });

  it('accepts a timestamp 4 minutes away in either direction', async () => {
    for (const skew of [-240, 240]) {
      const body = JSON.stringify({ type: 'url_verification', challenge: `c${skew}` });
      const res = await h.post(body, 'application/json', h.signedHeaders(body, nowSec() + skew));
      expect(res.status).toBe(200);
      expect(res.body).toEqual({ challenge: `c${skew}` });
    }
  });

  it('refuses a forged approval click: no decision is recorded', async () => {
    const [r] = await h.t.tdb.db.query<{ id: string }>('SELECT id FROM requests LIMIT 1');
    expect(r).toBeUndefined();
    const payload = new URLSearchParams({
      payload: JSON.stringify({
        type: 'block_actions',
        user: { id: 'U0ADA' },
        actions: [{ action_id: 'signoff_request_approve', value: '00000000-0000-4000-8000-000000000000' }],
      }),
    }).toString();
    const res = await h.post(payload, FORM, {
      'x-slack-request-timestamp': String(nowSec()),
      'x-slack-signature': signSlackBody(SIGNING_SECRET, nowSec() - 1, payload),
    });
    expect(res.status).toBe(401);
    expect(h.fake.calls).toEqual([]);
  });

  it('answers 400 for a signed body that is not a Slack payload', async () => {
    const body = 'payload=%7Bnot-json';
    const res = await h.post(body, FORM);
    expect(res.status).toBe(400);
  });
});

describe('linking', () => {
  it('tells an unlinked Slack user exactly how to get linked', async () => {
    const res = await h.command('U0NOBODY', 'request Visio');
    expect(res.status).toBe(200);
    expect(res.body.response_type).toBe('ephemeral');
    expect(res.body.text).toContain('`slack: U0NOBODY`');
    expect(res.body.text).toContain('identities:');
  });

  it('shows an unlinked user the same advice on the Home tab', async () => {
    h.fake.reset();
    await h.event({ type: 'app_home_opened', user: 'U0NOBODY', tab: 'home', channel: 'D0NOBODY' });
    const [pub] = await h.fake.waitFor('views.publish');
    expect(JSON.stringify(pub!.args.view)).toContain('slack: U0NOBODY');
  });
});
