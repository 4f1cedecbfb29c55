import { createServer, type Server } from 'node:http';
import { readFileSync, readdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { parse } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetrics } from '../gateway/metrics.js';
import { getLocalMetrics } from '../local-backend/metrics.js';
import { allPanelQueries, buildDashboards } from '../deploy/grafana/dashboards.js';
import { mockConfig, startTestGateway, type TestGateway } from './support/gateway.js';
import { startMockUpstream, type MockUpstream } from './support/mock-upstream.js';
import { findBinary, gatewaySeriesNames, metricNamesInExpr, startPrometheus, type RunningPrometheus } from './support/prometheus.js';

const root = new URL('../', import.meta.url);
const dashboardsDir = new URL('deploy/grafana/dashboards/', root);

interface PanelJson {
  type: string;
  title: string;
  targets?: { expr: string }[];
}

function committedDashboards() {
  return readdirSync(dashboardsDir)
    .filter((f) => f.endsWith('.json'))
    .map((f) => ({ file: f, json: JSON.parse(readFileSync(new URL(f, dashboardsDir), 'utf8')) as { uid: string; title: string; panels: PanelJson[] } }));
}

/** Grafana's built-in variables, resolved the way Grafana would for a short range. */
function resolveVariables(expr: string, job: string): string {
  return expr.replaceAll('$__rate_interval', '15s').replaceAll('$__range', '5m').replaceAll('$job', job);
}

describe('Grafana dashboards', () => {
  it('are committed exactly as deploy/grafana/generate.ts writes them', () => {
    const committed = Object.fromEntries(committedDashboards().map((d) => [d.file, d.json]));
    const built = Object.fromEntries(buildDashboards().map((d) => [d.file, JSON.parse(JSON.stringify(d.json))]));
    expect(Object.keys(committed).sort()).toEqual(Object.keys(built).sort());
    for (const file of Object.keys(built)) expect(committed[file], `${file} is stale: run node --import tsx deploy/grafana/generate.ts`).toEqual(built[file]);
  });

  it('cover overview, cost, tool calls, resources and cache and limits with unique uids', () => {
    const dashboards = committedDashboards();
    const titles = dashboards.map((d) => d.json.title);
    for (const want of ['Overview', 'LLM cost', 'Tool calls', 'Resources', 'Cache and limits']) {
      expect(titles.some((t) => t.endsWith(want)), want).toBe(true);
    }
    expect(new Set(dashboards.map((d) => d.json.uid)).size).toBe(dashboards.length);
    for (const d of dashboards) {
      const ids = d.json.panels.map((p) => (p as unknown as { id: number }).id);
      expect(new Set(ids).size, `${d.file} panel ids`).toBe(ids.length);
      for (const p of d.json.panels.filter((p) => p.type !== 'row')) expect(p.targets?.length, `${d.file}: ${p.title}`).toBeGreaterThan(0);
    }
  });

  it('query only metrics defined in gateway/metrics.ts, local-backend/metrics.ts, Node default metrics or up', async () => {
    const known = await gatewaySeriesNames();
    const queries = committedDashboards().flatMap((d) => d.json.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ where: `${d.file}: ${p.title}`, expr: t.expr }))));
    expect(queries.length).toBeGreaterThan(40);
    const unknown: string[] = [];
    for (const q of queries) {
      const names = metricNamesInExpr(q.expr);
      expect(names.length, `${q.where} selects no metric: ${q.expr}`).toBeGreaterThan(0);
      for (const n of names) if (!known.has(n) && n !== 'up') unknown.push(`${q.where}: ${n}`);
    }
    expect(unknown).toEqual([]);
  });

  it('are provisioned from the directory the provider reads and a Prometheus datasource with the uid they use', () => {
    const ds = parse(readFileSync(new URL('deploy/grafana/provisioning/datasources/prometheus.yaml', root), 'utf8'));
    expect(ds.datasources[0]).toMatchObject({ type: 'prometheus', uid: 'prometheus' });
    const prov = parse(readFileSync(new URL('deploy/grafana/provisioning/dashboards/switchyard.yaml', root), 'utf8'));
    expect(prov.providers[0].type).toBe('file');
    const compose = parse(readFileSync(new URL('deploy/docker-compose.yml', root), 'utf8'));
    const volumes: string[] = compose.services.grafana.volumes;
    expect(volumes.some((v) => v.startsWith('./grafana/dashboards:') && v.split(':')[1] === prov.providers[0].options.path)).toBe(true);
  });
});

