/**
 * A Redis call that times out may still run on Redis. The failure-policy wrappers undo
 * what such a call may have taken, once the outage ends: a consume's concurrency slots
 * (else held for their 15-minute lease) and a reserve's hold (else kept until the
 * budget period ends). Played for real: a busy Lua script holds a real Redis while the
 * store's command waits past its commandTimeout, then runs late.
 */
import { describe, expect, it } from 'vitest';
import type { Redis } from 'ioredis';
import { createRedisLimits } from '../gateway/stores/limits/redis-limits.js';
import { createResilientLimits } from '../gateway/stores/limits/resilient-limits.js';
import type { LimitRule } from '../gateway/stores/limits/types.js';
import { createRedisBudgets } from '../gateway/stores/budgets/redis-budgets.js';
import { createResilientBudgets } from '../gateway/stores/budgets/resilient-budgets.js';
import type { BudgetScope } from '../gateway/stores/budgets/types.js';
import { createStoreHealth } from '../gateway/stores/redis/connection.js';
import { createLogger } from '../gateway/logger.js';
import { createMetrics } from '../gateway/metrics.js';
import { useRedis } from './support/redis.js';

const redisServer = useRedis();
const uid = (s: string) => `${s}-${Math.random().toString(36).slice(2, 9)}`;

/** A store client whose commands time out after 100 ms, its health (probing every 20 ms), and a client to block Redis with. */
function setup(policy: 'fail_open' | 'fail_closed') {
  const client = redisServer.client({ enableOfflineQueue: true, maxRetriesPerRequest: 1, commandTimeout: 100 });
  const blocker = redisServer.client();
  const health = createStoreHealth({ onFailure: policy, logger: createLogger({ level: 'silent' }), metrics: createMetrics({ defaultMetrics: false }), ping: () => client.ping().then(() => undefined), isConnected: () => client.status === 'ready', probeMs: 20 });
  return { client, blocker, health };
}

/** Keeps Redis busy for `ms` (commands from other clients wait, then run). */
function busy(blocker: Redis, ms: number): Promise<unknown> {
  return blocker.eval(`local t0 = redis.call('TIME') repeat local t = redis.call('TIME') until (t[1] - t0[1]) * 1000000 + (t[2] - t0[2]) >= ${ms * 1000}`, 0);
}

describe.each(['fail_open', 'fail_closed'] as const)('after a timed-out call that still ran on Redis (%s)', (policy) => {
  it('frees the concurrency slots a consume took', async () => {
    const { client, blocker, health } = setup(policy);
    const real = createRedisLimits({ redis: client, keyPrefix: 'comp:' });
    const store = createResilientLimits({ shared: real, health, replicas: 1 });
    const rule: LimitRule = { id: uid('conc'), kind: 'concurrent', points: 1, limit: 1, windowMs: 15 * 60_000 };
    // Load the script first: a late EVALSHA of a script Redis does not know yet would only answer NOSCRIPT.
    await real.peek([{ ...rule, id: uid('warm') }]);
    const warm = await real.consume([{ ...rule, id: uid('warm') }]);
    if (warm.grant) await real.release(warm.grant);

    const blocked = busy(blocker, 400);
    await new Promise((r) => setTimeout(r, 30));
    // Times out after 100 ms and runs when Redis is free. fail_open admits it locally:
    // its request ends, so its local slot is released (only the late Redis slot is left).
    const late = await store.consume([rule]).catch(() => undefined);
    if (late?.grant) await store.release(late.grant);
    await blocked;
    // The probe finds Redis back; the deferred release frees the slot the late consume took.
    await expect.poll(async () => (await real.peek([rule]))[0]!.remaining, { timeout: 3000, interval: 20 }).toBe(1);
    expect((await store.consume([rule])).allowed).toBe(true);
    health.close();
  });

  it('settles at zero the hold a reserve made', async () => {
    const { client, blocker, health } = setup(policy);
    const real = createRedisBudgets({ redis: client, keyPrefix: 'comp:' });
    const store = createResilientBudgets({ shared: real, health, replicas: 1 });
    const scope: BudgetScope = { id: uid('day'), limitUsd: 1, expireAtMs: Date.now() + 86_400_000 };
    // Load the script first: a late EVALSHA of a script Redis does not know yet would only answer NOSCRIPT.
    const warm = await real.reserve([{ ...scope, id: uid('warm') }], 0, 0);
    if (warm.ok) await real.settle(warm.reservation, 0, 0);

    const blocked = busy(blocker, 400);
    await new Promise((r) => setTimeout(r, 30));
    await store.reserve([scope], 0.2, 1000).catch(() => undefined);
    await blocked;
    await expect.poll(async () => (await real.get(scope.id)).reservedUsd, { timeout: 3000, interval: 20 }).toBe(0);
    expect((await real.get(scope.id)).spentUsd).toBe(0);
    health.close();
  });
});
