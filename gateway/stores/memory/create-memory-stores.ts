/**
 * The embedded default: every store in this process's memory. Fine for one replica;
 * run several replicas with `store: {kind: redis}` so limits, budgets and the cache
 * are shared.
 */
import type { Stores } from '../types.js';

export function createMemoryStores(): Stores {
  return {
    kind: 'memory',
    async close() {},
  };
}
