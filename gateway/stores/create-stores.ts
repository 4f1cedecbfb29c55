/**
 * The stores for config.store: all in memory, or all on one shared Redis connection
 * (short command timeouts, failure policy from store.on_failure). Called once per
 * process; stores outlive config reloads.
 */
import type { Config } from '../config/schema.js';
import type { Logger } from '../logger.js';
import type { Metrics } from '../metrics.js';
import { createBudgetStore } from './budgets/create-budget-store.js';
import { createLimitsStore } from './limits/create-limits-store.js';
import { createMemoryStores } from './memory/create-memory-stores.js';
import { createRedisConnection } from './redis/connection.js';
import type { Stores } from './types.js';

export function createStores(store: Config['store'], deps: { logger: Logger; metrics: Metrics }): Stores {
  if (store.kind === 'memory') return createMemoryStores();
  const conn = createRedisConnection({ url: store.redis_url!, timeoutMs: store.timeout_ms, onFailure: store.on_failure, logger: deps.logger, metrics: deps.metrics });
  return {
    kind: 'redis',
    limits: createLimitsStore(store, conn),
    budgets: createBudgetStore(store, conn),
    redis: conn.client,
    health: conn.health,
    ready: () => conn.ready(Math.max(2000, store.timeout_ms * 8)),
    close: () => conn.close(),
  };
}
