import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WAKE_CHANNELS } from '../../src/db/database.ts';
import { createTestDatabase, type TestDatabase } from '../support/test-db.ts';
import { waitFor } from '../support/wait.ts';

/**
 * What the Database layer promises beyond running SQL: outbox and audit writes wake their listeners once committed
 * (from Signoff's connections after commit, from anyone else's through the triggers), and statements it prepared
 * keep working when a migration changes a table under a running process.
 */
let t: TestDatabase;
let listener: pg.Client;
const heard: { channel: string }[] = [];

beforeAll(async () => {
  t = await createTestDatabase({ poolSize: 2 });
  listener = new pg.Client({ connectionString: t.url });
  await listener.connect();
  listener.on('notification', (m) => heard.push({ channel: m.channel }));
  await listener.query(`LISTEN ${WAKE_CHANNELS.outbox}`);
  await listener.query(`LISTEN ${WAKE_CHANNELS.audit}`);
});
afterAll(async () => {
  await listener?.end();
  await t?.drop();
});

const outboxRow = `INSERT INTO outbox (type, subject_type, subject_id, payload, created_at, available_at)
  VALUES ('request.submitted', 'request', $1, '{}'::jsonb, now(), now())`;
const auditRow = `INSERT INTO audit_events (occurred_at, actor_label, channel, action, subject_type, subject_id)
  VALUES (now(), 'test', 'system', 'test.written', 'test', $1)`;
const heardOn = (channel: string) => heard.filter((h) => h.channel === channel).length;

describe('wake-ups and prepared statements', () => {
  it("Signoff's own writes wake the relay and the sealer once committed, never for a rolled-back transaction", async () => {
    heard.length = 0;
    // the triggers are off on Signoff's connections (signoff.wake = deferred): these come from Database.wake
    await t.db.tx(async (q) => {
      await q.query(outboxRow, ['a']);
      await q.query(auditRow, ['a']);
    });
    await waitFor(() => heardOn(WAKE_CHANNELS.outbox) && heardOn(WAKE_CHANNELS.audit), 'both wake-ups');

    heard.length = 0;
    await expect(
      t.db.tx(async (q) => {
        await q.query(outboxRow, ['b']);
        throw new Error('changed my mind');
      }),
    ).rejects.toThrow('changed my mind');
    // an autocommit write afterwards is announced; the rolled-back one before it never was
    await t.db.query(auditRow, ['c']);
    await waitFor(() => heardOn(WAKE_CHANNELS.audit), 'the audit wake-up');
    await listener.query('SELECT 1');
    expect(heardOn(WAKE_CHANNELS.outbox)).toBe(0);
  });

  it('a writer that is not Signoff (psql, a script) still wakes the listeners through the triggers', async () => {
    heard.length = 0;
    const other = new pg.Client({ connectionString: t.url });
    await other.connect();
    try {
      await other.query(outboxRow, ['from-psql']);
      await other.query(auditRow, ['from-psql']);
    } finally {
      await other.end();
    }
    await waitFor(() => heardOn(WAKE_CHANNELS.outbox) && heardOn(WAKE_CHANNELS.audit), 'both wake-ups from the triggers');
  });

  it('a column added by a migration while running does not break a statement prepared before it', async () => {
    await t.db.query('CREATE TABLE rolling (id int PRIMARY KEY, name text)');
    await t.db.query(`INSERT INTO rolling VALUES (1, 'one')`);
    const read = () => t.db.query<Record<string, unknown>>('SELECT * FROM rolling WHERE id = $1', [1]);
    // the second and later calls run the named (prepared) statement on every connection of the pool
    for (let i = 0; i < 4; i++) expect(await read()).toEqual([{ id: 1, name: 'one' }]);
    await t.db.query(`ALTER TABLE rolling ADD COLUMN note text DEFAULT 'added'`);
    for (let i = 0; i < 4; i++) expect(await read()).toEqual([{ id: 1, name: 'one', note: 'added' }]);
  });
});
