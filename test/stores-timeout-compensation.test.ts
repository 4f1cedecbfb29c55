/**
 * A Redis call that times out may still run on Redis. The failure-policy wrappers undo
 * what such a call may have taken, once the outage ends: a consume's concurrency slots
 * (else held for their 15-minute lease) and a reserve's hold (else kept until the
 * budget period ends). Played with a real Redis and a shared store whose call runs and
 * then fails as a timeout would.
 */
import { describe, expect, it } from 'vitest';
import { createRedisLimits } from '../gateway/stores/limits/redis-limits.js';
import { createResilientLimits } from '../gateway/stores/limits/resilient-limits.js';
import type { LimitRule, LimitsStore } from '../gateway/stores/limits/types.js';
import { createRedisBudgets } from '../gateway/stores/budgets/redis-budgets.js';
import { createResilientBudgets } from '../gateway/stores/budgets/resilient-budgets.js';
import type { BudgetScope, BudgetStore } from '../gateway/stores/budgets/types.js';
import { createStoreHealth } from '../gateway/stores/redis/connection.js';
import { createLogger } from '../gateway/logger.js';
import { createMetrics } from '../gateway/metrics.js';
import { useRedis } from './support/redis.js';

const redisServer = useRedis();
const uid = (s: string) => `${s}-${Math.random().toString(36).slice(2, 9)}`;
const timeout = () => Object.assign(new Error('Command timed out'), { name: 'Error' });

function health(policy: 'fail_open' | 'fail_closed') {
  return createStoreHealth({ onFailure: policy, logger: createLogger({ level: 'silent' }), metrics: createMetrics({ defaultMetrics: false }), ping: async () => {}, isConnected: () => true, probeMs: 20 });
}

describe.each(['fail_open', 'fail_closed'] as const)('after a timed-out call that still ran on Redis (%s)', (policy) => {
  it('frees the concurrency slots a consume took', async () => {
    const client = redisServer.client({ enableOfflineQueue: true, maxRetriesPerRequest: 1 });
    const real = createRedisLimits({ redis: client, keyPrefix: 'comp:' });
    let slow = true;
    const shared: LimitsStore = {
      ...real,
      async consume(rules, token) {
        const r = await real.consume(rules, token);
        if (slow) throw timeout();
        return r;
      },
    };
    const h = health(policy);
    const store = createResilientLimits({ shared, health: h, replicas: 1 });
    const rule: LimitRule = { id: uid('conc'), kind: 'concurrent', points: 1, limit: 1, windowMs: 15 * 60_000 };

    await store.consume([rule]).catch(() => undefined); // ran on Redis, reported as a timeout
    expect((await real.peek([rule]))[0]!.remaining).toBe(0);
    slow = false;
    // The probe finds Redis back; the deferred release runs.
    await expect.poll(async () => (await real.peek([rule]))[0]!.remaining, { timeout: 2000, interval: 20 }).toBe(1);
    expect((await store.consume([rule])).allowed).toBe(true);
    h.close();
  });

  it("settles at zero the hold a reserve made", async () => {
    const client = redisServer.client({ enableOfflineQueue: true, maxRetriesPerRequest: 1 });
    const real = createRedisBudgets({ redis: client, keyPrefix: 'comp:' });
    let slow = true;
    const shared: BudgetStore = {
      ...real,
      async reserve(scopes, usd, tokens, id) {
        const r = await real.reserve(scopes, usd, tokens, id);
        if (slow) throw timeout();
        return r;
      },
    };
    const h = health(policy);
    const store = createResilientBudgets({ shared, health: h, replicas: 1 });
    const scope: BudgetScope = { id: uid('day'), limitUsd: 1, expireAtMs: Date.now() + 86_400_000 };

    await store.reserve([scope], 0.2, 1000).catch(() => undefined);
    expect((await real.get(scope.id)).reservedUsd).toBeCloseTo(0.2);
    slow = false;
    await expect.poll(async () => (await real.get(scope.id)).reservedUsd, { timeout: 2000, interval: 20 }).toBe(0);
    expect((await real.get(scope.id)).spentUsd).toBe(0);
    h.close();
  });
});
