/**
 * Budgets in Redis, shared by every replica. Each scope is a hash
 * `<prefix>bg:<scope id>` {su, ru, st, rt} (spent/reserved micro-USD, spent/reserved
 * tokens) expiring after its period. reserve() is one Lua script that checks every
 * scope and holds on all of them or none, and records the hold under
 * `<prefix>bgr:<reservation id>`; settle() is one Lua script that deletes that record
 * and, only if it existed, moves the hold to actual spend. So settle is idempotent
 * (safe to replay after a timeout) and two replicas can never both spend the last
 * dollar. All keys of one call must live on one node (single Redis or Sentinel).
 */
import type { Redis } from 'ioredis';
import { defineScript } from '../redis/connection.js';
import { fromMicro, newReservationId, toMicro, toMicroCeil, type BudgetStore, type BudgetUsage, type Reservation } from './types.js';

// KEYS: scope hashes..., reservation key. ARGV: u, t, resExpireAt, then per scope: limitU, limitT, expireAt (-1 = no limit).
// Returns {ok, su1, ru1, st1, rt1, ...} (after holding when ok).
const RESERVE = defineScript(`
local n = #KEYS - 1
local u, t = tonumber(ARGV[1]), tonumber(ARGV[2])
local ok = 1
local cur = {}
for i = 1, n do
  local h = redis.call('HMGET', KEYS[i], 'su', 'ru', 'st', 'rt')
  local c = {tonumber(h[1] or '0'), tonumber(h[2] or '0'), tonumber(h[3] or '0'), tonumber(h[4] or '0')}
  cur[i] = c
  local b = 3 + (i - 1) * 3
  local lu, lt = tonumber(ARGV[b + 1]), tonumber(ARGV[b + 2])
  if lu >= 0 and c[1] + c[2] + u > lu then ok = 0 end
  if lt >= 0 and c[3] + c[4] + t > lt then ok = 0 end
end
if ok == 1 then
  for i = 1, n do
    local b = 3 + (i - 1) * 3
    cur[i][2] = redis.call('HINCRBY', KEYS[i], 'ru', u)
    cur[i][4] = redis.call('HINCRBY', KEYS[i], 'rt', t)
    redis.call('PEXPIREAT', KEYS[i], ARGV[b + 3])
  end
  redis.call('SET', KEYS[n + 1], u .. ':' .. t)
  redis.call('PEXPIREAT', KEYS[n + 1], ARGV[3])
end
local out = {ok}
for i = 1, n do
  for j = 1, 4 do out[#out + 1] = cur[i][j] end
end
return out
`);

// Script tail shared by SETTLE and RECORD: every scope's {su, ru, st, rt} after the call.
const RETURN_USAGE = `
local out = {}
for i = 1, n do
  local h = redis.call('HMGET', KEYS[i], 'su', 'ru', 'st', 'rt')
  for j = 1, 4 do out[#out + 1] = tonumber(h[j] or '0') end
end
return out
`;

// KEYS: scope hashes..., reservation key. ARGV: actualU, actualT, then per scope: expireAt.
// `0 - u`, not `-u`: a zero hold (a key without budget limits) negates to -0, which Lua
// sends as "-0" and HINCRBY rejects as not an integer.
const SETTLE = defineScript(`
local n = #KEYS - 1
local hold = redis.call('GET', KEYS[n + 1])
if hold then
  redis.call('DEL', KEYS[n + 1])
  local sep = string.find(hold, ':')
  local u, t = tonumber(string.sub(hold, 1, sep - 1)), tonumber(string.sub(hold, sep + 1))
  for i = 1, n do
    local ru = redis.call('HINCRBY', KEYS[i], 'ru', 0 - u)
    if ru < 0 then redis.call('HSET', KEYS[i], 'ru', 0) end
    local rt = redis.call('HINCRBY', KEYS[i], 'rt', 0 - t)
    if rt < 0 then redis.call('HSET', KEYS[i], 'rt', 0) end
    redis.call('HINCRBY', KEYS[i], 'su', ARGV[1])
    redis.call('HINCRBY', KEYS[i], 'st', ARGV[2])
    redis.call('PEXPIREAT', KEYS[i], ARGV[2 + i])
  end
end
${RETURN_USAGE}`);

