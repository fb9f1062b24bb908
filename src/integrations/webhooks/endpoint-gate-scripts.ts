import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/**
 * The endpoint gate's Redis scripts. Each endpoint has a sorted set of slot leases (member → lease end, wall clock,
 * like BullMQ's locks, so a dead process's slots free themselves) and a breaker hash (state, failures, openUntil on
 * the injected Clock; latency; opened; wanted).
 */

// KEYS[1] slots, KEYS[2] breaker; ARGV now, holder, limit, leaseMs, keepMs, wall, want, process.
// A closed endpoint grants up to `want` slots, named holder/1..holder/n (a process's share, handed out locally);
// a half-open one grants one probe, named holder/1. A refusal while busy marks the endpoint wanted, so processes
// holding idle slots give them back at their next tick.
const ACQUIRE = `
local now = tonumber(ARGV[1])
local wall = tonumber(ARGV[6])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', wall)
local state = redis.call('HGET', KEYS[2], 'state') or 'closed'
if state == 'open' then
  local openUntil = tonumber(redis.call('HGET', KEYS[2], 'openUntil') or '0')
  if now < openUntil then return {0, openUntil - now, 'open', redis.call('HGET', KEYS[2], 'latency') or ''} end
  state = 'half_open'
  redis.call('HSET', KEYS[2], 'state', 'half_open')
end
local held = redis.call('ZCARD', KEYS[1])
local grant = math.min(tonumber(ARGV[7]), tonumber(ARGV[3]) - held)
if state == 'half_open' then
  if held > 0 then return {0, 0, 'probing', redis.call('HGET', KEYS[2], 'latency') or ''} end
  grant = 1
elseif grant < 1 then
  redis.call('HSET', KEYS[2], 'wanted', wall, 'wantedBy', ARGV[8])
  -- how slow it is: its recent attempts, or the attempt in flight the longest when that is longer
  local latency = tonumber(redis.call('HGET', KEYS[2], 'latency') or '0')
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  if oldest[2] then latency = math.max(latency, wall - (tonumber(oldest[2]) - tonumber(ARGV[4]))) end
  return {0, 0, 'busy', latency}
end
for i = 1, grant do redis.call('ZADD', KEYS[1], wall + tonumber(ARGV[4]), ARGV[2] .. '/' .. i) end
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {grant, 0, state}
`;

// KEYS as above; ARGV now, member, health, threshold, cooldownMs, keepMs, latencyMs ('' when no attempt was made).
// Gives the slot back and updates the breaker; returns the breaker's state.
const RELEASE = `
local now = tonumber(ARGV[1])
redis.call('ZREM', KEYS[1], ARGV[2])
if ARGV[7] ~= '' then
  local prev = tonumber(redis.call('HGET', KEYS[2], 'latency') or ARGV[7])
  redis.call('HSET', KEYS[2], 'latency', math.floor(prev * 0.8 + tonumber(ARGV[7]) * 0.2))
end
local state = redis.call('HGET', KEYS[2], 'state') or 'closed'
if ARGV[3] == 'ok' then
  if state ~= 'closed' or redis.call('HGET', KEYS[2], 'failures') ~= '0' then
    redis.call('HSET', KEYS[2], 'state', 'closed', 'failures', 0)
    redis.call('HDEL', KEYS[2], 'openUntil')
    state = 'closed'
  end
elseif ARGV[3] == 'fail' then
  local failures = redis.call('HINCRBY', KEYS[2], 'failures', 1)
  if state == 'half_open' or (state == 'closed' and failures >= tonumber(ARGV[4])) then
    redis.call('HSET', KEYS[2], 'state', 'open', 'openUntil', now + tonumber(ARGV[5]))
    redis.call('HINCRBY', KEYS[2], 'opened', 1)
    state = 'open'
  end
end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return state
`;

// KEYS as above; ARGV wall, leaseMs, keepMs, latency ('' when unchanged), ok ('1' when attempts succeeded since the
// last tick), n, then n members given back, then the members kept (renewed), then the process. Returns the
// breaker's state, when another process was last refused, and the kept members Redis no longer has (a wipe).
const TICK = `
local wall = tonumber(ARGV[1])
local n = tonumber(ARGV[6])
for i = 7, 6 + n do redis.call('ZREM', KEYS[1], ARGV[i]) end
local lost = {}
for i = 7 + n, #ARGV - 1 do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], wall + tonumber(ARGV[2]), ARGV[i])
  else
    lost[#lost + 1] = ARGV[i]
  end
end
if ARGV[4] ~= '' then redis.call('HSET', KEYS[2], 'latency', ARGV[4]) end
local state = redis.call('HGET', KEYS[2], 'state') or 'closed'
if ARGV[5] == '1' and state == 'closed' and (redis.call('HGET', KEYS[2], 'failures') or '0') ~= '0' then
  redis.call('HSET', KEYS[2], 'failures', 0)
end
redis.call('PEXPIRE', KEYS[1], ARGV[3])
redis.call('PEXPIRE', KEYS[2], ARGV[3])
local wanted = '0'
if redis.call('HGET', KEYS[2], 'wantedBy') ~= ARGV[#ARGV] then wanted = redis.call('HGET', KEYS[2], 'wanted') or '0' end
return {state, wanted, lost}
`;

const sha = (script: string) => createHash('sha1').update(script).digest('hex');
export const SCRIPTS = {
  acquire: { text: ACQUIRE, sha: sha(ACQUIRE) },
  release: { text: RELEASE, sha: sha(RELEASE) },
  tick: { text: TICK, sha: sha(TICK) },
};

/** EVALSHA (the script's text crosses the wire only when Redis does not have it cached yet, e.g. after a restart). */
export async function runScript(redis: Redis, script: { text: string; sha: string }, args: (string | number)[]): Promise<unknown> {
  try {
    return await redis.evalsha(script.sha, 2, ...args);
  } catch (e) {
    if (!String((e as Error)?.message).startsWith('NOSCRIPT')) throw e;
    return redis.eval(script.text, 2, ...args);
  }
}
