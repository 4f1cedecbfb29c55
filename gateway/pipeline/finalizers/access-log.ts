/**
 * accessLog: one JSON line per request. Never logs headers or bodies, so no secret
 * can reach the log from here; the logger's redaction covers everything else.
 */
import { GatewayError } from '../../errors.js';
import type { Finalizer, RequestContext } from '../context.js';
import type { GatewayDeps } from '../deps.js';
import { createAccessLineWriter } from '../../logger.js';

export function createAccessLogFinalizer(deps: GatewayDeps): Finalizer {
  // The access line is built here from a fixed set of non-secret fields (no headers, no
  // bodies, no keys), so it skips the redaction pass that every other log line gets.
  const write = createAccessLineWriter(deps.logger);
  return function accessLog(ctx: RequestContext, error: unknown) {
    const endNs = process.hrtime.bigint();
    const line: Record<string, unknown> = {
      request_id: ctx.id,
      key_id: ctx.key?.id ?? null,
      model: ctx.modelAlias ?? null,
      backend: ctx.target?.backendName ?? null,
      upstream_model: ctx.target?.model.model ?? null,
      endpoint: ctx.endpoint,
      stream: ctx.stream,
      status: ctx.status,
      latency_ms: Number(endNs - ctx.startNs) / 1e6,
      overhead_ms: Number(endNs - ctx.startNs - ctx.upstreamNs) / 1e6,
      prompt_tokens: ctx.usage?.prompt_tokens ?? null,
      completion_tokens: ctx.usage?.completion_tokens ?? null,
    };
    if (ctx.stream && ctx.firstByteNs !== undefined) line.ttfb_ms = Number(ctx.firstByteNs - ctx.startNs) / 1e6;
    if (ctx.streamOutcome && ctx.streamOutcome !== 'complete') line.stream_outcome = ctx.streamOutcome;
    if (ctx.usage?.estimated) line.usage_estimated = true;
    if (ctx.costUsd !== undefined) line.cost_usd = ctx.costUsd;
    if (ctx.routeInfo) line.route = ctx.routeInfo;
    if (ctx.cacheResult) line.cache = ctx.cacheResult;
    if (error) {
      line.error_code = error instanceof GatewayError ? error.code : ((error as { name?: string })?.name ?? 'error');
      // Unknown errors: the detail goes to the log only, the client got a generic 500.
      if (!(error instanceof GatewayError) || error.status >= 500) line.err = describe(error);
    }
    write(ctx.status >= 500 ? 'error' : 'info', line);
  };
}

function describe(err: unknown): Record<string, unknown> {
  const e = err as { message?: string; code?: string; detail?: unknown; stack?: string };
  const detail = e?.detail as { message?: string; code?: string } | undefined;
  return { message: e?.message, code: e?.code, detail: detail ? { message: detail.message, code: detail.code } : undefined };
}
