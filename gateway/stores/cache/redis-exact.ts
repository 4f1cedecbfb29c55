/**
 * Exact cache in Redis, shared by replicas: one string key per entry
 * (`<prefix>cache:x:<sha256>`), value = the entry's JSON as bytes, expiry by
 * SET ... PX so Redis drops it. Binary-safe: values go in and out as Buffers.
 * The ioredis client is owned by the caller (main.ts), which sets its timeouts.
 */
import type { Redis } from 'ioredis';
import { decodeEntry, encodeEntry, withExpiry } from '../../cache/entry.js';
import type { ExactCacheStore } from './types.js';

export interface RedisExactCacheOptions {
  redis: Redis;
  /** store.key_prefix, e.g. "switchyard:". */
  keyPrefix: string;
}

export function createRedisExactCache(opts: RedisExactCacheOptions): ExactCacheStore {
  const k = (key: string): string => `${opts.keyPrefix}cache:x:${key}`;
  return {
    async get(key) {
      const bytes = await opts.redis.getBuffer(k(key));
      if (!bytes) return undefined;
      const entry = decodeEntry(bytes);
      return entry && entry.expiresAtMs > Date.now() ? entry : undefined;
    },
    async set(key, entry, ttlS) {
      const ms = Math.ceil(ttlS * 1000);
      if (ms <= 0) return;
      await opts.redis.set(k(key), encodeEntry(withExpiry(entry, ttlS, Date.now())), 'PX', ms);
    },
    async close() {
      // The client belongs to the caller.
    },
  };
}
