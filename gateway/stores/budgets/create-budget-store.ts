/**
 * The budget store for config.store: memory, or Redis under the failure policy.
 * main.ts calls it once (stores outlive config reloads) with the shared connection.
 */
import type { Config } from '../../config/schema.js';
import type { RedisConnection } from '../redis/connection.js';
import { createMemoryBudgets } from './memory-budgets.js';
import { createRedisBudgets } from './redis-budgets.js';
import { createResilientBudgets } from './resilient-budgets.js';
import type { BudgetStore } from './types.js';

export function createBudgetStore(store: Config['store'], connection?: RedisConnection): BudgetStore {
  if (store.kind === 'memory') return createMemoryBudgets();
  if (!connection) throw new Error('store.kind is redis: createBudgetStore needs the Redis connection');
  return createResilientBudgets({
    shared: createRedisBudgets({ redis: connection.client, keyPrefix: store.key_prefix }),
    health: connection.health,
    replicas: store.replicas_hint,
  });
}
