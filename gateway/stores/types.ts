/**
 * The shared state of the gateway, behind narrow interfaces shaped for its needs
 * (limits, budgets, cache), each with a memory and a Redis implementation that pass
 * one contract suite. Created once by createStores(); they outlive config reloads.
 */
import type { Redis } from 'ioredis';
import type { StoreHealth } from './redis/connection.js';
import type { LimitsStore } from './limits/types.js';
import type { BudgetStore } from './budgets/types.js';

export interface Stores {
  readonly kind: 'memory' | 'redis';
  readonly limits: LimitsStore;
  readonly budgets: BudgetStore;
  /** The shared Redis client (short timeouts, no offline queue), for the cache's Redis stores. */
  readonly redis?: Redis;
  /** Failure bookkeeping of that client (outage detection, policy); the cache uses it too. */
  readonly health?: StoreHealth;
  /**
   * Resolves once the shared store answers, or after a bounded wait (then
   * store.on_failure applies): a replica is not ready while its first requests would
   * fall back to per-replica limits or 503. Absent for memory stores.
   */
  ready?(): Promise<void>;
  close(): Promise<void>;
}
