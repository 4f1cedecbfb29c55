/**
 * One contract for every budget store: memory, Redis, and Redis behind the failure
 * policy wrapper. "Replicas" are store instances over the same state (for Redis:
 * separate clients).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { createLogger } from '../gateway/logger.js';
import { createMetrics } from '../gateway/metrics.js';
import { createMemoryBudgets } from '../gateway/stores/budgets/memory-budgets.js';
import { createRedisBudgets } from '../gateway/stores/budgets/redis-budgets.js';
import { createResilientBudgets } from '../gateway/stores/budgets/resilient-budgets.js';
import type { BudgetScope, BudgetStore } from '../gateway/stores/budgets/types.js';
import { createStoreHealth } from '../gateway/stores/redis/connection.js';
import { useRedis } from './support/redis.js';

const redisServer = useRedis();

let n = 0;
const uid = (s: string) => `${s}-${++n}-${Math.random().toString(36).slice(2, 7)}`;
const scope = (limitUsd?: number, limitTokens?: number): BudgetScope => ({ id: uid('key:k:day:2026-11-25'), limitUsd, limitTokens, expireAtMs: Date.now() + 3_600_000 });

function redisReplicas(count: number, wrap: boolean): BudgetStore[] {
  return Array.from({ length: count }, () => {
    const client = redisServer.client({ enableOfflineQueue: true, maxRetriesPerRequest: 1 });
    const shared = createRedisBudgets({ redis: client, keyPrefix: 'contract:' });
    if (!wrap) return shared;
    const health = createStoreHealth({ onFailure: 'fail_closed', logger: createLogger({ level: 'silent' }), metrics: createMetrics({ defaultMetrics: false }), ping: async () => {}, isConnected: () => true });
    return createResilientBudgets({ shared, health, replicas: 1 });
  });
}

const implementations: Array<[string, () => BudgetStore[]]> = [
  ['memory', () => {
    const s = createMemoryBudgets();
    return [s, s, s];
  }],
  ['redis', () => redisReplicas(3, false)],
  ['redis behind the failure policy', () => redisReplicas(3, true)],
];

describe.each(implementations)('the %s budget store', (_name, make) => {
  let stores: BudgetStore[];
  let s: BudgetStore;
  beforeAll(() => {
    stores = make();
    s = stores[0];
  });

  it('holds a reservation until it is settled to the actual spend', async () => {
    const day = scope(10);
    const r = await s.reserve([day], 0.5, 1000);
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(r.usage[0]).toEqual({ spentUsd: 0, reservedUsd: 0.5, spentTokens: 0, reservedTokens: 1000 });
    expect(await s.get(day.id)).toEqual({ spentUsd: 0, reservedUsd: 0.5, spentTokens: 0, reservedTokens: 1000 });
    const after = await s.settle(r.reservation, 0.123456, 420);
    expect(after[0]).toEqual({ spentUsd: 0.123456, reservedUsd: 0, spentTokens: 420, reservedTokens: 0 });
    expect(await s.get(day.id)).toEqual(after[0]);
  });

  it('records the spend of a zero hold (a key without budget limits)', async () => {
    const day = scope();
    const r = await s.reserve([day], 0, 0);
    if (!r.ok) throw new Error('refused');
    const after = await s.settle(r.reservation, 0.000042, 7);
    expect(after[0]).toEqual({ spentUsd: 0.000042, reservedUsd: 0, spentTokens: 7, reservedTokens: 0 });
  });

  it('books a spend below a micro-dollar as one, so many cheap requests still exhaust a budget', async () => {
    const day = scope(0.001);
    // 20 embedding tokens at $0.02 per million: $0.0000004 each.
    for (let i = 0; i < 5; i++) {
      const r = await s.reserve([day], 0.0000004, 20);
      if (!r.ok) throw new Error('refused');
      await s.settle(r.reservation, 0.0000004, 20);
    }
    await s.record(uid('rec'), [day], 0.0000004, 20);
    expect(await s.get(day.id)).toMatchObject({ spentUsd: 0.000006, spentTokens: 120 });
  });

  it('counts a settle once however often it is called', async () => {
    const day = scope(10);
    const r = await s.reserve([day], 1, 10);
    if (!r.ok) throw new Error('refused');
    await s.settle(r.reservation, 0.25, 5);
    await s.settle(r.reservation, 0.25, 5);
    await stores[1].settle(r.reservation, 0.25, 5);
    expect(await s.get(day.id)).toEqual({ spentUsd: 0.25, reservedUsd: 0, spentTokens: 5, reservedTokens: 0 });
  });

  it('refuses a reservation that does not fit and holds nothing on any scope', async () => {
    const day = scope(10);
    const month = scope(1);
    const refused = await s.reserve([day, month], 1.5, 100);
    expect(refused.ok).toBe(false);
    if (refused.ok) return;
    expect(refused.denied).toEqual([month.id]);
    expect(await s.get(day.id)).toEqual({ spentUsd: 0, reservedUsd: 0, spentTokens: 0, reservedTokens: 0 });
    expect((await s.reserve([day, month], 1, 100)).ok).toBe(true);
  });

  it('enforces token limits like USD limits', async () => {
    const day = scope(undefined, 1000);
    expect((await s.reserve([day], 0, 600)).ok).toBe(true);
    const refused = await s.reserve([day], 0, 401);
    expect(refused.ok).toBe(false);
    expect(refused.usage[0]).toMatchObject({ reservedTokens: 600 });
    expect((await s.reserve([day], 0, 400)).ok).toBe(true);
  });

  it('records spend on scopes without limits in one call, once per id however often it is replayed', async () => {
    const day = scope();
    const month = scope();
    const after = await s.record(uid('rec'), [day, month], 0.5, 12);
    expect(after).toEqual([
      { spentUsd: 0.5, reservedUsd: 0, spentTokens: 12, reservedTokens: 0 },
      { spentUsd: 0.5, reservedUsd: 0, spentTokens: 12, reservedTokens: 0 },
    ]);
    const id = uid('rec');
    await s.record(id, [day], 0.25, 3);
    await s.record(id, [day], 0.25, 3);
    await stores[1].record(id, [day], 0.25, 3);
    expect(await stores[2].get(day.id)).toMatchObject({ spentUsd: 0.75, spentTokens: 15, reservedUsd: 0, reservedTokens: 0 });
    expect(await s.get(month.id)).toMatchObject({ spentUsd: 0.5, spentTokens: 12 });
  });

  it('tracks spend on a scope without limits', async () => {
    const day = scope();
    const r = await s.reserve([day], 1e6, 1e9);
    if (!r.ok) throw new Error('refused');
    await s.settle(r.reservation, 3.5, 7);
    expect(await s.get(day.id)).toMatchObject({ spentUsd: 3.5, spentTokens: 7 });
  });

  it('lets 50 racing reservations hold at most the budget, and ends at the sum of actual spend', async () => {
    const day = scope(1);
    const month = scope(100);
    const results = await Promise.all(Array.from({ length: 50 }, (_, i) => stores[i % stores.length].reserve([day, month], 0.03, 100)));
    const granted = results.flatMap((r) => (r.ok ? [r.reservation] : []));
    expect(granted).toHaveLength(33);
    const held = await s.get(day.id);
    expect(held.reservedUsd).toBeCloseTo(0.99, 9);
    expect(held.reservedUsd).toBeLessThanOrEqual(1);
    // Actual spend varies per request and is at most what was reserved.
    const actual = granted.map((_, i) => ((i * 7919) % 30_001) / 1_000_000);
    await Promise.all(granted.map((r, i) => stores[(i + 1) % stores.length].settle(r, actual[i], 50)));
    const micro = actual.reduce((sum, a) => sum + Math.round(a * 1e6), 0);
    const final = await s.get(day.id);
    expect(final).toEqual({ spentUsd: micro / 1e6, reservedUsd: 0, spentTokens: 50 * 33, reservedTokens: 0 });
    expect((await s.get(month.id)).spentUsd).toBe(micro / 1e6);
  });

  it('forgets a scope on reset, and a late settle of an older hold does not go negative', async () => {
    const day = scope(1);
    const r = await s.reserve([day], 0.8, 10);
    if (!r.ok) throw new Error('refused');
    expect((await s.reserve([day], 0.5, 1)).ok).toBe(false);
    await s.reset(day.id);
    expect(await s.get(day.id)).toEqual({ spentUsd: 0, reservedUsd: 0, spentTokens: 0, reservedTokens: 0 });
    await s.settle(r.reservation, 0.1, 10);
    expect(await s.get(day.id)).toEqual({ spentUsd: 0.1, reservedUsd: 0, spentTokens: 10, reservedTokens: 0 });
  });

  it('lets a scope spent past its limit (actual above the hold) refuse everything that costs', async () => {
    const day = scope(1);
    const r = await s.reserve([day], 0.5, 10);
    if (!r.ok) throw new Error('refused');
    await s.settle(r.reservation, 1.2, 10);
    expect((await s.reserve([day], 0.000001, 1)).ok).toBe(false);
    expect((await s.reserve([day], 0, 1)).ok).toBe(false);
  });
});

describe('the memory budget store’s record ids', () => {
  it('stay idempotent for recent ids while memory stays bounded (the oldest ids are forgotten)', async () => {
    const s = createMemoryBudgets();
    const day = scope();
    for (let i = 0; i < 10_050; i++) await s.record(`r${i}`, [day], 0, 1);
    expect((await s.get(day.id)).spentTokens).toBe(10_050);
    await s.record('r10049', [day], 0, 1); // recent: a replay, counted once
    expect((await s.get(day.id)).spentTokens).toBe(10_050);
    await s.record('r0', [day], 0, 1); // beyond the bound: forgotten, counts again
    expect((await s.get(day.id)).spentTokens).toBe(10_051);
  });
});
