/**
 * One contract for every limits store: memory, Redis, and Redis behind the failure
 * policy wrapper. "Two replicas" are two store instances over the same state (for
 * Redis: two clients).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createMemoryLimits } from '../gateway/stores/limits/memory-limits.js';
import { createRedisLimits } from '../gateway/stores/limits/redis-limits.js';
import { createResilientLimits } from '../gateway/stores/limits/resilient-limits.js';
import type { LimitRule, LimitsStore } from '../gateway/stores/limits/types.js';
import { createStoreHealth } from '../gateway/stores/redis/connection.js';
import { createLogger } from '../gateway/logger.js';
import { createMetrics } from '../gateway/metrics.js';
import { useRedis } from './support/redis.js';

const redisServer = useRedis();

let n = 0;
const uid = (s: string) => `${s}-${++n}-${Math.random().toString(36).slice(2, 7)}`;
const rpm = (id: string, limit: number, points = 1, windowMs = 60_000): LimitRule => ({ id, kind: 'window', points, limit, windowMs });
const conc = (id: string, limit: number, windowMs = 60_000): LimitRule => ({ id, kind: 'concurrent', points: 1, limit, windowMs });
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Replicas {
  a: LimitsStore;
  b: LimitsStore;
}

function redisReplicas(wrap: boolean): Replicas {
  const make = () => {
    const client = redisServer.client({ enableOfflineQueue: true, maxRetriesPerRequest: 1 });
    const shared = createRedisLimits({ redis: client, keyPrefix: 'contract:' });
    if (!wrap) return shared;
    const health = createStoreHealth({ onFailure: 'fail_closed', logger: createLogger({ level: 'silent' }), metrics: createMetrics({ defaultMetrics: false }), ping: async () => {}, isConnected: () => true });
    return createResilientLimits({ shared, health, replicas: 1 });
  };
  return { a: make(), b: make() };
}

const implementations: Array<[string, () => Replicas]> = [
  ['memory', () => {
    const s = createMemoryLimits();
    return { a: s, b: s };
  }],
  ['redis', () => redisReplicas(false)],
  ['redis behind the failure policy', () => redisReplicas(true)],
];

describe.each(implementations)('the %s limits store', (_name, make) => {
  let s: Replicas;
  beforeAll(() => {
    s = make();
  });

  it('admits requests up to the limit and then refuses, reporting remaining and reset', async () => {
    const rule = rpm(uid('rpm'), 3);
    const results = [];
    for (let i = 0; i < 4; i++) results.push(await s.a.consume([rule]));
    expect(results.map((r) => r.allowed)).toEqual([true, true, true, false]);
    expect(results.map((r) => r.states[0].remaining)).toEqual([2, 1, 0, 0]);
    expect(results[3].denied).toEqual([rule.id]);
    expect(results[3].retryAfterMs).toBeGreaterThan(50_000);
    expect(results[3].retryAfterMs).toBeLessThanOrEqual(60_000);
    expect(results[0].states[0].resetMs).toBeLessThanOrEqual(60_000);
  });

  it('takes all of a request’s limits or none of them', async () => {
    const roomy = rpm(uid('roomy'), 10);
    const full = rpm(uid('full'), 1);
    expect((await s.a.consume([full])).allowed).toBe(true);
    const refused = await s.a.consume([roomy, full]);
    expect(refused.allowed).toBe(false);
    expect(refused.denied).toEqual([full.id]);
    const [roomyState] = await s.a.peek([roomy]);
    expect(roomyState.used).toBe(0);
  });

  it('counts token points against a token limit', async () => {
    const id = uid('tpm');
    expect((await s.a.consume([rpm(id, 100, 30)])).allowed).toBe(true);
    expect((await s.a.consume([rpm(id, 100, 30)])).allowed).toBe(true);
    expect((await s.a.consume([rpm(id, 100, 30)])).allowed).toBe(true);
    expect((await s.a.consume([rpm(id, 100, 30)])).allowed).toBe(false);
    const last = await s.a.consume([rpm(id, 100, 10)]);
    expect(last.allowed).toBe(true);
    expect(last.states[0].remaining).toBe(0);
  });

  it('shares one limit between replicas: 2×N racing requests against N admit exactly N', async () => {
    const rule = rpm(uid('race'), 10);
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => (i % 2 ? s.a : s.b).consume([rule, rpm(uid('other'), 1000)])));
    expect(results.filter((r) => r.allowed)).toHaveLength(10);
  });

  it('holds concurrency slots until release, and release is idempotent', async () => {
    const rule = conc(uid('conc'), 2);
    const first = await s.a.consume([rule]);
    const second = await s.b.consume([rule]);
    expect(first.allowed && second.allowed).toBe(true);
    const third = await s.a.consume([rule]);
    expect(third.allowed).toBe(false);
    expect(third.retryAfterMs).toBe(1000);
    await s.a.release(first.grant!);
    await s.a.release(first.grant!);
    const fourth = await s.b.consume([rule]);
    expect(fourth.allowed).toBe(true);
    expect((await s.a.consume([rule])).allowed).toBe(false);
    await s.b.release(second.grant!);
    await s.b.release(fourth.grant!);
    const [state] = await s.a.peek([rule]);
    expect(state.used).toBe(0);
  });

  it('frees a slot that was never released when its lease ends', async () => {
    const rule = conc(uid('lease'), 1, 150);
    expect((await s.a.consume([rule])).allowed).toBe(true);
    expect((await s.a.consume([rule])).allowed).toBe(false);
    await sleep(200);
    expect((await s.a.consume([rule])).allowed).toBe(true);
  });

  it('starts a fresh window after windowMs', async () => {
    const rule = rpm(uid('window'), 1, 1, 150);
    expect((await s.a.consume([rule])).allowed).toBe(true);
    const refused = await s.a.consume([rule]);
    expect(refused.allowed).toBe(false);
    expect(refused.retryAfterMs).toBeLessThanOrEqual(150);
    await sleep(200);
    expect((await s.a.consume([rule])).allowed).toBe(true);
  });

  it('corrects a token counter to actual usage, never below zero', async () => {
    const id = uid('adjust');
    const granted = await s.a.consume([rpm(id, 100, 80)]);
    expect((await s.a.consume([rpm(id, 100, 30)])).allowed).toBe(false);
    await s.a.adjust(granted.grant!, id, -60);
    const [afterRefund] = await s.b.peek([rpm(id, 100)]);
    expect(afterRefund.used).toBe(20);
    expect((await s.b.consume([rpm(id, 100, 30)])).allowed).toBe(true);
    await s.a.adjust(granted.grant!, id, 25);
    expect((await s.a.peek([rpm(id, 100)]))[0].used).toBe(75);
    await s.a.adjust(granted.grant!, id, -500);
    expect((await s.a.peek([rpm(id, 100)]))[0].used).toBe(0);
  });

  it('does not revive an expired window when adjusting it', async () => {
    const id = uid('expired');
    const granted = await s.a.consume([rpm(id, 100, 10, 100)]);
    await sleep(150);
    await s.a.adjust(granted.grant!, id, 50);
    expect((await s.a.peek([rpm(id, 100, 1, 100)]))[0].used).toBe(0);
  });

  it("does not put a correction into the next window once the request's window has rolled over", async () => {
    const id = uid('rolled');
    const granted = await s.a.consume([rpm(id, 100, 90, 150)]);
    await sleep(200); // the window of the grant ended
    const next = await s.b.consume([rpm(id, 100, 60, 150)]);
    expect(next.allowed).toBe(true);
    await s.a.adjust(granted.grant!, id, -85); // the first request used only 5
    expect((await s.b.peek([rpm(id, 100, 1, 150)]))[0].used).toBe(60);
    // The grant of the current window is still corrected.
    await s.b.adjust(next.grant!, id, -50);
    expect((await s.b.peek([rpm(id, 100, 1, 150)]))[0].used).toBe(10);
  });

  it('peeks without consuming', async () => {
    const rule = rpm(uid('peek'), 5);
    await s.a.consume([rule]);
    for (let i = 0; i < 3; i++) expect((await s.a.peek([rule]))[0]).toMatchObject({ used: 1, remaining: 4, limit: 5 });
  });
});
