/**
 * Stores a miss's answer when it completes, and hands it to coalesced followers.
 * check-cache calls recordOnCompletion() on a miss; it needs nothing from dispatch
 * beyond what dispatch already leaves on the context:
 *   - streams: dispatch passes ctx.locals.streamHooks to relayStream, whose onText
 *     sees every piece of SSE text sent to the client (fed to the assembler and to
 *     live followers);
 *   - at the end (ctx.onEnd, after the response ended): ctx.status, ctx.streamOutcome,
 *     ctx.locals.streamState (StreamState), ctx.locals.responseBody (the non-stream
 *     body sent), ctx.usage, ctx.target.
 * Only a 200 with a complete, error-free answer is stored (PEERS 8), and only when
 * the request still has the key it was looked up under: a fallback to another model
 * or a later stage changing the body (e.g. a budget clamp of max_tokens) means the
 * answer belongs to a different request.
 */
import type { Logger } from '../logger.js';
import type { RequestContext } from '../pipeline/context.js';
import type { RelayHooks } from '../pipeline/stages/relay-stream.js';
import type { StreamState } from '../providers/types.js';
import { createStreamAssembler } from './assemble.js';
import type { Leader } from './coalesce.js';
import { fromOpenAIUsage, isStorableResponse, type CacheEndpoint, type CacheEntry } from './entry.js';
import { exactCacheKey } from './key.js';
import type { CacheParts } from './parts.js';
import type { CachePolicy } from './policy.js';
import type { SemanticQuery } from './semantic.js';

export interface PendingStore {
  endpoint: CacheEndpoint;
  key: string;
  targetId: string;
  policy: CachePolicy;
  leader?: Leader;
  /** Semantic layer: where and under which vector to add the answer. */
  semantic?: { query: SemanticQuery; vector: Float32Array };
}

/**
 * The partition of the cache a request reads and writes: its target, and (in the exact
 * key, the semantic partition and the coalescing flight alike) whatever must keep it
 * apart from other requests for that target.
 */
export function targetIdOf(ctx: RequestContext): string | undefined {
  if (!ctx.target) return undefined;
  // Parts joined as JSON, so no backend, model or key name can spell another's id.
  const parts: string[] = [ctx.target.backendName, ctx.target.model.model];
  // A route that redacts completions stores and serves redacted answers only: its entries
  // (and coalescing flights) are a partition of their own, so neither side ever gets the
  // other's text.
  if (ctx.route?.filters?.pii?.completions === true) parts.push('pii-redacted');
  // scope: key — each virtual key has its own entries and flights: no key is served (or
  // can time) an answer another key asked for.
  if ((ctx.route?.cache?.scope ?? ctx.config.cache.scope) === 'key') parts.push('key', ctx.key?.id ?? '');
  return JSON.stringify(parts);
}

function parseBody(body: unknown): unknown {
  try {
    if (typeof body === 'string') return JSON.parse(body);
    if (body instanceof Uint8Array) return JSON.parse(Buffer.from(body.buffer, body.byteOffset, body.byteLength).toString('utf8'));
  } catch {
    /* not JSON: not storable */
  }
  return undefined;
}

/** A changed body still keys to the entry it was looked up under (a body grown too large to key does not). */
function sameKey(c: RequestContext, p: PendingStore): boolean {
  try {
    return exactCacheKey({ endpoint: p.endpoint, target: p.targetId, body: c.body }) === p.key;
  } catch {
    return false;
  }
}

export function recordOnCompletion(ctx: RequestContext, p: PendingStore, parts: CacheParts, logger: Logger): void {
  const assembler = ctx.stream ? createStreamAssembler(p.endpoint) : undefined;
  if (assembler) {
    const prev = ctx.locals.streamHooks as RelayHooks | undefined;
    const hooks: RelayHooks = {
      onText(text) {
        prev?.onText?.(text);
        assembler.push(text);
        p.leader?.chunk(text);
      },
    };
    ctx.locals.streamHooks = hooks;
  }

  ctx.onEnd.push(async (c) => {
    try {
      let response: unknown;
      if (c.status === 200 && c.errorCode === undefined) {
        if (!assembler) response = parseBody(c.locals.responseBody);
        else if (c.streamOutcome === 'complete') {
          const st = c.locals.streamState as StreamState | undefined;
          if (st) response = assembler.finish({ done: st.done, error: st.error, usage: st.usage ?? c.usage });
        }
      }
      const sameRequest = targetIdOf(c) === p.targetId && (!c.bodyChanged || sameKey(c, p));
      const usage = isStorableResponse(response) ? (fromOpenAIUsage(response.usage) ?? c.usage) : undefined;
      if (!isStorableResponse(response) || !usage) {
        p.leader?.fail(assembler?.sawError ?? false);
        return;
      }
      const now = Date.now();
      const entry: CacheEntry = { v: 1, endpoint: p.endpoint, response, usage, expiresAtMs: now + p.policy.exactTtlS * 1000 };
      // A complete answer from another target (a fallback) or to a changed body: the
      // followers get it as the leader did (a live stream follower already has every
      // byte and ends cleanly), but it is not stored under this request's key.
      p.leader?.complete(entry);
      if (!sameRequest || !p.policy.write) return;
      const writes: Promise<unknown>[] = [];
      if (p.policy.exact) writes.push(parts.exact.set(p.key, entry, p.policy.exactTtlS));
      if (p.semantic && parts.semantic) {
        const semEntry = { ...entry, expiresAtMs: now + p.policy.semanticTtlS * 1000 };
        writes.push(parts.semantic.add(p.semantic.query.partition, { id: p.key, vector: p.semantic.vector, entry: semEntry }));
      }
      const results = await Promise.allSettled(writes);
      for (const r of results) if (r.status === 'rejected') logger.warn({ request_id: c.id, err: (r.reason as Error)?.message }, 'cache store failed; answer not cached');
    } finally {
      // After the store: a request arriving meanwhile still joins the completed flight instead of missing.
      p.leader?.release();
    }
  });
}
