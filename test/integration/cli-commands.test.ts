import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyApiKey } from '../../src/core/api-keys.ts';
import { sealAll } from '../support/audit.ts';
import { runCli } from '../support/run-cli.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

const FIXTURE = new URL('../fixtures/contoso.yaml', import.meta.url).pathname;
const VISIO = 'ScopeId_2E4DAE44-C9A0-4694-8B7A-474424C080D4/Application_88808a3a-86e4-4820-be59-aa7d61cb8c33';

let t: TestContext;
beforeAll(async () => {
  t = await createTestContext();
});
afterAll(() => t.close());

/** Runs the real CLI entry point, as `npx signoff` would, against this file's database. */
const signoff = (args: string[], env: Record<string, string> = {}) => runCli(t.tdb.url, args, env);

const lines = (s: string) => s.trimEnd().split('\n');

/** The example catalog is in the database (apply is idempotent): tests after the apply test do not rely on it passing. */
async function applied(): Promise<void> {
  const r = await signoff(['apply', FIXTURE]);
  expect(r.code, r.stderr).toBe(0);
}

describe('signoff CLI', () => {
  it('--help lists every command', async () => {
    const r = await signoff(['--help']);
    expect(r.code).toBe(0);
    for (const c of [
      'migrate',
      'start [--role web|worker|all]',
      'apply <file> [--prune] [--dry-run]',
      'apikey create --name NAME --scopes',
      'requests list',
      'audit verify',
    ]) {
      expect(r.stdout).toContain(c);
    }
  });

  it('migrate says what it did: created and migrated a new database, then found it up to date', async () => {
    const r = await signoff(['migrate']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    expect(r.stdout).toMatch(/^database .*; it is up to date \(\d+ migrations?, latest /m);
    const fresh = new URL(t.tdb.url);
    fresh.pathname = `${fresh.pathname}_new`;
    try {
      const first = await runCli(fresh.toString(), ['migrate']);
      expect(first).toMatchObject({ code: 0, stderr: '' });
      expect(first.stdout).toMatch(/^created, applied (\d+) migrations to database .*_new; it is up to date \(\1 migrations, latest /m);
      expect((await runCli(fresh.toString(), ['migrate'])).stdout).toMatch(/^database .*_new; it is up to date/m);
    } finally {
      await t.tdb.db.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(fresh.pathname.slice(1))} WITH (FORCE)`);
    }
  });

  it('apply creates the example, then reports no changes; --dry-run writes nothing', async () => {
    const first = await signoff(['apply', FIXTURE]);
    expect(first.stderr).toBe('');
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/^identities\s+2\s+0\s+0\s+0$/m);
    expect(first.stdout).toMatch(/^webhooks\s+1\s+0\s+0\s+0$/m);
    expect(lines(first.stdout).at(-1)).toBe('7 changes applied');

    const audit = async () => (await t.tdb.db.one<{ n: number }>('SELECT count(*)::int AS n FROM audit_events')).n;
    const before = await audit();
    const second = await signoff(['apply', FIXTURE]);
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(/^applications\s+0\s+0\s+1\s+0$/m);
    expect(lines(second.stdout).at(-1)).toBe('no changes');
    expect(await audit()).toBe(before);

    const dir = mkdtempSync(join(tmpdir(), 'signoff-cli-'));
    const edited = join(dir, 'edited.yaml');
    writeFileSync(edited, (await import('node:fs')).readFileSync(FIXTURE, 'utf8').replace('name: Visio', 'name: Visio 2024'));
    const dry = await signoff(['apply', edited, '--dry-run']);
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/^applications\s+0\s+1\s+0\s+0$/m);
    expect(lines(dry.stdout).at(-1)).toBe('dry run: 1 change would be made; nothing was written');
    expect((await t.tdb.db.one('SELECT name FROM applications WHERE id = $1', [VISIO])).name).toBe('Visio');
    expect(await audit()).toBe(before);
  });

  it('apply reports a bad file as one error with its line and exits 1', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'signoff-cli-'));
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, "identities:\n  - { username: 'CONTOSO\\eve', displayName: Eve, shoeSize: 9 }\n");
    const r = await signoff(['apply', bad]);
    expect(r.code).toBe(1);
    expect(r.stderr).toBe('error: bad.yaml:2:50: identities.0: unknown field "shoeSize"\n');
    const missing = await signoff(['apply', join(dir, 'nope.yaml')]);
    expect(missing).toMatchObject({ code: 1, stderr: expect.stringMatching(/^error: Cannot read .*nope\.yaml: ENOENT\.\n$/) });
  });

  it('apikey create prints the key alone on the last line, and the key works', async () => {
    await applied();
    const r = await signoff(['apikey', 'create', '--name', 'cm-connector', '--scopes', 'requests:read,requests:write']);
    expect(r.code).toBe(0);
    const key = lines(r.stdout).at(-1)!;
    expect(key).toMatch(/^sk_[0-9a-f]{8}_\S+$/);
    const principal = await verifyApiKey(t.tdb.db, key);
    expect(principal).toMatchObject({ name: 'cm-connector', scopes: ['requests:read', 'requests:write'], identityId: null });

    const bound = await signoff(['apikey', 'create', '--name', 'maa', '--scopes', 'changes:write', '--identity', 'contoso\\ada']);
    expect((await verifyApiKey(t.tdb.db, lines(bound.stdout).at(-1)!)).identityId).not.toBeNull();

    // who made which key is in the audit log; the key itself is not
    const audit = await t.tdb.db.query<{ actor_label: string; details: any }>(
      `SELECT actor_label, details FROM audit_events WHERE action = 'apikey.created' ORDER BY id`,
    );
    expect(audit.map((a) => [a.actor_label, a.details.name, a.details.scopes])).toEqual([
      ['cli', 'cm-connector', ['requests:read', 'requests:write']],
      ['cli', 'maa', ['changes:write']],
    ]);
    expect(JSON.stringify(audit)).not.toContain(key);
    // a second key with a name in use is made (scripts re-run) but the output says so; the key stays last
    const again = await signoff(['apikey', 'create', '--name', 'cm-connector', '--scopes', 'requests:read']);
    expect(again.stdout).toMatch(/Note: 2 active keys are now named "cm-connector"/);
    expect(lines(again.stdout).at(-1)).toMatch(/^sk_[0-9a-f]{8}_\S+$/);

    // list shows what each key may do, never the key; a name two keys share cannot revoke; the prefix can
    const listed = await signoff(['apikey', 'list']);
    expect(lines(listed.stdout)[0]).toMatch(/^ID\s+PREFIX\s+NAME\s+SCOPES\s+IDENTITY\s+CREATED\s+LAST USED\s+REVOKED$/);
    expect(listed.stdout).toMatch(/cm-connector\s+requests:read,requests:write/);
    expect(listed.stdout).not.toContain(key);
    const ambiguous = await signoff(['apikey', 'revoke', 'cm-connector']);
    expect(ambiguous.code).toBe(1);
    expect(ambiguous.stderr).toMatch(/2 active keys are named "cm-connector"/);
    const prefix = key.split('_').slice(0, 2).join('_');
    const revoked = await signoff(['apikey', 'revoke', prefix]);
    expect(revoked.code).toBe(0);
    await expect(verifyApiKey(t.tdb.db, key)).rejects.toMatchObject({ code: 'unauthenticated' });
    expect((await signoff(['apikey', 'list'])).stdout).not.toContain(prefix);
    expect((await signoff(['apikey', 'list', '--all'])).stdout).toContain(prefix);
    expect(await t.tdb.db.query(`SELECT 1 FROM audit_events WHERE action = 'apikey.revoked'`)).toHaveLength(1);

    const bad = await signoff(['apikey', 'create', '--name', 'x', '--scopes', 'requests:read,root']);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^error: Scopes must be one or more of .*unknown: root\.\n$/);
  });

  it('requests list shows requests as a table or JSON', async () => {
    await applied();
    const bob = await t.tdb.db.one<{ id: string }>(`SELECT id FROM identities WHERE username = 'CONTOSO\\bob'`);
    await t.ctx.requests.submit(
      { id: bob.id, label: 'Bob User', channel: 'slack' },
      {
        applicationId: VISIO,
        clientGuid: 'GUID:5D3F1A2B-0000-4000-8000-000000000001',
        justification: 'diagrams',
        answers: { usage: 'Diagrams' },
      },
    );
    const tableOut = await signoff(['requests', 'list', '--user', 'CONTOSO\\bob', '--app', 'Visio']);
    expect(tableOut.code).toBe(0);
    expect(lines(tableOut.stdout)[0]).toMatch(/^ID\s+STATUS\s+APPLICATION\s+REQUESTER\s+DEVICE\s+CREATED\s+DECIDED BY$/);
    expect(lines(tableOut.stdout)[1]).toMatch(/pending\s+Visio\s+CONTOSO\\bob\s+BOB-LAPTOP/);
    const json = await signoff(['requests', 'list', '--status', 'pending', '--json', '--limit', '5']);
    expect(JSON.parse(json.stdout)).toMatchObject({ items: [{ status: 'pending', application: { id: VISIO } }], nextCursor: null });
    const none = await signoff(['requests', 'list', '--status', 'approved']);
    expect(none.stdout).toBe('no requests match\n');
    const badStatus = await signoff(['requests', 'list', '--status', 'sideways']);
    expect(badStatus.code).not.toBe(0);
    expect(badStatus.stderr).toContain('Allowed choices are pending, approved');
  });

  it('audit verify passes on an intact chain and names the first tampered row', async () => {
    await applied();
    // no worker runs here: rows wait for the sealer, and verify says so
    const total = (await t.tdb.db.one<{ n: number }>('SELECT count(*)::int AS n FROM audit_events')).n;
    expect(await signoff(['audit', 'verify'])).toMatchObject({
      code: 0,
      stdout: `audit log intact: 0 sealed rows checked, ${total} rows not sealed yet\n`,
    });
    await sealAll(t.tdb.db);
    const ok = await signoff(['audit', 'verify']);
    expect(ok).toMatchObject({ code: 0, stdout: `audit log intact: ${total} sealed rows checked, 0 rows not sealed yet\n` });

    const victim = await t.tdb.db.one<{ id: string }>('SELECT event_id AS id FROM audit_chain WHERE seq = 3');
    const raw = new pg.Client({ connectionString: t.tdb.url });
    await raw.connect();
    try {
      // replica mode skips the append-only trigger, which is exactly what an attacker with superuser would do
      await raw.query('SET session_replication_role = replica');
      await raw.query(`UPDATE audit_events SET actor_label = 'mallory' WHERE id = $1`, [victim.id]);
    } finally {
      await raw.end();
    }
    const broken = await signoff(['audit', 'verify']);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toBe(
      `audit log broken at sequence 3 (row ${victim.id}): content does not match its hash (the row was edited) (2 rows before it are intact)\n`,
    );
  });

  it('an unreachable database gives one line, no stack trace, exit 2', async () => {
    const r = await signoff(['audit', 'verify'], { DATABASE_URL: 'postgres://postgres@127.0.0.1:1/signoff' });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe('');
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^error: Cannot reach PostgreSQL at postgres:\/\/postgres@127\.0\.0\.1:1\/signoff \(connect ECONNREFUSED/);
    expect(r.stderr).not.toMatch(/\n\s+at /);

    const badConfig = await signoff(['apply', FIXTURE], { DATABASE_URL: 'not a url', PORT: 'eighty' });
    expect(badConfig.code).toBe(2);
    expect(lines(badConfig.stderr)).toHaveLength(1);
    expect(badConfig.stderr).toContain('error: invalid configuration: ');
    expect(badConfig.stderr).toContain('DATABASE_URL: must be a postgres:// URL');
    expect(badConfig.stderr).toContain('PORT:');
  });
});
