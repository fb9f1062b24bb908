/**
 * A worker process for tests: builds a context from the environment and runs startWorkers, like
 * `signoff start --role worker`. TEST_BACKOFF_MS / TEST_LOCK_MS shorten the retry and stall timings.
 * Prints "READY" once the workers listen; on SIGTERM prints "STOPPING", finishes in-flight jobs and exits 0.
 */
import { buildContext } from '../../src/build-context.ts';
import { loadConfig } from '../../src/config.ts';
import { openDatabase } from '../../src/db/database.ts';
import { startWorkers } from '../../src/integrations/queue/workers.ts';
import { createLogger } from '../../src/logger.ts';

const config = loadConfig(process.env);
const logger = createLogger(config.LOG_LEVEL);
const db = await openDatabase(config.DATABASE_URL, { poolSize: 10, connectTimeoutMs: config.DATABASE_CONNECT_TIMEOUT_MS });
const ctx = buildContext({ config, db, logger });
const backoff = Number(process.env.TEST_BACKOFF_MS ?? 20);
// a long lock by default: on a starved machine a short one expires under a live worker and its job runs twice;
// tests about recovering from a killed worker ask for a short one (TEST_LOCK_MS)
const lock = Number(process.env.TEST_LOCK_MS ?? 30_000);
const workers = await startWorkers(ctx, {
  backoff: { baseMs: backoff, maxMs: backoff * 10 },
  lockDurationMs: lock,
  stalledIntervalMs: Math.max(250, Math.floor(lock / 2)),
  sweeper: process.env.TEST_SWEEPER === '1',
});
process.stdout.write('READY\n');
process.once('SIGTERM', async () => {
  process.stdout.write('STOPPING\n');
  await workers.stop();
  await db.close();
  process.stdout.write('STOPPED\n');
  process.exit(0);
});
