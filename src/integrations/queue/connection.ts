import { Redis, type RedisOptions } from 'ioredis';

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
