/**
 * Limits after a fail_open outage ends. During the outage each replica admits its share
 * (limit ÷ replicas_hint) from memory; those requests are not in the shared store's
 * windows and slots, so for a minute after the recovery (and while they hold slots) a
 * request must fit the local share as well as the shared store. Here the shared store is
 * an in-memory one behind a switch that makes it unreachable, as Redis would be.
 */
import { describe, expect, it } from 'vitest';
import { createMemoryLimits } from '../gateway/stores/limits/memory-limits.js';
import { CARRY_OVER_MS, createResilientLimits } from '../gateway/stores/limits/resilient-limits.js';
import type { LimitGrant, LimitRule, LimitsStore } from '../gateway/stores/limits/types.js';
import { createStoreHealth } from '../gateway/stores/redis/connection.js';
import { createLogger } from '../gateway/logger.js';
import { createMetrics } from '../gateway/metrics.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function setup() {
  const state = { down: false, clock: 1_000_000 };
  const real = createMemoryLimits();
  const unreachable = () => Promise.reject(new Error('Connection is closed.'));
  const shared: LimitsStore = {
    consume: (rules, token) => (state.down ? unreachable() : real.consume(rules, token)) as ReturnType<LimitsStore['consume']>,
    adjust: (g, id, d) => (state.down ? unreachable() : real.adjust(g, id, d)) as Promise<void>,
    release: (g) => (state.down ? unreachable() : real.release(g)) as Promise<void>,
    peek: (rules) => (state.down ? unreachable() : real.peek(rules)) as ReturnType<LimitsStore['peek']>,
    close: () => real.close(),
  };
  const health = createStoreHealth({
    onFailure: 'fail_open',
    logger: createLogger({ level: 'silent' }),
    metrics: createMetrics({ defaultMetrics: false }),
    probeMs: 10,
    isConnected: () => true,
    ping: () => (state.down ? Promise.reject(new Error('Command timed out')) : Promise.resolve()),
  });
  const store = createResilientLimits({ shared, health, replicas: 2, now: () => state.clock });
  return { state, store, health };
}

async function admitted(store: LimitsStore, rules: LimitRule[], n: number): Promise<LimitGrant[]> {
  const grants: LimitGrant[] = [];
  for (let i = 0; i < n; i++) {
    const r = await store.consume(rules);
    if (r.allowed) grants.push(r.grant!);
  }
  return grants;
}

describe('limits after a fail_open outage', () => {
  it('do not admit a full limit on top of what the replica admitted locally during the outage', async () => {
    const { state, store, health } = setup();
    const rpm: LimitRule[] = [{ id: 'key:k:rpm', kind: 'window', points: 1, limit: 4, windowMs: 60_000 }];
    state.down = true;
    // This replica's share of 4 over 2 replicas: 2.
    expect(await admitted(store, rpm, 5)).toHaveLength(2);
    expect(health.degraded).toBe(true);
    state.down = false;
    await sleep(50);
    expect(health.degraded).toBe(false);
    // The shared store has seen nothing; the local counts still bind for the minute.
    expect(await admitted(store, rpm, 5)).toHaveLength(0);
    // Once the carry-over and the local window are over, the shared store alone decides.
    state.clock += CARRY_OVER_MS + 1;
    expect(await admitted(store, rpm, 5)).toHaveLength(4);
    health.close();
  });

  it('hold concurrency slots taken during the outage against the shared limit until they are released', async () => {
    const { state, store, health } = setup();
    const conc: LimitRule[] = [{ id: 'key:k:concurrent', kind: 'concurrent', points: 1, limit: 4, windowMs: 15 * 60_000 }];
    state.down = true;
    const during = await admitted(store, conc, 3);
    expect(during).toHaveLength(2);
    state.down = false;
    await sleep(50);
    state.clock += CARRY_OVER_MS + 1;
    // Two local slots still held: the local share (2) is full.
    expect(await admitted(store, conc, 3)).toHaveLength(0);
    for (const g of during) await store.release(g);
    const after = await admitted(store, conc, 5);
    expect(after).toHaveLength(4);
    for (const g of after) await store.release(g);
    expect(await admitted(store, conc, 1)).toHaveLength(1);
    health.close();
  });
});
