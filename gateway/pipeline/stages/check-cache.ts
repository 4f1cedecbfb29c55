/**
 * checkCache: answers from the response cache, or arranges for the answer to be
 * cached. Runs after resolveRoute (the key holds the resolved target) and after
 * checkBudget (the architecture's order): a hit is admitted like any request, and the
 * budget settlement charges it nothing (servedFromCache) unless cache.charge_hits.
 *
 * Order within the stage (docs/cache.md):
 *   policy → bypass?  exact lookup → hit?  coalesce: follower → served?  semantic
 *   lookup → hit?  miss: header, metrics, recordOnCompletion (store + wake followers).
 * Followers join before the semantic lookup, so a herd costs one embedding call too.
 * The cache never fails a request: store or embedding trouble is a miss.
 */
import type { RequestContext, Stage } from '../context.js';
import { STOP } from '../context.js';
import type { GatewayDeps } from '../deps.js';
import type { CacheParts } from '../../cache/parts.js';
import { decideCachePolicy, type CachePolicy } from '../../cache/policy.js';
import { exactCacheKey, KeyTooLargeError } from '../../cache/key.js';
import { normaliseVector, semanticQuery } from '../../cache/semantic.js';
import { CACHE_HEADER, serveEntry, serveFollower } from '../../cache/serve.js';
import { recordOnCompletion, targetIdOf, type PendingStore } from '../../cache/record.js';
import type { Leader } from '../../cache/coalesce.js';
import type { CacheEndpoint, CacheEntry } from '../../cache/entry.js';

const EMBED_WARN_EVERY_MS = 60_000;
/** How often a replica that lost the cross-replica lock looks for the winner's entry. */
const LOCK_POLL_MS = 20;

