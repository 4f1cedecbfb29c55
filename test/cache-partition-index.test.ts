/**
 * The semantic cache's per-partition index (gateway/cache/partition-index.ts): a linear
 * scan while small, an HNSW graph (usearch) beyond; what it returns and the similarity it
 * reports must be what an exact scan would give, whatever was added, replaced, dropped.
 */
import { describe, expect, it } from 'vitest';
import { PartitionIndex, dot, vectorGraphAvailable } from '../gateway/cache/partition-index.js';
import { createSemanticIndex, normaliseVector } from '../gateway/cache/semantic.js';
import type { CacheEntry } from '../gateway/cache/entry.js';
import { clusteredVectors as clustered, createRandom as rng } from './support/vectors.js';

function exactNearest(vectors: Map<string, Float32Array>, q: Float32Array): { id: string; sim: number } | undefined {
  let top: { id: string; sim: number } | undefined;
  for (const [id, v] of vectors) {
    if (v.length !== q.length) continue;
    const sim = dot(v, q);
    if (!top || sim > top.sim) top = { id, sim };
  }
  return top;
}

const always = () => true;

describe('partition index', () => {
  it('can build HNSW graphs on this platform (usearch loads)', () => {
    const g = vectorGraphAvailable();
    expect(g.error).toBeUndefined();
    expect(g.available).toBe(true);
  });

  it('scans while small and gets a graph once a scan would read more than graphAtFloats floats', () => {
    const index = new PartitionIndex<number>(64 * 100);
    const vs = clustered(150, 64, 10);
    vs.forEach((v, i) => {
      index.set(`e${i}`, v, i);
      expect(index.hasGraph).toBe((i + 1) * 64 > 64 * 100);
    });
    expect(index.size).toBe(150);
  });

  it('returns through the graph what an exact scan returns, with the exact similarity', async () => {
    const dims = 64;
    const index = new PartitionIndex<string>(dims * 50);
    const stored = new Map<string, Float32Array>();
    clustered(3000, dims, 60, 7).forEach((v, i) => {
      index.set(`e${i}`, v, `value-${i}`);
      stored.set(`e${i}`, v);
    });
    expect(index.hasGraph).toBe(true);
    await index.indexed();
    const queries = clustered(300, dims, 60, 99);
    let same = 0;
    for (const q of queries) {
      const got = index.nearest(q, always)!;
      const want = exactNearest(stored, q)!;
      expect(got.similarity).toBeCloseTo(dot(stored.get(got.id)!, q), 6); // exact, not the graph's estimate
      expect(got.value).toBe(`value-${got.id.slice(1)}`);
      if (got.id === want.id) same++;
    }
    expect(same / queries.length).toBeGreaterThanOrEqual(0.97);
    // What the cache asks in practice: a paraphrase, i.e. a vector close to a stored one.
    const r = rng(5);
    let found = 0;
    for (let i = 0; i < 3000; i += 10) {
      const near = normaliseVector(Array.from(stored.get(`e${i}`)!, (x) => x + 0.02 * (r() - 0.5)))!;
      if (index.nearest(near, always)!.id === `e${i}`) found++;
    }
    expect(found / 300).toBeGreaterThanOrEqual(0.99);
    // A stored vector itself is always found.
    for (const id of ['e0', 'e1234', 'e2999']) expect(index.nearest(stored.get(id)!, always)!.id).toBe(id);
  });

  it('never returns a deleted, replaced or dropped entry, in a graph partition too', async () => {
    const dims = 32;
    const index = new PartitionIndex<number>(dims * 20);
    const vs = clustered(400, dims, 20, 3);
    vs.forEach((v, i) => index.set(`e${i}`, v, i));
    expect(index.hasGraph).toBe(true);
    await index.indexed();
    for (let i = 0; i < 400; i += 2) expect(index.delete(`e${i}`)).toBe(true);
    expect(index.delete('e0')).toBe(false);
    expect(index.size).toBe(200);
    for (let i = 0; i < 400; i += 2) expect(Number(index.nearest(vs[i]!, always)!.id.slice(1)) % 2).toBe(1);
    // Replaced: the new vector counts, the old one is gone.
    index.set('e1', vs[3]!, -1);
    expect(index.nearest(vs[3]!, always)!.similarity).toBeCloseTo(1, 5);
    expect(index.get('e1')).toBe(-1);
    // Refused by `live` (expired): dropped from the index and not returned.
    const before = index.size;
    const found = index.nearest(vs[5]!, (v) => v !== 5);
    expect(found!.id).not.toBe('e5');
    expect(index.get('e5')).toBeUndefined();
    expect(index.size).toBe(before - 1);
  });

  it('builds the graph in slices between event-loop turns, answering exactly meanwhile', async () => {
    const dims = 96;
    const index = new PartitionIndex<number>(dims * 10);
    const vs = clustered(4000, dims, 40, 21);
    vs.forEach((v, i) => index.set(`e${i}`, v, i)); // as a bulk load from Redis does
    // Not in the graph yet: still found (scanned with the graph's candidates).
    for (const i of [0, 1999, 3999]) expect(index.nearest(vs[i]!, always)!.id).toBe(`e${i}`);
    let turns = 0;
    let counting = true;
    const count = () => {
      turns++;
      if (counting) setImmediate(count);
    };
    setImmediate(count);
    await index.indexed();
    counting = false;
    expect(turns).toBeGreaterThan(2); // the loop kept turning while the graph was built
    for (const i of [0, 1999, 3999]) expect(index.nearest(vs[i]!, always)!.id).toBe(`e${i}`);
  });

  it('sweeps expired entries out of a graph partition as lookups go by', async () => {
    const dims = 32;
    const index = new PartitionIndex<{ expired: boolean }>(dims * 20);
    const vs = clustered(1000, dims, 20, 13);
    vs.forEach((v, i) => index.set(`e${i}`, v, { expired: i >= 100 }));
    await index.indexed();
    const live = (v: { expired: boolean }) => !v.expired;
    for (let i = 0; i < 60; i++) index.nearest(vs[i % 100]!, live);
    expect(index.size).toBe(100); // the 900 expired ones are gone, found or not
    for (let i = 0; i < 100; i += 9) expect(index.nearest(vs[i]!, live)!.id).toBe(`e${i}`);
  });

  it('still finds an entry whose dimensions differ from the graph', () => {
    const index = new PartitionIndex<string>(16 * 10);
    clustered(50, 16, 5).forEach((v, i) => index.set(`a${i}`, v, 'sixteen'));
    expect(index.hasGraph).toBe(true);
    const odd = clustered(1, 24, 1, 5)[0]!;
    index.set('odd', odd, 'twenty-four');
    expect(index.nearest(odd, always)).toMatchObject({ id: 'odd', value: 'twenty-four' });
    expect(index.nearest(clustered(1, 16, 5)[0]!, always)!.value).toBe('sixteen');
  });
});

describe('semantic index over graph partitions', () => {
  const entry = (i: number): CacheEntry => ({ body: `answer ${i}`, expiresAtMs: Date.now() + 60000 }) as unknown as CacheEntry;

  it('hits, misses and evicts (LRU) through the graph like through a scan', async () => {
    const dims = 48;
    const index = createSemanticIndex({ maxEntries: 300, graphAtFloats: dims * 20 });
    const vs = clustered(500, dims, 25, 11);
    for (let i = 0; i < 500; i++) await index.add('p', { id: `e${i}`, vector: vs[i]!, entry: entry(i) });
    expect(index.size).toBe(300);
    // The 200 oldest were evicted: never served, even for their exact vector.
    for (let i = 0; i < 200; i += 7) {
      const m = await index.lookup('p', vs[i]!, 0.999);
      expect(m?.id).not.toBe(`e${i}`);
    }
    for (let i = 200; i < 500; i += 7) {
      const m = await index.lookup('p', vs[i]!, 0.999);
      expect(m?.id).toBe(`e${i}`);
      expect(m?.similarity).toBeCloseTo(1, 5);
    }
    // Another partition shares nothing.
    expect(await index.lookup('q', vs[300]!, 0.5)).toBeUndefined();
    await index.close();
  });
});