/**
 * Stand-in for the gateway: an exporter built from the gateway's own metric
 * definitions (createMetrics), fed with realistic labels on a timer, plus a
 * standalone local-backend exporter (local-backend/metrics.ts definitions).
 * It exercises every panel, including features (budgets, tool calls, routing, cache)
 * that a short real-traffic run cannot reach; the real gateway is scraped too (job
 * `switchyard-gateway`, below) and must feed the core panels with real traffic.
 */
function startStandInGateway() {
  const m = createMetrics();
  const models = ['gpt-4o-mini', 'claude-sonnet', 'local'];
  const backends = ['openai', 'anthropic', 'local-gpu'];
  const keys = ['team-a', 'team-b'];
  const budget = { 'team-a': 50, 'team-b': 20 };
  let spent = 0;
  let tick = 0;

  const drive = () => {
    tick++;
    for (let i = 0; i < models.length; i++) {
      const model = models[i]!;
      const backend = backends[i]!;
      const status = tick % 25 === 0 ? '502' : tick % 10 === 0 ? '429' : '200';
      m.requests.inc({ model, backend, status });
      m.requestDuration.observe({ model }, 0.2 + (tick % 7) * 0.3);
      m.timeToFirstToken.observe({ model }, 0.05 + (tick % 5) * 0.02);
      m.tokens.inc({ model, type: 'prompt' }, 300);
      m.tokens.inc({ model, type: 'completion' }, 120);
      m.upstreamDuration.observe({ backend }, 0.18 + (tick % 7) * 0.3);
      m.overhead.observe({ model }, 0.0004);
      m.queueDepth.set({ backend }, tick % 4);
      m.tokenQueueDepth.set({ backend }, 1500 + (tick % 4) * 400);
      m.backendUp.set({ backend }, 1);
      m.contextTrimmed.inc({ model });
      m.toolCalls.inc({ model, function: tick % 2 ? 'get_weather' : 'search_docs' });
    }
    m.upstreamErrors.inc({ backend: 'openai', reason: 'timeout' });
    m.streamInterruptions.inc({ backend: 'anthropic', reason: 'reset' });
    m.configReloads.inc({ result: 'ok' });
    m.toolResults.inc({ outcome: 'success' }, 19);
    m.toolResults.inc({ outcome: 'error' });
    for (const key of keys) {
      const usd = 0.002;
      spent += usd;
      m.cost.inc({ model: 'gpt-4o-mini', key }, usd);
      m.cost.inc({ model: 'claude-sonnet', key }, usd * 3);
      m.rateLimited.inc({ key, limit: 'rpm' });
      for (const period of ['day', 'month']) {
        const limit = budget[key as keyof typeof budget] * (period === 'day' ? 1 : 30);
        m.budgetLimit.set({ key, period }, limit);
        m.budgetSpent.set({ key, period }, spent);
        m.budgetRemaining.set({ key, period }, limit - spent);
      }
    }
    m.routingSavings.inc({ route: 'auto', class: 'simple' }, 0.001);
    m.routingDecisions.inc({ route: 'auto', class: 'simple', target: 'gpt-4o-mini' });
    m.routingDecisions.inc({ route: 'auto', class: 'complex', target: 'claude-sonnet' });
    m.retries.inc({ backend: 'openai' });
    m.fallbacks.inc({ from: 'claude-sonnet', to: 'gpt-4o-mini' });
    m.contentFiltered.inc({ route: 'default', action: 'redact' });
    m.storeFailures.inc({ op: 'reserve' });
    m.storeDegraded.set(0);
    m.storeOutages.inc(0);
    m.cacheRequests.inc({ layer: 'exact', result: 'hit' }, 2);
    m.cacheRequests.inc({ layer: 'exact', result: 'miss' }, 3);
    m.cacheRequests.inc({ layer: 'semantic', result: 'hit' });
    m.cacheRequests.inc({ layer: 'semantic', result: 'miss' }, 4);
    m.cacheSavedTokens.inc(800);
    m.cacheSavedUsd.inc(0.004);
    m.cacheCoalesced.inc();
    m.cacheBytes.set(1_048_576 + tick);
    m.inflight.set(3 + (tick % 3));
  };
  drive();
  const timer = setInterval(drive, 100);

  const local = new Registry();
  const lm = getLocalMetrics(local);
  const driveLocal = () => {
    const backend = 'llama-3.1-8b-instruct-q4_k_m';
    lm.tokensGenerated.inc({ backend }, 180);
    lm.tokensPerSecond.set({ backend }, 1750 + (tick % 5) * 20);
    lm.timeToFirstToken.observe({ backend }, 0.04);
    lm.queueDepth.set({ backend }, tick % 3);
    lm.busySequences.set({ backend }, 2);
  };
  driveLocal();
  const localTimer = setInterval(driveLocal, 100);

  const serve = (registry: Registry) =>
    new Promise<Server>((resolve) => {
      const srv = createServer((_req, res) => {
        registry.metrics().then((text) => {
          res.writeHead(200, { 'content-type': registry.contentType });
          res.end(text);
        });
      });
      srv.listen(0, '127.0.0.1', () => resolve(srv));
    });

  return {
    async start() {
      const [gw, lb] = await Promise.all([serve(m.registry), serve(local)]);
      return {
        gateway: `127.0.0.1:${(gw.address() as AddressInfo).port}`,
        localBackend: `127.0.0.1:${(lb.address() as AddressInfo).port}`,
        async stop() {
          clearInterval(timer);
          clearInterval(localTimer);
          await Promise.all([gw, lb].map((s) => new Promise((r) => s.close(r))));
        },
      };
    },
  };
}

