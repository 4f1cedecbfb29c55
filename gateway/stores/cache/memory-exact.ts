/**
 * In-process exact cache: an LRU bounded in bytes (cache.exact.max_bytes), each entry
 * sized by its serialised JSON, with a per-entry TTL. Used alone with store.kind
 * memory, and as the first tier in front of Redis (tiered-exact.ts) so a hot entry is
 * served without a network round trip.
 */
import { LRUCache } from 'lru-cache';
import { encodeEntry, withExpiry, type CacheEntry } from '../../cache/entry.js';
import type { ExactCacheStore } from './types.js';

interface Held {
  entry: CacheEntry;
  bytes: number;
}

export interface MemoryExactCacheOptions {
  maxBytes: number;
  /** Called after every change with the bytes held (for the switchyard_cache_bytes gauge). */
  onBytes?: (bytes: number) => void;
  /** Clock for expiry (tests). */
  now?: () => number;
}

export interface MemoryExactCacheStore extends ExactCacheStore {
  readonly bytes: number;
}

export function createMemoryExactCache(opts: MemoryExactCacheOptions): MemoryExactCacheStore {
  const lru = new LRUCache<string, Held>({
    maxSize: opts.maxBytes,
    sizeCalculation: (h) => Math.max(1, h.bytes),
    // Entries carry their own expiry; lru-cache's ttl only bounds how long a dead one lingers.
    ttlAutopurge: false,
    dispose: () => queueMicrotask(report),
  });
  const now = opts.now ?? Date.now;
  function report(): void {
    opts.onBytes?.(lru.calculatedSize);
  }

  function peek(key: string): CacheEntry | undefined {
    const held = lru.get(key);
    if (!held) return undefined;
    if (held.entry.expiresAtMs <= now()) {
      lru.delete(key);
      return undefined;
    }
    return held.entry;
  }

  return {
    get bytes() {
      return lru.calculatedSize;
    },
    peek,
    async get(key) {
      return peek(key);
    },
    async set(key, entry, ttlS) {
      if (ttlS <= 0) return;
      const held = withExpiry(entry, ttlS, now());
      const bytes = encodeEntry(held).byteLength;
      // An entry larger than the whole cache is refused by lru-cache (it would evict everything).
      if (bytes > opts.maxBytes) return;
      lru.set(key, { entry: held, bytes }, { ttl: Math.ceil(ttlS * 1000) });
      report();
    },
    async close() {
      lru.clear();
      report();
    },
  };
}