// KEYS: scope hashes..., record marker. ARGV: u, t, markerTtlMs, then per scope: expireAt.
// The marker (SET NX) makes a replay count once.
const RECORD = defineScript(`
local n = #KEYS - 1
if redis.call('SET', KEYS[n + 1], 1, 'NX', 'PX', ARGV[3]) then
  for i = 1, n do
    redis.call('HINCRBY', KEYS[i], 'su', ARGV[1])
    redis.call('HINCRBY', KEYS[i], 'st', ARGV[2])
    redis.call('PEXPIREAT', KEYS[i], ARGV[3 + i])
  end
end
${RETURN_USAGE}`);

/**
 * How long a record marker lives. It only matters for a record that timed out and is
 * replayed: a timeout that still ran on Redis means a slow Redis, whose recovery (and
 * the replay) comes within seconds; a Redis that was down never ran the first call.
 * One marker per request: at 24 h they piled up to gigabytes at a thousand requests/s.
 */
const RECORD_MARKER_TTL_MS = 10 * 60_000;

export interface RedisBudgetsOptions {
  redis: Redis;
  /** store.key_prefix */
  keyPrefix: string;
}

function usageAt(flat: number[], offset: number): BudgetUsage {
  return { spentUsd: fromMicro(Number(flat[offset])), reservedUsd: fromMicro(Number(flat[offset + 1])), spentTokens: Number(flat[offset + 2]), reservedTokens: Number(flat[offset + 3]) };
}

/** Errors propagate: the resilient wrapper applies store.on_failure. */
export function createRedisBudgets(opts: RedisBudgetsOptions): BudgetStore {
  const { redis } = opts;
  const scopeKey = (id: string) => `${opts.keyPrefix}bg:${id}`;
  const holdKey = (id: string) => `${opts.keyPrefix}bgr:${id}`;
  return {
    async reserve(scopes, usd, tokens, idIn) {
      const u = toMicroCeil(usd);
      const t = Math.ceil(tokens);
      const id = idIn ?? newReservationId();
      const holdExpire = Math.max(Date.now() + 60_000, ...scopes.map((s) => s.expireAtMs));
      const args: (string | number)[] = [u, t, holdExpire];
      for (const s of scopes) args.push(s.limitUsd === undefined ? -1 : toMicro(s.limitUsd), s.limitTokens ?? -1, s.expireAtMs);
      const flat = (await RESERVE.run(redis, [...scopes.map((s) => scopeKey(s.id)), holdKey(id)], args)) as number[];
      const usage = scopes.map((_, i) => usageAt(flat, 1 + i * 4));
      if (flat[0] === 1) {
        const reservation: Reservation = { id, scopes, usd: fromMicro(u), tokens: t };
        return { ok: true, reservation, usage };
      }
      const denied = scopes
        .filter((s, i) => {
          const c = usage[i];
          return (s.limitUsd !== undefined && toMicro(c.spentUsd) + toMicro(c.reservedUsd) + u > toMicro(s.limitUsd)) || (s.limitTokens !== undefined && c.spentTokens + c.reservedTokens + t > s.limitTokens);
        })
        .map((s) => s.id);
      return { ok: false, usage, denied };
    },
    async settle(reservation, actualUsd, actualTokens) {
      const args: (string | number)[] = [toMicroCeil(actualUsd), Math.round(actualTokens), ...reservation.scopes.map((s) => s.expireAtMs)];
      const flat = (await SETTLE.run(redis, [...reservation.scopes.map((s) => scopeKey(s.id)), holdKey(reservation.id)], args)) as number[];
      return reservation.scopes.map((_, i) => usageAt(flat, i * 4));
    },
    async record(id, scopes, usd, tokens) {
      const args: (string | number)[] = [toMicroCeil(usd), Math.round(tokens), RECORD_MARKER_TTL_MS, ...scopes.map((s) => s.expireAtMs)];
      const flat = (await RECORD.run(redis, [...scopes.map((s) => scopeKey(s.id)), holdKey(`rec.${id}`)], args)) as number[];
      return scopes.map((_, i) => usageAt(flat, i * 4));
    },
    async get(scopeId) {
      const h = await redis.hmget(scopeKey(scopeId), 'su', 'ru', 'st', 'rt');
      return usageAt(h.map((v) => Number(v ?? 0)), 0);
    },
    async reset(scopeId) {
      await redis.del(scopeKey(scopeId));
    },
    async close() {
      // The client belongs to the connection (main.ts closes it).
    },
  };
}
