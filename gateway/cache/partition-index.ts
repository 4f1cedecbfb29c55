/**
 * Nearest-neighbour search within one semantic-cache partition, over L2-normalised
 * vectors (so cosine similarity = dot product).
 *
 * A linear scan while the partition is small; once a scan would touch more than
 * GRAPH_AT_FLOATS floats (~85 entries of 1,536 dimensions, ~512 of 256), an HNSW graph
 * from usearch (SIMD, native, prebuilt for Linux/macOS/Windows) finds the candidates.
 * A scan in JS reads ~0.6 GFLOP/s here: 20,000 entries of 1,536 dimensions took ~49 ms per
 * lookup, all of it blocking the event loop, against ~0.1 ms through the graph (recall@1
 * 0.998 on clustered vectors). The graph's candidates (CANDIDATES of them) are re-scored
 * exactly with the stored Float32 vectors, so the similarity compared with the threshold
 * is exact; the graph only decides which entries are looked at.
 *
 * Adding to the graph costs ~0.5 ms per entry at 1,536 dimensions, so entries join it in
 * the background, in slices of at most GRAPH_SLICE_MS per event-loop turn; until then they
 * are scanned with the graph's candidates. A replica that loads a large partition from
 * Redis at once, or a partition that just crossed the threshold, never blocks the loop
 * for longer than a slice.
 *
 * When usearch cannot be loaded (no prebuilt binary for the platform) every partition
 * stays a linear scan; `vectorGraphAvailable()` tells, and the cache logs a warning.
 */
import { createRequire } from 'node:module';
import type * as USearch from 'usearch';

/** Floats one scan may read (entries × dimensions) before the partition gets a graph. */
export const GRAPH_AT_FLOATS = 1 << 17;
/** Candidates taken from the graph and re-scored exactly. */
const CANDIDATES = 16;
/** Longest stretch of graph building per event-loop turn. */
const GRAPH_SLICE_MS = 2;
/**
 * Entries a graph lookup also checks for expiry, in turn: a lookup through the graph
 * meets only its candidates, so without this an expired entry would stay (in memory and
 * in the graph) until the LRU pushed it out.
 */
const SWEEP_PER_LOOKUP = 32;

type UsearchModule = typeof USearch;
let usearch: UsearchModule | null | undefined;
let loadError: unknown;

function loadUsearch(): UsearchModule | undefined {
  if (usearch === undefined) {
    try {
      const mod = createRequire(import.meta.url)('usearch') as UsearchModule & { default?: UsearchModule };
      usearch = mod.Index ? mod : (mod.default ?? null);
    } catch (err) {
      loadError = err;
      usearch = null;
    }
  }
  return usearch ?? undefined;
}

/** Whether partitions can get an HNSW graph here; `error` says why not. */
export function vectorGraphAvailable(): { available: boolean; error?: unknown } {
  return loadUsearch() ? { available: true } : { available: false, error: loadError };
}

