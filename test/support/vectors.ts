/**
 * Deterministic test vectors for the semantic index (tests and loadtest/bench/semantic.ts):
 * unit vectors clustered around topic centres, as real embeddings are.
 */
import { createRandom } from '../../local-backend/tiny-model.js';
import { normaliseVector } from '../../gateway/cache/semantic.js';

export { createRandom };

/** `n` unit vectors of `dims` dimensions around `topics` centres (vector i belongs to topic i % topics). */
export function clusteredVectors(n: number, dims: number, topics: number, seed = 1, spread = 0.4): Float32Array[] {
  const r = createRandom(seed);
  const centres = Array.from({ length: topics }, () => Array.from({ length: dims }, () => r() - 0.5));
  return Array.from({ length: n }, (_, i) => normaliseVector(centres[i % topics]!.map((c) => c + spread * (r() - 0.5)))!);
}
