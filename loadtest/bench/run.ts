/**
 * `npm run bench`: Switchyard against the direct path, in one run, alternating.
 *
 * Starts the mock upstream and the gateway as separate processes (auth, metrics and
 * file logging on), drives them with autocannon from this process, and prints
 * requests/s, p50, p99 and the ratios — medians of several alternating pairs, since
 * load generator, mock and gateway share the machine's cores.
 *   (a) saturation: requests/s at concurrency 64, gateway as a share of direct (target ≥ 50%)
 *   (b) latency at a fixed offered load of 2,000 requests/s: p99 gateway − p99 direct (target ≤ 1 ms)
 *   (c) streaming time to first byte: gateway − direct
 *   plus gateway CPU per request and RSS under sustained streaming.
 * Further sections (cache, semantic, local backend) are added by their modules in this folder.
 *
 *   npm run bench                 full run (~3 minutes)
 *   npm run bench -- --quick      1 pair, short runs (smoke)
 *   npm run bench -- --only a,c   selected sections
 */
import { cpuSeconds, loadgen, median, rssMb, sleep, startBenchGateway } from './process.js';
import { startCalibrationTargets } from './calibration.js';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Pool, request } from 'undici';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const onlyArg = args.indexOf('--only');
const ONLY = onlyArg === -1 ? undefined : new Set(args[onlyArg + 1].split(','));
const PAIRS = QUICK ? 1 : 3;
const DURATION = QUICK ? 3 : 6;
const KEY = 'sk-bench-0123456789';
const dir = mkdtempSync(join(tmpdir(), 'switchyard-bench-'));

const want = (s: string) => !ONLY || ONLY.has(s);

function startProcess(name: string, argv: string[], env: Record<string, string>, readyRe: RegExp): Promise<{ child: ChildProcess; match: RegExpExecArray }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...argv], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } });
  let out = '';
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not start: ${out}`)), 30000);
    const on = (d: Buffer) => {
      out += d.toString();
      const m = readyRe.exec(out);
      if (m) {
        clearTimeout(t);
        resolve({ child, match: m });
      }
    };
    child.stdout!.on('data', on);
    child.stderr!.on('data', on);
    child.on('exit', (c) => reject(new Error(`${name} exited ${c}: ${out}`)));
  });
}


const chatBody = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello in one word.' }] });
const streamBody = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Say hello.' }], stream: true, stream_options: { include_usage: true } });

function cannon(url: string, opts: { connections: number; rate?: number; body?: string }) {
  return loadgen(url, { connections: opts.connections, duration: DURATION, key: KEY, body: opts.body ?? chatBody, rate: opts.rate });
}

/** Open-loop load at a fixed rate with evenly spaced arrivals; latency from each request's scheduled time. */
async function paced(url: string, rate: number): Promise<{ p50: number; p99: number; errors: number }> {
  const u = new URL(url);
  const pool = new Pool(u.origin, { connections: 64 });
  const total = rate * DURATION;
  const lat: number[] = [];
  let errors = 0;
  let sent = 0;
  const pending: Promise<void>[] = [];
  const t0 = performance.now();
  await new Promise<void>((resolve) => {
    const tick = () => {
      const due = Math.min(total, Math.floor(((performance.now() - t0) * rate) / 1000));
      for (; sent < due; sent++) {
        const scheduled = t0 + (sent * 1000) / rate;
        pending.push(
          pool
            .request({ path: u.pathname, method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: chatBody })
            .then(async (r) => {
              await r.body.dump();
              if (r.statusCode !== 200) errors++;
              lat.push(performance.now() - scheduled);
            })
            .catch(() => {
              errors++;
            }),
        );
      }
      if (sent < total) setTimeout(tick, 0.5);
      else resolve();
    };
    tick();
  });
  await Promise.all(pending);
  await pool.close();
  lat.sort((a, b) => a - b);
  return { p50: lat[Math.floor(lat.length * 0.5)], p99: lat[Math.floor(lat.length * 0.99)], errors };
}

/** Cumulative counts of switchyard_overhead_seconds buckets (all models), by upper bound. */
async function overheadBuckets(gatewayUrl: string): Promise<Map<number, number>> {
  const text = await (await fetch(`${gatewayUrl}/metrics`)).text();
  const out = new Map<number, number>();
  for (const m of text.matchAll(/^switchyard_overhead_seconds_bucket\{le="([^"]+)"[^}]*\} (\S+)$/gm)) {
    const le = m[1] === '+Inf' ? Infinity : Number(m[1]);
    out.set(le, (out.get(le) ?? 0) + Number(m[2]));
  }
  return out;
}

/** The bucket bound under which 99% of the requests between two readings fall. */
function p99Bound(before: Map<number, number>, after: Map<number, number>): number {
  const les = [...after.keys()].sort((a, b) => a - b);
  const total = (after.get(Infinity) ?? 0) - (before.get(Infinity) ?? 0);
  for (const le of les) if ((after.get(le)! - (before.get(le) ?? 0)) >= total * 0.99) return le;
  return Infinity;
}

async function ttfb(url: string, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const t0 = process.hrtime.bigint();
    const res = await request(url, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${KEY}` }, body: streamBody });
    const it = res.body[Symbol.asyncIterator]();
    await it.next();
    out.push(Number(process.hrtime.bigint() - t0) / 1e6);
    for await (const _ of { [Symbol.asyncIterator]: () => it }) void _;
  }
  return out.sort((a, b) => a - b);
}



