/**
 * The embedded default: every store in this process's memory. Fine for one replica;
 * run several replicas with `store: {kind: redis}` so limits, budgets and the cache
 * are shared.
 */
import type { Stores } from '../types.js';
import { createMemoryLimits } from '../limits/memory-limits.js';
import { createMemoryBudgets } from '../budgets/memory-budgets.js';

export function createMemoryStores(): Stores {
  return {
    kind: 'memory',
    limits: createMemoryLimits(),
    budgets: createMemoryBudgets(),
    async close() {},
  };
}
