/**
 * The Grafana dashboards, as data. `buildDashboards()` returns the dashboard JSON
 * models; `node --import tsx deploy/grafana/generate.ts` writes them to
 * deploy/grafana/dashboards/*.json, which Grafana provisions (provisioning/).
 * test/dashboards.test.ts keeps the JSON files in sync with this module, checks that
 * every expression names only metrics defined in gateway/metrics.ts, and runs every
 * query against a real Prometheus.
 *
 * Query conventions: `$job` is the gateway's scrape job (the Kubernetes Service or
 * the compose job, `switchyard` by default); aggregates over counters that stay
 * at zero on a healthy gateway (errors, refusals) end with `or vector(0)` so a
 * quiet panel shows 0 instead of "No data".
 */

export interface Target {
  expr: string;
  legend?: string;
}

export interface PanelSpec {
  title: string;
  type?: 'timeseries' | 'stat' | 'piechart' | 'bargauge' | 'gauge';
  unit?: string;
  targets: Target[];
  /** Grid width out of 24; height follows the type. */
  w?: number;
  description?: string;
  thresholds?: { color: string; value: number | null }[];
  min?: number;
  max?: number;
  /** Instant query (pie, bar gauge, stat over the dashboard range). */
  instant?: boolean;
}

export interface DashboardSpec {
  uid: string;
  file: string;
  title: string;
  description: string;
  rows: { title: string; panels: PanelSpec[] }[];
}

const J = '{job=~"$job"}';
const sel = (extra: string) => `{job=~"$job",${extra}}`;
const RI = '[$__rate_interval]';
const rate = (metric: string, matchers = J) => `rate(${metric}${matchers}${RI})`;
const quantile = (q: number, metric: string, by = '', matchers = J) =>
  `histogram_quantile(${q}, sum by (le${by ? `, ${by}` : ''}) (${rate(`${metric}_bucket`, matchers)}))`;

/** p50 and p99 of a histogram in one panel. */
const p50p99 = (metric: string) => [
  { expr: quantile(0.5, metric), legend: 'p50' },
  { expr: quantile(0.99, metric), legend: 'p99' },
];

const GREEN_RED = (red: number) => [
  { color: 'green', value: null },
  { color: 'red', value: red },
];
const RED_GREEN = (green: number) => [
  { color: 'red', value: null },
  { color: 'green', value: green },
];

const overview: DashboardSpec = {
  uid: 'switchyard-overview',
  file: 'overview.json',
  title: 'Switchyard / Overview',
  description: 'Is the gateway healthy: traffic, errors, latency, time to first token, gateway overhead.',
  rows: [
    {
      title: 'Golden signals',
      panels: [
        { title: 'Requests per second', type: 'stat', unit: 'reqps', w: 6, targets: [{ expr: `sum(${rate('switchyard_requests_total')})` }] },
        {
          title: '5xx error rate',
          type: 'stat',
          unit: 'percentunit',
          w: 6,
          thresholds: GREEN_RED(0.01),
          targets: [
            {
              expr: `(sum(${rate('switchyard_requests_total', sel('status=~"5.."'))}) or vector(0)) / sum(${rate('switchyard_requests_total')})`,
            },
          ],
        },
        { title: 'p99 latency', type: 'stat', unit: 's', w: 6, thresholds: GREEN_RED(10), targets: [{ expr: quantile(0.99, 'switchyard_request_duration_seconds') }] },
        { title: 'p99 time to first token', type: 'stat', unit: 's', w: 6, targets: [{ expr: quantile(0.99, 'switchyard_time_to_first_token_seconds') }] },
      ],
    },
    {
      title: 'Traffic',
      panels: [
        { title: 'Requests per second by model', unit: 'reqps', targets: [{ expr: `sum by (model) (${rate('switchyard_requests_total')})`, legend: '{{model}}' }] },
        { title: 'Requests per second by status', unit: 'reqps', targets: [{ expr: `sum by (status) (${rate('switchyard_requests_total')})`, legend: '{{status}}' }] },
        {
          title: 'Error rate (4xx and 5xx)',
          unit: 'percentunit',
          targets: [
            { expr: `(sum(${rate('switchyard_requests_total', sel('status=~"5.."'))}) or vector(0)) / sum(${rate('switchyard_requests_total')})`, legend: '5xx' },
            { expr: `(sum(${rate('switchyard_requests_total', sel('status=~"4.."'))}) or vector(0)) / sum(${rate('switchyard_requests_total')})`, legend: '4xx' },
          ],
        },
        { title: 'In-flight requests', unit: 'short', targets: [{ expr: `sum(switchyard_inflight_requests${J})`, legend: 'in flight' }] },
      ],
    },
    {
      title: 'Latency',
      panels: [
        {
          title: 'Request latency p50 / p99',
          unit: 's',
          targets: p50p99('switchyard_request_duration_seconds'),
        },
        {
          title: 'Time to first token p50 / p99',
          unit: 's',
          targets: p50p99('switchyard_time_to_first_token_seconds'),
        },
        { title: 'p99 latency by model', unit: 's', targets: [{ expr: quantile(0.99, 'switchyard_request_duration_seconds', 'model'), legend: '{{model}}' }] },
        { title: 'Upstream p99 by backend', unit: 's', targets: [{ expr: quantile(0.99, 'switchyard_upstream_duration_seconds', 'backend'), legend: '{{backend}}' }] },
        {
          title: 'Gateway overhead p50 / p99',
          unit: 's',
          description: 'Time spent in Switchyard itself: total minus the wait on the upstream.',
          targets: p50p99('switchyard_overhead_seconds'),
        },
        {
          title: 'Upstream errors and broken streams',
          unit: 'short',
          targets: [
            { expr: `sum by (backend, reason) (${rate('switchyard_upstream_errors_total')})`, legend: 'error {{backend}} {{reason}}' },
            { expr: `sum by (backend, reason) (${rate('switchyard_stream_interruptions_total')})`, legend: 'stream cut {{backend}} {{reason}}' },
          ],
        },
      ],
    },
  ],
};

