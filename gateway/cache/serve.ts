/**
 * Answers a request from the cache: a whole entry (exact or semantic hit, or a
 * coalesced follower that waited for the leader's complete answer) as JSON or as a
 * replayed SSE stream, or a follower relaying the leader's live stream. Sets what the
 * finalizers and budget settlement read: status, usage, cacheResult, the hit mark.
 * Called per request by check-cache.
 */
import { streamErrorEvent } from '../errors.js';
import type { RequestContext } from '../pipeline/context.js';
import { responseHeaders } from '../pipeline/respond.js';
import type { Metrics } from '../metrics.js';
import type { CacheEntry } from './entry.js';
import { replaySse } from './replay.js';
import { markCacheHit, type CacheHitKind } from './locals.js';
import { sameShape, type Follower } from './coalesce.js';

export const CACHE_HEADER = 'x-switchyard-cache';

type CacheMetrics = Pick<Metrics, 'cacheRequests' | 'cacheSavedTokens' | 'cacheSavedUsd' | 'cacheCoalesced'>;

// Serialised non-stream bodies, per entry object: the memory tier hands out the same
// object on every hit, so a hot entry is stringified once, not per request.
const bodies = new WeakMap<CacheEntry, string>();

/**
 * A hit answers with the stored response as the upstream gave it, `model` included (the
 * upstream's name, e.g. a dated snapshot), exactly as the miss that made the entry did.
 */
function jsonBody(entry: CacheEntry): string {
  let body = bodies.get(entry);
  if (body === undefined) bodies.set(entry, (body = JSON.stringify(entry.response)));
  return body;
}

function toolCallNames(entry: CacheEntry): string[] | undefined {
  const names: string[] = [];
  for (const c of entry.response.choices as Array<{ message?: { tool_calls?: Array<{ function?: { name?: unknown } }> } }>) {
    for (const tc of c.message?.tool_calls ?? []) if (typeof tc.function?.name === 'string') names.push(tc.function.name);
  }
  return names.length ? names : undefined;
}

/** USD per million tokens from the target's price; 0 when the model has none. */
export function savedUsd(ctx: RequestContext, entry: CacheEntry): number {
  const price = ctx.target?.model.price;
  if (!price) return 0;
  return (entry.usage.prompt_tokens * price.input + entry.usage.completion_tokens * price.output) / 1e6;
}

function account(ctx: RequestContext, entry: CacheEntry, kind: CacheHitKind, metrics: CacheMetrics): void {
  markCacheHit(ctx, kind);
  ctx.cacheResult = kind === 'semantic' ? 'semantic-hit' : kind === 'coalesced' ? 'coalesced' : 'hit';
  ctx.usage = { ...entry.usage };
  ctx.toolCalls = toolCallNames(entry);
  ctx.status = 200;
  metrics.cacheRequests.labels(kind === 'semantic' ? 'semantic' : 'exact', 'hit').inc();
  if (kind === 'coalesced') metrics.cacheCoalesced.inc();
  metrics.cacheSavedTokens.inc(entry.usage.total_tokens);
  const usd = savedUsd(ctx, entry);
  if (usd > 0) metrics.cacheSavedUsd.inc(usd);
}

/** Sends `entry` to the client as JSON or as a replayed stream. */
export function serveEntry(ctx: RequestContext, entry: CacheEntry, kind: CacheHitKind, metrics: CacheMetrics): void {
  ctx.responseHeaders[CACHE_HEADER] = kind === 'semantic' ? 'semantic-hit' : 'hit';
  account(ctx, entry, kind, metrics);
  ctx.firstByteNs = process.hrtime.bigint();
  if (ctx.stream) {
    ctx.streamOutcome = 'complete';
    // One send: the whole stream is known, so no need to trickle it out.
    ctx.res.send(200, responseHeaders(ctx, 'text/event-stream'), replaySse(entry, { includeUsage: ctx.clientWantsUsage }));
  } else {
    ctx.res.send(200, responseHeaders(ctx, 'application/json'), jsonBody(entry));
  }
}

/**
 * Serves a coalescing follower. Returns false when nothing was sent (the leader failed
 * or wait_ms passed): the caller then makes its own upstream call.
 */
export async function serveFollower(ctx: RequestContext, follower: Follower, waitMs: number, metrics: CacheMetrics): Promise<boolean> {
  const live = ctx.stream && sameShape(follower.shape, { stream: true, includeUsage: ctx.clientWantsUsage, model: ctx.modelAlias });
  // A follower's wait is the leader's upstream call: not gateway overhead (and not an
  // upstream call of its own, which would make a cut follower billable).
  const waitStart = process.hrtime.bigint();
  if (!live) {
    const entry = await follower.result(waitMs);
    ctx.waitNs += process.hrtime.bigint() - waitStart;
    if (!entry || ctx.res.aborted) return entry !== undefined;
    serveEntry(ctx, entry, 'coalesced', metrics);
    return true;
  }
  let started = false;
  const outcome = await follower.follow(
    {
      write(text) {
        if (!started) {
          started = true;
          ctx.status = 200;
          ctx.responseHeaders[CACHE_HEADER] = 'hit';
          ctx.firstByteNs = process.hrtime.bigint();
          ctx.res.writeHead(200, responseHeaders(ctx, 'text/event-stream'));
        }
        return ctx.res.write(text);
      },
      aborted: () => ctx.res.aborted,
    },
    waitMs,
  );
  ctx.waitNs += process.hrtime.bigint() - waitStart;
  switch (outcome.kind) {
    case 'fall-through':
      return false;
    case 'complete':
      account(ctx, outcome.entry, 'coalesced', metrics);
      ctx.streamOutcome = 'complete';
      ctx.res.end(outcome.sawDone ? undefined : 'data: [DONE]\n\n');
      return true;
    case 'broken':
      ctx.streamOutcome = 'interrupted';
      ctx.res.end(outcome.errorSent ? undefined : streamErrorEvent('upstream_stream_interrupted'));
      return true;
    case 'aborted':
      ctx.streamOutcome = 'client_aborted';
      if (!started) ctx.status = 499;
      return true;
  }
}
