/**
 * Semantic cache index: per partition, the nearest stored embedding of the request's
 * last user message by cosine similarity over L2-normalised Float32Array vectors (a
 * linear scan while the partition is small, an HNSW graph beyond: partition-index.ts;
 * the similarity compared with the threshold is always computed exactly). Bounded by cache.semantic.max_entries (LRU across partitions) and
 * by each entry's expiry. With a SemanticRecordStore (Redis) behind it, every add is
 * persisted and a local miss pulls the partition's records this replica lacks (at
 * most once per syncIntervalMs per partition), so replicas see each other's entries.
 *
 * A partition is everything in the request except the last user message's text:
 * target, system prompt, tools, earlier turns, sampling fields. The brief asks for at
 * least "target model + system prompt + tools"; earlier turns are included too because
 * a short reply like "yes" means something different in every conversation.
 * Created once (createCacheParts); shared by all requests.
 */
import { LRUCache } from 'lru-cache';
import { PartitionIndex } from './partition-index.js';
import type { CacheEntry, CacheEndpoint } from './entry.js';
import { canonicalJson, normaliseBody, sha256Hex } from './key.js';
import type { SemanticRecord, SemanticRecordStore } from '../stores/cache/types.js';

export interface SemanticMatch {
  id: string;
  entry: CacheEntry;
  similarity: number;
}

export interface SemanticIndex {
  /** The most similar live entry with similarity >= threshold, or undefined. */
  lookup(partition: string, vector: Float32Array, threshold: number): Promise<SemanticMatch | undefined>;
  /** Adds to memory and persists to the record store (if any); a store failure rejects after the memory add. */
  add(partition: string, record: SemanticRecord): Promise<void>;
  readonly size: number;
  close(): Promise<void>;
}

export interface SemanticIndexOptions {
  maxEntries: number;
  store?: SemanticRecordStore;
  /** Least time between two loads of one partition from the store on a local miss. Default 1000 ms. */
  syncIntervalMs?: number;
  /** Floats a partition's linear scan may read before it gets an HNSW graph (default GRAPH_AT_FLOATS; tests lower it). */
  graphAtFloats?: number;
}

/** Copy of `v` scaled to unit length; undefined for an empty, zero or non-finite vector. */
export function normaliseVector(v: ArrayLike<number>): Float32Array | undefined {
  let sum = 0;
  for (let i = 0; i < v.length; i++) sum += v[i] * v[i];
  if (!(sum > 0) || !Number.isFinite(sum)) return undefined;
  const inv = 1 / Math.sqrt(sum);
  const out = new Float32Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = v[i] * inv;
  return out;
}

export { dot } from './partition-index.js';

type Json = Record<string, unknown>;

function textOf(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return undefined;
  const parts: string[] = [];
  for (const p of content as Json[]) {
    // An image or audio part cannot be compared by text: not semantically cacheable.
    if (!p || p.type !== 'text' || typeof p.text !== 'string') return undefined;
    parts.push(p.text);
  }
  return parts.join('\n');
}

export interface SemanticQuery {
  /** The text to embed. */
  text: string;
  partition: string;
}

/** The text to embed and the partition of a chat request; undefined when it has no embeddable last user message. */
export function semanticQuery(endpoint: CacheEndpoint, target: string, body: Json): SemanticQuery | undefined {
  if (endpoint !== 'chat' || !Array.isArray(body.messages)) return undefined;
  const messages = body.messages as Json[];
  let last = -1;
  for (let i = messages.length - 1; i >= 0; i--) {
    if (messages[i]?.role === 'user') {
      last = i;
      break;
    }
  }
  if (last < 0) return undefined;
  const text = textOf(messages[last].content);
  if (!text || !text.trim()) return undefined;
  const rest = messages.map((m, i) => (i === last ? { ...m, content: null } : m));
  const partition = sha256Hex(canonicalJson({ e: endpoint, t: target, b: { ...normaliseBody(body), messages: rest } }));
  return { text, partition };
}

interface Item {
  partition: string;
  id: string;
  vector: Float32Array;
  entry: CacheEntry;
}

export function createSemanticIndex(opts: SemanticIndexOptions): SemanticIndex {
  const partitions = new Map<string, PartitionIndex<Item>>();
  const slot = (partition: string, id: string): string => `${partition}:${id}`;
  const lru = new LRUCache<string, Item>({
    max: opts.maxEntries,
    dispose: (item) => {
      const p = partitions.get(item.partition);
      if (p?.get(item.id) !== item) return;
      p.delete(item.id);
      if (p.size === 0) partitions.delete(item.partition);
    },
  });
  // Bounded like the entries: a partition never seen again must not pin memory.
  const lastSync = new LRUCache<string, number>({ max: opts.maxEntries });
  const syncIntervalMs = opts.syncIntervalMs ?? 1000;

  const insert = (partition: string, record: SemanticRecord): void => {
    const ttl = record.entry.expiresAtMs - Date.now();
    if (ttl <= 0) return;
    const item: Item = { partition, id: record.id, vector: record.vector, entry: record.entry };
    let p = partitions.get(partition);
    if (!p) partitions.set(partition, (p = new PartitionIndex<Item>(opts.graphAtFloats)));
    p.set(record.id, record.vector, item);
    lru.set(slot(partition, record.id), item);
  };

  const nearest = (partition: string, vector: Float32Array, threshold: number): SemanticMatch | undefined => {
    const p = partitions.get(partition);
    if (!p) return undefined;
    const now = Date.now();
    // An expired entry met on the way leaves the LRU, and so the partition (dispose).
    const found = p.nearest(vector, (item) => {
      if (item.entry.expiresAtMs > now) return true;
      lru.delete(slot(item.partition, item.id));
      return false;
    });
    if (!found || found.similarity < threshold) return undefined;
    lru.get(slot(partition, found.id)); // a hit refreshes recency
    return { id: found.id, entry: found.value.entry, similarity: found.similarity };
  };

  return {
    get size() {
      return lru.size;
    },
    async lookup(partition, vector, threshold) {
      const hit = nearest(partition, vector, threshold);
      if (hit || !opts.store) return hit;
      const now = Date.now();
      if (now - (lastSync.get(partition) ?? -Infinity) < syncIntervalMs) return undefined;
      lastSync.set(partition, now);
      const known = new Set(partitions.get(partition)?.ids() ?? []);
      const records = await opts.store.loadNew(partition, known);
      if (records.length === 0) return undefined;
      for (const record of records) insert(partition, record);
      return nearest(partition, vector, threshold);
    },
    async add(partition, record) {
      insert(partition, record);
      await opts.store?.add(partition, record);
    },
    async close() {
      lru.clear();
      lastSync.clear();
      await opts.store?.close();
    },
  };
}