const cost: DashboardSpec = {
  uid: 'switchyard-cost',
  file: 'llm-cost.json',
  title: 'Switchyard / LLM cost',
  description: 'What is this costing: tokens and USD by model and key, spend against budgets, routing savings.',
  rows: [
    {
      title: 'Spend',
      panels: [
        { title: 'USD per hour', type: 'stat', unit: 'currencyUSD', w: 6, targets: [{ expr: `sum(${rate('switchyard_cost_usd_total')}) * 3600` }] },
        { title: 'USD in range', type: 'stat', unit: 'currencyUSD', w: 6, instant: true, targets: [{ expr: `sum(increase(switchyard_cost_usd_total${J}[$__range]))` }] },
        { title: 'Tokens per hour', type: 'stat', unit: 'short', w: 6, targets: [{ expr: `sum(${rate('switchyard_tokens_total')}) * 3600` }] },
        { title: 'Routing savings in range', type: 'stat', unit: 'currencyUSD', w: 6, instant: true, targets: [{ expr: `sum(increase(switchyard_routing_savings_usd_total${J}[$__range])) or vector(0)` }] },
      ],
    },
    {
      title: 'Tokens and USD',
      panels: [
        { title: 'Tokens per second by model and type', unit: 'short', targets: [{ expr: `sum by (model, type) (${rate('switchyard_tokens_total')})`, legend: '{{model}} {{type}}' }] },
        { title: 'Tokens per hour by model', unit: 'short', targets: [{ expr: `sum by (model) (increase(switchyard_tokens_total${J}[1h]))`, legend: '{{model}}' }] },
        { title: 'USD per hour by model', unit: 'currencyUSD', targets: [{ expr: `sum by (model) (${rate('switchyard_cost_usd_total')}) * 3600`, legend: '{{model}}' }] },
        { title: 'USD per hour by key', unit: 'currencyUSD', targets: [{ expr: `sum by (key) (${rate('switchyard_cost_usd_total')}) * 3600`, legend: '{{key}}' }] },
        {
          title: 'USD by model in range',
          type: 'bargauge',
          unit: 'currencyUSD',
          instant: true,
          targets: [{ expr: `sort_desc(sum by (model) (increase(switchyard_cost_usd_total${J}[$__range])))`, legend: '{{model}}' }],
        },
        {
          title: 'USD by key in range',
          type: 'bargauge',
          unit: 'currencyUSD',
          instant: true,
          targets: [{ expr: `sort_desc(sum by (key) (increase(switchyard_cost_usd_total${J}[$__range])))`, legend: '{{key}}' }],
        },
      ],
    },
    {
      title: 'Budgets',
      panels: [
        {
          title: 'Spend vs budget',
          type: 'bargauge',
          unit: 'percentunit',
          min: 0,
          max: 1,
          thresholds: [
            { color: 'green', value: null },
            { color: 'orange', value: 0.8 },
            { color: 'red', value: 1 },
          ],
          description: 'Spent in the current period as a share of the period budget, per key.',
          targets: [{ expr: `max by (key, period) (switchyard_budget_spent_usd${J}) / max by (key, period) (switchyard_budget_limit_usd${J} > 0)`, legend: '{{key}} ({{period}})' }],
        },
        {
          title: 'Spent and budget (USD)',
          unit: 'currencyUSD',
          targets: [
            { expr: `max by (key, period) (switchyard_budget_spent_usd${J})`, legend: 'spent {{key}} ({{period}})' },
            { expr: `max by (key, period) (switchyard_budget_limit_usd${J})`, legend: 'budget {{key}} ({{period}})' },
          ],
        },
        { title: 'Budget remaining (USD)', unit: 'currencyUSD', targets: [{ expr: `min by (key, period) (switchyard_budget_remaining_usd${J})`, legend: '{{key}} ({{period}})' }] },
        {
          title: 'Spend rate vs daily budget pace',
          unit: 'percentunit',
          description: 'USD in the last hour against 1/24 of the daily budget; the budget-burn alert fires above 120%.',
          thresholds: GREEN_RED(1.2),
          targets: [
            {
              expr: `sum by (key) (increase(switchyard_cost_usd_total${J}[1h])) / (max by (key) (switchyard_budget_limit_usd${sel('period="day"')} > 0) / 24)`,
              legend: '{{key}}',
            },
          ],
        },
      ],
    },
    {
      title: 'Routing',
      panels: [
        { title: 'Model distribution', type: 'piechart', unit: 'short', instant: true, targets: [{ expr: `sum by (model) (increase(switchyard_requests_total${J}[$__range]))`, legend: '{{model}}' }] },
        { title: 'Routing decisions by target', unit: 'reqps', targets: [{ expr: `sum by (target, class) (${rate('switchyard_routing_decisions_total')})`, legend: '{{class}} → {{target}}' }] },
        { title: 'Routing savings (USD per hour)', unit: 'currencyUSD', targets: [{ expr: `sum by (route, class) (${rate('switchyard_routing_savings_usd_total')}) * 3600`, legend: '{{route}} {{class}}' }] },
        {
          title: 'Fallbacks and retries',
          unit: 'short',
          targets: [
            { expr: `sum by (from, to) (${rate('switchyard_fallbacks_total')})`, legend: 'fallback {{from}} → {{to}}' },
            { expr: `sum by (backend) (${rate('switchyard_retries_total')})`, legend: 'retry {{backend}}' },
          ],
        },
      ],
    },
  ],
};

