import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from '../../logger.ts';

const CONNECTION_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EPIPE',
]);
const REPORT_EVERY_MS = 30_000;
const reported = new Map<string, number>();

/** Whether an error only says Redis cannot be reached now (ioredis reconnects by itself). */
export function isRedisConnectionError(e: unknown): boolean {
  const err = e as { code?: unknown; message?: unknown };
  return (
    CONNECTION_CODES.has(String(err?.code)) || /^Connection is closed|^connect ETIMEDOUT|Reached the max retries/.test(String(err?.message))
  );
}

/**
 * One line when Redis cannot be reached, then at most one every 30 s while the outage is the same: every queue,
 * worker and connection of the process reports it on each reconnect attempt, several a second. Other errors are
 * logged each time.
 */
export function reportRedisError(log: Logger, e: Error, context: Record<string, unknown> = {}): void {
  if (!isRedisConnectionError(e)) {
    log.warn({ err: e, ...context }, 'queue error');
    return;
  }
  const now = Date.now();
  const last = reported.get(e.message);
  if (last !== undefined && now - last < REPORT_EVERY_MS) return;
  reported.set(e.message, now);
  log.warn({ err: e.message }, 'Redis cannot be reached; retrying (is it running, and is REDIS_URL right?)');
}

/**
 * Workers need `maxRetriesPerRequest: null` (their blocking reads must survive reconnects). Producers fail
 * fast instead: when Redis is down an enqueue error is harmless because the outbox reconciler re-enqueues
 * from Postgres once Redis is back.
 */
export function createRedis(url: string, role: 'worker' | 'producer' | 'probe', name?: string, onError?: (e: Error) => void): Redis {
  const redis = build(url, role, name);
  // ioredis reconnects by itself; without a listener every failed attempt is printed as "Unhandled error event"
  redis.on('error', onError ?? (() => undefined));
  return redis;
}

function build(url: string, role: 'worker' | 'producer' | 'probe', name?: string): Redis {
  const base: RedisOptions = { lazyConnect: false, connectionName: name };
  if (role === 'worker') return new Redis(url, { ...base, maxRetriesPerRequest: null, enableReadyCheck: true });
  if (role === 'producer') return new Redis(url, { ...base, maxRetriesPerRequest: 1, enableOfflineQueue: true, connectTimeout: 5000 });
  return new Redis(url, {
    ...base,
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    connectTimeout: 2000,
    retryStrategy: () => null,
  });
}

/** Deletes every key under a prefix (tests, and `signoff` maintenance); SCAN keeps Redis responsive. */
export async function deleteKeysWithPrefix(redis: Redis, prefix: string): Promise<number> {
  let cursor = '0';
  let deleted = 0;
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}:*`, 'COUNT', 1000);
    cursor = next;
    if (keys.length) deleted += await redis.unlink(...keys);
  } while (cursor !== '0');
  return deleted;
}
