import type { AppContext } from '../../src/app-context.ts';
import { buildContext } from '../../src/build-context.ts';
import { loadConfig } from '../../src/config.ts';
import { ManualClock } from '../../src/core/clock.ts';
import { createLogger } from '../../src/logger.ts';
import { createTestDatabase, TEST_CONNECT_TIMEOUT_MS, testQueuePrefix, type TestDatabase } from './test-db.ts';

export interface TestContext {
  ctx: AppContext;
  clock: ManualClock;
  tdb: TestDatabase;
  close(): Promise<void>;
}

/** A context on a database of its own, with a manual clock and quiet logs. `env` overrides configuration. */
export async function createTestContext(
  env: Record<string, string> = {},
  opts: { poolSize?: number; connectTimeoutMs?: number } = {},
): Promise<TestContext> {
  const tdb = await createTestDatabase(opts);
  const clock = new ManualClock();
  const config = loadConfig({
    NODE_ENV: 'test',
    DATABASE_URL: tdb.url,
    QUEUE_PREFIX: testQueuePrefix(),
    LOG_LEVEL: 'silent',
    WEBHOOK_ALLOW_HOSTS: '127.0.0.1,localhost',
    DATABASE_CONNECT_TIMEOUT_MS: String(TEST_CONNECT_TIMEOUT_MS),
    ...env,
  });
  const ctx = buildContext({ config, db: tdb.db, clock, logger: createLogger('silent') });
  return { ctx, clock, tdb, close: () => tdb.drop() };
}
