import { describe, expect, it } from 'vitest';
import { postOnce } from '../../src/integrations/webhooks/http-post.ts';
import { parseAllowList } from '../../src/integrations/webhooks/url-safety.ts';
import { dropsReusedConnections, useLocalServer } from '../support/local-http.ts';

const allow = parseAllowList(['127.0.0.1']);
const listen = useLocalServer();

const post = (url: string) => postOnce({ url, headers: { 'content-type': 'application/json' }, body: '{}', timeoutMs: 5000, allow });

describe('webhook POST connections', () => {
  it('reuses one connection for consecutive deliveries to the same receiver', async () => {
    const sockets = new Set<unknown>();
    const url = await listen((req, res) => {
      sockets.add(req.socket);
      req.resume().on('end', () => res.writeHead(204).end());
    }, '/hooks');
    for (let i = 0; i < 5; i++) expect(await post(url)).toMatchObject({ kind: 'response', status: 204 });
    expect(sockets.size).toBe(1);
  });

  it('sends again on a new connection when the receiver drops a kept-alive one as it is reused', async () => {
    const server = dropsReusedConnections((res) => res.writeHead(200).end('ok'));
    const url = await listen(server.handler, '/hooks');
    for (let i = 0; i < 3; i++) expect(await post(url)).toMatchObject({ kind: 'response', status: 200 });
    expect(server.counts.answered).toBe(3);
    expect(server.counts.dropped).toBeGreaterThan(0);
  });
});
