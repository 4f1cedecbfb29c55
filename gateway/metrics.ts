/**
 * Every Prometheus metric of the gateway, defined once. `createMetrics()` makes a
 * fresh registry (so tests can build many gateways in one process); main.ts calls it
 * once. Labels come only from bounded sets: model aliases, backend names and key ids
 * from config, fixed enums. Raw user input never becomes a label value.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics, type CounterConfiguration, type GaugeConfiguration, type HistogramConfiguration } from 'prom-client';

const LATENCY_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 30, 60];
const OVERHEAD_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1];

function checkIncrement(n: number): void {
  if (!(n >= 0) || n === Infinity) throw new TypeError(`A counter cannot be increased by ${n}`);
}

/**
 * labels() for the batched metrics: positional label values are answered from a cache of
 * our own children (one per label set, made by `make` around prom-client's child); the
 * object form stays prom-client's.
 */
function cachedLabels<C>(baseLabels: (...values: unknown[]) => unknown, make: (target: never) => C, children: Map<string, C>) {
  return (...values: unknown[]): unknown => {
    if (values.length === 1 && typeof values[0] === 'object') return baseLabels(values[0]);
    const key = values.join('\u0001');
    let c = children.get(key);
    if (!c) children.set(key, (c = make(baseLabels(...values) as never)));
    return c;
  };
}

/**
 * A Counter for the request path: inc() on it or on a labelled child adds to a plain
 * number, and the sums reach prom-client when it is scraped, through the counter's
 * collect hook (prom-client's way to compute values at scrape time). prom-client itself
 * hashes the label values on every inc() (~0.2 µs hot, more in a real request), and a
 * request increments up to five counters. Children are cached per label values, which
 * are bounded like every label here. Exposition, reset and everything else stay
 * prom-client's.
 */
export function batchedCounter<T extends string>(config: CounterConfiguration<T>): Counter<T> {
  interface Child {
    target: Counter.Internal;
    pending: number;
    inc(n?: number): void;
  }
  const children = new Map<string, Child>();
  let unlabelled = 0;
  const flush = () => {
    if (unlabelled !== 0) {
      const n = unlabelled;
      unlabelled = 0;
      baseInc(n);
    }
    for (const c of children.values()) {
      if (c.pending === 0) continue;
      const n = c.pending;
      c.pending = 0;
      c.target.inc(n);
    }
  };
  const counter = new Counter<T>({ ...config, collect: flush });
  const baseInc = counter.inc.bind(counter) as (a?: unknown, b?: number) => void;
  const baseLabels = counter.labels.bind(counter) as (...values: unknown[]) => Counter.Internal;
  const baseReset = counter.reset.bind(counter);
  counter.inc = ((a?: unknown, b?: number) => {
    if (a === undefined || typeof a === 'number') {
      const n = a ?? 1;
      checkIncrement(n);
      unlabelled += n;
    } else {
      baseInc(a, b);
    }
  }) as Counter<T>['inc'];
  counter.labels = cachedLabels(
    baseLabels,
    (target: Counter.Internal): Child => {
      const child: Child = {
        target,
        pending: 0,
        inc(n = 1) {
          checkIncrement(n);
          child.pending += n;
        },
      };
      return child;
    },
    children,
  ) as Counter<T>['labels'];
  counter.reset = () => {
    unlabelled = 0;
    for (const c of children.values()) c.pending = 0;
    baseReset();
  };
  return counter;
}

/**
 * A Gauge for the request path (in-flight requests, admission queues): set(), inc() and
 * dec() on it or on a labelled child change a plain number, and the latest values reach
 * prom-client when it is scraped (collect hook), as for batchedCounter. A request moves
 * these gauges four to six times. The object forms go to prom-client directly; a label
 * set is used through one form only.
 */
