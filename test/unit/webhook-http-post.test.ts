import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { postOnce } from '../../src/integrations/webhooks/http-post.ts';
import { parseAllowList } from '../../src/integrations/webhooks/url-safety.ts';

const allow = parseAllowList(['127.0.0.1']);
let server: http.Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
  server = undefined;
});

async function listen(handler: http.RequestListener): Promise<string> {
  server = http.createServer(handler);
  await new Promise<void>((r) => server!.listen(0, '127.0.0.1', r));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`;
}

const post = (url: string) => postOnce({ url, headers: { 'content-type': 'application/json' }, body: '{}', timeoutMs: 5000, allow });

describe('webhook POST connections', () => {
  it('reuses one connection for consecutive deliveries to the same receiver', async () => {
    const sockets = new Set<unknown>();
    const url = await listen((req, res) => {
      sockets.add(req.socket);
      req.resume().on('end', () => res.writeHead(204).end());
    });
    for (let i = 0; i < 5; i++) expect(await post(url)).toMatchObject({ kind: 'response', status: 204 });
    expect(sockets.size).toBe(1);
  });

  it('sends again on a new connection when the receiver drops a kept-alive one as it is reused', async () => {
    // the receiver answers the first request on each connection and drops the connection at the second, unanswered
    const served = new WeakMap<object, number>();
    let dropped = 0;
    let answered = 0;
    const url = await listen((req, res) => {
      const n = (served.get(req.socket) ?? 0) + 1;
      served.set(req.socket, n);
      if (n > 1) {
        dropped++;
        req.socket.destroy();
        return;
      }
      req.resume().on('end', () => {
        answered++;
        res.writeHead(200).end('ok');
      });
    });
    for (let i = 0; i < 3; i++) expect(await post(url)).toMatchObject({ kind: 'response', status: 200 });
    expect(answered).toBe(3);
    expect(dropped).toBeGreaterThan(0);
  });
});
