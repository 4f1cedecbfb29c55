/**
 * The limits store for config.store: memory, or Redis under the failure policy.
 * main.ts calls it once (stores outlive config reloads) with the shared connection.
 */
import type { Config } from '../../config/schema.js';
import type { RedisConnection } from '../redis/connection.js';
import { createMemoryLimits } from './memory-limits.js';
import { createRedisLimits } from './redis-limits.js';
import { createResilientLimits } from './resilient-limits.js';
import type { LimitsStore } from './types.js';

export function createLimitsStore(store: Config['store'], connection?: RedisConnection): LimitsStore {
  if (store.kind === 'memory') return createMemoryLimits();
  if (!connection) throw new Error('store.kind is redis: createLimitsStore needs the Redis connection');
  return createResilientLimits({
    shared: createRedisLimits({ redis: connection.client, keyPrefix: store.key_prefix }),
    health: connection.health,
    replicas: store.replicas_hint,
  });
}