export function batchedGauge<T extends string>(config: GaugeConfiguration<T>): Gauge<T> {
  interface Child {
    target: Gauge.Internal<T>;
    value: number;
    dirty: boolean;
    set(v: number): void;
    inc(n?: number): void;
    dec(n?: number): void;
    setToCurrentTime(): void;
    startTimer(): () => number;
  }
  const children = new Map<string, Child>();
  let own = 0;
  let ownDirty = false;
  const flush = () => {
    if (ownDirty) {
      ownDirty = false;
      baseSet(own);
    }
    for (const c of children.values()) {
      if (!c.dirty) continue;
      c.dirty = false;
      c.target.set(c.value);
    }
  };
  const gauge = new Gauge<T>({ ...config, collect: flush });
  const baseSet = gauge.set.bind(gauge) as (a: unknown, b?: number) => void;
  const baseInc = gauge.inc.bind(gauge) as (a?: unknown, b?: number) => void;
  const baseDec = gauge.dec.bind(gauge) as (a?: unknown, b?: number) => void;
  const baseLabels = gauge.labels.bind(gauge) as (...values: unknown[]) => Gauge.Internal<T>;
  const baseReset = gauge.reset.bind(gauge);
  gauge.set = ((a: unknown, b?: number) => {
    if (typeof a === 'number') {
      own = a;
      ownDirty = true;
    } else baseSet(a, b);
  }) as Gauge<T>['set'];
  gauge.inc = ((a?: unknown, b?: number) => {
    if (a === undefined || typeof a === 'number') {
      own += a ?? 1;
      ownDirty = true;
    } else baseInc(a, b);
  }) as Gauge<T>['inc'];
  gauge.dec = ((a?: unknown, b?: number) => {
    if (a === undefined || typeof a === 'number') gauge.inc(-(a ?? 1));
    else baseDec(a, b);
  }) as Gauge<T>['dec'];
  gauge.labels = cachedLabels(
    baseLabels,
    (target: Gauge.Internal<T>): Child => {
      const child: Child = {
        target,
        value: 0,
        dirty: false,
        set(v) {
          child.value = v;
          child.dirty = true;
        },
        inc(n = 1) {
          child.set(child.value + n);
        },
        dec(n = 1) {
          child.set(child.value - n);
        },
        setToCurrentTime() {
          child.set(Date.now() / 1000);
        },
        startTimer() {
          const start = performance.now();
          return () => {
            const s = (performance.now() - start) / 1000;
            child.set(s);
            return s;
          };
        },
      };
      return child;
    },
    children,
  ) as Gauge<T>['labels'];
  gauge.reset = () => {
    own = 0;
    ownDirty = false;
    for (const c of children.values()) {
      c.value = 0;
      c.dirty = false;
    }
    baseReset();
  };
  return gauge;
}

/**
 * A Histogram for the request path. observe() on a positional child (`labels('m1')`)
 * counts into the child's own bucket array: prom-client's observe hashes and validates
 * the label set and builds closures on every call, ~1 µs per observation, and a request
 * makes three or four (2 µs of a cache hit's ~19). The children's series join
 * prom-client's own (object forms, zero(), anything observed through prom-client) at
 * scrape time, line by line in prom-client's exposition format; reset() clears both.
 * Buckets are the config's, in ascending order.
 */