export function createCheckCacheStage(deps: GatewayDeps, parts: CacheParts): Stage {
  const { metrics, logger } = deps;
  let lastEmbedWarn = 0;
  let lastLockWarn = 0;

  async function getExact(ctx: RequestContext, key: string): Promise<CacheEntry | undefined> {
    try {
      return await parts.exact.get(key);
    } catch (err) {
      logger.warn({ request_id: ctx.id, err: (err as Error).message }, 'cache lookup failed; treated as a miss');
      return undefined;
    }
  }

  async function embed(ctx: RequestContext, text: string): Promise<Float32Array | undefined> {
    try {
      return normaliseVector(await parts.embed!(text));
    } catch (err) {
      const now = Date.now();
      if (now - lastEmbedWarn > EMBED_WARN_EVERY_MS) {
        lastEmbedWarn = now;
        logger.warn({ request_id: ctx.id, model: ctx.config.cache.semantic.embedding_model, err: (err as Error).message }, 'embedding for the semantic cache failed; semantic layer skipped');
      }
      return undefined;
    }
  }

  async function lookupSemantic(ctx: RequestContext, partition: string, vector: Float32Array, threshold: number) {
    try {
      return await parts.semantic!.lookup(partition, vector, threshold);
    } catch (err) {
      logger.warn({ request_id: ctx.id, err: (err as Error).message }, 'semantic cache lookup failed; treated as a miss');
      return undefined;
    }
  }

  /**
   * Another replica may be fetching the same answer: take the lock and lead, or poll
   * the shared exact cache until its entry appears, its lock goes (then lead), or
   * wait_ms passes (then call upstream without the lock).
   */
  async function waitForOtherReplica(ctx: RequestContext, key: string, waitMs: number): Promise<CacheEntry | 'acquired' | undefined> {
    const lock = parts.lock!;
    if (await lock.acquire(key, waitMs)) return 'acquired';
    const deadline = Date.now() + waitMs;
    while (Date.now() < deadline && !ctx.res.aborted) {
      await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
      const entry = await getExact(ctx, key);
      if (entry) return entry;
      if (!(await lock.held(key)) && (await lock.acquire(key, waitMs))) return 'acquired';
    }
    return undefined;
  }

  // Synchronous up to a hit held in this process's memory (the cache's hot path): no
  // Promise and no await unless the lookup must go further (Redis, coalescing, semantic).
  return function checkCache(ctx: RequestContext) {
    if (ctx.endpoint !== 'chat' && ctx.endpoint !== 'completions') return;
    const targetId = targetIdOf(ctx);
    if (!targetId) return;
    const cfg = ctx.config.cache;
    const policy = decideCachePolicy({
      cache: cfg,
      route: ctx.route,
      body: ctx.body,
      header: ctx.req.headers[CACHE_HEADER],
      semanticAvailable: parts.semantic !== undefined && parts.embed !== undefined,
    });
    const endpoint = ctx.endpoint;
    let key: string | undefined;
    if (policy) {
      try {
        key = exactCacheKey({ endpoint, target: targetId, body: ctx.body, raw: ctx.bodyChanged ? undefined : ctx.rawBody });
      } catch (err) {
        if (!(err instanceof KeyTooLargeError)) throw err;
      }
    }
    if (!policy || key === undefined) {
      ctx.responseHeaders[CACHE_HEADER] = 'bypass';
      ctx.cacheResult = 'bypass';
      metrics.cacheRequests.labels('exact', 'bypass').inc();
      return;
    }
    if (policy.read && policy.exact) {
      const local = parts.exact.peek?.(key);
      if (local) {
        serveEntry(ctx, local, 'exact', metrics);
        return STOP;
      }
    }
    return lookFurther(ctx, endpoint, policy, key, targetId);
  };

  async function lookFurther(ctx: RequestContext, endpoint: CacheEndpoint, policy: CachePolicy, key: string, targetId: string): Promise<typeof STOP | undefined> {
    const cfg = ctx.config.cache;
    if (policy.read && policy.exact) {
      // Beyond this process's memory (peeked above): a tiered store's Redis, or a store without peek.
      const entry = await getExact(ctx, key);
      if (entry) {
        serveEntry(ctx, entry, 'exact', metrics);
        return STOP;
      }
    }

    let leader: Leader | undefined;
    if (cfg.coalesce.enabled && policy.read && policy.write) {
      const joined = parts.coalescer.join(key, { stream: ctx.stream, includeUsage: ctx.clientWantsUsage, model: ctx.modelAlias });
      if (joined.role === 'leader') {
        leader = joined.leader;
        // app.ts: if this client leaves while followers wait, the upstream call goes on for them.
        ctx.locals.coalesceLeader = leader;
      }
      else if (await serveFollower(ctx, joined.follower, cfg.coalesce.wait_ms, metrics)) return STOP;
      // The client left while waiting: no upstream call for nobody.
      else if (ctx.res.aborted) return STOP;
    }

    // Across replicas (optional): the replica holding the Redis lock calls upstream, the others wait for its entry.
    let lockHeld = false;
    if (leader && parts.lock && policy.exact) {
      // A lock call that fails (Redis down) means "no lock": this replica goes upstream on its own.
      const other = await waitForOtherReplica(ctx, key, cfg.coalesce.wait_ms).catch((err: Error) => {
        const now = Date.now();
        if (now - lastLockWarn > EMBED_WARN_EVERY_MS) {
          lastLockWarn = now;
          logger.warn({ request_id: ctx.id, err: err.message }, 'cross-replica cache lock failed; calling upstream without it');
        }
        return undefined;
      });
      if (other === 'acquired') lockHeld = true;
      else if (other) {
        leader.complete(other);
        leader.release();
        serveEntry(ctx, other, 'coalesced', metrics);
        return STOP;
      }
    }
    const releaseLock = (): void => {
      if (lockHeld) void parts.lock!.release(key).catch(() => undefined);
      lockHeld = false;
    };

    try {
      let semantic: PendingStore['semantic'];
      if (policy.semantic) {
        const query = semanticQuery(endpoint, targetId, ctx.body);
        const vector = query ? await embed(ctx, query.text) : undefined;
        if (query && vector) {
          semantic = { query, vector };
          const match = policy.read ? await lookupSemantic(ctx, query.partition, vector, cfg.semantic.threshold) : undefined;
          if (match) {
            leader?.complete(match.entry);
            leader?.release();
            releaseLock();
            serveEntry(ctx, match.entry, 'semantic', metrics);
            return STOP;
          }
          metrics.cacheRequests.labels('semantic', policy.read ? 'miss' : 'bypass').inc();
        } else {
          metrics.cacheRequests.labels('semantic', 'bypass').inc();
        }
      }

      const result = policy.read ? 'miss' : 'bypass';
      ctx.responseHeaders[CACHE_HEADER] = result;
      ctx.cacheResult = result;
      if (policy.exact) metrics.cacheRequests.labels('exact', result).inc();
      // From here the completion hook (ctx.onEnd) settles the flight on every ending.
      recordOnCompletion(ctx, { endpoint, key, targetId, policy, leader, semantic }, parts, logger);
      // After the completion hook (which stores the answer): other replicas find the entry when the lock goes.
      if (lockHeld) ctx.onEnd.push(releaseLock);
    } catch (err) {
      leader?.release();
      releaseLock();
      throw err;
    }
    return undefined;
  }
}
