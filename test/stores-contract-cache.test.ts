/**
 * One contract for every cache store: the exact cache (memory, Redis, memory in front
 * of Redis) and the semantic record store (memory, Redis). "Two replicas" are two
 * store instances over the same state (for Redis: two clients).
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { decodeEntry, fromOpenAIUsage, type CacheEntry } from '../gateway/cache/entry.js';
import { createCacheParts } from '../gateway/cache/parts.js';
import { createMemoryExactCache } from '../gateway/stores/cache/memory-exact.js';
import { createRedisExactCache } from '../gateway/stores/cache/redis-exact.js';
import { createTieredExactCache } from '../gateway/stores/cache/tiered-exact.js';
import { createMemorySemanticRecords } from '../gateway/stores/cache/memory-semantic.js';
import { createRedisSemanticRecords, LOAD_PAGE } from '../gateway/stores/cache/redis-semantic.js';
import { createRedisFlightLock } from '../gateway/stores/cache/redis-flight-lock.js';
import type { ExactCacheStore, SemanticRecordStore } from '../gateway/stores/cache/types.js';
import { CacheSchema } from '../gateway/config/schema.js';
import { createStoreHealth } from '../gateway/stores/redis/connection.js';
import { createLogger } from '../gateway/logger.js';
import { createMetrics } from '../gateway/metrics.js';
import { useRedis } from './support/redis.js';

const redisServer = useRedis();

const client = () => {
  const c = redisServer.client({ maxRetriesPerRequest: 1 });
  c.on('error', () => {}); // the outage test stops Redis on purpose
  return c;
};
let n = 0;
const uid = (s: string) => `${s}-${++n}-${Math.random().toString(36).slice(2, 7)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function entry(content: string, ttlMs = 60_000): CacheEntry {
  const usage = { prompt_tokens: 5, completion_tokens: 7, total_tokens: 12 };
  return {
    v: 1,
    endpoint: 'chat',
    response: { id: 'chatcmpl-x', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content }, finish_reason: 'stop' }], usage },
    usage,
    expiresAtMs: Date.now() + ttlMs,
  };
}
const UNICODE = 'nul\u0000 bytes, 中文, emoji 🚀, lone-looking \\ud800 text, "quotes" and \n newlines';

interface Replicas<S> {
  a: S;
  b: S;
}

const exactImplementations: Array<[string, () => Replicas<ExactCacheStore>]> = [
  ['memory', () => {
    const s = createMemoryExactCache({ maxBytes: 1 << 20 });
    return { a: s, b: s };
  }],
  ['redis', () => ({ a: createRedisExactCache({ redis: client(), keyPrefix: 'contract:' }), b: createRedisExactCache({ redis: client(), keyPrefix: 'contract:' }) })],
  ['memory in front of redis', () => {
    const make = () => createTieredExactCache(createMemoryExactCache({ maxBytes: 1 << 20 }), createRedisExactCache({ redis: client(), keyPrefix: 'contract:' }));
    return { a: make(), b: make() };
  }],
];

describe.each(exactImplementations)('the %s exact cache store', (_name, make) => {
  let s: Replicas<ExactCacheStore>;
  beforeAll(() => {
    s = make();
  });

  it('answers undefined for a key it never stored', async () => {
    expect(await s.a.get(uid('none'))).toBeUndefined();
  });

  it('returns an entry stored by another replica, byte for byte, unicode and NUL included', async () => {
    const k = uid('k');
    const e = entry(UNICODE);
    await s.a.set(k, e, 60);
    expect(await s.b.get(k)).toEqual(e);
  });

  it('replaces the entry under a key on a second set', async () => {
    const k = uid('k');
    await s.a.set(k, entry('first'), 60);
    await s.a.set(k, entry('second'), 60);
    expect((await s.b.get(k))?.response.choices).toEqual(entry('second').response.choices);
  });

  it('forgets an entry once its TTL is over', async () => {
    const k = uid('ttl');
    // The entry's own expiry is far away: only the store's TTL can make it go.
    await s.a.set(k, entry('short-lived', 60_000), 0.3);
    expect(await s.b.get(k)).toBeDefined();
    await sleep(450);
    expect(await s.a.get(k)).toBeUndefined();
    expect(await s.b.get(k)).toBeUndefined();
  });

  it('never returns an entry past its own expiry, even if the store still holds it', async () => {
    const k = uid('stale');
    await s.a.set(k, { ...entry('stale'), expiresAtMs: Date.now() - 1 }, 60);
    expect(await s.b.get(k)).toBeUndefined();
  });

  it('peek, where offered, finds synchronously what this replica holds in memory, never a stale entry', async () => {
    if (!s.a.peek) return expect(_name).toBe('redis'); // only the Redis-only store has no memory to peek into
    const k = uid('peek');
    expect(s.a.peek(k)).toBeUndefined();
    const e = entry('peeked');
    await s.a.set(k, e, 60);
    expect(s.a.peek(k)).toEqual(e);
    const stale = uid('peek-stale');
    await s.a.set(stale, { ...entry('stale'), expiresAtMs: Date.now() - 1 }, 60);
    expect(s.a.peek(stale)).toBeUndefined();
  });
});

describe('the memory-in-front-of-Redis exact cache store', () => {
  it('peeks into its memory only; get() finds what another replica put in Redis, and peek sees it from then on', async () => {
    const a = createTieredExactCache(createMemoryExactCache({ maxBytes: 1 << 20 }), createRedisExactCache({ redis: client(), keyPrefix: 'contract:' }));
    const b = createTieredExactCache(createMemoryExactCache({ maxBytes: 1 << 20 }), createRedisExactCache({ redis: client(), keyPrefix: 'contract:' }));
    const k = uid('tiered-peek');
    await a.set(k, entry('from a'), 60);
    expect(b.peek!(k)).toBeUndefined();
    expect((await b.get(k))?.response.choices).toEqual(entry('from a').response.choices);
    expect(b.peek!(k)?.response.choices).toEqual(entry('from a').response.choices);
  });
});

describe('the memory exact cache store', () => {
  it('is bounded in bytes: the least recently used entries go first, and the gauge follows', async () => {
    const one = Buffer.byteLength(JSON.stringify(entry('x'.repeat(1000))));
    let reported = -1;
    const s = createMemoryExactCache({ maxBytes: one * 3 + 10, onBytes: (b) => (reported = b) });
    for (const k of ['a', 'b', 'c']) await s.set(k, entry('x'.repeat(1000)), 60);
    expect(s.bytes).toBe(one * 3);
    expect(reported).toBe(one * 3);
    await s.get('a'); // a is now the most recently used
    await s.set('d', entry('x'.repeat(1000)), 60);
    expect(await s.get('b')).toBeUndefined();
    expect(await s.get('a')).toBeDefined();
    expect(await s.get('d')).toBeDefined();
    expect(s.bytes).toBeLessThanOrEqual(one * 3 + 10);
  });

  it('refuses an entry larger than the whole cache instead of emptying it', async () => {
    const s = createMemoryExactCache({ maxBytes: 2000 });
    await s.set('small', entry('ok'), 60);
    await s.set('huge', entry('x'.repeat(5000)), 60);
    expect(await s.get('huge')).toBeUndefined();
    expect(await s.get('small')).toBeDefined();
  });
});

const semanticImplementations: Array<[string, () => Replicas<SemanticRecordStore>]> = [
  ['memory', () => {
    const s = createMemorySemanticRecords({ maxRecords: 1000 });
    return { a: s, b: s };
  }],
  ['redis', () => ({ a: createRedisSemanticRecords({ redis: client(), keyPrefix: 'contract:' }), b: createRedisSemanticRecords({ redis: client(), keyPrefix: 'contract:' }) })],
];

describe.each(semanticImplementations)('the %s semantic record store', (_name, make) => {
  let s: Replicas<SemanticRecordStore>;
  beforeAll(() => {
    s = make();
  });
  const vec = (...xs: number[]) => new Float32Array(xs);

  it('gives another replica the records it lacks, vectors exact, entries whole', async () => {
    const p = uid('part');
    const r1 = { id: 'r1', vector: vec(0.6, 0.8, 1 / 3), entry: entry(UNICODE) };
    const r2 = { id: 'r2', vector: vec(1, 0, 0), entry: entry('two') };
    await s.a.add(p, r1);
    await s.a.add(p, r2);
    const all = await s.b.loadNew(p, new Set());
    expect(all.sort((x, y) => x.id.localeCompare(y.id))).toEqual([r1, r2]);
    expect(await s.b.loadNew(p, new Set(['r1']))).toEqual([r2]);
    expect(await s.b.loadNew(p, new Set(['r1', 'r2']))).toEqual([]);
  });

  it('loads a partition larger than one page (Redis: LOAD_PAGE records per MGET) whole', async () => {
    const p = uid('part');
    const n = LOAD_PAGE * 2 + 7;
    for (let i = 0; i < n; i++) await s.a.add(p, { id: `r${i}`, vector: vec(i, 1), entry: entry(`e${i}`) });
    const got = await s.b.loadNew(p, new Set(['r0', 'r300']));
    expect(got).toHaveLength(n - 2);
    expect(new Set(got.map((r) => r.id)).size).toBe(n - 2);
    expect(got.find((r) => r.id === `r${n - 1}`)?.vector).toEqual(vec(n - 1, 1));
  });

  it('keeps partitions apart', async () => {
    const p = uid('part');
    await s.a.add(p, { id: 'only-here', vector: vec(1, 0), entry: entry('x') });
    expect(await s.b.loadNew(uid('other'), new Set())).toEqual([]);
    expect((await s.b.loadNew(p, new Set())).map((r) => r.id)).toEqual(['only-here']);
  });

  it('forgets a record once its entry expires', async () => {
    const p = uid('part');
    await s.a.add(p, { id: 'brief', vector: vec(0, 1), entry: entry('brief', 300) });
    await s.a.add(p, { id: 'lasting', vector: vec(1, 0), entry: entry('lasting') });
    expect((await s.b.loadNew(p, new Set())).map((r) => r.id).sort()).toEqual(['brief', 'lasting']);
    await sleep(450);
    expect((await s.b.loadNew(p, new Set())).map((r) => r.id)).toEqual(['lasting']);
  });
});

describe('the Redis semantic record store, paging', () => {
  it('fetches a large partition in MGETs of at most LOAD_PAGE records', async () => {
    const real = client();
    const pages: number[] = [];
    const counted = new Proxy(real, {
      get(target, prop) {
        const v = Reflect.get(target, prop) as unknown;
        if (prop === 'mgetBuffer') return (...keys: string[]) => { pages.push(keys.length); return (v as (...k: string[]) => unknown).apply(target, keys); };
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
      },
    });
    const store = createRedisSemanticRecords({ redis: counted, keyPrefix: 'paging:' });
    const p = uid('part');
    for (let i = 0; i < LOAD_PAGE + 3; i++) await store.add(p, { id: `r${i}`, vector: new Float32Array([i, 1]), entry: entry(`e${i}`) });
    expect(await store.loadNew(p, new Set())).toHaveLength(LOAD_PAGE + 3);
    expect(pages).toEqual([LOAD_PAGE, 3]);
  });
});

describe('the cross-replica flight lock', () => {
  it('is held by one replica at a time, released only by its holder, and expires by itself', async () => {
    const a = createRedisFlightLock({ redis: client(), keyPrefix: 'lock:' });
    const b = createRedisFlightLock({ redis: client(), keyPrefix: 'lock:' });
    const k = uid('flight');
    expect(await a.acquire(k, 5000)).toBe(true);
    expect(await b.acquire(k, 5000)).toBe(false);
    expect(await b.held(k)).toBe(true);
    await b.release(k); // not b's to release
    expect(await a.held(k)).toBe(true);
    await a.release(k);
    expect(await b.held(k)).toBe(false);
    expect(await b.acquire(k, 200)).toBe(true);
    await sleep(300);
    expect(await a.held(k)).toBe(false);
    expect(await a.acquire(k, 5000)).toBe(true);
  });
});

describe('the cache parts over Redis', () => {
  it('serve a Redis hit from memory afterwards, and treat an unreachable Redis as a miss that is counted', async () => {
    const metrics = createMetrics({ defaultMetrics: false });
    const c = client();
    const health = createStoreHealth({ onFailure: 'fail_closed', logger: createLogger({ level: 'silent' }), metrics, ping: () => c.ping().then(() => undefined), isConnected: () => c.status === 'ready', probeMs: 50 });
    const writer = createCacheParts({ cache: CacheSchema.parse({}), metrics, redis: { client: client(), keyPrefix: 'parts:' } });
    const reader = createCacheParts({ cache: CacheSchema.parse({}), metrics, redis: { client: c, keyPrefix: 'parts:', health } });
    const k = uid('k');
    await writer.exact.set(k, entry('shared'), 60);
    expect(await reader.exact.get(k)).toBeDefined();
    await redisServer.redis().stop();
    try {
      // Copied into the reader's memory tier by the first read: still served.
      expect(await reader.exact.get(k)).toBeDefined();
      // Not in memory, Redis gone: a miss, never a thrown error, even under fail_closed.
      expect(await reader.exact.get(uid('absent'))).toBeUndefined();
      await reader.exact.set(uid('w'), entry('w'), 60);
      const failures = (await metrics.storeFailures.get()).values.reduce((sum, v) => sum + v.value, 0);
      expect(failures).toBeGreaterThanOrEqual(1);
    } finally {
      await redisServer.redis().restart();
      health.close();
    }
  });
});

describe('entries read back from a store', () => {
  const good = {
    v: 1,
    endpoint: 'chat',
    response: { id: 'c', object: 'chat.completion', created: 1, model: 'm', choices: [{ index: 0, message: { role: 'assistant', content: 'hi' }, finish_reason: 'stop' }], usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 } },
    usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
    expiresAtMs: Date.now() + 60_000,
  };
  const withChoice = (choice: Record<string, unknown>) => ({ ...good, response: { ...good.response, choices: [choice] } });

  it('accept a well-formed entry', () => {
    expect(decodeEntry(JSON.stringify(good))).toEqual(good);
  });

  it.each([
    ['tool_calls that is not an array', withChoice({ index: 0, message: { role: 'assistant', content: null, tool_calls: { a: 1 } }, finish_reason: 'tool_calls' })],
    ['a message that is not an object', withChoice({ index: 0, message: 'hi', finish_reason: 'stop' })],
    ['content that is not a string', withChoice({ index: 0, message: { role: 'assistant', content: 42 }, finish_reason: 'stop' })],
    ['a completion text that is not a string', withChoice({ index: 0, text: ['x'], finish_reason: 'stop' })],
    ['negative usage', { ...good, usage: { prompt_tokens: 1, completion_tokens: -10, total_tokens: -9 } }],
    ['usage that is not a number', { ...good, usage: { prompt_tokens: '1', completion_tokens: 1, total_tokens: 2 } }],
  ])('treat an entry with %s as a miss, never an error', (_name, value) => {
    expect(decodeEntry(JSON.stringify(value))).toBeUndefined();
  });

  it("do not believe an upstream's negative token counts", () => {
    expect(fromOpenAIUsage({ prompt_tokens: 5, completion_tokens: -10, total_tokens: -5 })).toBeUndefined();
    expect(fromOpenAIUsage({ prompt_tokens: 5, completion_tokens: 2, total_tokens: Infinity })).toEqual({ prompt_tokens: 5, completion_tokens: 2, total_tokens: 7 });
  });
});