const tools: DashboardSpec = {
  uid: 'switchyard-tools',
  file: 'tool-calls.json',
  title: 'Switchyard / Tool calls',
  description: 'Agent traffic: tool calls relayed to clients by function, and how the tool results that follow turn out.',
  rows: [
    {
      title: 'Tool calls',
      panels: [
        {
          title: 'Tool-call success rate',
          type: 'stat',
          unit: 'percentunit',
          w: 8,
          thresholds: RED_GREEN(0.95),
          targets: [
            {
              expr: `(sum(${rate('switchyard_tool_results_total', sel('outcome="success"'))}) or vector(0)) / sum(${rate('switchyard_tool_results_total')})`,
            },
          ],
        },
        { title: 'Tool calls per second', type: 'stat', unit: 'short', w: 8, targets: [{ expr: `sum(${rate('switchyard_tool_calls_total')})` }] },
        { title: 'Tool calls in range', type: 'stat', unit: 'short', w: 8, instant: true, targets: [{ expr: `sum(increase(switchyard_tool_calls_total${J}[$__range]))` }] },
        { title: 'Tool calls by function', unit: 'short', targets: [{ expr: `sum by (function) (${rate('switchyard_tool_calls_total')})`, legend: '{{function}}' }] },
        { title: 'Tool calls by model', unit: 'short', targets: [{ expr: `sum by (model) (${rate('switchyard_tool_calls_total')})`, legend: '{{model}}' }] },
        {
          title: 'Top functions in range',
          type: 'bargauge',
          unit: 'short',
          instant: true,
          targets: [{ expr: `topk(10, sum by (function) (increase(switchyard_tool_calls_total${J}[$__range])))`, legend: '{{function}}' }],
        },
        {
          title: 'Tool results by outcome',
          unit: 'short',
          targets: [{ expr: `sum by (outcome) (${rate('switchyard_tool_results_total')})`, legend: '{{outcome}}' }],
        },
        {
          title: 'Tool-call success rate over time',
          unit: 'percentunit',
          min: 0,
          max: 1,
          thresholds: RED_GREEN(0.95),
          targets: [
            {
              expr: `(sum(${rate('switchyard_tool_results_total', sel('outcome="success"'))}) or vector(0)) / sum(${rate('switchyard_tool_results_total')})`,
              legend: 'success rate',
            },
          ],
        },
      ],
    },
  ],
};

