/**
 * Redis killed mid-test (a real redis-server, SIGKILL): fail_open keeps admitting
 * against per-replica limits (limit / replicas_hint) with one warning per outage and
 * the outage metrics; fail_closed answers store_unavailable; both return to Redis by
 * themselves when it restarts. No call ever hangs past the command timeout.
 */
import { Writable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GatewayError } from '../gateway/errors.js';
import { createLogger } from '../gateway/logger.js';
import { createMetrics, type Metrics } from '../gateway/metrics.js';
import { createBudgetStore } from '../gateway/stores/budgets/create-budget-store.js';
import { createLimitsStore } from '../gateway/stores/limits/create-limits-store.js';
import type { LimitRule } from '../gateway/stores/limits/types.js';
import { createRedisConnection, type RedisConnection } from '../gateway/stores/redis/connection.js';
import { StoreSchema } from '../gateway/config/schema.js';
import { startRedis, type TestRedis } from './support/redis.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => boolean | Promise<boolean>, timeoutMs = 8000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await check()) return;
    await sleep(25);
  }
  throw new Error('condition not reached');
}

async function gaugeValue(metrics: Metrics, name: 'storeDegraded' | 'storeOutages'): Promise<number> {
  return (await metrics[name].get()).values[0]?.value ?? 0;
}

function setup(redis: TestRedis, onFailure: 'fail_open' | 'fail_closed') {
  const lines: Array<{ level: string; msg: string }> = [];
  const destination = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  const logger = createLogger({ level: 'info', destination });
  const metrics = createMetrics({ defaultMetrics: false });
  const store = StoreSchema.parse({ kind: 'redis', redis_url: redis.url, on_failure: onFailure, replicas_hint: 3, timeout_ms: 200, key_prefix: `faults-${onFailure}:` });
  const connection: RedisConnection = createRedisConnection({ url: redis.url, timeoutMs: store.timeout_ms, onFailure, logger, metrics, probeMs: 50 });
  return { lines, metrics, connection, limits: createLimitsStore(store, connection), budgets: createBudgetStore(store, connection) };
}

describe.each(['fail_open', 'fail_closed'] as const)('Redis going away under %s', (policy) => {
  let redis: TestRedis;
  let s: ReturnType<typeof setup>;
  beforeAll(async () => {
    redis = await startRedis();
    s = setup(redis, policy);
    await until(() => s.connection.client.status === 'ready');
  });
  afterAll(async () => {
    await s?.connection.close();
    await redis?.close();
  });

  it('applies the policy while Redis is down and returns to Redis when it is back', async () => {
    const rule: LimitRule = { id: 'key:k:rpm', kind: 'window', points: 1, limit: 9, windowMs: 60_000 };
    const scope = { id: 'key:k:day:2026-11-25', limitUsd: 3, expireAtMs: Date.now() + 3_600_000 };
    expect((await s.limits.consume([rule])).allowed).toBe(true);
    const before = await s.budgets.reserve([scope], 1, 10);
    expect(before.ok).toBe(true);
    expect(await gaugeValue(s.metrics, 'storeDegraded')).toBe(0);

    await redis.stop();
    const t0 = Date.now();
    const outcomes: Array<boolean | 'unavailable'> = [];
    for (let i = 0; i < 5; i++) {
      try {
        outcomes.push((await s.limits.consume([rule])).allowed);
      } catch (err) {
        expect(err).toBeInstanceOf(GatewayError);
        expect((err as GatewayError).code).toBe('store_unavailable');
        expect((err as GatewayError).status).toBe(503);
        outcomes.push('unavailable');
      }
    }
    expect(Date.now() - t0).toBeLessThan(2000);
    if (policy === 'fail_open') {
      // Per replica: 9 / replicas_hint 3 = 3 requests, then refused.
      expect(outcomes).toEqual([true, true, true, false, false]);
      const local = await s.budgets.reserve([scope], 0.9, 1);
      expect(local.ok).toBe(true);
      expect((await s.budgets.reserve([scope], 0.2, 1)).ok).toBe(false);
    } else {
      expect(outcomes).toEqual(['unavailable', 'unavailable', 'unavailable', 'unavailable', 'unavailable']);
      await expect(s.budgets.reserve([scope], 0.1, 1)).rejects.toMatchObject({ code: 'store_unavailable' });
    }
    // The reservation made in Redis before the outage settles later, when Redis is back.
    if (before.ok) await s.budgets.settle(before.reservation, 0.4, 4);

    expect(await gaugeValue(s.metrics, 'storeDegraded')).toBe(1);
    expect(await gaugeValue(s.metrics, 'storeOutages')).toBe(1);
    const warnings = s.lines.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0].msg).toContain(policy === 'fail_open' ? 'per-replica' : 'refusing');

    await redis.restart();
    await until(async () => (await gaugeValue(s.metrics, 'storeDegraded')) === 0);
    expect(s.lines.some((l) => l.level === 'info' && l.msg.includes('reachable again'))).toBe(true);
    // The Redis counter survived nothing (no persistence): a fresh window with the full limit
    // for a counter this replica did not use during the outage...
    const back = await s.limits.consume([{ ...rule, id: 'key:k2:rpm' }]);
    expect(back.allowed).toBe(true);
    expect(back.states[0].limit).toBe(9);
    // ...while one it admitted locally stays held to the local share for this minute
    // (Redis never saw those requests). Without local admissions, Redis alone decides.
    expect((await s.limits.consume([rule])).allowed).toBe(policy !== 'fail_open');
  });

  it('counts a second outage as a second outage', async () => {
    await redis.stop();
    await s.limits.consume([{ id: 'x', kind: 'window', points: 1, limit: 9, windowMs: 1000 }]).catch(() => undefined);
    expect(await gaugeValue(s.metrics, 'storeOutages')).toBe(2);
    await redis.restart();
    await until(async () => (await gaugeValue(s.metrics, 'storeDegraded')) === 0);
    expect(s.lines.filter((l) => l.level === 'warn')).toHaveLength(2);
  });
});

