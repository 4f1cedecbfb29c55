/**
 * Single flight across replicas (optional): a Redis lock per cache key
 * (`<prefix>cache:lock:<sha256>`, SET NX PX) held by the replica whose request goes
 * upstream. Other replicas' leaders wait for the answer to appear in the shared exact
 * cache instead of calling upstream too. The lock expires by itself (PX = wait_ms),
 * so a crashed holder blocks nobody for longer than a follower would wait anyway.
 * Release deletes the lock only if this process still owns it (compare-and-delete).
 */
import { randomBytes } from 'node:crypto';
import type { Redis } from 'ioredis';

export interface FlightLock {
  /** True when this process now holds the lock for `key` (for at most ttlMs). */
  acquire(key: string, ttlMs: number): Promise<boolean>;
  /** Whether anyone holds the lock for `key`. */
  held(key: string): Promise<boolean>;
  /** Releases the lock if this process holds it. */
  release(key: string): Promise<void>;
}

const RELEASE_SCRIPT = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

export function createRedisFlightLock(opts: { redis: Redis; keyPrefix: string }): FlightLock {
  const k = (key: string): string => `${opts.keyPrefix}cache:lock:${key}`;
  const owned = new Map<string, string>();
  return {
    async acquire(key, ttlMs) {
      const token = randomBytes(12).toString('base64');
      const ok = await opts.redis.set(k(key), token, 'PX', Math.max(1, Math.ceil(ttlMs)), 'NX');
      if (ok !== 'OK') return false;
      owned.set(key, token);
      return true;
    },
    async held(key) {
      return (await opts.redis.exists(k(key))) === 1;
    },
    async release(key) {
      const token = owned.get(key);
      if (token === undefined) return;
      owned.delete(key);
      await opts.redis.eval(RELEASE_SCRIPT, 1, k(key), token);
    },
  };
}