const resources: DashboardSpec = {
  uid: 'switchyard-resources',
  file: 'resources.json',
  title: 'Switchyard / Resources',
  description: 'CPU, memory, event-loop lag and replicas of the gateway; throughput of the GPU local backend.',
  rows: [
    {
      title: 'Fleet',
      panels: [
        { title: 'Gateway replicas up', type: 'stat', unit: 'short', w: 6, targets: [{ expr: `count(up${J} == 1)` }] },
        { title: 'CPU seconds per request', type: 'stat', unit: 's', w: 6, targets: [{ expr: `sum(${rate('process_cpu_seconds_total')}) / sum(${rate('switchyard_requests_total')})` }] },
        { title: 'Local backend tokens/s', type: 'stat', unit: 'short', w: 6, targets: [{ expr: `sum(rate(switchyard_local_tokens_generated_total${RI}))` }] },
        { title: 'Shared store degraded', type: 'stat', unit: 'short', w: 6, thresholds: GREEN_RED(1), targets: [{ expr: `max(switchyard_store_degraded${J})` }] },
      ],
    },
    {
      title: 'Gateway processes',
      panels: [
        { title: 'CPU (cores) per replica', unit: 'short', targets: [{ expr: `sum by (instance) (${rate('process_cpu_seconds_total')})`, legend: '{{instance}}' }] },
        { title: 'Resident memory per replica', unit: 'bytes', targets: [{ expr: `process_resident_memory_bytes${J}`, legend: '{{instance}}' }] },
        {
          title: 'Event-loop lag',
          unit: 's',
          targets: [
            { expr: `max by (instance) (nodejs_eventloop_lag_seconds${J})`, legend: 'now {{instance}}' },
            { expr: `max by (instance) (nodejs_eventloop_lag_p99_seconds${J})`, legend: 'p99 {{instance}}' },
          ],
        },
        { title: 'V8 heap used', unit: 'bytes', targets: [{ expr: `sum by (instance) (nodejs_heap_size_used_bytes${J})`, legend: '{{instance}}' }] },
        { title: 'Replicas over time', unit: 'short', targets: [{ expr: `count(up${J} == 1)`, legend: 'replicas' }] },
        { title: 'Open file descriptors', unit: 'short', targets: [{ expr: `sum by (instance) (process_open_fds${J})`, legend: '{{instance}}' }] },
      ],
    },
    {
      title: 'Backends',
      panels: [
        {
          title: 'Local backend tokens per second',
          unit: 'short',
          description: 'Generated tokens/s per local model (GPU Deployment and in-process llama.cpp), and the decode speed of the last generation.',
          targets: [
            { expr: `sum by (backend) (rate(switchyard_local_tokens_generated_total${RI}))`, legend: 'throughput {{backend}}' },
            { expr: 'max by (backend) (switchyard_local_tokens_per_second)', legend: 'decode speed {{backend}}' },
          ],
        },
        {
          title: 'Local backend queue and busy sequences',
          unit: 'short',
          targets: [
            { expr: 'sum by (backend) (switchyard_local_queue_depth)', legend: 'queued {{backend}}' },
            { expr: 'sum by (backend) (switchyard_local_busy_sequences)', legend: 'busy {{backend}}' },
          ],
        },
        { title: 'Local backend time to first token p99', unit: 's', targets: [{ expr: `histogram_quantile(0.99, sum by (le, backend) (rate(switchyard_local_time_to_first_token_seconds_bucket${RI})))`, legend: '{{backend}}' }] },
        { title: 'Backend circuit up', unit: 'short', min: 0, max: 1, targets: [{ expr: `min by (backend) (switchyard_backend_up${J})`, legend: '{{backend}}' }] },
        {
          title: 'Shared store failures',
          unit: 'short',
          targets: [{ expr: `sum by (op) (${rate('switchyard_store_failures_total')})`, legend: '{{op}}' }],
        },
      ],
    },
  ],
};