export function batchedHistogram<T extends string>(config: HistogramConfiguration<T> & { buckets: readonly number[] }): Histogram<T> {
  interface Child {
    labels: Record<string, string>;
    counts: Float64Array;
    sum: number;
    count: number;
    observe(v: number): void;
    startTimer(): () => number;
  }
  const bounds = config.buckets;
  const labelNames = (config.labelNames ?? []) as readonly string[];
  const children = new Map<string, Child>();
  const histogram = new Histogram<T>({ ...config, buckets: [...bounds] });
  const internal = histogram as unknown as { getForPromString(): Promise<PromValues>; labels(...v: unknown[]): unknown; remove(...v: unknown[]): void; reset(): void };
  const baseRemove = internal.remove.bind(histogram) as (...values: unknown[]) => void;
  /** A label set's key, the same for labels('5') and labels({ model: 5 }). */
  const childKey = (values: unknown[]) => values.map(String).join('\u0001');
  const keyOfObject = (labels: Record<string, unknown>) => childKey(labelNames.map((l) => labels[l]));
  const baseForProm = internal.getForPromString.bind(histogram);
  const baseLabels = internal.labels.bind(histogram) as (...values: unknown[]) => unknown;
  const baseReset = histogram.reset.bind(histogram);
  const name = config.name;

  internal.getForPromString = async () => {
    const data = await baseForProm();
    const index = new Map<string, PromValue>();
    const keyOf = (v: PromValue) => `${v.metricName}\u0001${String(v.labels.le ?? '')}\u0001${keyOfObject(v.sharedLabels)}`;
    for (const v of data.values) index.set(keyOf(v), v);
    const add = (v: PromValue) => {
      const had = index.get(keyOf(v));
      if (had) had.value += v.value;
      else data.values.push(v);
    };
    for (const c of children.values()) {
      if (c.count === 0) continue;
      let acc = 0;
      for (let i = 0; i < bounds.length; i++) {
        acc += c.counts[i]!;
        add({ labels: { le: bounds[i]! }, sharedLabels: c.labels, value: acc, metricName: `${name}_bucket`, exemplar: null });
      }
      add({ labels: { le: '+Inf' }, sharedLabels: c.labels, value: c.count, metricName: `${name}_bucket`, exemplar: null });
      add({ labels: {}, sharedLabels: c.labels, value: c.sum, metricName: `${name}_sum`, exemplar: undefined });
      add({ labels: {}, sharedLabels: c.labels, value: c.count, metricName: `${name}_count`, exemplar: undefined });
    }
    return data;
  };
  internal.labels = (...values: unknown[]): unknown => {
    if (values.length === 1 && typeof values[0] === 'object') return baseLabels(values[0]);
    const key = childKey(values);
    let c = children.get(key);
    if (!c) {
      if (values.length !== labelNames.length) baseLabels(...values); // prom-client's own error
      const labels: Record<string, string> = {};
      labelNames.forEach((l, i) => { labels[l] = String(values[i]); });
      const child: Child = {
        labels,
        counts: new Float64Array(bounds.length),
        sum: 0,
        count: 0,
        observe(v: number) {
          if (!Number.isFinite(v)) throw new TypeError(`Value is not a valid number: ${v}`);
          for (let i = 0; i < bounds.length; i++) {
            if (v <= bounds[i]!) {
              child.counts[i]! += 1;
              break;
            }
          }
          child.sum += v;
          child.count += 1;
        },
        startTimer() {
          const start = process.hrtime.bigint();
          return () => {
            const seconds = Number(process.hrtime.bigint() - start) / 1e9;
            child.observe(seconds);
            return seconds;
          };
        },
      };
      children.set(key, (c = child));
    }
    return c;
  };
  internal.remove = (...values: unknown[]) => {
    const key = values.length === 1 && typeof values[0] === 'object' ? keyOfObject(values[0] as Record<string, unknown>) : childKey(values);
    children.delete(key);
    baseRemove(...values);
  };
  histogram.reset = () => {
    for (const c of children.values()) {
      c.counts.fill(0);
      c.sum = 0;
      c.count = 0;
    }
    baseReset();
  };
  return histogram;
}

interface PromValue {
  labels: Record<string, string | number>;
  sharedLabels: Record<string, string>;
  value: number;
  metricName: string;
  exemplar: unknown;
}
interface PromValues {
  values: PromValue[];
}

