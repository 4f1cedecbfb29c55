/**
 * The cache's long-lived parts, built once by main.ts/app.ts and shared by every
 * config generation: the exact store (memory, or memory in front of Redis), the
 * semantic index (only when an embed function is given), the coalescer.
 * Sizes (max_bytes, max_entries) are read at creation: a reload does not resize them.
 *
 * Redis calls run under the store's failure policy bookkeeping (StoreHealth.attempt):
 * a failure counts in switchyard_store_failures_total{op} and degrades to "miss" /
 * "not stored", whatever store.on_failure says — the cache never refuses a request.
 */
import type { Redis } from 'ioredis';
import type { Config } from '../config/schema.js';
import type { Metrics } from '../metrics.js';
import type { StoreHealth } from '../stores/redis/connection.js';
import type { ExactCacheStore, SemanticRecordStore } from '../stores/cache/types.js';
import { createMemoryExactCache } from '../stores/cache/memory-exact.js';
import { createRedisExactCache } from '../stores/cache/redis-exact.js';
import { createTieredExactCache } from '../stores/cache/tiered-exact.js';
import { createRedisSemanticRecords } from '../stores/cache/redis-semantic.js';
import { createRedisFlightLock, type FlightLock } from '../stores/cache/redis-flight-lock.js';
import { createCoalescer, type Coalescer } from './coalesce.js';
import { createSemanticIndex, type SemanticIndex } from './semantic.js';

/** Embeds one text with cache.semantic.embedding_model (through the gateway's own backends). */
export type EmbedFn = (text: string) => Promise<number[]>;

export interface CachePartsOptions {
  cache: Config['cache'];
  metrics: Pick<Metrics, 'cacheBytes'>;
  /** store.kind redis: the shared client (its owner closes it). */
  redis?: { client: Redis; keyPrefix: string; health?: Pick<StoreHealth, 'attempt'> };
  /** Without it the semantic layer is off whatever the config says. */
  embed?: EmbedFn;
  /** Semantic: least ms between two loads of one partition from Redis on a local miss. */
  semanticSyncMs?: number;
  /**
   * With redis: also coalesce across replicas through a Redis lock per key. Costs one
   * extra Redis command per miss, and a wait (polling the shared cache) on replicas
   * that did not win the lock. Off by default.
   */
  lockAcrossReplicas?: boolean;
}

export interface CacheParts {
  readonly exact: ExactCacheStore;
  readonly semantic?: SemanticIndex;
  readonly embed?: EmbedFn;
  readonly coalescer: Coalescer;
  /** Present when lockAcrossReplicas is on (and Redis is configured). */
  readonly lock?: FlightLock;
  close(): Promise<void>;
}

function guardExact(store: ExactCacheStore, health: Pick<StoreHealth, 'attempt'> | undefined): ExactCacheStore {
  if (!health) return store;
  return {
    async get(key) {
      let out;
      await health.attempt('cache_get', async () => {
        out = await store.get(key);
      });
      return out;
    },
    async set(key, entry, ttlS) {
      await health.attempt('cache_set', () => store.set(key, entry, ttlS));
    },
    close: () => store.close(),
  };
}

function guardRecords(store: SemanticRecordStore, health: Pick<StoreHealth, 'attempt'> | undefined): SemanticRecordStore {
  if (!health) return store;
  return {
    async add(partition, record) {
      await health.attempt('cache_semantic_set', () => store.add(partition, record));
    },
    async loadNew(partition, known) {
      let out: Awaited<ReturnType<SemanticRecordStore['loadNew']>> = [];
      await health.attempt('cache_semantic_get', async () => {
        out = await store.loadNew(partition, known);
      });
      return out;
    },
    close: () => store.close(),
  };
}

/** A lock call that fails acts as "no lock": the request goes upstream on its own. */
function guardLock(lock: FlightLock, health: Pick<StoreHealth, 'attempt'> | undefined): FlightLock {
  if (!health) return lock;
  return {
    async acquire(key, ttlMs) {
      let out = true;
      await health.attempt('cache_lock', async () => {
        out = await lock.acquire(key, ttlMs);
      });
      return out;
    },
    async held(key) {
      let out = false;
      await health.attempt('cache_lock', async () => {
        out = await lock.held(key);
      });
      return out;
    },
    async release(key) {
      await health.attempt('cache_lock', () => lock.release(key));
    },
  };
}

export function createCacheParts(opts: CachePartsOptions): CacheParts {
  const memory = createMemoryExactCache({ maxBytes: opts.cache.exact.max_bytes, onBytes: (b) => opts.metrics.cacheBytes.set(b) });
  const exact = opts.redis
    ? createTieredExactCache(memory, guardExact(createRedisExactCache({ redis: opts.redis.client, keyPrefix: opts.redis.keyPrefix }), opts.redis.health))
    : memory;
  const semantic = opts.embed
    ? createSemanticIndex({
        maxEntries: opts.cache.semantic.max_entries,
        syncIntervalMs: opts.semanticSyncMs,
        store: opts.redis ? guardRecords(createRedisSemanticRecords({ redis: opts.redis.client, keyPrefix: opts.redis.keyPrefix }), opts.redis.health) : undefined,
      })
    : undefined;
  return {
    exact,
    semantic,
    embed: opts.embed,
    coalescer: createCoalescer(),
    lock: opts.redis && opts.lockAcrossReplicas ? guardLock(createRedisFlightLock({ redis: opts.redis.client, keyPrefix: opts.redis.keyPrefix }), opts.redis.health) : undefined,
    async close() {
      await exact.close();
      await semantic?.close();
    },
  };
}