const cacheLimits: DashboardSpec = {
  uid: 'switchyard-cache-limits',
  file: 'cache-and-limits.json',
  title: 'Switchyard / Cache and limits',
  description: 'Response cache hit rate and savings; requests refused by limits; admission queue and token-queue depth.',
  rows: [
    {
      title: 'Cache',
      panels: [
        {
          title: 'Cache hit rate',
          type: 'stat',
          unit: 'percentunit',
          w: 6,
          thresholds: RED_GREEN(0.3),
          targets: [
            {
              expr: `(sum(${rate('switchyard_cache_requests_total', sel('result="hit"'))}) or vector(0)) / sum(${rate('switchyard_cache_requests_total', sel('result=~"hit|miss"'))})`,
            },
          ],
        },
        { title: 'Saved by the cache in range', type: 'stat', unit: 'currencyUSD', w: 6, instant: true, targets: [{ expr: `sum(increase(switchyard_cache_saved_usd_total${J}[$__range]))` }] },
        { title: 'Rate-limited per second', type: 'stat', unit: 'short', w: 6, targets: [{ expr: `sum(${rate('switchyard_rate_limited_total')}) or vector(0)` }] },
        { title: 'Queue depth', type: 'stat', unit: 'short', w: 6, thresholds: GREEN_RED(1000), targets: [{ expr: `sum(switchyard_queue_depth${J})` }] },
        {
          title: 'Cache hit rate by layer',
          unit: 'percentunit',
          min: 0,
          max: 1,
          targets: [
            {
              expr: `sum by (layer) (${rate('switchyard_cache_requests_total', sel('result="hit"'))}) / sum by (layer) (${rate('switchyard_cache_requests_total', sel('result=~"hit|miss"'))})`,
              legend: '{{layer}}',
            },
          ],
        },
        { title: 'Cache lookups by result', unit: 'short', targets: [{ expr: `sum by (layer, result) (${rate('switchyard_cache_requests_total')})`, legend: '{{layer}} {{result}}' }] },
        {
          title: 'Saved by the cache per hour',
          unit: 'currencyUSD',
          targets: [{ expr: `sum(${rate('switchyard_cache_saved_usd_total')}) * 3600`, legend: 'USD/h' }],
        },
        {
          title: 'Tokens saved and coalesced requests',
          unit: 'short',
          targets: [
            { expr: `sum(${rate('switchyard_cache_saved_tokens_total')})`, legend: 'tokens saved/s' },
            { expr: `sum(${rate('switchyard_cache_coalesced_total')})`, legend: 'coalesced req/s' },
          ],
        },
        { title: 'Exact cache size', unit: 'bytes', targets: [{ expr: `sum by (instance) (switchyard_cache_bytes${J})`, legend: '{{instance}}' }] },
      ],
    },
    {
      title: 'Limits and admission',
      panels: [
        { title: 'Rate-limited requests by key and limit', unit: 'short', targets: [{ expr: `sum by (key, limit) (${rate('switchyard_rate_limited_total')})`, legend: '{{key}} {{limit}}' }] },
        { title: 'Queue depth by backend', unit: 'short', targets: [{ expr: `sum by (backend) (switchyard_queue_depth${J})`, legend: '{{backend}}' }] },
        {
          title: 'Token-queue depth by backend',
          unit: 'short',
          description: 'Estimated prompt + max tokens queued or in flight; the HPA scales on this (llm_token_queue_depth).',
          targets: [{ expr: `sum by (backend) (switchyard_token_queue_depth${J})`, legend: '{{backend}}' }],
        },
        { title: 'Contexts trimmed to fit', unit: 'short', targets: [{ expr: `sum by (model) (${rate('switchyard_context_trimmed_total')})`, legend: '{{model}}' }] },
      ],
    },
  ],
};

export const DASHBOARDS: readonly DashboardSpec[] = [overview, cost, tools, resources, cacheLimits];

const HEIGHT: Record<string, number> = { stat: 4, timeseries: 8, piechart: 8, bargauge: 8, gauge: 6 };

