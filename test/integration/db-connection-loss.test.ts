import { afterAll, beforeAll, expect, it } from 'vitest';
import { toAppError } from '../../src/core/errors.ts';
import { openDatabase, type Database } from '../../src/db/database.ts';
import { PgProxy } from '../support/pg-proxy.ts';
import { createTestContext, type TestContext } from '../support/test-context.ts';
import { waitFor } from '../support/wait.ts';

let t: TestContext;
let proxy: PgProxy;
let db: Database;

beforeAll(async () => {
  t = await createTestContext();
  proxy = await new PgProxy().start();
  db = await openDatabase(proxy.url(t.tdb.url), { poolSize: 2, connectTimeoutMs: 2000 });
});
afterAll(async () => {
  // Postgres notices a vanished client only when it next writes to it: the sleeps would run on for their 30 s
  await t?.tdb.db.query(
    `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE '%AS lost\\_%' AND pid <> pg_backend_pid()`,
  );
  proxy?.set('pass');
  await db?.close();
  await proxy?.stop();
  await t?.close();
});

/**
 * A connection that dies under a statement (a failover, a network reset: the socket closes with no word from
 * Postgres) fails that statement. pg also emits 'error' on the connection, and with nobody listening while it is
 * checked out of the pool, that ended the process: every request in flight lost to one reset socket.
 */
it('a connection lost mid-statement fails that statement as the database being unavailable, and the process and the pool carry on', async () => {
  for (const [name, run] of [
    ['query', () => db.query('SELECT pg_sleep(30) AS lost_query')],
    ['transaction', () => db.tx((q) => q.query('SELECT pg_sleep(30) AS lost_transaction'))],
  ] as const) {
    // what the edges answer with: REST a 503 with Retry-After, Slack and Teams "try again in a minute"
    const running = run().then(
      () => 'finished',
      (e: unknown) => toAppError(e).code,
    );
    await waitFor(
      async () =>
        Number(
          (
            await t.tdb.db.one<{ n: string }>(
              `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND query LIKE $1 AND state = 'active'`,
              [`%AS lost_${name}`],
            )
          ).n,
        ) === 1,
      `the ${name}'s statement running`,
    );
    proxy.set('drop');
    expect(await running, name).toBe('dependency_unavailable');
    proxy.set('pass');
    // the pool replaced the dead connection
    expect(await db.one<{ ok: number }>('SELECT 1 AS ok'), name).toEqual({ ok: 1 });
  }
});
