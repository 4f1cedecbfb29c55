/**
 * The cache's stores, narrow and shaped for the cache (ARCHITECTURE 5). Each has a
 * memory and a Redis implementation passing one contract suite
 * (test/stores-contract-cache.test.ts). Created once by main.ts (via
 * createCacheParts); shared by all requests and config generations.
 *
 * Failure contract: a store call may reject (Redis down or slow); check-cache treats
 * a rejected get as a miss and a rejected set as "not stored", counts it in
 * switchyard_store_failures_total{op="cache_get|cache_set"} and never fails the
 * request because of the cache.
 */
import type { CacheEntry } from '../../cache/entry.js';

export interface ExactCacheStore {
  /** The live entry under `key`, or undefined (missing, expired or unreadable). */
  get(key: string): Promise<CacheEntry | undefined>;
  /**
   * Optional, synchronous: the live entry when this process holds it in memory, else
   * undefined (then get() looks further). Lets a hit in memory be served without a
   * Promise; stores without a memory tier leave it out.
   */
  peek?(key: string): CacheEntry | undefined;
  /**
   * Stores `entry` for `ttlS` seconds (fractions allowed); replaces any entry under `key`.
   * The stored copy's expiresAtMs is clamped to now + ttlS, so whoever reads it later
   * (a memory tier copying a Redis hit) knows the time it really has left.
   */
  set(key: string, entry: CacheEntry, ttlS: number): Promise<void>;
  close(): Promise<void>;
}

/** One semantic-cache entry: the embedding of the last user message and the answer. */
export interface SemanticRecord {
  /** Unique within its partition (the exact-cache key of the request that made it). */
  id: string;
  /** L2-normalised embedding. */
  vector: Float32Array;
  entry: CacheEntry;
}

/**
 * Where semantic entries persist so that replicas share them. The in-memory index
 * (gateway/cache/semantic.ts) is the search structure; this store is only its
 * durable, shared backing.
 */
export interface SemanticRecordStore {
  /** Persists `record` in `partition` until record.entry.expiresAtMs. */
  add(partition: string, record: SemanticRecord): Promise<void>;
  /** Live records of `partition` whose ids are not in `known` (so a replica loads only what it lacks). */
  loadNew(partition: string, known: ReadonlySet<string>): Promise<SemanticRecord[]>;
  close(): Promise<void>;
}
