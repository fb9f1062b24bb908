import pg from 'pg';
import { randomBytes } from 'node:crypto';
import { type Database, openDatabase } from '../../src/db/database.ts';
import { HANG_LIMIT_MS } from './wait.ts';

/** Tests connect patiently: on a machine busy with other test runs a new connection may take seconds. */
export const TEST_CONNECT_TIMEOUT_MS = 60_000;

export interface TestDatabase {
  url: string;
  db: Database;
  drop(): Promise<void>;
}

/**
 * A fresh, migrated database of this test file's own, cloned from the run's template. Three files run at once
 * against a server allowing 100 connections, so pools are small and let idle connections go quickly; a file
 * that needs more at once (the 50-call race) asks for it.
 */
export async function createTestDatabase(opts: { poolSize?: number; connectTimeoutMs?: number } = {}): Promise<TestDatabase> {
  const adminUrl = process.env.TEST_PG_ADMIN_URL!;
  const run = process.env.SIGNOFF_TEST_RUN!;
  const template = process.env.SIGNOFF_TEST_TEMPLATE!;
  const name = `signoff_t_${run}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    for (const started = Date.now(); ; ) {
      try {
        await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE ${pg.escapeIdentifier(template)}`);
        break;
      } catch (e) {
        // the template is briefly busy while another file clones it
        if ((e as { code?: string }).code !== '55006' || Date.now() - started > HANG_LIMIT_MS) throw e;
        await new Promise((r) => setTimeout(r, 50 + Math.random() * 100));
      }
    }
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  const db = await openDatabase(url.toString(), {
    poolSize: opts.poolSize ?? 20,
    idleTimeoutMs: 1000,
    connectTimeoutMs: opts.connectTimeoutMs ?? TEST_CONNECT_TIMEOUT_MS,
  });
  return {
    url: url.toString(),
    db,
    async drop() {
      await db.close();
      const a = new pg.Client({ connectionString: adminUrl });
      await a.connect();
      await a.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await a.end();
    },
  };
}

/** A Redis key prefix unique to this test file; `cleanupRedis` deletes everything under it. */
export function testQueuePrefix(): string {
  return `signoff-test-${process.env.SIGNOFF_TEST_RUN}-${randomBytes(4).toString('hex')}`;
}
