/**
 * Response headers every answer carries (request id, overhead, stage headers) and
 * the one way errors are written to the client.
 */
import { toOpenAIError } from '../errors.js';
import type { RequestContext } from './context.js';

/** Gateway time so far (total minus upstream wait), in ms. */
export function overheadMs(ctx: RequestContext): number {
  return Number(process.hrtime.bigint() - ctx.startNs - ctx.upstreamNs - ctx.waitNs) / 1e6;
}

export function responseHeaders(ctx: RequestContext, contentType: string): Record<string, string> {
  const h: Record<string, string> = {
    'content-type': contentType,
    'x-request-id': ctx.id,
    'x-switchyard-overhead-ms': overheadMs(ctx).toFixed(3),
  };
  if (contentType === 'text/event-stream') {
    h['cache-control'] = 'no-cache';
    h['x-accel-buffering'] = 'no';
  }
  for (const k in ctx.responseHeaders) h[k] = ctx.responseHeaders[k];
  return h;
}

export function respondError(ctx: RequestContext, err: unknown): void {
  const e = toOpenAIError(err);
  ctx.status = e.status;
  const h = responseHeaders(ctx, 'application/json');
  for (const k in e.headers) h[k] = e.headers[k];
  ctx.res.send(e.status, h, e.body);
}
