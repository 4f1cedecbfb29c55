/**
 * Memory in front of Redis for the exact cache (store.kind redis): reads try the
 * process's byte-bounded LRU first and fall back to Redis, copying a Redis hit into
 * memory for its remaining TTL; writes go to both. Safe without invalidation because
 * an entry never changes once made (same key, same answer).
 */
import type { ExactCacheStore } from './types.js';

export function createTieredExactCache(near: ExactCacheStore, far: ExactCacheStore): ExactCacheStore {
  return {
    peek: near.peek ? (key) => near.peek!(key) : undefined,
    async get(key) {
      const hot = await near.get(key);
      if (hot) return hot;
      const entry = await far.get(key);
      if (entry) await near.set(key, entry, (entry.expiresAtMs - Date.now()) / 1000);
      return entry;
    },
    async set(key, entry, ttlS) {
      await near.set(key, entry, ttlS);
      await far.set(key, entry, ttlS);
    },
    async close() {
      await near.close();
      await far.close();
    },
  };
}
