import { describe, expect, it } from 'vitest';
import { slackFetch } from '../../src/bots/slack/slack-http.ts';
import { dropsReusedConnections, useLocalServer } from '../support/local-http.ts';

const PATH = '/api/chat.postMessage';
const listen = useLocalServer();

describe('slackFetch', () => {
  it('posts the body with its headers and gives back status, headers and JSON as fetch would', async () => {
    let seen: { method?: string; auth?: string; type?: string; body: string } = { body: '' };
    const url = await listen((req, res) => {
      let body = '';
      req.on('data', (c) => (body += c));
      req.on('end', () => {
        seen = { method: req.method, auth: req.headers.authorization, type: req.headers['content-type'], body };
        res.writeHead(429, { 'retry-after': '7', 'content-type': 'application/json' }).end('{"ok":false,"error":"ratelimited"}');
      });
    }, PATH);
    const res = await slackFetch(url, {
      method: 'POST',
      headers: { Authorization: 'Bearer xoxb-test', 'Content-Type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ channel: 'C1', text: 'héllo' }),
    });
    expect(seen).toEqual({
      method: 'POST',
      auth: 'Bearer xoxb-test',
      type: 'application/x-www-form-urlencoded',
      body: 'channel=C1&text=h%C3%A9llo',
    });
    expect(res.status).toBe(429);
    expect(res.ok).toBe(false);
    expect(res.headers.get('retry-after')).toBe('7');
    expect(await res.json()).toEqual({ ok: false, error: 'ratelimited' });
    expect(res.url).toBe(url);
  });

  it('sends again on a new connection when the server drops a kept-alive one as it is reused', async () => {
    const server = dropsReusedConnections((res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}'));
    const url = await listen(server.handler, PATH);
    for (let i = 0; i < 3; i++) expect((await slackFetch(url, { method: 'POST', body: '{}' })).status).toBe(200);
    expect(server.counts.answered).toBe(3);
    expect(server.counts.dropped).toBeGreaterThan(0);
  });

  it('gives up when its signal times out', async () => {
    const url = await listen(() => undefined, PATH);
    await expect(slackFetch(url, { method: 'POST', body: '{}', signal: AbortSignal.timeout(50) })).rejects.toThrow();
  });

  it('gives up when its deadline passes, without sending again on a new connection', async () => {
    let received = 0;
    const url = await listen(() => {
      received++;
    }, PATH);
    await expect(slackFetch(url, { method: 'POST', body: '{}', timeoutMs: 50 })).rejects.toThrow(/timeout/);
    expect(received).toBe(1);
  });
});
