/**
 * Cache section of `npm run bench`: exact-hit throughput through the gateway vs the
 * direct-to-mock path, in the same run, alternating (medians of ctx.pairs pairs).
 * Target: hits ≥ 1.5× the direct path's requests/s, since nothing goes upstream.
 *
 * Why a gateway process of its own: the harness's gateway runs with the cache off so
 * that sections a–c measure the proxy path, and `x-switchyard-cache: force` cannot turn
 * on a layer the config turned off. This one is the same config (auth, metrics and
 * file logging on, memory stores) with the exact cache on, as an operator would run it.
 * The request is deterministic (temperature 0), the entry is warmed once, and the
 * section checks through /metrics that every measured request was a hit.
 *
 *   npm run bench -- --only cache [--quick]
 */
import { cpuSeconds, loadgen, median, sleep, startBenchGateway } from './process.js';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { BenchContext } from './run.js';

const CONNECTIONS = 64;
const TARGET = 1.5;
/**
 * How long the mock takes to answer. 0 ms is the harness's mock as sections a–c use it:
 * there both paths are CPU-bound on a do-nothing upstream and the shared cores (load
 * generator included) cap the ratio. 20 ms is still far quicker than any model's
 * non-stream answer; there the hit path shows what skipping the upstream buys.
 * The body carries the latency (`mock: {latencyMs}`), same body on both paths.
 */
const UPSTREAM_LATENCIES_MS = [0, 20];
const body = JSON.stringify({ model: 'gpt-4o-mini', temperature: 0, messages: [{ role: 'user', content: 'Say hello in one word.' }] });


async function startCacheGateway(ctx: BenchContext): Promise<{ child: ChildProcess; url: string }> {
  return startBenchGateway({ entry: ctx.gatewayEntry, mockUrl: ctx.mockUrl, key: ctx.key, cache: true, dir: mkdtempSync(join(tmpdir(), 'switchyard-bench-cache-')) });
}

/** One autocannon run from this process; GET when no body. loadgenUs: this process's CPU per request. */
function cannon(url: string, ctx: BenchContext, requestBody: string | undefined, connections = CONNECTIONS, duration = ctx.duration) {
  return loadgen(url, { connections, duration, key: ctx.key, body: requestBody });
}

