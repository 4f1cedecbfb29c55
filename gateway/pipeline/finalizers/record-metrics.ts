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

export function createRecordMetricsFinalizer(deps: GatewayDeps): Finalizer {
  const m = deps.metrics;
  return function recordMetrics(ctx: RequestContext) {
    const known = ctx.target !== undefined;
    const model = known ? ctx.target!.alias : '_unknown';
    const backend = known ? ctx.target!.backendName : '_none';
    const endNs = process.hrtime.bigint();
    m.requests.labels(model, backend, String(ctx.status)).inc();
    m.requestDuration.labels(model).observe(Number(endNs - ctx.startNs) / NS);
    m.overhead.labels(model).observe(Number(endNs - ctx.startNs - ctx.upstreamNs) / NS);
    if (known && ctx.upstreamNs > 0n) m.upstreamDuration.labels(backend).observe(Number(ctx.upstreamNs) / NS);
    if (ctx.stream && ctx.firstByteNs !== undefined) m.timeToFirstToken.labels(model).observe(Number(ctx.firstByteNs - ctx.startNs) / NS);
    if (ctx.usage && known) {
      if (ctx.usage.prompt_tokens) m.tokens.labels(model, 'prompt').inc(ctx.usage.prompt_tokens);
      if (ctx.usage.completion_tokens) m.tokens.labels(model, 'completion').inc(ctx.usage.completion_tokens);
    }
    if (ctx.toolCalls?.length && known) for (const fn of ctx.toolCalls) m.toolCalls.labels(model, boundedFunction(ctx, fn)).inc();
    if (ctx.endpoint === 'chat') countToolResults(ctx, deps);
  };
}

/** A function name is a label only when the request declared it (bounded by the client's tools list). */
function boundedFunction(ctx: RequestContext, name: string): string {
  const tools = ctx.body?.tools;
  if (Array.isArray(tools) && tools.some((t) => (t as { function?: { name?: string } })?.function?.name === name)) return name.slice(0, 64);
  return '_undeclared';
}
