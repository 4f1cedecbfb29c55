/**
 * recordMetrics: one request's figures into the Prometheus metrics. Labels come only
 * from config (aliases, backends, key ids) or fixed sets.
 */
import type { Finalizer, RequestContext } from '../context.js';
import type { GatewayDeps } from '../deps.js';

const NS = 1e9;

/** Tool-result messages after the last assistant turn: how the client's tool calls went. */
function countToolResults(ctx: RequestContext, deps: GatewayDeps): void {
  const messages = ctx.body?.messages;
  if (!Array.isArray(messages)) return;
  for (let i = messages.length - 1; i >= 0; i--) {
    const m = messages[i] as { role?: string; content?: unknown };
    if (m?.role !== 'tool') break;
    const text = typeof m.content === 'string' ? m.content : JSON.stringify(m.content ?? '');
    const failed = /^\s*(\{\s*"error"|error\b|exception\b|traceback\b)/i.test(text);
    deps.metrics.toolResults.labels(failed ? 'error' : 'success').inc();
  }
}

/** Label children per (alias, backend), resolved once: prom-client's label hashing is not free per request. */
function childrenFor(m: GatewayDeps['metrics'], model: string, backend: string) {
  const byStatus = new Map<number, ReturnType<typeof m.requests.labels>>();
  return {
    requests: (status: number) => {
      let c = byStatus.get(status);
      if (!c) byStatus.set(status, (c = m.requests.labels(model, backend, String(status))));
      return c;
    },
    duration: m.requestDuration.labels(model),
    overhead: m.overhead.labels(model),
    upstream: m.upstreamDuration.labels(backend),
    ttft: m.timeToFirstToken.labels(model),
    prompt: m.tokens.labels(model, 'prompt'),
    completion: m.tokens.labels(model, 'completion'),
  };
}

export function createRecordMetricsFinalizer(deps: GatewayDeps): Finalizer {
  const m = deps.metrics;
  const cache = new Map<string, ReturnType<typeof childrenFor>>();
  /** Function labels handed out so far, per model alias (string keys, bounded). */
  const functionLabels = new Map<string, Set<string>>();
  return function recordMetrics(ctx: RequestContext) {
    const known = ctx.target !== undefined;
    const model = known ? ctx.target!.alias : '_unknown';
    const backend = known ? ctx.target!.backendName : '_none';
    const cacheKey = known ? `${model}\u0000${backend}` : '_unknown';
    let c = cache.get(cacheKey);
    if (!c) cache.set(cacheKey, (c = childrenFor(m, model, backend)));
    const endNs = process.hrtime.bigint();
    c.requests(ctx.status).inc();
    c.duration.observe(Number(endNs - ctx.startNs) / NS);
    c.overhead.observe(Number(endNs - ctx.startNs - ctx.upstreamNs - ctx.waitNs) / NS);
    if (known && ctx.upstreamNs > 0n) c.upstream.observe(Number(ctx.upstreamNs) / NS);
    if (ctx.stream && ctx.firstByteNs !== undefined) c.ttft.observe(Number(ctx.firstByteNs - ctx.startNs) / NS);
    // Only tokens that went to a backend: a cache hit's usage is what the client received, not what was spent.
    if (ctx.usage && known && !(ctx.cacheResult === 'hit' || ctx.cacheResult === 'semantic-hit' || ctx.cacheResult === 'coalesced')) {
      if (ctx.usage.prompt_tokens) c.prompt.inc(ctx.usage.prompt_tokens);
      if (ctx.usage.completion_tokens) c.completion.inc(ctx.usage.completion_tokens);
    }
    if (ctx.toolCalls?.length && known) for (const fn of ctx.toolCalls) m.toolCalls.labels(model, boundedFunction(ctx, fn, functionLabels, model)).inc();
    if (ctx.endpoint === 'chat') countToolResults(ctx, deps);
  };
}

/**
 * Distinct function labels per model alias. Function names come from clients' tools
 * lists, so a client declaring a new name per request could otherwise grow the metric
 * without bound; past this many, further names count as `_other`.
 */
export const MAX_FUNCTION_LABELS = 100;

/** A function name is a label only when the request declared it, and only within the per-model cap. */
function boundedFunction(ctx: RequestContext, name: string, seen: Map<string, Set<string>>, model: string): string {
  const tools = ctx.body?.tools;
  if (!(Array.isArray(tools) && tools.some((t) => (t as { function?: { name?: string } })?.function?.name === name))) return '_undeclared';
  const label = name.slice(0, 64);
  let names = seen.get(model);
  if (!names) seen.set(model, (names = new Set()));
  if (names.has(label)) return label;
  if (names.size >= MAX_FUNCTION_LABELS) return '_other';
  names.add(label);
  return label;
}
