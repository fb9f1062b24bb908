import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seedContoso } from '../support/fixtures.ts';
import { startSlackHarness, type SlackHarness } from '../support/slack-harness.ts';

let h: SlackHarness;
beforeAll(async () => {
  h = await startSlackHarness();
  await seedContoso(h.t.tdb.db);
});
afterAll(() => h.close());

describe('Slack requests no listener handles', () => {
  it('an unknown button is acknowledged with an empty 200 and does nothing', async () => {
    h.fake.reset();
    const res = await h.action('U0ADA', 'someone_elses_button', 'x');
    expect(res.status).toBe(200);
    expect(res.body).toBeUndefined();
    expect(h.fake.calls).toEqual([]);
  });

  it('a signed JSON body that is no event is acknowledged and ignored', async () => {
    h.fake.reset();
    const res = await h.post(JSON.stringify({ type: 'something_new' }), 'application/json');
    expect(res.status).toBe(200);
    expect(h.fake.calls).toEqual([]);
  });

  it('a view_closed payload is acknowledged', async () => {
    const body = new URLSearchParams({
      payload: JSON.stringify({
        type: 'view_closed',
        user: { id: 'U0BOB' },
        view: { id: 'V1', type: 'modal', callback_id: 'signoff_request_modal' },
      }),
    }).toString();
    expect((await h.post(body, 'application/x-www-form-urlencoded')).status).toBe(200);
  });
});

describe('Slack retries', () => {
  it('a retried event (X-Slack-Retry-Num) is acknowledged and handled: the Home tab is published', async () => {
    h.fake.reset();
    const body = JSON.stringify({
      type: 'event_callback',
      team_id: 'T0CONTOSO',
      event_id: 'EvRetry',
      event: { type: 'app_home_opened', user: 'U0BOB', tab: 'home', channel: 'D0BOB' },
    });
    const res = await h.post(body, 'application/json', {
      ...h.signedHeaders(body),
      'x-slack-retry-num': '1',
      'x-slack-retry-reason': 'http_timeout',
    });
    expect(res.status).toBe(200);
    const [pub] = await h.fake.waitFor('views.publish');
    expect(pub!.args.user_id).toBe('U0BOB');
  });
});
