import request from 'supertest';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createApiKey } from '../../src/core/api-keys.ts';
import { cliActor } from '../../src/core/catalog-service.ts';
import { identityById } from '../../src/core/directory.ts';
import { createSigninLink } from '../../src/core/signin-links.ts';
import { ApiKeyCache } from '../../src/integrations/http/api-key-cache.ts';
import { createHttpApp, startHttpServer } from '../../src/integrations/http/app.ts';
import { mountWebApp, type WebApp } from '../../src/integrations/web/index.ts';
import { seedContoso, type Seeded } from '../support/fixtures.ts';
import { PgProxy } from '../support/pg-proxy.ts';
import { runCli } from '../support/run-cli.ts';
import { countStatements } from '../support/statement-counter.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { waitFor } from '../support/wait.ts';
import { csrfOf, WebClient } from '../support/web-client.ts';

let t: TestContext;
let s: Seeded;
let proxy: PgProxy;
const counter = countStatements();
const stops: (() => Promise<void>)[] = [];

beforeAll(async () => {
  t = await createTestContext();
  s = await seedContoso(t.tdb.db);
  proxy = await new PgProxy().start();
});
afterEach(async () => {
  for (const stop of stops.splice(0)) await stop();
  t.ctx.apiKeys = undefined;
  proxy.set('pass');
});
afterAll(async () => {
  counter.restore();
  await proxy?.stop();
  await t?.close();
});

// the key's read (statements are counted by their first 120 characters)
const readsKey = (q: string) => q.startsWith('SELECT k.id, k.name, k.scopes');

/** A web process's cache, listening through `url`; entries never age out, so only an announcement can evict one. */
async function listeningCache(url = t.tdb.url) {
  const cache = new ApiKeyCache(t.tdb.db, { maxAgeMs: 3_600_000 });
  const listening = cache.listen(url, t.ctx.logger);
  stops.push(() => listening.stop());
  t.ctx.apiKeys = cache;
  await waitFor(() => cache.listening, 'the cache listening for key changes');
  return cache;
}

describe('API keys a web process keeps', () => {
  it('cost a call no statement once read, and stop working as soon as another process revokes them', async () => {
    await listeningCache();
    const app = createHttpApp(t.ctx);
    const created = await createApiKey(t.tdb.db, 'kept', ['requests:read']);
    const auth = { Authorization: `Bearer ${created.key}` };
    await request(app).get('/api/v1/requests').set(auth).expect(200);
    const second = await counter.during(() => request(app).get('/api/v1/requests').set(auth).expect(200));
    expect(second.statements.filter((q) => readsKey(q))).toEqual([]);

    // the CLI is another process: only the announcement at its commit can reach this one
    const prefix = created.key.split('_').slice(0, 2).join('_');
    expect((await runCli(t.tdb.url, ['apikey', 'revoke', prefix])).code).toBe(0);
    await waitFor(async () => (await request(app).get('/api/v1/requests').set(auth)).status === 401, 'the revoked key refused');
  });

  it('revoked on the admin page, a key is refused by the same process at once, before any announcement', async () => {
    // a cache that believes it hears every change but is told nothing: only the page itself can make it forget
    const cache = new ApiKeyCache(t.tdb.db, { maxAgeMs: 3_600_000 });
    cache.resume();
    t.ctx.apiKeys = cache;
    let web: WebApp | undefined;
    const server = await startHttpServer(
      createHttpApp(t.ctx, {
        mount: (a) => {
          web = mountWebApp(a, t.ctx);
        },
      }),
      0,
      { host: '127.0.0.1' },
    );
    stops.push(async () => {
      await web?.stop();
      await server.close();
    });
    const base = `http://127.0.0.1:${server.port}`;
    const created = await createApiKey(t.tdb.db, 'paged', ['requests:read']);
    const list = () => fetch(`${base}/api/v1/requests`, { headers: { Authorization: `Bearer ${created.key}` } });
    expect((await list()).status).toBe(200);

    await t.tdb.db.query('UPDATE identities SET is_admin = true WHERE id = $1', [s.ada.id]);
    const ada = new WebClient(base);
    const { token } = await createSigninLink(t.tdb.db, cliActor, (await identityById(t.tdb.db, s.ada.id))!, new Date(), 60_000);
    expect((await ada.signInWithLink(`${base}/app/signin/link/${token}`)).status).toBe(303);
    const page = await ada.get('/app/admin/keys');
    const revoked = await ada.post(`/app/admin/keys/${created.id}/revoke`, { _csrf: csrfOf(page.text) });
    expect(revoked.location).toBe('/app/admin/keys?notice=key_revoked');
    expect((await list()).status).toBe(401);
  });

  it('keep nothing while their announcements cannot arrive, and keep again once they can', async () => {
    const cache = await listeningCache(proxy.url(t.tdb.url));
    const first = await createApiKey(t.tdb.db, 'unheard', ['requests:read']);
    await cache.verify(first.key);

    proxy.set('drop');
    await waitFor(() => !cache.listening, 'the lost listener noticed');
    // a revocation it cannot hear: the next call reads the key and refuses it
    await t.tdb.db.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [first.id]);
    await expect(cache.verify(first.key)).rejects.toMatchObject({ code: 'unauthenticated' });
    const second = await createApiKey(t.tdb.db, 'read-each-time', ['requests:read']);
    await cache.verify(second.key);
    const unkept = await counter.during(() => cache.verify(second.key));
    expect(unkept.statements.filter((q) => readsKey(q))).toHaveLength(1);

    proxy.set('pass');
    await waitFor(() => cache.listening, 'the listener back');
    await cache.verify(second.key);
    const kept = await counter.during(() => cache.verify(second.key));
    expect(kept.statements).toEqual([]);
    await t.tdb.db.query('UPDATE api_keys SET revoked_at = now() WHERE id = $1', [second.id]);
    await waitFor(async () => (await cache.verify(second.key).catch((e) => e.code)) === 'unauthenticated', 'the revocation heard');
  });
});
