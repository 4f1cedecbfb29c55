/**
 * What the cache tells other stages through ctx.locals. The budget stage, its
 * settlement and cost accounting read `isFreeCacheHit(ctx)`: a request answered from
 * the cache (or by joining an identical in-flight request) consumes no token/USD
 * budget unless cache.charge_hits is true. ctx.usage is still set on a hit (what the
 * client received), so the access log shows it.
 */
import type { RequestContext } from '../pipeline/context.js';

const HIT = 'cacheHit';

export type CacheHitKind = 'exact' | 'semantic' | 'coalesced';

export function markCacheHit(ctx: RequestContext, kind: CacheHitKind): void {
  ctx.locals[HIT] = kind;
}

/** The request was answered without an upstream call of its own. */
export function isCacheHit(ctx: RequestContext): boolean {
  return ctx.locals[HIT] !== undefined;
}

export function cacheHitKind(ctx: RequestContext): CacheHitKind | undefined {
  return ctx.locals[HIT] as CacheHitKind | undefined;
}

/** A hit that must not be charged against budgets (cache.charge_hits false, the default). */
export function isFreeCacheHit(ctx: RequestContext): boolean {
  return isCacheHit(ctx) && !ctx.config.cache.charge_hits;
}
