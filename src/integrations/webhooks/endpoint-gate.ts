import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { AppContext } from '../../app-context.ts';
import type { Clock } from '../../core/clock.ts';
import { runScript, SCRIPTS } from './endpoint-gate-scripts.ts';

/**
 * Per-endpoint fairness, shared by every worker through Redis: a concurrency limit (a sorted set of leases, so
 * a dead worker's slot frees itself) and a circuit breaker (closed → open after N consecutive failures → one
 * half-open probe after the cool-down → closed on success, open again on failure). When Redis loses the keys the
 * endpoint starts closed with free slots: harmless.
 *
 * While an endpoint's circuit is closed, a process leases a few of its slots at a time and hands them out to its
 * own attempts: a healthy endpoint costs no Redis call per attempt. A failure is reported at once (it may open the
 * circuit); successes, latency and lease renewals go in a tick every quarter second, which also gives back slots
 * the process has not used since the last tick, or every free one when another process was refused.
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

// breaker state is kept a while after the last attempt, then forgotten (a quiet endpoint starts closed)
const KEEP_MS = 24 * 3600_000;
// slots a process takes from a closed endpoint per Redis call
const LEASE_CHUNK = 4;
// how often a process renews its share of an endpoint's slots and gives back what it did not use
const TICK_MS = 250;
// how long sending a delivery away to wait makes this process ask the gate before claiming the endpoint's next ones
const REFUSAL_MEMORY_MS = 1000;
// an endpoint whose attempts take longer than this is slow: its deliveries are not waited for at its gate
const FAST_MS = 200;

interface SlotPool {
  /** the members of the endpoint's slot set this process holds, in use or not */
  members: Set<string>;
  free: string[];
  usedSinceTick: boolean;
  okSinceTick: boolean;
  /** the last attempt reported a failure to the breaker: the next success is reported too (it resets the count) */
  failing: boolean;
  latencyMs: number | null;
  latencyChanged: boolean;
  timer: NodeJS.Timeout;
}

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

  /** when this process last sent a delivery away to wait for a slot, per endpoint */
  private readonly refusals = new Map<string, number>();

  /** Whether this process sent a delivery of the endpoint away to wait for a slot within the last second. */
  refusedLately(endpointId: string): boolean {
    const at = this.refusals.get(endpointId);
    if (at === undefined) return false;
    if (Date.now() - at < REFUSAL_MEMORY_MS) return true;
    this.refusals.delete(endpointId);
    return false;
  }

  /** Whether the endpoint's recent attempts from this process were answered quickly. */
  answersFast(endpointId: string): boolean {
    const latency = this.pools.get(endpointId)?.latencyMs;
    return latency != null && latency < FAST_MS;
  }

  /** this process's share of each endpoint's slots (closed circuits only) */
  private readonly pools = new Map<string, SlotPool>();
  /** the slot each attempt holds: its holder (the delivery) → the endpoint's pool member, or a probe's own */
  private readonly holding = new Map<string, { endpointId: string; member: string; pooled: boolean; since: number; runs: number }>();
  private readonly processId = randomBytes(6).toString('hex');
  private acquisitions = 0;

  /** Takes one of the endpoint's slots for this delivery, or says how long to wait. */
  async acquire(endpointId: string, holder: string): Promise<GateResult> {
    const key = `${endpointId} ${holder}`;
    // a duplicate run of the same delivery in this process shares its slot (its claim then finds the delivery
    // leased); the slot goes back when the last run sharing it is done, not when the duplicate is
    const shared = this.holding.get(key);
    if (shared) {
      shared.runs++;
      return { ok: true, probe: false };
    }
    const pool = this.pools.get(endpointId);
    const free = pool?.free.pop();
    if (pool && free !== undefined) {
      pool.usedSinceTick = true;
      this.holding.set(key, { endpointId, member: free, pooled: true, since: Date.now(), runs: 1 });
      return { ok: true, probe: false };
    }
    // every slot the limit allows is this process's and in use: busy, without asking
    if (pool && pool.members.size >= this.settings.concurrency) {
      // how slow it is: its recent attempts, or how long its attempts in flight have taken so far when that is
      // longer (the median: one attempt stalled on a busy machine does not make a fast endpoint slow)
      const now = Date.now();
      const ages: number[] = [];
      for (const h of this.holding.values()) if (h.endpointId === endpointId) ages.push(now - h.since);
      ages.sort((x, y) => x - y);
      const age = ages[Math.floor(ages.length / 2)] ?? 0;
      return { ok: false, reason: 'busy', waitMs: 0, latencyMs: Math.max(pool.latencyMs ?? 0, age) };
    }
    const base = `${this.processId}.${++this.acquisitions}`;
    const [slots, circuit] = this.keys(endpointId);
    const r = (await runScript(this.redis, SCRIPTS.acquire, [
      slots,
      circuit,
      this.clock.now().getTime(),
      base,
      this.settings.concurrency,
      this.settings.leaseMs,
      KEEP_MS,
      Date.now(),
      LEASE_CHUNK,
      this.processId,
    ])) as [number, number, string, string?];
    const granted = Number(r[0]);
    if (granted > 0) {
      const probe = r[2] === 'half_open';
      const members = Array.from({ length: granted }, (_, i) => `${base}/${i + 1}`);
      this.holding.set(key, { endpointId, member: members[0]!, pooled: !probe, since: Date.now(), runs: 1 });
      if (!probe) {
        const p = this.pools.get(endpointId) ?? this.openPool(endpointId);
        for (const m of members) p.members.add(m);
        p.free.push(...members.slice(1));
        p.usedSinceTick = true;
      }
      return { ok: true, probe };
    }
    return {
      ok: false,
      reason: r[2] as 'busy' | 'open' | 'probing',
      waitMs: Number(r[1]),
      latencyMs: r[3] !== undefined && r[3] !== '' ? Number(r[3]) : null,
    };
  }

  /**
   * Gives the attempt's slot back with what it said about the endpoint. A pooled slot goes back to this process's
   * share unless the attempt failed, or succeeded after failures (both reported to the breaker at once).
   */
  async release(endpointId: string, holder: string, health: AttemptHealth, latencyMs: number | null = null): Promise<void> {
    const key = `${endpointId} ${holder}`;
    const held = this.holding.get(key);
    if (!held || --held.runs > 0) return;
    this.holding.delete(key);
    const pool = held.pooled ? this.pools.get(endpointId) : undefined;
    if (pool && latencyMs !== null) {
      pool.latencyMs = Math.floor(pool.latencyMs === null ? latencyMs : pool.latencyMs * 0.8 + latencyMs * 0.2);
      pool.latencyChanged = true;
    }
    if (pool?.members.has(held.member) && (health === 'neutral' || (health === 'ok' && !pool.failing))) {
      if (health === 'ok') pool.okSinceTick = true;
      this.handOn(endpointId, held.member);
      return;
    }
    pool?.members.delete(held.member);
    if (pool) pool.failing = health === 'fail';
    const [slots, circuit] = this.keys(endpointId);
    try {
      const state = (await runScript(this.redis, SCRIPTS.release, [
        slots,
        circuit,
        this.clock.now().getTime(),
        held.member,
        health,
        this.settings.failureThreshold,
        this.settings.cooldownMs,
        KEEP_MS,
        latencyMs ?? '',
      ])) as CircuitState;
      // the circuit opened: this process's idle slots go back, and its attempts ask Redis again
      if (state !== 'closed' && pool) await this.closePool(endpointId);
    } finally {
      this.wake(endpointId);
    }
  }

  private openPool(endpointId: string): SlotPool {
    const pool: SlotPool = {
      members: new Set(),
      free: [],
      usedSinceTick: false,
      okSinceTick: false,
      failing: false,
      latencyMs: null,
      latencyChanged: false,
      timer: setInterval(() => void this.tick(endpointId).catch(() => undefined), TICK_MS),
    };
    pool.timer.unref();
    this.pools.set(endpointId, pool);
    return pool;
  }

  /** Renews the share's leases, reports successes and latency, and gives back what this process has not needed. */
  private async tick(endpointId: string): Promise<void> {
    const pool = this.pools.get(endpointId);
    if (!pool) return;
    const idle = pool.usedSinceTick ? [] : pool.free.splice(0);
    for (const m of idle) pool.members.delete(m);
    const kept = [...pool.members];
    const ok = pool.okSinceTick;
    pool.usedSinceTick = false;
    pool.okSinceTick = false;
    const latency = pool.latencyChanged ? (pool.latencyMs ?? '') : '';
    pool.latencyChanged = false;
    if (kept.length === 0) {
      clearInterval(pool.timer);
      this.pools.delete(endpointId);
    }
    const [slots, circuit] = this.keys(endpointId);
    const wall = Date.now();
    const [state, wanted, lost] = (await runScript(this.redis, SCRIPTS.tick, [
      slots,
      circuit,
      wall,
      this.settings.leaseMs,
      KEEP_MS,
      latency,
      ok ? '1' : '0',
      idle.length,
      ...idle,
      ...kept,
      this.processId,
    ])) as [CircuitState, string, string[]];
    for (const m of lost) {
      pool.members.delete(m);
      const i = pool.free.indexOf(m);
      if (i >= 0) pool.free.splice(i, 1);
    }
    // another process was refused lately: this one's free slots go back now
    if (state !== 'closed') await this.closePool(endpointId);
    else if (wall - Number(wanted) < TICK_MS * 2 && pool.free.length > 0) await this.giveBack(endpointId, pool.free.splice(0));
  }

  private async giveBack(endpointId: string, members: string[]): Promise<void> {
    const pool = this.pools.get(endpointId);
    for (const m of members) pool?.members.delete(m);
    if (members.length > 0) await this.redis.zrem(this.keys(endpointId)[0], ...members);
  }

  /** Ends the endpoint's share: its free slots go back at once, the ones in use when their attempts end. */
  private async closePool(endpointId: string): Promise<void> {
    const pool = this.pools.get(endpointId);
    if (!pool) return;
    clearInterval(pool.timer);
    this.pools.delete(endpointId);
    for (const h of this.holding.values()) if (h.endpointId === endpointId) h.pooled = false;
    const free = pool.free.splice(0);
    // its waiters ask Redis now (the circuit opened, or another process wants slots) instead of at their next poll
    this.wake(endpointId);
    if (free.length > 0) await this.redis.zrem(this.keys(endpointId)[0], ...free);
  }

  /** Gives every slot this process holds and does not use back (stopping workers). */
  async close(): Promise<void> {
    await Promise.allSettled([...this.pools.keys()].map((id) => this.closePool(id)));
  }

  /** Wakes every waiter of the endpoint to ask again (a slot went back to Redis, or the circuit changed). */
  private wake(endpointId: string): void {
    const waiters = this.released.get(endpointId);
    if (!waiters) return;
    this.released.delete(endpointId);
    for (const w of waiters) w(undefined);
  }

  /** per endpoint, the attempts waiting for a slot, longest first: each called with a pooled slot, or to ask again */
  private readonly released = new Map<string, Set<(member: string | undefined) => void>>();

  /**
   * Takes a slot, waiting here while a fast endpoint is merely busy: its slots free within milliseconds, and a job
   * sent to the delayed set would wait far longer than that. A slot this process gives back goes straight to its
   * longest waiter; other workers' releases are seen by polling. A slow, open or probing endpoint is not waited for
   * (the caller delays the job and frees its worker slot).
   */
  async acquireOrWait(endpointId: string, holder: string, opts: { fastMs?: number; maxWaitMs?: number } = {}): Promise<GateResult> {
    const fastMs = opts.fastMs ?? FAST_MS;
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
      // holding every slot of the endpoint, this process frees them itself and hands them over: the timer only
      // looks again once its attempts in flight would have turned slow; otherwise it polls for other workers' releases
      const pool = this.pools.get(endpointId);
      const ownsAll = pool !== undefined && pool.members.size >= this.settings.concurrency;
      const pollMs = ownsAll ? Math.max(5, fastMs - (r.latencyMs ?? 0)) : Math.max(5, Math.min(50, r.latencyMs ?? 20));
      const handed = await new Promise<string | undefined>((resolve) => {
        let waiters = this.released.get(endpointId);
        if (!waiters) this.released.set(endpointId, (waiters = new Set()));
        const done = (member: string | undefined) => {
          clearTimeout(timer);
          const list = this.released.get(endpointId);
          list?.delete(done);
          if (list?.size === 0) this.released.delete(endpointId);
          resolve(member);
        };
        const timer = setTimeout(() => done(undefined), pollMs);
        waiters.add(done);
        // a slot given back between the refusal and now went to no waiter
        const free = this.pools.get(endpointId)?.free.pop();
        if (free !== undefined) done(free);
      });
      if (handed !== undefined) return this.take(endpointId, holder, handed);
    }
  }

  /**
   * A pooled slot handed over by a release becomes this holder's (not pooled, should the pool have closed
   * meanwhile). A duplicate run of a delivery that already holds a slot shares it and hands this one on.
   */
  private take(endpointId: string, holder: string, member: string): GateResult {
    const key = `${endpointId} ${holder}`;
    const shared = this.holding.get(key);
    if (shared) {
      shared.runs++;
      this.handOn(endpointId, member);
      return { ok: true, probe: false };
    }
    const pool = this.pools.get(endpointId);
    const pooled = pool?.members.has(member) ?? false;
    if (pool) pool.usedSinceTick = true;
    this.holding.set(key, { endpointId, member, pooled, since: Date.now(), runs: 1 });
    return { ok: true, probe: false };
  }

  /**
   * A pooled slot no attempt holds now goes straight to the endpoint's longest waiter (woken to race for it, every
   * waiter asked again on every release), else back to the pool; a slot of a pool since closed goes back to Redis.
   */
  private handOn(endpointId: string, member: string): void {
    const pool = this.pools.get(endpointId);
    if (!pool?.members.has(member)) {
      void this.redis.zrem(this.keys(endpointId)[0], member).catch(() => undefined);
      return;
    }
    const next = this.released.get(endpointId)?.values().next().value;
    if (next) next(member);
    else pool.free.push(member);
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
 * endpoint costs little Redis traffic. (Waiting also for the line sent away before it was tried: a stalled
 * endpoint's queue then came back seconds later once it answered again, webhooks-fairness.test.ts 2.1 → 5.8 s.)
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
