import pg from 'pg';
import { Redis } from 'ioredis';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { openDatabase } from '../../src/db/database.ts';

const ADMIN_URL = process.env.TEST_PG_ADMIN_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';

/**
 * Migrates one template database for the run; every test file clones it (CREATE DATABASE ... TEMPLATE),
 * so files never see each other's rows. Everything made here is dropped at the end.
 */
export default async function setup() {
  const run = `${Date.now().toString(36)}${randomBytes(3).toString('hex')}`;
  const template = `signoff_tpl_${run}`;
  const url = new URL(ADMIN_URL);
  url.pathname = `/${template}`;
  const db = await openDatabase(url.toString(), { migrate: true, poolSize: 2, connectTimeoutMs: 60_000 });
  await db.close();
  process.env.SIGNOFF_TEST_RUN = run;
  process.env.SIGNOFF_TEST_TEMPLATE = template;
  process.env.TEST_PG_ADMIN_URL = ADMIN_URL;

  return async () => {
    killLeftoverChildren(run);
    const admin = new pg.Client({ connectionString: ADMIN_URL });
    await admin.connect();
    const { rows } = await admin.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`signoff_%${run}%`]);
    for (const { datname } of rows) {
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(datname)} WITH (FORCE)`);
    }
    await admin.end();
    await dropRedisKeys(run);
  };
}

/** Backstop for the files' own cleanupRedis: every key under this run's queue prefixes (test-db.ts names them). */
async function dropRedisKeys(run: string): Promise<void> {
  const redis = new Redis('redis://127.0.0.1:6379', { maxRetriesPerRequest: 1 });
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `signoff-test-${run}-*`, 'COUNT', 1000);
      cursor = next;
      if (keys.length) await redis.unlink(...keys);
    } while (cursor !== '0');
  } catch (e) {
    console.warn(`[global-setup] could not remove this run's Redis keys: ${(e as Error).message}`);
  } finally {
    redis.disconnect();
  }
}

/** Backstop for test/support/children.ts: kills every process of this run still marked as a test's child. */
function killLeftoverChildren(run: string): void {
  const marker = `SIGNOFF_TEST_CHILD=${run}`;
  let pids: string[];
  try {
    pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
  } catch {
    return; // no /proc: nothing to sweep with
  }
  for (const pid of pids) {
    try {
      if (!readFileSync(`/proc/${pid}/environ`, 'latin1').split('\0').includes(marker)) continue;
      process.kill(Number(pid), 'SIGKILL');
      console.warn(`[global-setup] killed test child ${pid} that outlived its test file`);
    } catch {
      // another user's process, or gone already
    }
  }
}