function panelJson(p: PanelSpec, id: number, gridPos: { x: number; y: number; w: number; h: number }) {
  const type = p.type ?? 'timeseries';
  const defaults: Record<string, unknown> = { unit: p.unit ?? 'short' };
  if (p.min !== undefined) defaults.min = p.min;
  if (p.max !== undefined) defaults.max = p.max;
  defaults.thresholds = { mode: 'absolute', steps: p.thresholds ?? [{ color: 'green', value: null }] };
  if (type === 'timeseries') defaults.custom = { drawStyle: 'line', lineWidth: 1, fillOpacity: 10, showPoints: 'never', spanNulls: true };
  const options: Record<string, unknown> =
    type === 'timeseries'
      ? { legend: { displayMode: 'list', placement: 'bottom', showLegend: true }, tooltip: { mode: 'multi', sort: 'desc' } }
      : type === 'piechart'
        ? { pieType: 'donut', legend: { displayMode: 'table', placement: 'right', values: ['percent'] }, reduceOptions: { calcs: ['lastNotNull'], values: true } }
        : { reduceOptions: { calcs: ['lastNotNull'], fields: '', values: type === 'bargauge' }, orientation: 'horizontal', colorMode: 'value' };
  return {
    id,
    type,
    title: p.title,
    ...(p.description ? { description: p.description } : {}),
    datasource: { type: 'prometheus', uid: '${datasource}' },
    gridPos,
    fieldConfig: { defaults, overrides: [] },
    options,
    targets: p.targets.map((t, i) => ({
      refId: String.fromCharCode(65 + i),
      datasource: { type: 'prometheus', uid: '${datasource}' },
      expr: t.expr,
      legendFormat: t.legend ?? '__auto',
      range: !p.instant,
      instant: Boolean(p.instant),
    })),
  };
}

export function dashboardJson(spec: DashboardSpec) {
  const panels: unknown[] = [];
  let id = 1;
  let y = 0;
  for (const row of spec.rows) {
    panels.push({ id: id++, type: 'row', title: row.title, collapsed: false, gridPos: { x: 0, y, w: 24, h: 1 }, panels: [] });
    y += 1;
    let x = 0;
    let rowHeight = 0;
    for (const p of row.panels) {
      const w = p.w ?? 12;
      const h = HEIGHT[p.type ?? 'timeseries'] ?? 8;
      if (x + w > 24) {
        x = 0;
        y += rowHeight;
        rowHeight = 0;
      }
      panels.push(panelJson(p, id++, { x, y, w, h }));
      x += w;
      rowHeight = Math.max(rowHeight, h);
    }
    y += rowHeight;
  }
  return {
    uid: spec.uid,
    title: spec.title,
    description: spec.description,
    tags: ['switchyard', 'llm-gateway'],
    editable: true,
    graphTooltip: 1,
    schemaVersion: 39,
    version: 1,
    refresh: '30s',
    time: { from: 'now-6h', to: 'now' },
    timezone: 'browser',
    links: DASHBOARDS.filter((d) => d.uid !== spec.uid).map((d) => ({
      type: 'link',
      title: d.title.replace('Switchyard / ', ''),
      url: `/d/${d.uid}`,
      keepTime: true,
      includeVars: true,
    })),
    templating: {
      list: [
        { name: 'datasource', label: 'Data source', type: 'datasource', query: 'prometheus', current: { text: 'Prometheus', value: 'prometheus' }, hide: 0 },
        {
          name: 'job',
          label: 'Gateway job',
          type: 'query',
          datasource: { type: 'prometheus', uid: '${datasource}' },
          query: { query: 'label_values(switchyard_requests_total, job)', refId: 'job' },
          definition: 'label_values(switchyard_requests_total, job)',
          refresh: 2,
          includeAll: true,
          multi: true,
          allValue: '.+',
          current: { text: 'switchyard', value: 'switchyard' },
          hide: 0,
        },
      ],
    },
    annotations: { list: [] },
    panels,
  };
}

export function buildDashboards(): { file: string; json: ReturnType<typeof dashboardJson> }[] {
  return DASHBOARDS.map((d) => ({ file: d.file, json: dashboardJson(d) }));
}

/** Every PromQL expression of every panel, with where it lives, for tests. */
export function allPanelQueries(): { dashboard: string; panel: string; expr: string; instant: boolean }[] {
  return DASHBOARDS.flatMap((d) =>
    d.rows.flatMap((r) => r.panels.flatMap((p) => p.targets.map((t) => ({ dashboard: d.title, panel: p.title, expr: t.expr, instant: Boolean(p.instant) })))),
  );
}
