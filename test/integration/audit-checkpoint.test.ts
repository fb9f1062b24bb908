import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { auditEventColumns, chainHash, contentOf, type AuditEventRow } from '../../src/core/audit-log.ts';
import { sealAll } from '../support/audit.ts';
import { BOB_LAPTOP, seedContoso, VISIO } from '../support/fixtures.ts';
import { runCli } from '../support/run-cli.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';

const dir = mkdtempSync(join(tmpdir(), 'signoff-checkpoint-'));
const contexts: TestContext[] = [];
let keys: { AUDIT_CHECKPOINT_KEY: string; AUDIT_CHECKPOINT_PUBLIC_KEY: string };
let otherKeys: typeof keys;

afterAll(async () => {
  for (const c of contexts) await c.close();
  rmSync(dir, { recursive: true, force: true });
});

async function keygen(): Promise<typeof keys> {
  const r = await runCli('postgres://unused@127.0.0.1:1/none', ['audit', 'keygen']);
  expect(r.code).toBe(0);
  const env = Object.fromEntries(
    r.stdout
      .split('\n')
      .filter((l) => /^AUDIT_CHECKPOINT_/.test(l))
      .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]),
  );
  expect(Object.keys(env).sort()).toEqual(['AUDIT_CHECKPOINT_KEY', 'AUDIT_CHECKPOINT_PUBLIC_KEY']);
  return env as typeof keys;
}

/** A database with some history (submit, approve, revoke), every row sealed. */
async function logWithHistory(): Promise<TestContext> {
  const t = await createTestContext();
  contexts.push(t);
  const s = await seedContoso(t.tdb.db);
  for (let i = 0; i < 3; i++) {
    const r = await t.ctx.requests.submit(s.actor(s.bob), {
      applicationId: VISIO,
      clientGuid: BOB_LAPTOP,
      justification: `round ${i}`,
      answers: { usage: 'Diagrams' },
    });
    await t.ctx.requests.decide(s.actor(s.ada), r.id, 'approve', 'ok');
    await t.ctx.requests.revoke(s.actor(s.ada), r.id, 'done');
  }
  await sealAll(t.tdb.db);
  return t;
}

let n = 0;
async function checkpointOf(t: TestContext): Promise<string> {
  const r = await runCli(t.tdb.url, ['audit', 'checkpoint'], keys);
  expect(r.stderr).toBe('');
  expect(r.code).toBe(0);
  const file = join(dir, `cp-${++n}.json`);
  writeFileSync(file, r.stdout);
  return file;
}

/** verify --checkpoint as an auditor would run it: with the public key only. */
const verify = (
  t: TestContext,
  file: string,
  env: Record<string, string> = { AUDIT_CHECKPOINT_PUBLIC_KEY: keys.AUDIT_CHECKPOINT_PUBLIC_KEY },
) => runCli(t.tdb.url, ['audit', 'verify', '--checkpoint', file], env);

/** Changes the log the way someone with the database's owner rights could: triggers off. */
async function tamper(t: TestContext, sql: (c: pg.Client) => Promise<void>): Promise<void> {
  const c = new pg.Client({ connectionString: t.tdb.url });
  await c.connect();
  try {
    await c.query('SET session_replication_role = replica');
    await sql(c);
  } finally {
    await c.end();
  }
}

let homes = 0;
const emptyHome = () => {
  const home = join(dir, `home-${++homes}`);
  mkdirSync(home);
  return home;
};

const sealedCount = async (t: TestContext) => Number((await t.tdb.db.one<{ n: string }>('SELECT count(*) AS n FROM audit_chain')).n);

beforeAll(async () => {
  keys = await keygen();
  otherKeys = await keygen();
  expect(otherKeys.AUDIT_CHECKPOINT_KEY).not.toBe(keys.AUDIT_CHECKPOINT_KEY);
});

