/**
 * Embeddings that carry meaning without a model: hashed bag of words, L2-normalised.
 * Lower-cased, punctuation stripped, a few stop words dropped, a trailing plural "s"
 * stemmed, each word hashed (FNV-1a) into one of `dim` buckets. A paraphrase sharing
 * the content words lands on (nearly) the same vector; an unrelated prompt shares
 * few buckets. The mock upstream serves /v1/embeddings with it; the cache tests use
 * it directly. Gateway-free on purpose.
 */
const STOP_WORDS = new Set([
  'a', 'an', 'the', 'is', 'are', 'was', 'were', 'be', 'of', 'to', 'in', 'on', 'for', 'and', 'or',
  'me', 'my', 'i', 'you', 'your', 'it', 'its', 'what', 'whats', 'which', 'please', 'tell', 'can',
  'could', 'would', 'do', 'does', 'give', 'with', 'about', 'that', 'this',
]);

function fnv1a(word: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < word.length; i++) {
    h ^= word.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

export function bagOfWordsEmbedding(text: string, dim = 256): number[] {
  const v = new Array<number>(dim).fill(0);
  const words = text
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\s]+/gu, '')
    .split(/\s+/)
    .filter((w) => w && !STOP_WORDS.has(w))
    .map((w) => (w.length > 3 && w.endsWith('s') && !w.endsWith('ss') ? w.slice(0, -1) : w));
  for (const w of words) v[fnv1a(w) % dim] += 1;
  let norm = 0;
  for (const x of v) norm += x * x;
  if (norm === 0) {
    // Only stop words: still a valid unit vector, far from any real content.
    v[0] = 1;
    return v;
  }
  const inv = 1 / Math.sqrt(norm);
  return v.map((x) => x * inv);
}
