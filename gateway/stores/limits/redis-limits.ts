/**
 * Limits in Redis, shared by every replica. consume() is ONE Lua script: it reads
 * every counter of the request, and only if all have room takes from all of them, so
 * two replicas can never both take the last slot (PEERS #1). Windows are string
 * counters with PX expiry set by their first request (rate-limiter-flexible's fixed
 * window layout); concurrency is a sorted set of grant tokens scored by lease expiry,
 * so release is idempotent and a crashed replica's slots expire by themselves.
 * Time comes from the Redis server (TIME), so replica clock skew does not matter.
 * Keys: `<prefix>rl:<rule id>`. All keys of one call must live on one node: a single
 * Redis or a Sentinel pair, not Cluster.
 */
import type { Redis } from 'ioredis';
import { defineScript } from '../redis/connection.js';
import { newToken, retryAfter, type ConsumeResult, type LimitRule, type LimitState, type LimitsStore } from './types.js';

// ARGV: token, then per key: points, limit, windowMs, kind ('w' | 'c').
// Returns {allowed, used1, reset1, used2, reset2, ...}.
const CONSUME = defineScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local token = ARGV[1]
local ok = 1
local used, reset = {}, {}
for i = 1, #KEYS do
  local b = 1 + (i - 1) * 4
  local points, limit, win, kind = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2]), tonumber(ARGV[b + 3]), ARGV[b + 4]
  if kind == 'c' then
    redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
    used[i] = redis.call('ZCARD', KEYS[i])
    reset[i] = 0
    points = 1
  else
    used[i] = tonumber(redis.call('GET', KEYS[i]) or '0')
    reset[i] = redis.call('PTTL', KEYS[i])
    if reset[i] < 0 then reset[i] = win end
  end
  if used[i] + points > limit then ok = 0 end
end
if ok == 1 then
  for i = 1, #KEYS do
    local b = 1 + (i - 1) * 4
    local points, win, kind = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 3]), ARGV[b + 4]
    if kind == 'c' then
      redis.call('ZADD', KEYS[i], now + win, token)
      redis.call('PEXPIRE', KEYS[i], win)
      used[i] = used[i] + 1
    else
      used[i] = redis.call('INCRBY', KEYS[i], points)
      if redis.call('PTTL', KEYS[i]) < 0 then redis.call('PEXPIRE', KEYS[i], win) end
      reset[i] = redis.call('PTTL', KEYS[i])
    end
  end
end
local out = {ok}
for i = 1, #KEYS do
  out[#out + 1] = used[i]
  out[#out + 1] = reset[i]
end
-- then, per key, when its window ends on the Redis clock (epoch ms)
for i = 1, #KEYS do out[#out + 1] = now + reset[i] end
return out
`);

// Only while the window the grant counted in lives (ARGV[2]: its end, epoch ms, or ''
// for any; ARGV[3]: tolerance ms); never below zero. A window's end is fixed when it
// starts and the next one ends a whole window later, so half a window (at most a
// second) of tolerance tells them apart.
const ADJUST = defineScript(`
local ttl = redis.call('PTTL', KEYS[1])
if ttl <= 0 then return 0 end
if ARGV[2] ~= '' then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  if math.abs(now + ttl - tonumber(ARGV[2])) > tonumber(ARGV[3]) then return 0 end
end
local v = redis.call('INCRBY', KEYS[1], ARGV[1])
if v < 0 then redis.call('SET', KEYS[1], 0, 'KEEPTTL') end
return 1
`);

// ARGV: per key: windowMs, kind. Returns {used1, reset1, ...} without changing anything.
const PEEK = defineScript(`
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local out = {}
for i = 1, #KEYS do
  local win, kind = tonumber(ARGV[(i - 1) * 2 + 1]), ARGV[(i - 1) * 2 + 2]
  if kind == 'c' then
    out[#out + 1] = redis.call('ZCOUNT', KEYS[i], '(' .. now, '+inf')
    out[#out + 1] = 0
  else
    out[#out + 1] = tonumber(redis.call('GET', KEYS[i]) or '0')
    local r = redis.call('PTTL', KEYS[i])
    if r < 0 then r = win end
    out[#out + 1] = r
  end
end
return out
`);

export interface RedisLimitsOptions {
  redis: Redis;
  /** store.key_prefix */
  keyPrefix: string;
}

function toStates(rules: readonly LimitRule[], flat: number[], offset: number): LimitState[] {
  return rules.map((r, i) => {
    const used = Number(flat[offset + i * 2]);
    return { id: r.id, limit: r.limit, used, remaining: Math.max(0, r.limit - used), resetMs: Number(flat[offset + i * 2 + 1]) };
  });
}

/** Errors propagate: the resilient wrapper applies store.on_failure. */
export function createRedisLimits(opts: RedisLimitsOptions): LimitsStore {
  const { redis } = opts;
  const key = (id: string) => `${opts.keyPrefix}rl:${id}`;
  return {
    async consume(rules, tokenIn): Promise<ConsumeResult> {
      const token = tokenIn ?? newToken();
      if (rules.length === 0) return { allowed: true, states: [], denied: [], retryAfterMs: 0, grant: { token, rules } };
      const args: (string | number)[] = [token];
      for (const r of rules) args.push(Math.ceil(r.points), r.limit, r.windowMs, r.kind === 'concurrent' ? 'c' : 'w');
      const flat = (await CONSUME.run(redis, rules.map((r) => key(r.id)), args)) as number[];
      const states = toStates(rules, flat, 1);
      if (flat[0] === 1) {
        const windowEnds: Record<string, number> = {};
        rules.forEach((r, i) => {
          if (r.kind !== 'concurrent') windowEnds[r.id] = Number(flat[1 + 2 * rules.length + i]);
        });
        return { allowed: true, states, denied: [], retryAfterMs: 0, grant: { token, rules, windowEnds } };
      }
      const denied = rules.filter((r, i) => states[i].used + (r.kind === 'concurrent' ? 1 : Math.ceil(r.points)) > r.limit).map((r) => r.id);
      return { allowed: false, states, denied, retryAfterMs: retryAfter(rules, states, denied) };
    },
    async adjust(grant, ruleId, delta) {
      const d = Math.round(delta);
      const end = grant.windowEnds?.[ruleId];
      const windowMs = grant.rules.find((r) => r.id === ruleId)?.windowMs ?? 60_000;
      if (d !== 0) await ADJUST.run(redis, [key(ruleId)], [d, end === undefined ? '' : end, Math.min(1000, Math.floor(windowMs / 2))]);
    },
    async release(grant) {
      const slots = grant.rules.filter((r) => r.kind === 'concurrent');
      if (slots.length === 0) return;
      const pipe = redis.pipeline();
      for (const r of slots) pipe.zrem(key(r.id), grant.token);
      const results = await pipe.exec();
      const failed = results?.find(([err]) => err);
      if (failed) throw failed[0];
    },
    async peek(rules) {
      if (rules.length === 0) return [];
      const args: (string | number)[] = [];
      for (const r of rules) args.push(r.windowMs, r.kind === 'concurrent' ? 'c' : 'w');
      const flat = (await PEEK.run(redis, rules.map((r) => key(r.id)), args)) as number[];
      return toStates(rules, flat, 0);
    },
    async close() {
      // The client belongs to the connection (main.ts closes it).
    },
  };
}