describe('signed checkpoints of the audit chain', () => {
  it('prints a signed checkpoint of the sealed head; the untouched log, and the log grown since, pass verify --checkpoint', async () => {
    const t = await logWithHistory();
    const file = await checkpointOf(t);
    const cp = JSON.parse((await import('node:fs')).readFileSync(file, 'utf8'));
    const rows = await sealedCount(t);
    const head = await t.tdb.db.one<{ hash: string }>('SELECT hash FROM audit_chain ORDER BY seq DESC LIMIT 1');
    expect(cp).toEqual({
      sequence: rows,
      headHash: head.hash,
      timestamp: expect.any(String),
      keyId: expect.stringMatching(/^[0-9a-f]{16}$/),
      signature: expect.any(String),
    });

    const ok = await verify(t, file);
    expect(ok.stderr).toBe('');
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain(`checkpoint at sequence ${rows}`);

    // the log goes on growing: the old checkpoint is still contained in it
    const s = await t.tdb.db.one<{ id: string }>(`SELECT id FROM identities WHERE username = 'CONTOSO\\bob'`);
    await t.ctx.requests.submit(
      { id: s.id, label: 'Bob', channel: 'api' },
      { applicationId: VISIO, clientGuid: BOB_LAPTOP, justification: 'again', answers: { usage: 'Diagrams' } },
    );
    await sealAll(t.tdb.db);
    expect(await sealedCount(t)).toBeGreaterThan(rows);
    const later = await verify(t, file);
    expect(later.code).toBe(0);

    // the private key alone also verifies (its public half is derived)
    expect((await verify(t, file, { AUDIT_CHECKPOINT_KEY: keys.AUDIT_CHECKPOINT_KEY })).code).toBe(0);
  });

  it('fails naming why when the last rows were deleted', async () => {
    const t = await logWithHistory();
    const file = await checkpointOf(t);
    const rows = await sealedCount(t);
    await tamper(t, async (c) => {
      await c.query('DELETE FROM audit_chain WHERE seq > $1', [rows - 3]);
      await c.query('DELETE FROM audit_events e WHERE NOT EXISTS (SELECT 1 FROM audit_chain c WHERE c.event_id = e.id)');
    });
    // the chain that is left is intact: only the checkpoint shows the loss
    expect((await runCli(t.tdb.url, ['audit', 'verify'])).code).toBe(0);
    const r = await verify(t, file);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`the log has ${rows - 3} sealed rows, fewer than the checkpoint's ${rows}: rows were removed`);
  });

  it('fails naming why when a middle row was edited', async () => {
    const t = await logWithHistory();
    const file = await checkpointOf(t);
    await tamper(t, (c) =>
      c
        .query(`UPDATE audit_events SET actor_label = 'mallory' WHERE id = (SELECT event_id FROM audit_chain WHERE seq = 5)`)
        .then(() => undefined),
    );
    const r = await verify(t, file);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/broken at sequence 5 .*content does not match its hash \(the row was edited\)/);
  });

  it('fails naming why when two rows were reordered', async () => {
    const t = await logWithHistory();
    const file = await checkpointOf(t);
    await tamper(t, async (c) => {
      await c.query('UPDATE audit_chain SET seq = seq + 1000000 WHERE seq IN (4, 6)');
      await c.query('UPDATE audit_chain SET seq = CASE seq WHEN 1000004 THEN 6 ELSE 4 END WHERE seq IN (1000004, 1000006)');
    });
    const r = await verify(t, file);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/broken at sequence 4 .*a row was removed or reordered/);
  });

  it('fails naming why when two rows swapped places in the table', async () => {
    const t = await logWithHistory();
    const file = await checkpointOf(t);
    await tamper(t, async (c) => {
      const [a, b] = (await c.query<{ event_id: string }>('SELECT event_id FROM audit_chain WHERE seq IN (4, 6) ORDER BY seq')).rows.map(
        (r) => r.event_id,
      );
      await c.query('UPDATE audit_events SET id = -id WHERE id IN ($1, $2)', [a, b]);
      await c.query(
        'UPDATE audit_events SET id = CASE id WHEN $1::bigint THEN $2::bigint ELSE $3::bigint END WHERE id IN ($1::bigint, $4::bigint)',
        [`-${a}`, b, a, `-${b}`],
      );
    });
    const r = await verify(t, file);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/broken at sequence 4 .*it is the content sealed at sequence 6 \(rows were reordered\)/);
  });

  it('fails naming why when a middle row was edited and every later hash recomputed (the chain alone verifies)', async () => {
    const t = await logWithHistory();
    const file = await checkpointOf(t);
    await tamper(t, async (c) => {
      await c.query(
        `UPDATE audit_events SET details = '{"reason":"nothing to see"}' WHERE id = (SELECT event_id FROM audit_chain WHERE seq = 3)`,
      );
      const rows = (
        await c.query<AuditEventRow & { seq: string; prev_hash: string }>(
          `SELECT c.seq, c.prev_hash, ${auditEventColumns} FROM audit_chain c JOIN audit_events e ON e.id = c.event_id WHERE c.seq >= 3 ORDER BY c.seq`,
        )
      ).rows;
      let prev = rows[0]!.prev_hash;
      for (const row of rows) {
        const hash = chainHash(prev, contentOf(row));
        await c.query('UPDATE audit_chain SET prev_hash = $2, hash = $3 WHERE seq = $1', [row.seq, prev, hash]);
        prev = hash;
      }
    });
    expect((await runCli(t.tdb.url, ['audit', 'verify'])).code).toBe(0);
    const r = await verify(t, file);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(
      /the row at sequence \d+ has hash [0-9a-f]{64}, but the checkpoint says [0-9a-f]{64}: the log was rewritten at or before that sequence/,
    );
  });

  it('outside production, works without keys: a development key is made in the home directory, and says so', async () => {
    const t = await logWithHistory();
    const home = emptyHome();
    const first = await runCli(t.tdb.url, ['audit', 'checkpoint'], { HOME: home });
    expect(first.code).toBe(0);
    expect(first.stderr).toContain(
      `signed with the development key ${join(home, '.signoff', 'audit-checkpoint.key')} (created now); set AUDIT_CHECKPOINT_KEY in production`,
    );
    expect(statSync(join(home, '.signoff', 'audit-checkpoint.key')).mode & 0o777).toBe(0o600);
    const file = join(dir, 'dev.json');
    writeFileSync(file, first.stdout);
    const again = await runCli(t.tdb.url, ['audit', 'checkpoint'], { HOME: home });
    expect(again.stderr).not.toContain('created now');
    expect(JSON.parse(again.stdout).keyId).toBe(JSON.parse(first.stdout).keyId);
    const ok = await runCli(t.tdb.url, ['audit', 'verify', '--checkpoint', file], { HOME: home });
    expect(ok.code).toBe(0);
    expect(ok.stderr).toContain('checking with the development key');
    // tampering is found just the same
    await tamper(t, (c) => c.query('DELETE FROM audit_chain WHERE seq = (SELECT max(seq) FROM audit_chain)').then(() => undefined));
    const bad = await runCli(t.tdb.url, ['audit', 'verify', '--checkpoint', file], { HOME: home });
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('rows were removed');
  });

  it('fails naming why for an altered checkpoint, one signed by another key, or a file that is not a checkpoint; needs a key', async () => {
    const t = await logWithHistory();
    const file = await checkpointOf(t);
    const cp = JSON.parse((await import('node:fs')).readFileSync(file, 'utf8'));

    const altered = join(dir, 'altered.json');
    writeFileSync(altered, JSON.stringify({ ...cp, sequence: cp.sequence - 1 }));
    const a = await verify(t, altered);
    expect(a.code).toBe(1);
    expect(a.stderr).toContain('signature does not verify');

    const other = await verify(t, file, { AUDIT_CHECKPOINT_PUBLIC_KEY: otherKeys.AUDIT_CHECKPOINT_PUBLIC_KEY });
    expect(other.code).toBe(1);
    expect(other.stderr).toContain(`signed by key ${cp.keyId}, not by the configured key`);

    const junk = join(dir, 'junk.json');
    writeFileSync(junk, '{"hello":1}');
    const j = await verify(t, junk);
    expect(j.code).toBe(1);
    expect(j.stderr).toContain('is not a checkpoint');

    // no key at all (and no development key in this HOME)
    const noKey = await runCli(t.tdb.url, ['audit', 'verify', '--checkpoint', file], { HOME: emptyHome() });
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toContain('AUDIT_CHECKPOINT_PUBLIC_KEY: is required to check a checkpoint');
    const cannotSign = await runCli(t.tdb.url, ['audit', 'checkpoint'], { NODE_ENV: 'production', HOME: emptyHome() });
    expect(cannotSign.code).toBe(2);
    expect(cannotSign.stderr).toContain('AUDIT_CHECKPOINT_KEY: is required to sign checkpoints in production');
    expect(cannotSign.stdout).toBe('');
    const badKey = await runCli(t.tdb.url, ['audit', 'checkpoint'], { AUDIT_CHECKPOINT_KEY: 'not a key!' });
    expect(badKey.code).toBe(2);
    expect(badKey.stderr).toContain('AUDIT_CHECKPOINT_KEY: must be an Ed25519 private');
    expect(badKey.stderr).not.toContain('not a key!');
    const mismatched = await runCli(t.tdb.url, ['audit', 'checkpoint'], {
      AUDIT_CHECKPOINT_KEY: keys.AUDIT_CHECKPOINT_KEY,
      AUDIT_CHECKPOINT_PUBLIC_KEY: otherKeys.AUDIT_CHECKPOINT_PUBLIC_KEY,
    });
    expect(mismatched.code).toBe(2);
    expect(mismatched.stderr).toContain('AUDIT_CHECKPOINT_PUBLIC_KEY: is not the public half of AUDIT_CHECKPOINT_KEY');
  });
});
