import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { AppContext } from '../../app-context.ts';
import type { Clock } from '../../core/clock.ts';

/**
 * Per-endpoint fairness, shared by every worker through Redis: a concurrency limit (a sorted set of leases, so
 * a dead worker's slot frees itself) and a circuit breaker (closed → open after N consecutive failures → one
 * half-open probe after the cool-down → closed on success, open again on failure). One script call per gate
 * and per release (EVALSHA). When Redis loses the keys the endpoint starts closed with free slots: harmless.
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

export type GateResult =
  | { ok: true; probe: boolean }
  /** latencyMs: the endpoint's recent attempt latency (moving average), null before its first attempt */
  | { ok: false; reason: 'busy' | 'open' | 'probing'; waitMs: number; latencyMs: number | null };

/** What an attempt says about the endpoint's health: an answer other than the retryable ones means it is up. */
export type AttemptHealth = 'ok' | 'fail' | 'neutral';

export interface CircuitView {
  state: CircuitState;
  consecutiveFailures: number;
  openUntil: string | null;
  inFlight: number;
  timesOpened: number;
}

// KEYS[1] slots zset, KEYS[2] breaker hash; ARGV now (the breaker's clock), holder, limit, leaseMs, keepMs, wall
// (slot leases and latencies run on the wall clock, like BullMQ's locks; the breaker on the injected Clock)
const ACQUIRE = `
local now = tonumber(ARGV[1])
local wall = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', wall)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) then
  redis.call('ZADD', KEYS[1], wall + tonumber(ARGV[4]), ARGV[2])
  return {1, 0, redis.call('HGET', KEYS[2], 'state') or 'closed'}
end
local state = redis.call('HGET', KEYS[2], 'state') or 'closed'
if state == 'open' then
  local openUntil = tonumber(redis.call('HGET', KEYS[2], 'openUntil') or '0')
  if now < openUntil then return {0, openUntil - now, 'open', redis.call('HGET', KEYS[2], 'latency') or ''} end
  state = 'half_open'
  redis.call('HSET', KEYS[2], 'state', 'half_open')
end
local held = redis.call('ZCARD', KEYS[1])
if state == 'half_open' then
  if held > 0 then return {0, 0, 'probing', redis.call('HGET', KEYS[2], 'latency') or ''} end
elseif held >= tonumber(ARGV[3]) then
  -- how slow it is: its recent attempts, or the attempt in flight the longest when that is longer
  local latency = tonumber(redis.call('HGET', KEYS[2], 'latency') or '0')
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if oldest[2] then latency = math.max(latency, wall - (tonumber(oldest[2]) - tonumber(ARGV[4]))) end
  return {0, 0, 'busy', latency}
end
redis.call('ZADD', KEYS[1], wall + tonumber(ARGV[4]), ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {1, 0, state}
`;

