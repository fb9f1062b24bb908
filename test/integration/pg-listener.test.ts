import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenForNotifications } from '../../src/db/pg-listener.ts';
import { createLogger } from '../../src/logger.ts';
import { PgProxy } from '../support/pg-proxy.ts';
import { createTestDatabase, type TestDatabase } from '../support/test-db.ts';
import { waitFor } from '../support/wait.ts';

let tdb: TestDatabase;
let proxy: PgProxy;
beforeAll(async () => {
  tdb = await createTestDatabase();
  proxy = await new PgProxy().start();
});
afterAll(async () => {
  await proxy?.stop();
  await tdb?.drop();
});

const CHANNEL = 'signoff_listener_test';
const sessions = async (name: string) =>
  Number(
    (
      await tdb.db.one<{ n: string }>(
        `SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND application_name = $1`,
        [name],
      )
    ).n,
  );

describe('a LISTEN connection of its own', () => {
  it('opens one connection however often asked, hears NOTIFY, reports the loss and listens again after it', async () => {
    let listening = false;
    const heard: (string | undefined)[] = [];
    const listener = listenForNotifications(
      { databaseUrl: proxy.url(tdb.url), channel: CHANNEL, applicationName: 'listener-test', logger: createLogger('silent'), failure: 'x' },
      {
        listening: () => {
          listening = true;
        },
        lost: () => {
          listening = false;
        },
        notified: (payload) => heard.push(payload),
      },
    );
    try {
      // asked twice (two pages opened at once): one connection
      listener.ensure();
      listener.ensure();
      await waitFor(() => listening, 'listening');
      expect(await sessions('listener-test')).toBe(1);
      await tdb.db.query(`SELECT pg_notify($1, 'one')`, [CHANNEL]);
      await waitFor(() => heard.includes('one'), 'the first notification');

      proxy.set('drop');
      await waitFor(() => !listening, 'the loss reported');
      proxy.set('pass');
      await waitFor(() => listening, 'listening again');
      await tdb.db.query(`SELECT pg_notify($1, 'two')`, [CHANNEL]);
      await waitFor(() => heard.includes('two'), 'a notification after the reconnect');
      expect(heard).toEqual(['one', 'two']);
    } finally {
      await listener.stop();
    }
    expect(listening).toBe(false);
    await waitFor(async () => (await sessions('listener-test')) === 0, 'the connection closed');
  });
});
