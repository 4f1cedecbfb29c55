/**
 * The Redis limits store under store.on_failure. While Redis answers, every call goes
 * to it. When it does not (StoreHealth decides): fail_open admits against per-replica
 * memory limits, each limit divided by store.replicas_hint so N replicas together stay
 * near the configured figure; fail_closed refuses with 503 store_unavailable.
 * A grant remembers which store it came from, so release/adjust go back to the same
 * one; a release that cannot reach Redis is replayed when the outage ends (release is
 * idempotent; the slot's lease frees it in any case). So is the release of a consume
 * that failed (a timeout may still have taken its slots on Redis).
 *
 * After a fail_open outage, what the replicas admitted locally is not in Redis's windows
 * and slots: Redis alone would admit a full limit on top of it. So for CARRY_OVER_MS
 * after the recovery, and while requests admitted locally still hold slots, a consume
 * must pass the local store (the per-replica share, which holds the outage's counts) as
 * well as Redis.
 */
import type { StoreHealth } from '../redis/connection.js';
import { createMemoryLimits } from './memory-limits.js';
import { DEFAULT_LEASE_MS, newToken, type LimitGrant, type LimitRule, type LimitsStore } from './types.js';

const MAX_DEFERRED = 10_000;
/** How long after an outage local counts still bind: one minute, the longest window (rpm, tpm). */
export const CARRY_OVER_MS = 60_000;

export interface ResilientLimitsOptions {
  shared: LimitsStore;
  health: StoreHealth;
  /** store.replicas_hint */
  replicas: number;
  local?: LimitsStore;
  /** Clock (tests). */
  now?: () => number;
}

export function createResilientLimits(opts: ResilientLimitsOptions): LimitsStore {
  const { shared, health } = opts;
  const local = opts.local ?? createMemoryLimits();
  const localGrants = new WeakSet<LimitGrant>();
  /** A shared grant taken during the carry-over, and the local grant taken with it. */
  const pairedLocal = new WeakMap<LimitGrant, LimitGrant>();
  const deferred: LimitGrant[] = [];
  const now = opts.now ?? Date.now;
  /** Local concurrency grants not yet released (they hold the outage's slots). */
  const heldLocal = new WeakSet<LimitGrant>();
  let localHeld = 0;
  let usedLocal = false;
  let carryUntil = 0;
  /** A local slot never released (its request lost) binds no longer than a slot's lease. */
  let carryCap = 0;
  const carrying = () => now() < carryUntil || (localHeld > 0 && now() < carryCap);
  const scale = (rules: readonly LimitRule[]): LimitRule[] =>
    rules.map((r) => ({ ...r, limit: Math.max(1, Math.floor(r.limit / opts.replicas)) }));

  health.onRecover(() => {
    if (usedLocal) {
      carryUntil = now() + CARRY_OVER_MS;
      carryCap = now() + DEFAULT_LEASE_MS;
    }
    usedLocal = false;
    const grants = deferred.splice(0);
    for (const g of grants) void health.attempt('limits.release', () => shared.release(g));
  });

  return {
    async consume(rules) {
      const token = newToken();
      const sharedConsume = async () => {
        try {
          return await shared.consume(rules, token);
        } catch (err) {
          // A call that timed out may still run on Redis and take its concurrency slots
          // (held for the lease, 15 minutes): release them when the outage ends.
          // Releasing slots that were never taken is a no-op.
          if (rules.some((r) => r.kind === 'concurrent') && deferred.length < MAX_DEFERRED) deferred.push({ token, rules });
          throw err;
        }
      };
      const keepLocal = (result: Awaited<ReturnType<LimitsStore['consume']>>) => {
        usedLocal = true;
        if (result.grant) {
          localGrants.add(result.grant);
          if (result.grant.rules.some((r) => r.kind === 'concurrent')) {
            heldLocal.add(result.grant);
            localHeld++;
          }
        }
        return result;
      };
      if (!carrying()) return health.run('limits.consume', sharedConsume, async () => keepLocal(await local.consume(scale(rules))));
      // Carry-over: the local share first (counted once), then the shared store; should the
      // shared store fail again, the local admission already taken is the fallback.
      const mine = await local.consume(scale(rules));
      if (!mine.allowed) return mine;
      let theirs: Awaited<ReturnType<LimitsStore['consume']>>;
      try {
        theirs = await health.run('limits.consume', sharedConsume, async () => keepLocal(mine));
      } catch (err) {
        await local.release(mine.grant!);
        throw err;
      }
      if (theirs === mine) return mine;
      // Refused by the shared store: the local slot goes back; the local window keeps the
      // point (a refusal counted locally errs on the side of the limit, for this minute only).
      if (!theirs.allowed) await local.release(mine.grant!);
      else pairedLocal.set(theirs.grant!, mine.grant!);
      return theirs;
    },
    async adjust(grant, ruleId, delta) {
      if (localGrants.has(grant)) return local.adjust(grant, ruleId, delta);
      const paired = pairedLocal.get(grant);
      if (paired) await local.adjust(paired, ruleId, delta);
      // A lost correction only skews one window of one counter: not worth deferring.
      await health.attempt('limits.adjust', () => shared.adjust(grant, ruleId, delta));
    },
    async release(grant) {
      if (localGrants.has(grant)) {
        if (heldLocal.delete(grant)) localHeld--;
        return local.release(grant);
      }
      const paired = pairedLocal.get(grant);
      if (paired) {
        pairedLocal.delete(grant);
        await local.release(paired);
      }
      if (!grant.rules.some((r) => r.kind === 'concurrent')) return;
      const ok = await health.attempt('limits.release', () => shared.release(grant));
      if (!ok && deferred.length < MAX_DEFERRED) deferred.push(grant);
    },
    peek(rules) {
      return health.run('limits.peek', () => shared.peek(rules), () => local.peek(scale(rules)));
    },
    async close() {
      await local.close();
      await shared.close();
    },
  };
}
