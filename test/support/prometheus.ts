/**
 * Starts a real `prometheus` binary (Debian package `prometheus`) on loopback for
 * tests that must prove a PromQL expression returns data: dashboards, alert rules,
 * prometheus-adapter queries. One instance per test file; call stop() in afterAll.
 *
 * The instance gets its own temp dir (config + TSDB), a free port, a tiny scrape
 * interval, and is polled until /-/ready answers before start resolves.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, copyFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { stringify } from 'yaml';

export interface ScrapeTarget {
  job: string;
  /** host:port, e.g. 127.0.0.1:34567 */
  target: string;
  path?: string;
}

export interface PrometheusOptions {
  targets: ScrapeTarget[];
  /** Rule files to load (copied into the temp dir). */
  ruleFiles?: string[];
  /** Scrape and rule evaluation interval, default 1s. */
  interval?: string;
}

export interface PromSample {
  metric: Record<string, string>;
  value: [number, string];
}

export interface RunningPrometheus {
  url: string;
  /** Instant query through /api/v1/query; throws when Prometheus reports an error. */
  query(expr: string): Promise<PromSample[]>;
  /** Resolves once every target has been scraped at least `samples` times. */
  waitForScrapes(samples?: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
  /** Everything the process printed, for failure messages. */
  output(): string;
}

export function findBinary(name: string): string | undefined {
  const r = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' });
  const path = r.stdout.trim();
  return r.status === 0 && path ? path : undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startPrometheus(opts: PrometheusOptions): Promise<RunningPrometheus> {
  const bin = findBinary('prometheus');
  if (!bin) throw new Error('prometheus binary not found (apt-get install prometheus)');
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-prom-'));
  const interval = opts.interval ?? '1s';
  const rules = (opts.ruleFiles ?? []).map((f, i) => {
    const dest = join(dir, `${i}-${basename(f)}`);
    copyFileSync(f, dest);
    return dest;
  });
  const config = {
    global: { scrape_interval: interval, evaluation_interval: interval, scrape_timeout: interval },
    rule_files: rules,
    scrape_configs: opts.targets.map((t) => ({
      job_name: t.job,
      metrics_path: t.path ?? '/metrics',
      static_configs: [{ targets: [t.target] }],
    })),
  };
  writeFileSync(join(dir, 'prometheus.yml'), stringify(config));

  const port = await freePort();
  const url = `http://127.0.0.1:${port}`;
  let out = '';
  const child: ChildProcess = spawn(
    bin,
    [
      `--config.file=${join(dir, 'prometheus.yml')}`,
      `--storage.tsdb.path=${join(dir, 'data')}`,
      `--web.listen-address=127.0.0.1:${port}`,
      '--log.level=warn',
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => (out += d.toString()));
  let exited = false;
  child.on('exit', () => (exited = true));

  const stop = async () => {
    if (!exited) {
      const done = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 5000);
      await done;
      clearTimeout(t);
    }
    rmSync(dir, { recursive: true, force: true });
  };

  const deadline = Date.now() + 20000;
  for (;;) {
    if (exited) {
      await stop();
      throw new Error(`prometheus exited during start-up:\n${out}`);
    }
    try {
      const res = await fetch(`${url}/-/ready`);
      if (res.ok) break;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      throw new Error(`prometheus not ready after 20s:\n${out}`);
    }
    await sleep(100);
  }

  const query = async (expr: string): Promise<PromSample[]> => {
    const res = await fetch(`${url}/api/v1/query?query=${encodeURIComponent(expr)}`);
    const body = (await res.json()) as { status: string; error?: string; data?: { resultType: string; result: unknown } };
    if (body.status !== 'success') throw new Error(`query failed: ${body.error}\n  ${expr}`);
    const result = body.data?.result;
    if (body.data?.resultType === 'scalar' && Array.isArray(result)) {
      return [{ metric: {}, value: result as [number, string] }];
    }
    return (result ?? []) as PromSample[];
  };

  const waitForScrapes = async (samples = 3, timeoutMs = 20000) => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const counts = await Promise.all(
        opts.targets.map(async (t) => {
          const r = await query(`count_over_time(up{job="${t.job}"}[1h])`);
          const up = await query(`up{job="${t.job}"}`);
          return up[0]?.value[1] === '1' ? Number(r[0]?.value[1] ?? 0) : 0;
        }),
      );
      if (counts.every((c) => c >= samples)) return;
      if (Date.now() > until) throw new Error(`targets not scraped ${samples}x within ${timeoutMs} ms:\n${out}`);
      await sleep(250);
    }
  };

  return { url, query, waitForScrapes, stop, output: () => out };
}

const PROMQL_KEYWORDS = new Set([
  'and', 'or', 'unless', 'bool', 'offset', 'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'inf', 'nan', 'atan2',
]);

/**
 * The metric names a PromQL expression selects (Grafana variables tolerated).
 * A small scanner, not a parser: strings, label matchers, ranges and grouping
 * clauses are removed, then every identifier not called as a function is a metric.
 */
export function metricNamesInExpr(expr: string): string[] {
  let s = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\{?\w+\}?/g, ' ');
  const names = new Set<string>();
  const re = /[A-Za-z_:][A-Za-z0-9_:]*/g;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    const before = s[m.index - 1] ?? ' ';
    if (/[0-9.]/.test(before)) continue; // 1e3, 5m
    const after = s.slice(m.index + m[0].length).trimStart();
    if (after.startsWith('(')) continue; // function call
    if (PROMQL_KEYWORDS.has(m[0].toLowerCase())) continue;
    names.add(m[0]);
  }
  s = '';
  return [...names];
}

/**
 * Every series name Switchyard can expose: the metrics of gateway/metrics.ts, Node's
 * default metrics and the local backend's switchyard_local_* (local-backend/metrics.ts),
 * with histogram suffixes.
 */
export async function gatewaySeriesNames(): Promise<Set<string>> {
  const { createMetrics } = await import('../../gateway/metrics.js');
  const { getLocalMetrics } = await import('../../local-backend/metrics.js');
  const m = createMetrics();
  getLocalMetrics(m.registry);
  const names = new Set<string>();
  for (const metric of await m.registry.getMetricsAsJSON()) {
    names.add(metric.name);
    if (String(metric.type) === 'histogram') for (const suf of ['_bucket', '_sum', '_count']) names.add(metric.name + suf);
    if (String(metric.type) === 'summary') for (const suf of ['_sum', '_count']) names.add(metric.name + suf);
  }
  return names;
}
