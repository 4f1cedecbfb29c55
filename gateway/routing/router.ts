/**
 * The router: routes + complexity classifier + target picking, compiled once per
 * config generation by `createRouter(config)` and asked once per request by the
 * resolve-route stage. It answers with alias names only; turning aliases into
 * backends (and 404 for unknown ones) stays with the stage.
 *
 *   no route matches          → [the requested alias]            (issue: "alias of the same name")
 *   route with complexity     → [alias for the class, ...fallbacks]
 *   route with targets        → [picked target, other targets, ...fallbacks]
 *   route with neither        → [the requested alias, ...fallbacks]
 */
import type { Config, RouteConfig } from '../config/schema.js';
import { classifierText, createClassifier, type Classification, type Classifier } from './complexity.js';
import { compileRoutes, matchRoute, memoizeTokens, pickTargets, type CompiledRoutes, type MatchInput, type PickOptions } from './match.js';

export interface RouterInput extends MatchInput {
  /** The client's parsed body (messages or prompt), read only by complexity routes. */
  body: Record<string, unknown>;
}

export interface RouteDecision {
  route?: RouteConfig;
  /** Ordered aliases to try; empty when every candidate's circuit is open. */
  aliases: string[];
  complexity?: Classification & { reference?: string };
  /** Value for the x-switchyard-route response header (ASCII-safe). */
  info: string;
}

export interface Router {
  readonly compiled: CompiledRoutes;
  decide(input: RouterInput, opts?: PickOptions): RouteDecision;
}

/**
 * Header values must be ASCII: only the non-ASCII runs (a Chinese keyword) are
 * percent-encoded, so `rule=keyword:%E5%88%86%E6%9E%90` stays readable.
 */
/** Route info values are config names or a model id: bounded, in case a caller's id is long. */
const MAX_INFO_VALUE = 256;

function headerSafe(v: string): string {
  const safe = /^[\x20-\x7e]*$/.test(v) ? v : v.replace(/[^\x20-\x7e]+/g, (run) => encodeURIComponent(run));
  return safe.length > MAX_INFO_VALUE ? `${safe.slice(0, MAX_INFO_VALUE)}...` : safe;
}

export function formatRouteInfo(parts: { route?: string; class?: string; rule?: string; target?: string }): string {
  const out: string[] = [];
  for (const k of ['route', 'class', 'rule', 'target'] as const) {
    const v = parts[k];
    if (v !== undefined) out.push(`${k}=${headerSafe(v)}`);
  }
  return out.join('; ');
}

export function createRouter(config: Pick<Config, 'routes' | 'complexity'>): Router {
  const compiled = compileRoutes(config);
  const classify: Classifier = createClassifier(config.complexity);

  return {
    compiled,
    decide(input, opts = {}) {
      // Count prompt tokens at most once, and only if a prompt_tokens match or a complexity route needs them.
      const tokens = memoizeTokens(input.promptTokens);
      const hit = matchRoute(compiled, { ...input, promptTokens: tokens });
      const available = opts.available ?? (() => true);
      if (!hit) {
        const aliases = available(input.model) ? [input.model] : [];
        return { aliases, info: formatRouteInfo({ target: input.model }) };
      }
      const route = hit.route;
      if (route.complexity) {
        const { text, turns } = classifierText(input.body);
        const c = classify({ text, turns, promptTokens: tokens(), hasTools: input.hasTools });
        const aliases = pickTargets(hit, opts, route.complexity[c.class]);
        return {
          route,
          aliases,
          complexity: { ...c, reference: route.complexity.reference },
          info: formatRouteInfo({ route: route.name, class: c.class, rule: c.rule, target: aliases[0] }),
        };
      }
      const aliases = pickTargets(hit, opts, hit.targets.length ? undefined : input.model);
      return { route, aliases, info: formatRouteInfo({ route: route.name, target: aliases[0] }) };
    },
  };
}

/** The request features routes match on, read from the OpenAI body without copying it. */
export function requestFeatures(body: Record<string, unknown>): { hasTools: boolean; hasImages: boolean } {
  const hasTools = Array.isArray(body.tools) && body.tools.length > 0;
  let hasImages = false;
  const messages = body.messages;
  if (Array.isArray(messages)) {
    outer: for (const m of messages) {
      const content = (m as { content?: unknown } | null)?.content;
      if (!Array.isArray(content)) continue;
      for (const p of content) {
        if ((p as { type?: unknown } | null)?.type === 'image_url') {
          hasImages = true;
          break outer;
        }
      }
    }
  }
  return { hasTools, hasImages };
}