/**
 * The gateway runs as it ships: compiled by tsc (the Dockerfile's build) and started with
 * plain node. `--tsx` measures the TypeScript sources through tsx instead.
 */
/** Extra node flags for the gateway process only (e.g. GC tuning experiments). */
const NODE_FLAGS = (process.env.BENCH_GATEWAY_NODE_FLAGS ?? '').split(' ').filter(Boolean);
const GATEWAY_ENTRY = [...NODE_FLAGS, ...(args.includes('--tsx') ? ['--import', 'tsx', 'gateway/main.ts'] : ['dist/gateway/main.js'])];

function build(): void {
  if (args.includes('--tsx')) return;
  const r = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.build.json'], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('tsc build failed');
}

export interface BenchContext {
  /** node arguments that start the gateway (compiled build, or the sources via tsx). */
  gatewayEntry: string[];
  mockUrl: string;
  gatewayUrl: string;
  gatewayPid: number;
  key: string;
  quick: boolean;
  pairs: number;
  duration: number;
}

async function main(): Promise<void> {
  build();
  const mock = await startProcess('mock', ['test/support/mock-upstream-cli.ts', '--port', '0', '--chunks', '5'], {}, /mock upstream on (http:\/\/[\d.:]+\/v1)/);
  const mockUrl = mock.match[1];
  const started = await startBenchGateway({ entry: GATEWAY_ENTRY, mockUrl, key: KEY, cache: false, dir });
  const gw = started.child;
  const gatewayUrl = started.url;
  const direct = `${mockUrl}/chat/completions`;
  const through = `${gatewayUrl}/v1/chat/completions`;
  const ctx: BenchContext = { gatewayEntry: GATEWAY_ENTRY, mockUrl, gatewayUrl, gatewayPid: gw.pid!, key: KEY, quick: QUICK, pairs: PAIRS, duration: DURATION };
  const report: Record<string, unknown> = {};

  try {
    // warm-up: JIT, pools, connections
    await cannon(direct, { connections: 16 });
    await cannon(through, { connections: 16 });

    if (want('a')) {
      // Calibration proxies in front of the same mock, in the same alternating pairs: what a
      // proxy hop costs on this machine at all (see calibration.ts).
      const calibration = await startCalibrationTargets(mockUrl);
      const paths = [
        { name: 'direct', url: direct, pids: [mock.child.pid!] },
        { name: 'Switchyard', url: through, pids: [ctx.gatewayPid] },
        ...calibration,
      ];
      const rps = paths.map(() => [] as number[]);
      const cpu = paths.map(() => [] as number[]);
      try {
        for (const p of calibration) await cannon(p.url, { connections: 16 });
        for (let i = 0; i < PAIRS; i++) {
          for (const [k, p] of paths.entries()) {
            const c0 = p.pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0);
            const r = await cannon(p.url, { connections: 64 });
            if (r.errors) throw new Error(`${p.name} answered ${r.errors} errors under load`);
            cpu[k]!.push(((p.pids.reduce((sum, pid) => sum + cpuSeconds(pid), 0) - c0) / r.total) * 1e6);
            rps[k]!.push(r.rps);
            await sleep(500);
          }
        }
      } finally {
        for (const p of calibration) await p.stop();
      }
      const d = median(rps[0]!);
      const ratio = median(rps[1]!) / d;
      report.a = {
        direct_rps: d,
        gateway_rps: median(rps[1]!),
        ratio,
        gateway_cpu_us_per_request: median(cpu[1]!),
        mock_cpu_us_per_request: median(cpu[0]!),
        calibration: Object.fromEntries(paths.slice(2).map((p, j) => [p.name, { rps: median(rps[j + 2]!), ratio: median(rps[j + 2]!) / d, cpu_us_per_request: median(cpu[j + 2]!) }])),
        target: '>= 0.50',
        pass: ratio >= 0.5,
      };
      console.log(`(a) saturation @64: direct ${d.toFixed(0)} req/s (mock CPU ${median(cpu[0]!).toFixed(0)} µs/request), gateway ${median(rps[1]!).toFixed(0)} req/s → ${(ratio * 100).toFixed(1)}% of direct (target ≥ 50%); gateway CPU ${median(cpu[1]!).toFixed(0)} µs/request`);
      for (const [j, p] of paths.slice(2).entries()) {
        console.log(`(a) calibration, same pairs: ${p.name} ${median(rps[j + 2]!).toFixed(0)} req/s → ${((median(rps[j + 2]!) / d) * 100).toFixed(1)}% of direct; CPU ${median(cpu[j + 2]!).toFixed(0)} µs/request`);
      }
    }

    if (want('b')) {
      // Two generators at the same offered load. "paced": arrivals evenly spaced (every
      // 0.5 ms, open loop, latency counted from the scheduled send time, so queueing
      // counts). "burst": autocannon's rate option, whose 64 connections fire in step —
      // 64 requests at once every 32 ms — which measures drain time of a burst.
      const rows: Record<string, { d50: number[]; g50: number[]; d99: number[]; g99: number[] }> = {};
      // The gateway's own share (switchyard_overhead_seconds) over the paced runs: what it
      // spends itself, apart from the extra hop's wake-ups and scheduling.
      let ownBefore = new Map<number, number>();
      let ownAfter = new Map<number, number>();
      for (const gen of ['paced', 'burst'] as const) {
        const r = (rows[gen] = { d50: [] as number[], g50: [] as number[], d99: [] as number[], g99: [] as number[] });
        if (gen === 'paced') ownBefore = await overheadBuckets(gatewayUrl);
        for (let i = 0; i < PAIRS; i++) {
          const rd = gen === 'paced' ? await paced(direct, 2000) : await cannon(direct, { connections: 64, rate: 2000 });
          await sleep(500);
          const rg = gen === 'paced' ? await paced(through, 2000) : await cannon(through, { connections: 64, rate: 2000 });
          await sleep(500);
          r.d50.push(rd.p50);
          r.g50.push(rg.p50);
          r.d99.push(rd.p99);
          r.g99.push(rg.p99);
        }
        if (gen === 'paced') ownAfter = await overheadBuckets(gatewayUrl);
      }
      const out: Record<string, unknown> = {};
      for (const [gen, r] of Object.entries(rows)) {
        const diff = median(r.g99.map((x, i) => x - r.d99[i]));
        out[gen] = { direct_p50_ms: median(r.d50), gateway_p50_ms: median(r.g50), direct_p99_ms: median(r.d99), gateway_p99_ms: median(r.g99), p99_overhead_ms: diff };
        console.log(
          `(b) latency @2000 req/s, ${gen}: p50 direct ${median(r.d50).toFixed(2)} ms / gateway ${median(r.g50).toFixed(2)} ms; p99 direct ${median(r.d99).toFixed(2)} ms / gateway ${median(r.g99).toFixed(2)} ms → +${diff.toFixed(2)} ms (target ≤ 1 ms)`,
        );
      }
      const ownP99 = p99Bound(ownBefore, ownAfter);
      console.log(`(b) the gateway's own time per request (switchyard_overhead_seconds) over the paced runs: p99 ≤ ${(ownP99 * 1000).toFixed(2)} ms`);
      report.b = { ...out, gateway_own_overhead_p99_le_ms: ownP99 * 1000, target: 'p99 overhead <= 1 ms' };
    }

    if (want('c')) {
      const n = QUICK ? 50 : 200;
      const dt: number[] = [];
      const gt: number[] = [];
      for (let i = 0; i < PAIRS; i++) {
        dt.push(median(await ttfb(direct, n)));
        gt.push(median(await ttfb(through, n)));
      }
      // Sustained streaming load in rounds: resident memory must level off, not climb (leaks).
      // Eight rounds: V8 lets the old generation grow for a few rounds before its first
      // full collection, so a shorter series shows a climb that is not a leak.
      const rss: number[] = [];
      let streamed = 0;
      const c0 = cpuSeconds(ctx.gatewayPid);
      for (let r = 0; r < (QUICK ? 2 : 8); r++) {
        streamed += (await cannon(through, { connections: 64, body: streamBody })).total;
        rss.push(Math.round(rssMb(ctx.gatewayPid)));
      }
      const streamCpuUs = ((cpuSeconds(ctx.gatewayPid) - c0) / streamed) * 1e6;
      report.c = { direct_ttfb_ms: median(dt), gateway_ttfb_ms: median(gt), ttfb_overhead_ms: median(gt) - median(dt), gateway_rss_mb_per_round: rss, gateway_cpu_us_per_stream: streamCpuUs };
      console.log(`(c) streaming TTFB: direct ${median(dt).toFixed(2)} ms, gateway ${median(gt).toFixed(2)} ms → +${(median(gt) - median(dt)).toFixed(2)} ms; gateway RSS per round of sustained streaming ${rss.join(' → ')} MB; ${streamCpuUs.toFixed(0)} µs CPU per 7-event stream`);
    }

    for (const extra of ['cache', 'semantic', 'local-backend']) {
      if (!want(extra)) continue;
      let mod: { runBench?: (c: BenchContext) => Promise<Record<string, unknown>> } | undefined;
      try {
        mod = (await import(`./${extra}.js`)) as typeof mod;
      } catch {
        mod = undefined;
      }
      if (mod?.runBench) report[extra] = await mod.runBench(ctx);
    }
  } finally {
    gw.kill('SIGTERM');
    mock.child.kill('SIGTERM');
  }
  writeFileSync(join(dir, 'report.json'), JSON.stringify(report, null, 2));
  console.log(`\nreport: ${join(dir, 'report.json')}`);
  console.log(JSON.stringify(report, null, 2));
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
