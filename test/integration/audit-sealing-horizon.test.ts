import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { unsealedRows, verifyAudit } from '../../src/core/audit-chain.ts';
import { appendAudit, systemActor } from '../../src/core/audit-log.ts';
import { startAuditSealer, type AuditSealer } from '../../src/integrations/audit-sealer.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { waitFor } from '../support/wait.ts';

let t: TestContext;
let sealer: AuditSealer;
const clients: pg.Client[] = [];
const adminUrl = () => process.env.TEST_PG_ADMIN_URL!;
const scratch = `signoff_t_${process.env.SIGNOFF_TEST_RUN}_foreign_${randomBytes(4).toString('hex')}`;

async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  await c.connect();
  clients.push(c);
  return c;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: adminUrl() });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

beforeAll(async () => {
  t = await createTestContext();
  await admin((c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(scratch)}`));
  sealer = startAuditSealer(t.ctx, { intervalMs: 20, electionIntervalMs: 50, checkpointIntervalMs: 0 });
});
afterAll(async () => {
  await sealer.stop();
  for (const c of clients) await c.end().catch(() => undefined);
  await admin((c) => c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(scratch)} WITH (FORCE)`));
  await t?.close();
});

/** a transaction in the scratch database that has taken a transaction id and stays open */
async function foreignTransaction(): Promise<{ client: pg.Client; xid: bigint }> {
  const url = new URL(adminUrl());
  url.pathname = `/${scratch}`;
  const client = await connect(url.toString());
  await client.query('BEGIN');
  const r = await client.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x');
  return { client, xid: BigInt(r.rows[0]!.x) };
}

const currentXid = async (c: pg.Client) => BigInt((await c.query<{ x: string }>('SELECT pg_current_xact_id()::text AS x')).rows[0]!.x);

const commitAudit = (action: string) =>
  t.ctx.db.tx((tx) => appendAudit(tx, { actor: systemActor, action, subjectType: 'test', subjectId: action, at: new Date() }));

const sealedActions = async () =>
  (
    await t.tdb.db.query<{ action: string }>('SELECT e.action FROM audit_chain c JOIN audit_events e ON e.id = c.event_id ORDER BY c.seq')
  ).map((r) => r.action);

const until = <T>(fn: () => Promise<T>, what: string) => waitFor(fn, what, { intervalMs: 20 });

describe('the sealing horizon leaves out other databases', () => {
  it("seals this database's commits while a transaction in another database stays open", async () => {
    await until(async () => sealer.isLeader() && (await unsealedRows(t.tdb.db)).count === 0, 'the sealer to be elected');
    const foreign = await foreignTransaction();
    await commitAudit('after-foreign-1');
    await commitAudit('after-foreign-2');
    // the server-wide horizon would stop at the foreign transaction, below our rows
    const xmin = await t.tdb.db.one<{ x: string }>('SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS x');
    expect(BigInt(xmin.x)).toBeLessThanOrEqual(foreign.xid);
    const ours = await t.tdb.db.one<{ x: string }>(`SELECT min(xid)::text AS x FROM audit_events WHERE action LIKE 'after-foreign-%'`);
    expect(BigInt(ours.x)).toBeGreaterThan(foreign.xid);
    await until(async () => {
      const sealed = await sealedActions();
      return sealed.includes('after-foreign-1') && sealed.includes('after-foreign-2');
    }, 'the rows committed after the foreign transaction began to be sealed');
    // still the same open transaction
    expect(await currentXid(foreign.client)).toBe(foreign.xid);
    expect(await verifyAudit(t.tdb.db)).toMatchObject({ ok: true, unsealed: 0 });
    await foreign.client.query('ROLLBACK');
  });

  it('still never skips a row of this database whose transaction began first, with a foreign one open too', async () => {
    await until(async () => sealer.isLeader() && (await unsealedRows(t.tdb.db)).count === 0, 'the sealer to be elected');
    const foreign = await foreignTransaction();
    const late = await connect(t.tdb.url);
    await late.query('BEGIN');
    await late.query(
      `INSERT INTO audit_events (occurred_at, actor_id, actor_label, channel, action, subject_type, subject_id, before, after, details)
       VALUES (now(), NULL, 'test', 'system', 'late', 'test', 'late', 'null', 'null', 'null')`,
    );
    await commitAudit('early'); // higher transaction id, committed first
    await sealer.runOnce();
    await sealer.runOnce();
    expect(await sealedActions()).not.toContain('early');
    expect((await unsealedRows(t.tdb.db)).count).toBe(1);

    await late.query('COMMIT');
    await until(async () => (await unsealedRows(t.tdb.db)).count === 0, 'both rows to be sealed');
    expect((await sealedActions()).slice(-2)).toEqual(['late', 'early']);
    expect(await currentXid(foreign.client)).toBe(foreign.xid);
    expect(await verifyAudit(t.tdb.db)).toMatchObject({ ok: true, unsealed: 0 });
    await foreign.client.query('ROLLBACK');
  });
});
