/**
 * Cacheability policy, decided once per request by check-cache from the request's
 * config snapshot, its route's `cache` overrides and the `x-switchyard-cache` header.
 *
 * - Only deterministic requests (temperature 0, or a seed) are cached by default
 *   (cache.exact.only_deterministic, routes[].cache.only_deterministic): caching a
 *   sampled answer would hand every client the same "random" text.
 * - Header `x-switchyard-cache` (comma-separated, case-insensitive):
 *   `no-store` = may be served from cache, the answer is not stored;
 *   `no-cache` = not served from cache, the fresh answer is stored;
 *   `force`    = cache even a non-deterministic request (overrides only the
 *                determinism rule, never a layer the config turned off).
 *   Unknown values are ignored.
 */
import type { Config, RouteConfig } from '../config/schema.js';

export interface CachePolicy {
  /** May be answered from the cache. */
  read: boolean;
  /** The answer may be stored. */
  write: boolean;
  exact: boolean;
  semantic: boolean;
  exactTtlS: number;
  semanticTtlS: number;
}

export interface PolicyInput {
  cache: Config['cache'];
  route?: RouteConfig;
  body: Record<string, unknown>;
  /** Raw value of the request header x-switchyard-cache, if any. */
  header?: string;
  /** The semantic layer is wired (an embed function and an index exist). */
  semanticAvailable: boolean;
}

export function isDeterministic(body: Record<string, unknown>): boolean {
  return body.temperature === 0 || (typeof body.seed === 'number' && Number.isFinite(body.seed));
}

function parseDirectives(header: string | undefined): Set<string> {
  const out = new Set<string>();
  if (!header) return out;
  for (const part of header.split(',')) {
    const d = part.trim().toLowerCase();
    if (d) out.add(d);
  }
  return out;
}

/** undefined = bypass (nothing read, nothing stored). */
export function decideCachePolicy(input: PolicyInput): CachePolicy | undefined {
  const rc = input.route?.cache;
  const exact = rc?.exact ?? input.cache.exact.enabled;
  const semantic = input.semanticAvailable && (rc?.semantic ?? input.cache.semantic.enabled);
  if (!exact && !semantic) return undefined;

  const d = parseDirectives(input.header);
  const onlyDeterministic = rc?.only_deterministic ?? input.cache.exact.only_deterministic;
  if (onlyDeterministic && !d.has('force') && !isDeterministic(input.body)) return undefined;

  const read = !d.has('no-cache');
  const write = !d.has('no-store');
  if (!read && !write) return undefined;
  return {
    read,
    write,
    exact,
    semantic,
    exactTtlS: rc?.ttl_s ?? input.cache.exact.ttl_s,
    semanticTtlS: rc?.ttl_s ?? input.cache.semantic.ttl_s,
  };
}
