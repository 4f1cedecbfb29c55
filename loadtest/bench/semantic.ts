/**
 * Semantic cache index at scale (`npm run bench -- --only semantic`): one partition of N
 * entries of 1,536 dimensions (OpenAI's text-embedding-3-small), clustered around topics as
 * real embeddings are; lookup time through the partition's HNSW graph (what the gateway
 * does past ~85 such entries) against the linear scan it replaces, the time to add an
 * entry to the graph, and how often the graph's answer is the exact nearest entry. Every
 * lookup blocks the event loop for its duration, so these are per-request latencies.
 *
 *   node --import tsx loadtest/bench/semantic.ts [--quick]
 */
import { fileURLToPath } from 'node:url';
import { PartitionIndex, dot } from '../../gateway/cache/partition-index.js';
import { clusteredVectors } from '../../test/support/vectors.js';

const QUICK = process.argv.includes('--quick');
const DIMS = 1536;
const SIZES = QUICK ? [2000] : [2000, 20000];
const LOOKUPS = QUICK ? 50 : 200;
const SCAN_LOOKUPS = QUICK ? 5 : 20;

export async function benchSemantic(): Promise<Record<string, number>> {
  const report: Record<string, number> = {};
  for (const n of SIZES) {
    // Stored entries and queries from the same topics: the queries are new points among them.
    const all = clusteredVectors(n + LOOKUPS, DIMS, Math.max(10, n / 40), n, 0.3);
    const vectors = all.slice(0, n);
    const graph = new PartitionIndex<number>();
    let t = performance.now();
    vectors.forEach((v, i) => graph.set(`e${i}`, v, i));
    await graph.indexed();
    const addMs = (performance.now() - t) / n;
    const scan = new PartitionIndex<number>(Infinity);
    vectors.forEach((v, i) => scan.set(`e${i}`, v, i));
    const queries = all.slice(n);
    const live = () => true;
    t = performance.now();
    const graphAnswers = queries.map((q) => graph.nearest(q, live)!.id);
    const graphMs = (performance.now() - t) / LOOKUPS;
    t = performance.now();
    const scanAnswers = queries.slice(0, SCAN_LOOKUPS).map((q) => scan.nearest(q, live)!.id);
    const scanMs = (performance.now() - t) / SCAN_LOOKUPS;
    const sameAsExact = scanAnswers.filter((id, i) => id === graphAnswers[i]).length / SCAN_LOOKUPS;
    // Sanity: the scan really is exact.
    const q0 = queries[0]!;
    const best = vectors.reduce((b, v, i) => (dot(v, q0) > dot(vectors[b]!, q0) ? i : b), 0);
    if (scanAnswers[0] !== `e${best}`) throw new Error('linear scan is not exact');
    Object.assign(report, {
      [`n${n}_graph_lookup_ms`]: Number(graphMs.toFixed(3)),
      [`n${n}_scan_lookup_ms`]: Number(scanMs.toFixed(2)),
      [`n${n}_graph_add_ms`]: Number(addMs.toFixed(3)),
      [`n${n}_graph_same_as_exact`]: sameAsExact,
    });
    console.log(
      `(semantic) one partition of ${n} × ${DIMS}-dim entries: lookup ${graphMs.toFixed(3)} ms through the graph vs ${scanMs.toFixed(2)} ms by linear scan (${(scanMs / graphMs).toFixed(0)}×); graph answer = exact nearest in ${(sameAsExact * 100).toFixed(0)}% of ${SCAN_LOOKUPS} lookups; adding an entry to the graph ${addMs.toFixed(3)} ms`,
    );
  }
  return report;
}

/** Hook for loadtest/bench/run.ts (in-process: needs no servers). */
export function runBench(_ctx?: unknown): Promise<Record<string, number>> {
  return benchSemantic();
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  benchSemantic().then(
    (r) => process.stdout.write(`${JSON.stringify(r, null, 2)}\n`),
    (err: unknown) => { process.stderr.write(`${String(err)}\n`); process.exit(1); },
  );
}