export function createMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 });
  const r = [registry];

  return {
    registry,
    // core (issue: core gateway)
    requests: batchedCounter({ name: 'switchyard_requests_total', help: 'Requests by model alias, backend and HTTP status.', labelNames: ['model', 'backend', 'status'] as const, registers: r }),
    requestDuration: batchedHistogram({ name: 'switchyard_request_duration_seconds', help: 'Whole request duration, arrival to last byte.', labelNames: ['model'] as const, buckets: LATENCY_BUCKETS, registers: r }),
    timeToFirstToken: batchedHistogram({ name: 'switchyard_time_to_first_token_seconds', help: 'Arrival to the first streamed byte sent to the client.', labelNames: ['model'] as const, buckets: LATENCY_BUCKETS, registers: r }),
    tokens: batchedCounter({ name: 'switchyard_tokens_total', help: 'Tokens by model alias and type (prompt|completion).', labelNames: ['model', 'type'] as const, registers: r }),
    inflight: batchedGauge({ name: 'switchyard_inflight_requests', help: 'Requests being served right now.', registers: r }),
    upstreamErrors: new Counter({ name: 'switchyard_upstream_errors_total', help: 'Upstream failures by backend and reason.', labelNames: ['backend', 'reason'] as const, registers: r }),
    upstreamDuration: batchedHistogram({ name: 'switchyard_upstream_duration_seconds', help: 'Time spent waiting on the upstream per request.', labelNames: ['backend'] as const, buckets: LATENCY_BUCKETS, registers: r }),
    overhead: batchedHistogram({ name: 'switchyard_overhead_seconds', help: 'Time spent in the gateway itself: total minus upstream wait.', labelNames: ['model'] as const, buckets: OVERHEAD_BUCKETS, registers: r }),
    streamInterruptions: new Counter({ name: 'switchyard_stream_interruptions_total', help: 'Streams that ended without a proper end, by backend and reason.', labelNames: ['backend', 'reason'] as const, registers: r }),
    configReloads: new Counter({ name: 'switchyard_config_reloads_total', help: 'Config reloads by result (ok|error).', labelNames: ['result'] as const, registers: r }),
    toolCalls: batchedCounter({ name: 'switchyard_tool_calls_total', help: 'Tool calls in responses relayed to clients, by function name (from the request tools list).', labelNames: ['model', 'function'] as const, registers: r }),
    toolResults: batchedCounter({ name: 'switchyard_tool_results_total', help: 'Tool-result messages seen in requests, by outcome (success|error).', labelNames: ['outcome'] as const, registers: r }),

    // routing, cost, health, admission (issue: providers and routing)
    cost: batchedCounter({ name: 'switchyard_cost_usd_total', help: 'Cost in USD by model alias and key id.', labelNames: ['model', 'key'] as const, registers: r }),
    routingSavings: batchedCounter({ name: 'switchyard_routing_savings_usd_total', help: 'USD saved by complexity routing against the reference model.', labelNames: ['route', 'class'] as const, registers: r }),
    routingDecisions: batchedCounter({ name: 'switchyard_routing_decisions_total', help: 'Routing decisions by route, complexity class and target alias.', labelNames: ['route', 'class', 'target'] as const, registers: r }),
    retries: new Counter({ name: 'switchyard_retries_total', help: 'Upstream retries by backend.', labelNames: ['backend'] as const, registers: r }),
    fallbacks: new Counter({ name: 'switchyard_fallbacks_total', help: 'Fallbacks from one alias to another.', labelNames: ['from', 'to'] as const, registers: r }),
    backendUp: new Gauge({ name: 'switchyard_backend_up', help: '1 when the backend circuit is closed or half-open, 0 when open.', labelNames: ['backend'] as const, registers: r }),
    queueDepth: batchedGauge({ name: 'switchyard_queue_depth', help: 'Requests waiting for a backend slot.', labelNames: ['backend'] as const, registers: r }),
    tokenQueueDepth: batchedGauge({ name: 'switchyard_token_queue_depth', help: 'Estimated prompt + max tokens of queued and in-flight requests.', labelNames: ['backend'] as const, registers: r }),
    contentFiltered: new Counter({ name: 'switchyard_content_filter_total', help: 'Content filter actions by route and action (deny|redact).', labelNames: ['route', 'action'] as const, registers: r }),

    // limits and budgets (issue: rate limits and budgets)
    rateLimited: new Counter({ name: 'switchyard_rate_limited_total', help: 'Requests refused by a limit, by key id and limit.', labelNames: ['key', 'limit'] as const, registers: r }),
    budgetSpent: new Gauge({ name: 'switchyard_budget_spent_usd', help: 'USD spent in the current period.', labelNames: ['key', 'period'] as const, registers: r }),
    budgetRemaining: new Gauge({ name: 'switchyard_budget_remaining_usd', help: 'USD left in the current period.', labelNames: ['key', 'period'] as const, registers: r }),
    budgetLimit: new Gauge({ name: 'switchyard_budget_limit_usd', help: 'USD budget of the current period.', labelNames: ['key', 'period'] as const, registers: r }),
    contextTrimmed: new Counter({ name: 'switchyard_context_trimmed_total', help: 'Requests whose context was trimmed to fit.', labelNames: ['model'] as const, registers: r }),
    storeFailures: new Counter({ name: 'switchyard_store_failures_total', help: 'Shared store (Redis) calls that failed or timed out.', labelNames: ['op'] as const, registers: r }),
    storeDegraded: new Gauge({ name: 'switchyard_store_degraded', help: '1 while the shared store is unreachable and the failure policy applies.', registers: r }),
    storeOutages: new Counter({ name: 'switchyard_store_outages_total', help: 'Times the shared store became unreachable.', registers: r }),

    // cache (issue: caching)
    cacheRequests: batchedCounter({ name: 'switchyard_cache_requests_total', help: 'Cache lookups by layer (exact|semantic) and result (hit|miss|bypass).', labelNames: ['layer', 'result'] as const, registers: r }),
    cacheSavedTokens: batchedCounter({ name: 'switchyard_cache_saved_tokens_total', help: 'Tokens not sent upstream thanks to the cache.', registers: r }),
    cacheSavedUsd: batchedCounter({ name: 'switchyard_cache_saved_usd_total', help: 'USD not spent thanks to the cache.', registers: r }),
    cacheCoalesced: batchedCounter({ name: 'switchyard_cache_coalesced_total', help: 'Requests served by joining an identical in-flight request.', registers: r }),
    cacheBytes: new Gauge({ name: 'switchyard_cache_bytes', help: 'Bytes held by the in-memory exact cache.', registers: r }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