/** switchyard_cache_requests_total{layer="exact",result=...} from the gateway's /metrics. */
async function exactCount(url: string, result: string): Promise<number> {
  const text = await (await fetch(`${url}/metrics`)).text();
  const m = new RegExp(`^switchyard_cache_requests_total\\{layer="exact",result="${result}"\\} (\\d+)`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

interface Variant {
  direct_rps: number;
  gateway_hit_rps: number;
  ratio: number;
  direct_p99_ms: number;
  gateway_hit_p99_ms: number;
  gateway_cpu_us_per_hit: number;
  loadgen_cpu_us_per_request: { direct: number; gateway: number };
  pass: boolean;
}

/** Alternating pairs, direct then gateway, on one request body; every gateway request must be an exact hit. */
async function measure(ctx: BenchContext, gw: { child: ChildProcess; url: string }, upstreamLatencyMs: number): Promise<Variant> {
  const requestBody = upstreamLatencyMs ? JSON.stringify({ ...JSON.parse(body), mock: { latencyMs: upstreamLatencyMs } }) : body;
  const direct = `${ctx.mockUrl}/chat/completions`;
  const through = `${gw.url}/v1/chat/completions`;
  // Warm the entry, and make sure it is one.
  const post = () => fetch(through, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${ctx.key}` }, body: requestBody });
  await (await post()).text();
  const second = await post();
  await second.text();
  if (second.headers.get('x-switchyard-cache') !== 'hit') throw new Error(`cache bench: the warmed request answered x-switchyard-cache ${second.headers.get('x-switchyard-cache')}, not hit`);
  // JIT, pools, connections on both paths.
  await cannon(direct, ctx, requestBody, 16, 2);
  await cannon(through, ctx, requestBody, 16, 2);

  const d: number[] = [];
  const g: number[] = [];
  const dp99: number[] = [];
  const gp99: number[] = [];
  const cpu: number[] = [];
  const lgD: number[] = [];
  const lgG: number[] = [];
  const misses0 = await exactCount(gw.url, 'miss');
  for (let i = 0; i < ctx.pairs; i++) {
    const rd = await cannon(direct, ctx, requestBody);
    if (rd.errors) throw new Error(`cache bench: the mock answered ${rd.errors} errors under load`);
    d.push(rd.rps);
    dp99.push(rd.p99);
    lgD.push(rd.loadgenUs);
    await sleep(500);
    const hits0 = await exactCount(gw.url, 'hit');
    const c0 = cpuSeconds(gw.child.pid!);
    const rg = await cannon(through, ctx, requestBody);
    cpu.push(((cpuSeconds(gw.child.pid!) - c0) / rg.total) * 1e6);
    if (rg.errors) throw new Error(`cache bench: the gateway answered ${rg.errors} errors under load`);
    const hits = (await exactCount(gw.url, 'hit')) - hits0;
    if (hits < rg.total) throw new Error(`cache bench: only ${hits} of ${rg.total} requests were exact hits`);
    g.push(rg.rps);
    gp99.push(rg.p99);
    lgG.push(rg.loadgenUs);
    await sleep(500);
  }
  if ((await exactCount(gw.url, 'miss')) !== misses0) throw new Error('cache bench: a measured request missed the cache');
  const ratio = median(g) / median(d);
  return {
    direct_rps: median(d),
    gateway_hit_rps: median(g),
    ratio,
    direct_p99_ms: median(dp99),
    gateway_hit_p99_ms: median(gp99),
    gateway_cpu_us_per_hit: median(cpu),
    loadgen_cpu_us_per_request: { direct: median(lgD), gateway: median(lgG) },
    pass: ratio >= TARGET,
  };
}

export async function runBench(ctx: BenchContext): Promise<Record<string, unknown>> {
  const gw = await startCacheGateway(ctx);
  try {
    const report: Record<string, unknown> = { connections: CONNECTIONS, pairs: ctx.pairs, duration_s: ctx.duration, target: `>= ${TARGET}` };
    for (const latency of UPSTREAM_LATENCIES_MS) {
      const v = await measure(ctx, gw, latency);
      report[`upstream_${latency}ms`] = v;
      console.log(
        `(cache) exact hits @${CONNECTIONS}, upstream answering in ${latency} ms: direct ${v.direct_rps.toFixed(0)} req/s (p99 ${v.direct_p99_ms} ms), gateway hits ${v.gateway_hit_rps.toFixed(0)} req/s (p99 ${v.gateway_hit_p99_ms} ms) → ${v.ratio.toFixed(2)}× direct (target ≥ ${TARGET}×); gateway CPU ${v.gateway_cpu_us_per_hit.toFixed(0)} µs/hit; load generator CPU ${v.loadgen_cpu_us_per_request.direct.toFixed(0)}/${v.loadgen_cpu_us_per_request.gateway.toFixed(0)} µs/request`,
      );
    }
    // The most this load generator reaches on this machine against the cheapest answer a uWS server gives.
    const ceiling = await cannon(`${gw.url}/health`, ctx, undefined);
    report.loadgen_ceiling_rps = ceiling.rps;
    console.log(`(cache) ceiling: GET /health on the same gateway ${ceiling.rps.toFixed(0)} req/s (load generator CPU ${ceiling.loadgenUs.toFixed(0)} µs/request)`);
    return report;
  } finally {
    await new Promise<void>((resolve) => {
      if (gw.child.exitCode !== null) return resolve();
      gw.child.once('exit', () => resolve());
      gw.child.kill('SIGTERM');
    });
  }
}
