import type { QueryRunner } from 'typeorm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebApp1763930000000 } from '../../migrations/1763930000000-web-app.ts';
import { identityByOidcClaims } from '../../src/core/directory.ts';
import { applyCatalogFile } from '../../src/integrations/catalog-yaml.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { runCli } from '../support/run-cli.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

/** How web sign-in finds a person: explicit links on the identity (oid, upn; the Teams object id), never a name. */

let t: TestContext;
beforeAll(async () => {
  t = await createTestContext();
});
afterAll(async () => {
  await t.close();
});

describe('web sign-in links on identities', () => {
  it('applies oid, upn and admin from the catalog file, idempotently, and maps token claims through them only', async () => {
    const file = new URL('../../examples/catalog.yaml', import.meta.url).pathname;
    await applyCatalogFile(t.ctx.catalog, file);
    const again = await applyCatalogFile(t.ctx.catalog, file);
    expect(again.identities).toMatchObject({ created: 0, updated: 0 });
    expect(await t.ctx.catalog.getIdentity('CONTOSO\\ada')).toMatchObject({ upn: 'ada@contoso.com', admin: true, oid: null });
    expect(await t.ctx.catalog.getIdentity('CONTOSO\\bob')).toMatchObject({ upn: 'bob@contoso.com', admin: false });

    // the UPN link, case-insensitive
    expect((await identityByOidcClaims(t.tdb.db, { upn: 'Bob@Contoso.com' }))?.username).toBe('CONTOSO\\bob');
    // Ada's Teams link is her Entra object id: the oid claim finds her
    expect((await identityByOidcClaims(t.tdb.db, { oid: '6F1C2A4E-0000-4000-8000-00000000ADA0' }))?.username).toBe('CONTOSO\\ada');
    // an explicit oid wins over someone else's Teams link with the same id
    await t.ctx.catalog.upsert(
      'identities',
      { username: 'CONTOSO\\bob', displayName: 'Bob User', oid: '6f1c2a4e-0000-4000-8000-00000000ada0', upn: 'bob@contoso.com' },
      { id: null, label: 'test', channel: 'cli' },
      { mode: 'upsert', ref: 'CONTOSO\\bob' },
    );
    expect((await identityByOidcClaims(t.tdb.db, { oid: '6f1c2a4e-0000-4000-8000-00000000ada0' }))?.username).toBe('CONTOSO\\bob');
    // no guessing: a display name, an email that is not a linked UPN, or an unknown oid find nobody
    expect(await identityByOidcClaims(t.tdb.db, { upn: 'Ada Admin' })).toBeUndefined();
    expect(await identityByOidcClaims(t.tdb.db, { upn: 'ada@fabrikam.com' })).toBeUndefined();
    expect(await identityByOidcClaims(t.tdb.db, { oid: '00000000-0000-4000-8000-000000000000' })).toBeUndefined();
  });

  it('refuses a badly formed link in the catalog with the field named', async () => {
    await expect(
      t.ctx.catalog.upsert(
        'identities',
        { username: 'CONTOSO\\zed', displayName: 'Zed', upn: 'not a upn', oid: 'nope' },
        { id: null, label: 'test', channel: 'cli' },
        { mode: 'create' },
      ),
    ).rejects.toMatchObject({ code: 'validation_failed' });
  });

  it('prints a one-time sign-in URL for a known person, and refuses an unknown one', async () => {
    const ok = await runCli(t.tdb.url, ['signin-link', '--user', 'contoso\\ADA'], { PUBLIC_URL: 'https://signoff.contoso.com' });
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(
      /^One-time sign-in link for Ada Admin \(CONTOSO\\ada\), valid until .*Z:\nhttps:\/\/signoff\.contoso\.com\/app\/signin\/link\/[A-Za-z0-9_-]{43}\n$/,
    );
    const token = ok.stdout.trim().split('/').at(-1)!;
    // only the hash is stored
    expect(await t.tdb.db.query('SELECT 1 FROM web_signin_links WHERE token_hash = $1', [token])).toEqual([]);
    expect(await t.tdb.db.one<{ n: number }>('SELECT count(*)::int AS n FROM web_signin_links')).toEqual({ n: 1 });
    const bad = await runCli(t.tdb.url, ['signin-link', '--user', 'CONTOSO\\nobody']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('No identity "CONTOSO\\nobody" is known');
  });

  it('migrates a database with web requests down and up again', async () => {
    const seeded = await createTestContext();
    try {
      const people = await seedContoso(seeded.tdb.db);
      const r = await seeded.ctx.requests.submit(
        { id: people.bob.id, label: 'Bob', channel: 'web' },
        { applicationId: VISIO, requesterId: people.bob.id, clientGuid: BOB_LAPTOP, justification: 'x', answers: { usage: 'Diagrams' } },
      );
      expect((await seeded.tdb.db.one<{ source: string }>('SELECT source FROM requests WHERE id = $1', [r.id])).source).toBe('web');
      const m = new WebApp1763930000000();
      const db = { query: (sql: string, params?: unknown[]) => seeded.tdb.db.query(sql, params) } as unknown as QueryRunner;
      await m.down(db);
      // a web request becomes a chat one when the web app is rolled back, and comes back as it was left
      expect((await seeded.tdb.db.one<{ source: string }>('SELECT source FROM requests WHERE id = $1', [r.id])).source).toBe('chat');
      await m.up(db);
      expect(await seeded.tdb.db.one<{ n: number }>(`SELECT count(*)::int AS n FROM identities WHERE is_admin`)).toEqual({ n: 0 });
    } finally {
      await seeded.close();
    }
  });
});