export function dot(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

interface Slot<T> {
  id: string;
  label: bigint;
  vector: Float32Array;
  value: T;
  /** In the graph (its dimensions are the graph's). */
  graphed: boolean;
}

export interface Nearest<T> {
  id: string;
  value: T;
  similarity: number;
}

export class PartitionIndex<T> {
  private readonly slots = new Map<string, Slot<T>>();
  private readonly byLabel = new Map<bigint, Slot<T>>();
  private nextLabel = 0n;
  private graph: USearch.Index | undefined;
  private graphDims = 0;
  /** Slots waiting to join the graph, from pendingHead on (scanned meanwhile); deleted ones are skipped. */
  private pending: Slot<T>[] = [];
  private pendingHead = 0;
  private draining: NodeJS.Immediate | undefined;
  private idleWaiters: Array<() => void> = [];
  /** Floats held: the cost of one linear scan. */
  private floats = 0;
  /** Where the expiry sweep of graph lookups goes on. */
  private sweep: IterableIterator<Slot<T>> | undefined;
  /** usearch failed (out of memory...): this partition scans from now on. */
  private graphFailed = false;

  /** `graphAtFloats`: when to build the graph (tests lower it). */
  constructor(private readonly graphAtFloats = GRAPH_AT_FLOATS) {}

  get size(): number {
    return this.slots.size;
  }

  /** Whether lookups go through an HNSW graph. */
  get hasGraph(): boolean {
    return this.graph !== undefined;
  }

  /** Resolves once every entry with the graph's dimensions is in the graph. */
  indexed(): Promise<void> {
    if (this.pendingHead >= this.pending.length) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  ids(): IterableIterator<string> {
    return this.slots.keys();
  }

  get(id: string): T | undefined {
    return this.slots.get(id)?.value;
  }

  set(id: string, vector: Float32Array, value: T): void {
    this.delete(id);
    const slot: Slot<T> = { id, label: this.nextLabel++, vector, value, graphed: false };
    this.slots.set(id, slot);
    this.byLabel.set(slot.label, slot);
    this.floats += vector.length;
    if (this.graph) this.enqueue(slot);
    else if (this.floats > this.graphAtFloats) this.startGraph();
  }

  delete(id: string): boolean {
    const slot = this.slots.get(id);
    if (!slot) return false;
    this.slots.delete(id);
    this.byLabel.delete(slot.label);
    this.floats -= slot.vector.length;
    if (slot.graphed && this.graph) this.graph.remove(slot.label);
    return true;
  }

  /**
   * The most similar entry that `live` accepts (entries it refuses are dropped from the
   * index: the caller's expiry check), or undefined.
   */
  nearest(vector: Float32Array, live: (value: T) => boolean): Nearest<T> | undefined {
    let top: Nearest<T> | undefined;
    const dead: string[] = [];
    const consider = (slot: Slot<T>): void => {
      if (this.slots.get(slot.id) !== slot) return; // deleted while pending
      if (!live(slot.value)) {
        dead.push(slot.id);
        return;
      }
      if (slot.vector.length !== vector.length) return;
      const similarity = dot(slot.vector, vector);
      if (!top || similarity > top.similarity) top = { id: slot.id, value: slot.value, similarity };
    };
    const candidates = this.graph && vector.length === this.graphDims ? this.graphCandidates(vector) : undefined;
    if (candidates) {
      for (const slot of candidates) consider(slot);
      for (let i = this.pendingHead; i < this.pending.length; i++) consider(this.pending[i]!);
      for (let k = 0; k < SWEEP_PER_LOOKUP && k < this.slots.size; k++) {
        let next = this.sweep?.next();
        if (!next || next.done) {
          this.sweep = this.slots.values();
          next = this.sweep.next();
          if (next.done) break;
        }
        if (!live(next.value.value)) dead.push(next.value.id);
      }
    } else {
      for (const slot of this.slots.values()) consider(slot);
    }
    for (const id of dead) this.delete(id);
    return top;
  }

  private graphCandidates(vector: Float32Array): Slot<T>[] | undefined {
    let found;
    try {
      found = this.graph!.search(vector, CANDIDATES, 0);
    } catch {
      this.dropGraph();
      return undefined;
    }
    const out: Slot<T>[] = [];
    const keys = (found as { keys: BigUint64Array }).keys;
    for (let i = 0; i < keys.length; i++) {
      const slot = this.byLabel.get(keys[i]!);
      if (slot) out.push(slot);
    }
    return out;
  }

  /** After a usearch failure: every entry is scanned again, and no graph is tried again. */
  private dropGraph(): void {
    this.graph = undefined;
    this.graphDims = 0;
    this.graphFailed = true;
    for (const slot of this.slots.values()) slot.graphed = false;
    this.pending = [];
    this.pendingHead = 0;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  }

  private startGraph(): void {
    const lib = this.graphFailed ? undefined : loadUsearch();
    if (!lib) return;
    // The dimensions most entries have (one embedding model per partition in practice).
    const counts = new Map<number, number>();
    for (const s of this.slots.values()) counts.set(s.vector.length, (counts.get(s.vector.length) ?? 0) + 1);
    let dims = 0;
    let most = 0;
    for (const [d, n] of counts) if (n > most) [dims, most] = [d, n];
    if (dims === 0) return;
    this.graph = new lib.Index({ dimensions: dims, metric: lib.MetricKind.IP, quantization: lib.ScalarKind.F16, connectivity: 16, expansion_add: 128, expansion_search: 64, multi: false });
    this.graphDims = dims;
    for (const slot of this.slots.values()) this.enqueue(slot);
  }

  private enqueue(slot: Slot<T>): void {
    if (slot.vector.length !== this.graphDims) return; // scanned only when asked with its own dimensions
    this.pending.push(slot);
    this.draining ??= setImmediate(this.drain);
  }

  private readonly drain = (): void => {
    this.draining = undefined;
    const until = performance.now() + GRAPH_SLICE_MS;
    const pending = this.pending;
    let i = this.pendingHead;
    while (i < pending.length) {
      const slot = pending[i++]!;
      if (this.slots.get(slot.id) === slot && !slot.graphed) {
        try {
          this.graph!.add(slot.label, slot.vector);
        } catch {
          return this.dropGraph();
        }
        slot.graphed = true;
      }
      if ((i & 7) === 0 && performance.now() >= until) break;
    }
    if (i < pending.length) {
      this.pendingHead = i;
      this.draining = setImmediate(this.drain);
      return;
    }
    this.pending = [];
    this.pendingHead = 0;
    const waiters = this.idleWaiters;
    this.idleWaiters = [];
    for (const w of waiters) w();
  };
}
