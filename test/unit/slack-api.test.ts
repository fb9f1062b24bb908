import type { ServerResponse } from 'node:http';
import { describe, expect, it } from 'vitest';
import { SlackApi, SlackApiError } from '../../src/bots/slack/slack-api.ts';
import { createLogger } from '../../src/logger.ts';
import { useLocalServer } from '../support/local-http.ts';

const listen = useLocalServer();

/** A Web API stand-in that records the raw request and answers with `answer`. */
async function slackAt(answer: (res: ServerResponse) => void, now?: () => number) {
  const seen: { path?: string; headers?: Record<string, unknown>; body: string }[] = [];
  const url = await listen((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      seen.push({ path: req.url, headers: req.headers, body });
      answer(res);
    });
  }, '/api/chat.postMessage');
  const api = new SlackApi('xoxb-test', { apiUrl: url.replace(/chat\.postMessage$/, ''), logger: createLogger('silent'), now });
  return { api, seen };
}
const json =
  (status: number, body: unknown, headers: Record<string, string> = {}) =>
  (res: ServerResponse) =>
    res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));

describe('SlackApi', () => {
  it("posts as Slack's SDK does: form-encoded, objects as JSON, null and undefined left out, the token as a bearer header", async () => {
    const { api, seen } = await slackAt(json(200, { ok: true, channel: 'C1', ts: '1.2' }));
    const blocks = [{ type: 'section', text: { type: 'mrkdwn', text: 'héllo & *bye*' } }];
    expect(await api.postMessage({ channel: 'C1', text: 'héllo & bye', blocks, thread_ts: undefined })).toEqual({
      channel: 'C1',
      ts: '1.2',
    });
    expect(seen).toHaveLength(1);
    const [call] = seen;
    expect(call!.path).toBe('/api/chat.postMessage');
    expect(call!.headers).toMatchObject({ authorization: 'Bearer xoxb-test', 'content-type': 'application/x-www-form-urlencoded' });
    expect(Object.fromEntries(new URLSearchParams(call!.body))).toEqual({
      channel: 'C1',
      text: 'héllo & bye',
      blocks: JSON.stringify(blocks),
      unfurl_links: 'false',
      unfurl_media: 'false',
    });
  });

  it('maps what Slack answers: a platform error, a 429 with or without Retry-After, a 5xx, a body that is not JSON', async () => {
    const cases: [(res: ServerResponse) => void, Partial<SlackApiError>][] = [
      [json(200, { ok: false, error: 'channel_not_found' }), { slackError: 'channel_not_found', transient: false, gone: true }],
      [json(200, { ok: false, error: 'internal_error' }), { slackError: 'internal_error', transient: true }],
      [
        json(429, { ok: false, error: 'ratelimited' }, { 'retry-after': '7' }),
        { slackError: 'ratelimited', transient: true, retryAfterMs: 7000 },
      ],
      [json(429, { ok: false }), { slackError: 'ratelimited', transient: true, retryAfterMs: 1000 }],
      [json(503, { ok: false }), { slackError: 'http_503', transient: true }],
      [json(404, { ok: false }), { slackError: 'http_404', transient: false }],
      [(res) => res.writeHead(200).end('<html>'), { transient: true }],
    ];
    for (const [answer, expected] of cases) {
      const { api } = await slackAt(answer);
      const e = await api.postMessage({ channel: 'C1', text: 'x' }).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(SlackApiError);
      expect(e).toMatchObject({ method: 'chat.postMessage', ...expected });
    }
  });

  it('fails fast while Slack asked it to wait, without calling, and calls again once the wait is over', async () => {
    let now = 1_000_000;
    const { api, seen } = await slackAt(json(429, { ok: false }, { 'retry-after': '30' }), () => now);
    await expect(api.postMessage({ channel: 'C1', text: 'x' })).rejects.toMatchObject({ retryAfterMs: 30_000 });
    now += 10_000;
    await expect(api.postMessage({ channel: 'C1', text: 'x' })).rejects.toMatchObject({ slackError: 'ratelimited', retryAfterMs: 20_000 });
    expect(seen).toHaveLength(1);
    now += 20_000;
    await expect(api.postMessage({ channel: 'C1', text: 'x' })).rejects.toMatchObject({ retryAfterMs: 30_000 });
    expect(seen).toHaveLength(2);
  });
});
