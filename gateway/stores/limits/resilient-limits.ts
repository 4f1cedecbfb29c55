/**
 * The Redis limits store under store.on_failure. While Redis answers, every call goes
 * to it. When it does not (StoreHealth decides): fail_open admits against per-replica
 * memory limits, each limit divided by store.replicas_hint so N replicas together stay
 * near the configured figure; fail_closed refuses with 503 store_unavailable.
 * A grant remembers which store it came from, so release/adjust go back to the same
 * one; a release that cannot reach Redis is replayed when the outage ends (release is
 * idempotent; the slot's lease frees it in any case). So is the release of a consume
 * that failed (a timeout may still have taken its slots on Redis).
 */
import type { StoreHealth } from '../redis/connection.js';
import { createMemoryLimits } from './memory-limits.js';
import { newToken, type LimitGrant, type LimitRule, type LimitsStore } from './types.js';

const MAX_DEFERRED = 10_000;

export interface ResilientLimitsOptions {
  shared: LimitsStore;
  health: StoreHealth;
  /** store.replicas_hint */
  replicas: number;
  local?: LimitsStore;
}

export function createResilientLimits(opts: ResilientLimitsOptions): LimitsStore {
  const { shared, health } = opts;
  const local = opts.local ?? createMemoryLimits();
  const localGrants = new WeakSet<LimitGrant>();
  const deferred: LimitGrant[] = [];
  const scale = (rules: readonly LimitRule[]): LimitRule[] =>
    rules.map((r) => ({ ...r, limit: Math.max(1, Math.floor(r.limit / opts.replicas)) }));

  health.onRecover(() => {
    const grants = deferred.splice(0);
    for (const g of grants) void health.attempt('limits.release', () => shared.release(g));
  });

  return {
    consume(rules) {
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
      return health.run('limits.consume', sharedConsume, async () => {
        const result = await local.consume(scale(rules));
        if (result.grant) localGrants.add(result.grant);
        return result;
      });
    },
    async adjust(grant, ruleId, delta) {
      if (localGrants.has(grant)) return local.adjust(grant, ruleId, delta);
      // A lost correction only skews one window of one counter: not worth deferring.
      await health.attempt('limits.adjust', () => shared.adjust(grant, ruleId, delta));
    },
    async release(grant) {
      if (localGrants.has(grant)) return local.release(grant);
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