describe('a Redis that hangs instead of dying', () => {
  let redis: TestRedis;
  let s: ReturnType<typeof setup>;
  beforeAll(async () => {
    redis = await startRedis();
    s = setup(redis, 'fail_open');
    await until(() => s.connection.client.status === 'ready');
  });
  afterAll(async () => {
    await redis?.resume();
    await s?.connection.close();
    await redis?.close();
  });

  it('times calls out, and replays a timed-out settle exactly once when Redis answers again', async () => {
    const scope = { id: 'key:r:day:2026-11-25', limitUsd: 5, expireAtMs: Date.now() + 3_600_000 };
    const r = await s.budgets.reserve([scope], 1, 10);
    if (!r.ok) throw new Error('refused');
    await redis.pause();
    const t0 = Date.now();
    // The command reaches the frozen server and times out: Redis may still run it on resume.
    expect(await s.budgets.settle(r.reservation, 0.5, 5)).toEqual([]);
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(await gaugeValue(s.metrics, 'storeDegraded')).toBe(1);
    // Degraded: no more waiting on the frozen server.
    const t1 = Date.now();
    expect((await s.limits.consume([{ id: 'key:r:rpm', kind: 'window', points: 1, limit: 3, windowMs: 60_000 }])).allowed).toBe(true);
    expect(Date.now() - t1).toBeLessThan(50);
    await redis.resume();
    await until(async () => (await gaugeValue(s.metrics, 'storeDegraded')) === 0);
    await until(async () => (await s.budgets.get(scope.id)).reservedUsd === 0);
    await sleep(100);
    expect(await s.budgets.get(scope.id)).toEqual({ spentUsd: 0.5, reservedUsd: 0, spentTokens: 5, reservedTokens: 0 });
  });

  it('keeps the spend of a key without limits made during an outage, and replays it exactly once', async () => {
    const scope = { id: "key:untracked-limit:day:2026-11-25", expireAtMs: Date.now() + 3_600_000 };
    await s.budgets.record('before', [scope], 0.25, 2);
    await redis.pause();
    // Times out (Redis may still run it on resume), then fails fast while degraded: both deferred.
    expect(await s.budgets.record('timed-out', [scope], 0.5, 5)).toEqual([]);
    expect(await s.budgets.record('while-down', [scope], 1, 10)).toEqual([]);
    await redis.resume();
    await until(async () => (await s.budgets.get(scope.id)).spentTokens === 17);
    await sleep(200);
    expect(await s.budgets.get(scope.id)).toEqual({ spentUsd: 1.75, reservedUsd: 0, spentTokens: 17, reservedTokens: 0 });
  });
});
