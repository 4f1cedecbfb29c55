/**
 * Semantic records in Redis so replicas share them: one string key per record (its
 * own PX expiry) plus a sorted set per partition (member = record id, score = expiry
 * ms) that lists the live ids. Keys use a {partition} hash tag so a partition's keys
 * share a cluster slot. The ioredis client is owned by the caller.
 */
import type { Redis } from 'ioredis';
import type { SemanticRecordStore } from './types.js';
import { decodeRecord, encodeRecord } from './semantic-records.js';

export interface RedisSemanticRecordsOptions {
  redis: Redis;
  keyPrefix: string;
}

/**
 * KEYS[1] record key, KEYS[2] partition set; ARGV: bytes, ttl ms, expiry ms, id, now ms.
 * One script so the record and its listing never disagree; the set lives as long as
 * its longest-lived record, and expired ids are pruned on every add.
 */
const ADD_SCRIPT = `
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', ARGV[5])
if redis.call('PTTL', KEYS[2]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[2], ARGV[2]) end
return 1`;

/** Records fetched per MGET when a replica loads a partition (~1.5 MB at 1,536 dimensions). */
export const LOAD_PAGE = 256;

export function createRedisSemanticRecords(opts: RedisSemanticRecordsOptions): SemanticRecordStore {
  const setKey = (partition: string): string => `${opts.keyPrefix}cache:s:{${partition}}`;
  const recordKey = (partition: string, id: string): string => `${opts.keyPrefix}cache:s:{${partition}}:${id}`;
  return {
    async add(partition, record) {
      const now = Date.now();
      const ttlMs = record.entry.expiresAtMs - now;
      if (ttlMs <= 0) return;
      await opts.redis.eval(ADD_SCRIPT, 2, recordKey(partition, record.id), setKey(partition), encodeRecord(record), String(ttlMs), String(record.entry.expiresAtMs), record.id, String(now));
    },
    async loadNew(partition, known) {
      const ids = (await opts.redis.zrangebyscore(setKey(partition), Date.now(), '+inf')).filter((id) => !known.has(id));
      const out = [];
      // In pages: a large partition (20,000 records of 1,536 floats is ~120 MB) in one MGET
      // would hold Redis, and this process's event loop while it decodes, for the whole of it.
      for (let at = 0; at < ids.length; at += LOAD_PAGE) {
        const values = await opts.redis.mgetBuffer(...ids.slice(at, at + LOAD_PAGE).map((id) => recordKey(partition, id)));
        const now = Date.now();
        for (const v of values) {
          const r = v ? decodeRecord(v) : undefined;
          if (r && r.entry.expiresAtMs > now) out.push(r);
        }
      }
      return out;
    },
    async close() {
      // The client belongs to the caller.
    },
  };
}