// KEYS as above; ARGV now, holder, health, threshold, cooldownMs, keepMs, latencyMs ('' when no attempt was made)
const RELEASE = `
local now = tonumber(ARGV[1])
local held = redis.call('ZREM', KEYS[1], ARGV[2])
if ARGV[7] ~= '' then
  local prev = tonumber(redis.call('HGET', KEYS[2], 'latency') or ARGV[7])
  redis.call('HSET', KEYS[2], 'latency', math.floor(prev * 0.8 + tonumber(ARGV[7]) * 0.2))
end
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

const sha = (script: string) => createHash('sha1').update(script).digest('hex');
const SCRIPTS = { acquire: { text: ACQUIRE, sha: sha(ACQUIRE) }, release: { text: RELEASE, sha: sha(RELEASE) } };

/** EVALSHA (the script's text crosses the wire only when Redis does not have it cached yet, e.g. after a restart). */
async function runScript(redis: Redis, script: { text: string; sha: string }, args: (string | number)[]): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, 2, ...args);
  } catch (e) {
    if (!String((e as Error)?.message).startsWith('NOSCRIPT')) throw e;
    return redis.eval(script.text, 2, ...args);
  }
}

// breaker state is kept a while after the last attempt, then forgotten (a quiet endpoint starts closed)
const KEEP_MS = 24 * 3600_000;
// how long a refusal makes this process ask the gate before claiming a delivery, rather than while claiming it
const REFUSAL_MEMORY_MS = 1000;

export class EndpointGate {
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly clock: Clock,
    readonly settings: GateSettings,
  ) {}

  private keys(endpointId: string): [string, string] {
    return [`${this.prefix}:endpoint:${endpointId}:slots`, `${this.prefix}:endpoint:${endpointId}:circuit`];
  }

  /** when this process was last refused a slot, per endpoint */
  private readonly refusals = new Map<string, number>();

  /** Whether this process sent a delivery of the endpoint away to wait for a slot within the last second. */
  refusedLately(endpointId: string): boolean {
    const at = this.refusals.get(endpointId);
    if (at === undefined) return false;
    if (Date.now() - at < REFUSAL_MEMORY_MS) return true;
    this.refusals.delete(endpointId);
    return false;
  }

  /** Takes one of the endpoint's slots for this delivery, or says how long to wait. */
  async acquire(endpointId: string, holder: string): Promise<GateResult> {
    const [slots, circuit] = this.keys(endpointId);
    const r = (await runScript(this.redis, SCRIPTS.acquire, [
      slots,
      circuit,
      this.clock.now().getTime(),
      holder,
      this.settings.concurrency,
      this.settings.leaseMs,
      KEEP_MS,
      Date.now(),
    ])) as [number, number, string, string?];
    if (r[0] === 1) return { ok: true, probe: r[2] === 'half_open' };
    return {
      ok: false,
      reason: r[2] as 'busy' | 'open' | 'probing',
      waitMs: Number(r[1]),
      latencyMs: r[3] !== undefined && r[3] !== '' ? Number(r[3]) : null,
    };
  }

  async release(endpointId: string, holder: string, health: AttemptHealth, latencyMs: number | null = null): Promise<void> {
    const [slots, circuit] = this.keys(endpointId);
    await runScript(this.redis, SCRIPTS.release, [
      slots,
      circuit,
      this.clock.now().getTime(),
      holder,
      health,
      this.settings.failureThreshold,
      this.settings.cooldownMs,
      KEEP_MS,
      latencyMs ?? '',
    ]);
    this.released.get(endpointId)?.forEach((wake) => wake());
  }

  private readonly released = new Map<string, Set<() => void>>();

  /**
   * Takes a slot, waiting here while a fast endpoint is merely busy: its slots free within milliseconds, and a job
   * sent to the delayed set would wait far longer than that. A release in this process wakes the waiters at once,
   * other workers' releases are seen by polling. A slow, open or probing endpoint is not waited for (the caller
   * delays the job and frees its worker slot).
   */
  async acquireOrWait(endpointId: string, holder: string, opts: { fastMs?: number; maxWaitMs?: number } = {}): Promise<GateResult> {
    const fastMs = opts.fastMs ?? 200;
    const deadline = Date.now() + (opts.maxWaitMs ?? 1000);
    for (;;) {
      const r = await this.acquire(endpointId, holder);
      if (r.ok) return r;
      if (r.reason !== 'busy' || (r.latencyMs ?? 0) >= fastMs || Date.now() >= deadline) {
        // sent away to wait: this endpoint's next deliveries ask before they are claimed. A fast endpoint merely
        // busy for a moment is not remembered, or every delivery would ask while none holds a send slot
        this.refusals.set(endpointId, Date.now());
        return r;
      }
      await new Promise<void>((resolve) => {
        let waiters = this.released.get(endpointId);
        if (!waiters) this.released.set(endpointId, (waiters = new Set()));
        const done = () => {
          clearTimeout(timer);
          waiters!.delete(done);
          if (waiters!.size === 0) this.released.delete(endpointId);
          resolve();
        };
        const timer = setTimeout(done, Math.max(5, Math.min(50, r.latencyMs ?? 20)));
        waiters.add(done);
      });
    }
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
      p.zcount(slots, Date.now(), '+inf');
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
        state,
        consecutiveFailures: Number(h.failures ?? 0),
        openUntil: state === 'open' && openUntil ? new Date(openUntil).toISOString() : null,
        inFlight,
        timesOpened: Number(h.opened ?? 0),
      });
    });
    return out;
  }
}

/**
 * How long a blocked delivery sits in the delayed set: until the circuit's cool-down ends (spread a little), or,
 * for a busy slow endpoint, about as long as its attempts take, growing per job, so a long queue for a slow
 * endpoint costs little Redis traffic.
 */
export function gateWaitMs(
  result: Extract<GateResult, { ok: false }>,
  waits: number,
  settings: Pick<GateSettings, 'cooldownMs' | 'concurrency'>,
  random: () => number = Math.random,
): number {
  if (result.reason === 'open') return Math.max(50, result.waitMs) + Math.floor(random() * Math.min(5_000, settings.cooldownMs / 10 + 250));
  const cap = result.reason === 'probing' ? settings.cooldownMs : 30_000;
  const base = Math.min(cap, Math.max(100, (result.latencyMs ?? 100) / settings.concurrency) * 2 ** Math.min(waits, 8));
  return Math.round(base / 2 + random() * base);
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
