import type { Redis } from 'ioredis';
import type { AppContext } from '../../app-context.ts';
import type { Clock } from '../../core/clock.ts';

/**
 * Per-endpoint fairness, shared by every worker through Redis: a concurrency limit (a sorted set of leases, so
 * a dead worker's slot frees itself) and a circuit breaker (closed → open after N consecutive failures → one
 * half-open probe after the cool-down → closed on success, open again on failure). One script call per gate
 * and per release. When Redis loses the keys the endpoint starts closed with free slots: harmless.
 */

export type CircuitState = 'closed' | 'open' | 'half_open';

export interface GateSettings {
  /** attempts in flight per endpoint, over all workers */
  concurrency: number;
  /** consecutive failed attempts (network, timeout, 408, 429, 5xx) that open the circuit */
  failureThreshold: number;
  cooldownMs: number;
  /** a slot's lease: longer than any attempt (the HTTP timeout plus margin) */
  leaseMs: number;
}

export type GateResult = { ok: true; probe: boolean } | { ok: false; reason: 'busy' | 'open' | 'probing'; waitMs: number };

/** What an attempt says about the endpoint's health: an answer other than the retryable ones means it is up. */
export type AttemptHealth = 'ok' | 'fail' | 'neutral';

export interface CircuitView {
  state: CircuitState;
  consecutiveFailures: number;
  openUntil: string | null;
  inFlight: number;
  timesOpened: number;
}

// KEYS[1] slots zset, KEYS[2] breaker hash; ARGV now, holder, limit, leaseMs, keepMs
const ACQUIRE = `
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[2])
  return {1, 0, redis.call('HGET', KEYS[2], 'state') or 'closed'}
end
local state = redis.call('HGET', KEYS[2], 'state') or 'closed'
if state == 'open' then
  local openUntil = tonumber(redis.call('HGET', KEYS[2], 'openUntil') or '0')
  if now < openUntil then return {0, openUntil - now, 'open'} end
  state = 'half_open'
  redis.call('HSET', KEYS[2], 'state', 'half_open')
end
local held = redis.call('ZCARD', KEYS[1])
if state == 'half_open' then
  if held > 0 then return {0, 0, 'probing'} end
elseif held >= tonumber(ARGV[3]) then
  return {0, 0, 'busy'}
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, 0, state}
`;

// KEYS as above; ARGV now, holder, health, threshold, cooldownMs, keepMs
const RELEASE = `
local now = tonumber(ARGV[1])
local held = redis.call('ZREM', KEYS[1], ARGV[2])
local state = redis.call('HGET', KEYS[2], 'state') or 'closed'
if ARGV[3] == 'ok' then
  if state ~= 'closed' or redis.call('HGET', KEYS[2], 'failures') ~= '0' then
    redis.call('HSET', KEYS[2], 'state', 'closed', 'failures', 0)
    redis.call('HDEL', KEYS[2], 'openUntil')
  end
elseif ARGV[3] == 'fail' then
  local failures = redis.call('HINCRBY', KEYS[2], 'failures', 1)
  if state == 'half_open' or (state == 'closed' and failures >= tonumber(ARGV[4])) then
    redis.call('HSET', KEYS[2], 'state', 'open', 'openUntil', now + tonumber(ARGV[5]))
    redis.call('HINCRBY', KEYS[2], 'opened', 1)
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return held
`;

// breaker state is kept a while after the last attempt, then forgotten (a quiet endpoint starts closed)
const KEEP_MS = 24 * 3600_000;

export class EndpointGate {
  constructor(private readonly redis: Redis, private readonly prefix: string, private readonly clock: Clock, readonly settings: GateSettings) {}

  private keys(endpointId: string): [string, string] {
    return [`${this.prefix}:endpoint:${endpointId}:slots`, `${this.prefix}:endpoint:${endpointId}:circuit`];
  }

  /** Takes one of the endpoint's slots for this delivery, or says how long to wait. */
  async acquire(endpointId: string, holder: string): Promise<GateResult> {
    const [slots, circuit] = this.keys(endpointId);
    const r = (await this.redis.eval(ACQUIRE, 2, slots, circuit, this.clock.now().getTime(), holder, this.settings.concurrency, this.settings.leaseMs, KEEP_MS)) as [number, number, string];
    if (r[0] === 1) return { ok: true, probe: r[2] === 'half_open' };
    return { ok: false, reason: r[2] as 'busy' | 'open' | 'probing', waitMs: Number(r[1]) };
  }

  async release(endpointId: string, holder: string, health: AttemptHealth): Promise<void> {
    const [slots, circuit] = this.keys(endpointId);
    await this.redis.eval(RELEASE, 2, slots, circuit, this.clock.now().getTime(), holder, health, this.settings.failureThreshold, this.settings.cooldownMs, KEEP_MS);
  }

  /** The breaker and slot use of each endpoint, for the API and the metrics (one pipeline). */
  async view(endpointIds: string[]): Promise<Map<string, CircuitView>> {
    const out = new Map<string, CircuitView>();
    if (endpointIds.length === 0) return out;
    const now = this.clock.now().getTime();
    const p = this.redis.pipeline();
    for (const id of endpointIds) {
      const [slots, circuit] = this.keys(id);
      p.hgetall(circuit);
      p.zcount(slots, now, '+inf');
    }
    const res = (await p.exec()) ?? [];
    endpointIds.forEach((id, i) => {
      const h = (res[2 * i]?.[1] ?? {}) as Record<string, string>;
      const inFlight = Number(res[2 * i + 1]?.[1] ?? 0);
      let state = (h.state as CircuitState | undefined) ?? 'closed';
      const openUntil = h.openUntil ? Number(h.openUntil) : null;
      // an open circuit whose cool-down is over lets the next attempt through as a probe
      if (state === 'open' && openUntil !== null && openUntil <= now) state = 'half_open';
      out.set(id, {
        state, consecutiveFailures: Number(h.failures ?? 0), openUntil: state === 'open' && openUntil ? new Date(openUntil).toISOString() : null,
        inFlight, timesOpened: Number(h.opened ?? 0),
      });
    });
    return out;
  }
}

/** How a blocked delivery waits: until the circuit's cool-down ends, or (busy) a growing, jittered pause. */
export function gateWaitMs(result: Extract<GateResult, { ok: false }>, waits: number, cooldownMs: number, random: () => number = Math.random): number {
  if (result.reason === 'open') return Math.max(50, result.waitMs) + Math.floor(random() * 250);
  // busy or probing: back off per job, so a long queue for a slow endpoint costs little Redis traffic
  const base = Math.min(result.reason === 'probing' ? cooldownMs : 5_000, 100 * 2 ** Math.min(waits, 10));
  return Math.round(base / 2 + random() * (base / 2));
}

/** The gate with the configured limits, on the given Redis connection (a worker's, or the web role's producer). */
export function gateFor(ctx: AppContext, redis: Redis, prefix = ctx.config.QUEUE_PREFIX): EndpointGate {
  return new EndpointGate(redis, prefix, ctx.clock, {
    concurrency: ctx.config.WEBHOOK_ENDPOINT_CONCURRENCY,
    failureThreshold: ctx.config.WEBHOOK_BREAKER_FAILURES,
    cooldownMs: ctx.config.WEBHOOK_BREAKER_COOLDOWN_MS,
    leaseMs: ctx.config.WEBHOOK_TIMEOUT_MS + 30_000,
  });
}