const hasPrometheus = Boolean(findBinary('prometheus'));
if (!hasPrometheus) console.warn('dashboards.test.ts: prometheus binary not found (apt-get install prometheus); live panel queries skipped');

describe.skipIf(!hasPrometheus)('Grafana panel queries against a real Prometheus', () => {
  let prom: RunningPrometheus | undefined;
  let target: Awaited<ReturnType<ReturnType<typeof startStandInGateway>['start']>> | undefined;

  let mock: MockUpstream | undefined;
  let gw: TestGateway | undefined;
  let traffic: NodeJS.Timeout | undefined;
  const pending = new Set<Promise<unknown>>();

  beforeAll(async () => {
    target = await startStandInGateway().start();
    // The real gateway, on the mock upstream, with a key so cost carries a key label.
    mock = await startMockUpstream({ defaults: { chunks: 3, chunkDelayMs: 5 } });
    gw = await startTestGateway(mockConfig(mock.url, { keys: [{ id: 'team-a', key: '${TEAM_A_KEY}' }] }), { env: { TEAM_A_KEY: 'sk-team-a' } });
    const send = (stream: boolean) =>
      fetch(`${gw!.url}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-team-a' },
        body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `hi ${Math.random()}` }], stream, max_tokens: 16 }),
      })
        // The body read fails too when the gateway closes under a stream in afterAll: catch both.
        .then((r) => r.text())
        .catch(() => '');
    traffic = setInterval(() => {
      const batch = Promise.all([send(false), send(true)]);
      pending.add(batch);
      void batch.finally(() => pending.delete(batch));
    }, 100);
    prom = await startPrometheus({
      targets: [
        { job: 'switchyard', target: target.gateway },
        { job: 'switchyard-local-backend', target: target.localBackend },
        { job: 'switchyard-gateway', target: new URL(gw.url).host },
      ],
      interval: '1s',
    });
    await prom.waitForScrapes(4);
  });

  afterAll(async () => {
    clearInterval(traffic);
    await Promise.allSettled([...pending]);
    await prom?.stop();
    await target?.stop();
    await gw?.close();
    await mock?.close();
  });

  /** Panels that plain chat traffic (JSON and streamed, one key, a priced alias) must feed on the real gateway. */
  const CORE_PANELS = [
    'Requests per second', '5xx error rate', 'p99 latency', 'p99 time to first token', 'Requests per second by model',
    'Requests per second by status', 'Request latency p50 / p99', 'Time to first token p50 / p99', 'p99 latency by model',
    'Upstream p99 by backend', 'Gateway overhead p50 / p99', 'In-flight requests', 'Tokens per second by model and type',
    'Model distribution', 'Gateway replicas up', 'CPU (cores) per replica',
    'Resident memory per replica', 'Event-loop lag', 'V8 heap used', 'CPU seconds per request',
    'USD per hour by model', 'USD per hour by key',
  ];

  it('return data from the real gateway, driven with chat traffic, for the core panels', async () => {
    const queries = allPanelQueries().filter((q) => CORE_PANELS.includes(q.panel));
    expect(new Set(queries.map((q) => q.panel)).size).toBe(CORE_PANELS.length);
    const empty: string[] = [];
    await Promise.all(
      queries.map(async (q) => {
        const result = await prom!.query(resolveVariables(q.expr, 'switchyard-gateway'));
        if (!result.some((s) => Number.isFinite(Number(s.value[1])))) empty.push(`${q.dashboard} / ${q.panel}: ${q.expr}`);
      }),
    );
    expect(empty).toEqual([]);
  });

  it('return a non-empty result with a real number for every panel while the gateway has traffic', async () => {
    const queries = allPanelQueries();
    const empty: string[] = [];
    await Promise.all(
      queries.map(async (q) => {
        const result = await prom!.query(resolveVariables(q.expr, 'switchyard'));
        const finite = result.some((s) => Number.isFinite(Number(s.value[1])));
        if (!finite) empty.push(`${q.dashboard} / ${q.panel}: ${q.expr} → ${JSON.stringify(result)}`);
      }),
    );
    expect(empty).toEqual([]);
  });

  it('serve the prometheus-adapter queries behind the HPA with a value per pod', async () => {
    const cm = parse(readFileSync(new URL('deploy/k8s/monitoring/prometheus-adapter-rules.yaml', root), 'utf8'));
    const rules: { seriesQuery: string; metricsQuery: string; name: { as: string } }[] = parse(cm.data['config.yaml']).rules;
    expect(rules.length).toBe(2);
    for (const r of rules) {
      // The adapter fills these templates; the test target has no namespace/pod labels, so group by instance.
      const series = r.seriesQuery.slice(0, r.seriesQuery.indexOf('{'));
      const expr = r.metricsQuery.replaceAll('<<.Series>>', series).replaceAll('<<.LabelMatchers>>', 'job="switchyard"').replaceAll('<<.GroupBy>>', 'instance');
      const result = await prom!.query(expr);
      expect(result.length, `${r.name.as}: ${expr}`).toBe(1);
      expect(Number(result[0]!.value[1]), r.name.as).toBeGreaterThan(0);
    }
  });

  it('return nothing for a job that does not exist, so the job filter really filters', async () => {
    const [q] = allPanelQueries().filter((q) => q.panel === 'Requests per second by model');
    expect(q).toBeDefined();
    expect(await prom!.query(resolveVariables(q!.expr, 'no-such-job'))).toEqual([]);
  });
});
