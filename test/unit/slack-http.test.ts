import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { slackFetch } from '../../src/bots/slack/slack-http.ts';

let server: http.Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function listen(handler: http.RequestListener): Promise<string> {
  server = http.createServer(handler);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/chat.postMessage`;
}

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
    });
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
    const served = new WeakMap<object, number>();
    let answered = 0;
    const url = await listen((req, res) => {
      const n = (served.get(req.socket) ?? 0) + 1;
      served.set(req.socket, n);
      if (n > 1) {
        req.socket.destroy();
        return;
      }
      req.resume().on('end', () => {
        answered++;
        res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
      });
    });
    for (let i = 0; i < 3; i++) expect((await slackFetch(url, { method: 'POST', body: '{}' })).status).toBe(200);
    expect(answered).toBe(3);
  });

  it('gives up when its signal times out', async () => {
    const url = await listen(() => undefined);
    await expect(slackFetch(url, { method: 'POST', body: '{}', signal: AbortSignal.timeout(50) })).rejects.toThrow();
  });
});
