/**
 * Route matching and target picking. `compileRoutes(config)` runs once per config
 * generation (start-up and reload): globs become RegExps, header names are
 * lower-cased, weights are summed. `matchRoute` runs per request: routes in YAML
 * order, first match wins. `pickTargets` orders the aliases the dispatcher may try.
 */
import type { Config, RouteConfig } from '../config/schema.js';
import { compileGlob } from './glob.js';

export interface MatchInput {
  /** The model alias the client asked for. */
  model: string;
  keyId?: string;
  /** Lower-case header names. */
  headers: Readonly<Record<string, string>>;
  hasTools: boolean;
  hasImages: boolean;
  stream: boolean;
  /**
   * Estimated prompt tokens. Pass a function to count lazily: it is called at most
   * once, and only when a route with `prompt_tokens` is evaluated.
   */
  promptTokens?: number | (() => number);
}

type Predicate = (input: MatchInput, tokens: () => number) => boolean;

export interface CompiledRoute {
  readonly route: RouteConfig;
  readonly index: number;
  readonly test: Predicate;
  /** Target aliases and weights (empty when the route uses complexity or only renames by fallbacks). */
  readonly targets: ReadonlyArray<{ alias: string; weight: number }>;
  readonly totalWeight: number;
}

export interface CompiledRoutes {
  readonly routes: readonly CompiledRoute[];
  /** Some route matches on prompt_tokens: the caller should offer a token count. */
  readonly needsPromptTokens: boolean;
}

function isGlob(s: string): boolean {
  return /[*?]/.test(s);
}

/** Exact strings compare with ===; globs with a RegExp compiled here, once. */
function stringMatcher(pattern: string): (v: string | undefined) => boolean {
  if (!isGlob(pattern)) return (v) => v === pattern;
  const re = compileGlob(pattern);
  return (v) => v !== undefined && re.test(v);
}

export function compileRoute(route: RouteConfig, index: number): CompiledRoute {
  const m = route.match;
  const checks: Predicate[] = [];
  if (m.model !== undefined) {
    const f = stringMatcher(m.model);
    checks.push((i) => f(i.model));
  }
  if (m.key !== undefined) {
    const f = stringMatcher(m.key);
    checks.push((i) => f(i.keyId));
  }
  for (const [name, value] of Object.entries(m.headers ?? {})) {
    const h = name.toLowerCase();
    const f = stringMatcher(value);
    checks.push((i) => f(i.headers[h]));
  }
  if (m.has_tools !== undefined) checks.push((i) => i.hasTools === m.has_tools);
  if (m.has_images !== undefined) checks.push((i) => i.hasImages === m.has_images);
  if (m.stream !== undefined) checks.push((i) => i.stream === m.stream);
  if (m.prompt_tokens) {
    const min = m.prompt_tokens.min ?? 0;
    const max = m.prompt_tokens.max ?? Infinity;
    checks.push((_i, tokens) => {
      const n = tokens();
      return n >= min && n <= max;
    });
  }
  const targets = (route.targets ?? []).map((t) => ({ alias: t.model, weight: t.weight }));
  return {
    route,
    index,
    test: (input, tokens) => checks.every((c) => c(input, tokens)),
    targets,
    totalWeight: targets.reduce((s, t) => s + t.weight, 0),
  };
}

export function compileRoutes(config: Pick<Config, 'routes'>): CompiledRoutes {
  const routes = config.routes.map(compileRoute);
  return { routes, needsPromptTokens: config.routes.some((r) => r.match.prompt_tokens !== undefined) };
}

/** First matching route in YAML order, or undefined (then the alias of the same name serves the request). */
/** Prompt tokens counted at most once, and only when something asks. */
export function memoizeTokens(p: MatchInput['promptTokens']): () => number {
  let counted: number | undefined;
  return () => {
    if (counted === undefined) counted = typeof p === 'function' ? p() : (p ?? 0);
    return counted;
  };
}

export function matchRoute(compiled: CompiledRoutes, input: MatchInput): CompiledRoute | undefined {
  const tokens = memoizeTokens(input.promptTokens);
  for (const r of compiled.routes) if (r.test(input, tokens)) return r;
  return undefined;
}

export interface PickOptions {
  /** In-flight requests per alias, for strategy least_inflight. */
  inflight?: (alias: string) => number;
  /** False for aliases whose backend circuit is open: they are skipped. */
  available?: (alias: string) => boolean;
  /** [0, 1); injectable for tests. */
  random?: () => number;
}

function weightedPick(targets: ReadonlyArray<{ alias: string; weight: number }>, total: number, random: () => number): number {
  let r = random() * total;
  for (let i = 0; i < targets.length; i++) {
    r -= targets[i].weight;
    if (r < 0) return i;
  }
  return targets.length - 1;
}

/**
 * The ordered aliases to try: the picked target, then the route's other targets
 * (by descending weight, so the next best-provisioned one comes first), then the
 * fallbacks in YAML order. Duplicates and unavailable aliases are dropped; an empty
 * result means every candidate's circuit is open (answer backend_unavailable).
 * `primary` replaces the targets for complexity routes (the class's alias).
 */
export function pickTargets(route: CompiledRoute, opts: PickOptions = {}, primary?: string): string[] {
  const available = opts.available ?? (() => true);
  const random = opts.random ?? Math.random;
  const ordered: string[] = [];
  if (primary !== undefined) ordered.push(primary);
  else {
    const live = route.targets.filter((t) => available(t.alias));
    if (live.length) {
      let first: number;
      if (route.route.strategy === 'least_inflight' && opts.inflight) {
        const load = live.map((t) => opts.inflight!(t.alias) / t.weight);
        const least = Math.min(...load);
        // Ties (e.g. all idle) are broken by weight, so an idle pool still follows the weights.
        const tied = live.filter((_t, i) => load[i] === least);
        first = live.indexOf(tied[weightedPick(tied, tied.reduce((s, t) => s + t.weight, 0), random)]);
      } else {
        first = weightedPick(live, live.reduce((s, t) => s + t.weight, 0), random);
      }
      ordered.push(live[first].alias);
      const rest = live.filter((_t, i) => i !== first).sort((a, b) => b.weight - a.weight);
      for (const t of rest) ordered.push(t.alias);
    }
  }
  for (const f of route.route.fallbacks) ordered.push(f);
  const seen = new Set<string>();
  return ordered.filter((a) => {
    if (seen.has(a) || !available(a)) return false;
    seen.add(a);
    return true;
  });
}
